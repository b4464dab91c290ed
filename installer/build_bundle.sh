#!/usr/bin/env bash
# Build the offline bundle on a connected machine (run from a checkout with .venv set up, or
# with PYTHON pointing at a Python 3.11+ that has pip). The clinic machine must run the same
# Python minor version and platform (recorded in BUNDLE.json; install.sh checks it).
#   installer/build_bundle.sh [OUT]          CPU torch (default; works everywhere)
#   TORCH_VARIANT=cu126 installer/build_bundle.sh [OUT]   CUDA 12.6 torch from download.pytorch.org
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
version="$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
out="${1:-dist/workstation-bundle-$version}"
variant="${TORCH_VARIANT:-cpu}"
rm -rf "$out"
mkdir -p "$out/wheels" "$out/share"

# the runtime requirements (dependencies + the gui extra), straight from pyproject.toml
requirements="$(mktemp)"
"$python" - "$requirements" <<'PY'
import sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
open(sys.argv[1], "w").write("\n".join(project["dependencies"] + project["optional-dependencies"]["gui"]) + "\n")
PY
if [ "$variant" = "cpu" ]; then
  "$python" -m pip wheel -q --wheel-dir "$out/wheels" torch==2.13.0
else
  "$python" -m pip wheel -q --wheel-dir "$out/wheels" torch==2.13.0 --index-url "https://download.pytorch.org/whl/$variant"
fi
"$python" -m pip wheel -q --wheel-dir "$out/wheels" -r "$requirements"
"$python" -m pip wheel -q --wheel-dir "$out/wheels" --no-deps .
rm -f "$requirements"

cp -r models "$out/share/models"
rm -f "$out"/share/models/*/checkpoint.* "$out"/share/models/*/snapshot-*
cp -r resources "$out/share/resources"
cp installer/bundle/install.sh installer/bundle/uninstall.sh installer/bundle/check.sh "$out/"
cp installer/workstation.desktop.in "$out/"
"$python" - "$out" "$version" "$variant" <<'PY'
import json, platform, sys, sysconfig, datetime
out, version, variant = sys.argv[1:]
json.dump({"version": version, "python": f"{sys.version_info.major}.{sys.version_info.minor}",
           "platform": sysconfig.get_platform(), "torch": variant,
           "built_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
          open(f"{out}/BUNDLE.json", "w"), indent=1)
PY
(cd "$out" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum > SHA256SUMS)
echo "Built $out ($(du -sh "$out" | cut -f1)); copy the folder to the clinic (USB stick) and run install.sh there."
