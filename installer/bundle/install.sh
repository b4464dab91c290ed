#!/usr/bin/env bash
# Install (or update) the workstation from this bundle. Needs no network: every package comes
# from wheels/ beside this script. An update installs the new version beside the old one and
# then switches to it; the clinic's data folder is never touched.
#   ./install.sh                        into ~/.local/opt/workstation (WORKSTATION_PREFIX to change)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${WORKSTATION_PREFIX:-$HOME/.local/opt/workstation}"
python="${PYTHON:-python3}"
data_share="${XDG_DATA_HOME:-$HOME/.local/share}"

fail() { echo "install: $*" >&2; exit 1; }
command -v "$python" >/dev/null || fail "Python 3 is needed ($python not found); install python3 and python3-venv"
want="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["python"])' "$here/BUNDLE.json")"
have="$("$python" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')"
[ "$want" = "$have" ] || fail "this bundle was built for Python $want but $python is $have; use a bundle built for $have or set PYTHON"
"$python" -c 'import venv, ensurepip' 2>/dev/null || fail "Python's venv module is missing; install python3-venv"
(cd "$here" && sha256sum --quiet -c SHA256SUMS) || fail "the bundle is damaged (checksums differ); copy it again"
version="$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$here/BUNDLE.json")"

# only the bundle's wheels, whatever pip configuration this machine has
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL
target="$prefix/versions/$version-$(date -u +%Y%m%dT%H%M%S)"
mkdir -p "$prefix/versions" "$prefix/bin"
echo "Installing workstation $version into $target (no network needed) ..."
"$python" -m venv "$target/venv"
"$target/venv/bin/python" -m pip install -q --no-index --find-links "$here/wheels" "workstation[gui]" \
  || { rm -rf "$target"; fail "installing the packages failed; the previous version (if any) is unchanged"; }
mkdir -p "$target/venv/share/workstation"
cp -r "$here/share/models" "$here/share/resources" "$target/venv/share/workstation/"
ln -sfn "$target" "$prefix/current.new" && mv -T "$prefix/current.new" "$prefix/current"
cat > "$prefix/bin/workstation" <<LAUNCH
#!/bin/sh
exec "$prefix/current/venv/bin/workstation" "\$@"
LAUNCH
chmod +x "$prefix/bin/workstation"
cp "$here/check.sh" "$here/uninstall.sh" "$prefix/"
for old in "$prefix"/versions/*; do  # keep only the version now in use
  [ "$(readlink -f "$old")" = "$(readlink -f "$prefix/current")" ] || rm -rf "$old"
done

icon="$data_share/icons/hicolor/scalable/apps/workstation.svg"
mkdir -p "$(dirname "$icon")" "$data_share/applications"
cp "$here/share/resources/icons/workstation.svg" "$icon"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@ICON@|$icon|g" "$here/workstation.desktop.in" \
  > "$data_share/applications/workstation.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database -q "$data_share/applications" || true
echo "Installed workstation $version. Start it from the applications menu or with $prefix/bin/workstation"
echo "Verify it with: $prefix/check.sh"
