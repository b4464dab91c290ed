#!/usr/bin/env bash
# Set up a development/evaluation checkout on Debian/Ubuntu: system libraries for Qt/VTK
# under X or Xvfb, a virtual environment in .venv with the pinned CPU torch wheel first
# (a bare "torch" would pull a multi-GB CUDA build), then the project.
#   installer/dev-setup.sh        app + GUI extras
#   installer/dev-setup.sh test   app + GUI + test extras
set -euo pipefail
cd "$(dirname "$0")/.."
extras="gui"
[ "${1:-}" = "test" ] && extras="test"

packages="xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libegl1 libgl1 libdbus-1-3 \
libfontconfig1 poppler-utils imagemagick"
# the test peers: a real PACS (Orthanc, with DICOMweb) and dcmtk / dicom3tools as independent tools
[ "$extras" = "test" ] && packages="$packages orthanc orthanc-dicomweb dcmtk dicom3tools"
if command -v apt-get >/dev/null; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq $packages >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e ".[$extras]"
echo "Set up .venv with workstation[$extras]."
