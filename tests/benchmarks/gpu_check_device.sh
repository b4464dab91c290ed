#!/bin/bash
# The GPU check on a lent device machine (the `device` tool): that machine has python3 with a
# CUDA build of torch, numpy, scipy, safetensors and pillow, and no package index. The other
# packages the check imports travel as wheels in .whl (`make gpu-wheels` here, once), so:
#   run(command="bash tests/benchmarks/gpu_check_device.sh", carry=[".whl"], timeout_s=420)
# The output also lands in $OUT/gpu_check.txt. Exit status: the check's (0 = CUDA agrees with
# the CPU and the out-of-memory fall-back works), 3 when the wheels could not be installed.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 3
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
out="${OUT:-/tmp}/gpu_check.txt"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import monai, torch; print('torch', torch.__version__, 'monai', monai.__version__)"
} 2>&1 | tee "$out"
python3 -m tests.benchmarks.gpu_check 2>&1 | tee -a "$out"
