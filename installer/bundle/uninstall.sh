#!/usr/bin/env bash
# Remove the workstation program and its menu entry. The clinic's data folder (studies, reads,
# audit trail, accounts) is never removed: delete it yourself if you really mean to.
set -euo pipefail
prefix="${WORKSTATION_PREFIX:-$HOME/.local/opt/workstation}"
data_share="${XDG_DATA_HOME:-$HOME/.local/share}"
if [ -e "$prefix/review.db" ] || [ -e "$prefix/library.db" ]; then
  echo "uninstall: $prefix holds clinic data; refusing to remove it" >&2; exit 1
fi
data="$("$prefix/bin/workstation" --data-folder 2>/dev/null || echo "${WORKSTATION_HOME:-$data_share/workstation}")"
rm -rf "$prefix"
rm -f "$data_share/applications/workstation.desktop" "$data_share/icons/hicolor/scalable/apps/workstation.svg"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data_share/applications" || true
echo "Removed the workstation program from $prefix. Your data was kept: $data"
