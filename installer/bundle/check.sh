#!/usr/bin/env bash
# Verify the installed workstation end to end without a display: version, device and an
# estimated inference time, model bundle integrity, fonts, the data folder, and the demo case
# through the AI into a PDF. Exit status 0 when every check passed.
set -euo pipefail
prefix="${WORKSTATION_PREFIX:-$(cd "$(dirname "$0")" && pwd)}"
exec "$prefix/bin/workstation" check "$@"
