"""Run as is on a machine with a CUDA GPU: CUDA results match the CPU's, and CUDA timing.

    python -m tests.benchmarks.gpu_check

Target (issue #4): whole 512x512x300 phantom in <= 0.5 s of inference on an H200-class GPU
(the model part; loading is measured by the load benchmark). Prints a line per check and
exits non-zero if CUDA is missing or the results differ beyond tolerance.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import run_job

HEATMAP_TOLERANCE = 0.02  # float16 autocast on the GPU against float32 on the CPU


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check")
        return 2
    spec = PhantomSpec(seed=8, matrix=512, pixel_spacing_mm=0.78, slice_thickness_mm=1.0, z_extent_mm=300.0,
                       nodule_count=4)
    volume = generate_phantom(spec).volume
    bundle = find_model()
    cpu = run_job(run_inference_job(volume, bundle, "cpu"))
    run_job(run_inference_job(volume, bundle, "cuda"))  # warm-up: CUDA context, cuDNN autotune
    times = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        gpu = run_job(run_inference_job(volume, bundle, "cuda"))
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    difference = float(np.abs(gpu.heatmap - cpu.heatmap).max())
    same = [(round(a.probability, 1), a.type) for a in cpu.findings] == \
           [(round(b.probability, 1), b.type) for b in gpu.findings]
    print(f"device {gpu.device}; end to end best of 3: {min(times):.2f} s (target <= 0.5 s for inference)")
    print(f"max heatmap difference CUDA vs CPU: {difference:.4f} (tolerance {HEATMAP_TOLERANCE})")
    print(f"findings CPU {len(cpu.findings)}, CUDA {len(gpu.findings)}; same list: {same}")
    return 0 if difference <= HEATMAP_TOLERANCE and len(cpu.findings) == len(gpu.findings) else 1


if __name__ == "__main__":
    sys.exit(main())
