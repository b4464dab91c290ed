"""Run as is on a machine with a CUDA GPU: CUDA results match the CPU's, CUDA timing, and the
fall-back when the GPU runs out of memory.

    python -m tests.benchmarks.gpu_check            # CUDA against the CPU
    python -m tests.benchmarks.gpu_check --device cpu   # the same checks, CPU against itself
    bash tests/benchmarks/gpu_check_device.sh           # on a lent device machine (no package
                                                        # index there: `make gpu-wheels` first)

Target (issue #4): inference on a whole 512x512x300 phantom in <= 0.5 s on an H200-class GPU.
"Inference" is the network stage of the runner (sliding windows of every pass, blended and
resampled onto the study's grid); loading DICOM is measured by the load benchmark, and the
end to end time and the other stages (lung crop, resampling, findings, all on the CPU) are
printed beside it. The out-of-memory check caps this process's share of GPU memory so that every
GPU attempt fails for real, and expects the CPU's result with a note saying so. Exits 0 when
CUDA agrees with the CPU and the fall-back works, 1 when not, 2 without CUDA.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from tests.benchmarks.bench_inference import WHOLE_CHEST
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.findings import Finding
from workstation.inference.registry import find_model
from workstation.inference.runner import Analysis, run_inference_job
from workstation.jobs import run_job

# float16 autocast on the GPU against float32 on the CPU. Measured here with the CPU's own
# float16 autocast over a whole 256 phantom: at most 0.015 (the suite keeps it under half the
# tolerance on windows around nodules). A window misplaced or blended wrongly differs by 0.5 or more.
HEATMAP_TOLERANCE = 0.05
CLEAR_MARGIN = 0.05  # findings this far above the threshold must appear on both devices
NETWORK_TARGET_S = 0.5


@dataclass
class GpuCheck:
    device: str
    end_to_end_s: float  # best of the timed runs
    stage_seconds: dict[str, float]  # of the fastest run
    heatmap_difference: float  # largest, against the CPU
    unmatched: list[str]  # clear findings that one device has and the other lacks
    out_of_memory: str = "not checked"  # what the fall-back did, on CUDA only

    @property
    def agrees(self) -> bool:
        return self.heatmap_difference <= HEATMAP_TOLERANCE and not self.unmatched and \
            not self.out_of_memory.startswith("FAILED")

    def lines(self) -> list[str]:
        network = self.stage_seconds.get("network", float("nan"))
        stages = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in self.stage_seconds.items())
        return [f"device {self.device}",
                f"inference (network stage, all passes): {network:.3f} s (target <= {NETWORK_TARGET_S} s on an H200)",
                f"end to end {self.end_to_end_s:.2f} s: {stages}",
                f"max heatmap difference against the CPU: {self.heatmap_difference:.4f} "
                f"(tolerance {HEATMAP_TOLERANCE})",
                "clear findings on both devices" if not self.unmatched else
                "findings on one device only: " + "; ".join(self.unmatched),
                f"out of GPU memory: {self.out_of_memory}",
                "AGREES with the CPU" if self.agrees else "DIFFERS from the CPU"]


def check(device: str, spec: PhantomSpec = WHOLE_CHEST, repeats: int = 3) -> GpuCheck:
    """Run the demo model on the CPU once and on `device` after a warm-up (CUDA context, kernel
    choice) `repeats` times; compare heatmaps and findings, keep the fastest run's timing."""
    import torch

    volume = generate_phantom(spec).volume
    bundle = find_model()
    cpu = run_job(run_inference_job(volume, bundle, "cpu"))
    if device != "cpu":  # the CPU run above warmed the CPU path up
        run_job(run_inference_job(volume, bundle, device))
    runs: list[tuple[float, Analysis]] = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        analysis = run_job(run_inference_job(volume, bundle, device))
        runs.append((time.perf_counter() - start, analysis))
    seconds, fastest = min(runs, key=lambda run: run[0])
    difference = float(np.abs(fastest.heatmap - cpu.heatmap).max())
    unmatched = _unmatched(cpu.findings, fastest.findings, cpu.threshold, "CPU") + \
        _unmatched(fastest.findings, cpu.findings, cpu.threshold, device)
    result = GpuCheck(fastest.device, seconds, fastest.stage_seconds, difference, unmatched)
    if device == "cuda":
        result.out_of_memory = _out_of_memory_fallback(volume, bundle, cpu)
    return result


def _out_of_memory_fallback(volume, bundle, cpu: Analysis) -> str:
    """Cap the GPU memory this process may use at about 1 MB more than it holds now (the model grid
    image alone needs about 100 MB), so that 16, 4 and 1 windows at a time all run out of memory:
    the runner must then give the CPU's result and say what happened."""
    import torch

    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_reserved() + 2**20) / total))
    try:
        analysis = run_job(run_inference_job(volume, bundle, "cuda"))
    except Exception as exc:  # noqa: BLE001 - reported as the check's outcome
        return f"FAILED: {type(exc).__name__}: {exc}"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    difference = float(np.abs(analysis.heatmap - cpu.heatmap).max())
    fell_back = "CPU" in analysis.device and any("Ran on the CPU" in note for note in analysis.notes)
    verdict = "ok" if fell_back and difference <= 1e-5 else "FAILED"
    return f"{verdict}: ran on {analysis.device}, heatmap difference to the CPU run {difference:.2g}; notes: " + \
        " / ".join(analysis.notes)


def _unmatched(ours: list[Finding], theirs: list[Finding], threshold: float, label: str) -> list[str]:
    """Our findings clearly above the threshold with no finding of theirs within our radius."""
    def near(a: Finding, b: Finding) -> bool:
        return float(np.linalg.norm(np.subtract(a.center_mm, b.center_mm))) <= max(a.diameter_mm / 2, 2.0)

    return [f"{label} only: {f.probability:.2f} at {np.round(f.center_mm, 1).tolist()} mm"
            for f in ours if f.probability >= threshold + CLEAR_MARGIN and not any(near(f, t) for t in theirs)]


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    device = parser.parse_args(argv).device
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing to check")
        return 2
    result = check(device)
    print("\n".join(result.lines()))
    return 0 if result.agrees else 1


if __name__ == "__main__":
    sys.exit(main())
