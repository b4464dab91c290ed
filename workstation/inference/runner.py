"""Run a model bundle on a Volume: device choice, lung crop, resampling to the model's spacing,
MONAI sliding-window inference with progress and cancel, and the heatmap mapped back onto
the study's own grid. A core job: the GUI worker and the CLI run the same generator."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from workstation.errors import CancelledError, InferenceError
from workstation.imaging.volume import Volume
from workstation.inference.bundle import ModelBundle
from workstation.inference.device import choose_device, describe_device
from workstation.inference.findings import Finding, extract_findings
from workstation.inference.fp_reduction import rescore
from workstation.inference.preprocess import lung_crop, model_grid_image
from workstation.inference.scope import scope_warnings
from workstation.jobs import CancelToken, Job, Progress

OVERLAP = 0.25
POLL_S = 0.1


@dataclass
class Analysis:
    """One model run on one volume: what ran, where, how long, and what it found."""

    model_name: str
    model_version: str
    model_sha256: str
    device: str
    threshold: float
    runtime_s: float
    heatmap: np.ndarray  # float32 on the volume's grid, 0..1
    findings: list[Finding]
    scope_warnings: list[str]
    notice: str
    notes: list[str] = field(default_factory=list)  # e.g. fell back to the CPU
    second_stage_sha256: str = ""  # the false-positive reduction weights, when the bundle has them

    def to_dict(self) -> dict:
        model = {"name": self.model_name, "version": self.model_version, "sha256": self.model_sha256}
        if self.second_stage_sha256:
            model["second_stage_sha256"] = self.second_stage_sha256
        return {"model": model,
                "device": self.device, "threshold": self.threshold, "runtime_s": round(self.runtime_s, 2),
                "scope_warnings": self.scope_warnings, "notice": self.notice, "notes": self.notes,
                "findings": [f.to_dict() for f in self.findings]}


def run_inference_job(volume: Volume, bundle: ModelBundle, device: str = "auto", threshold: float | None = None,
                      cancel: CancelToken | None = None, threads: int | None = None) -> Job[Analysis]:
    """Yields Progress; returns the Analysis. CancelledError within about POLL_S of a cancel."""
    import torch

    cancel = cancel or CancelToken()
    started = time.perf_counter()
    device = choose_device(device)
    if threads:
        torch.set_num_threads(threads)
    threshold = bundle.default_threshold if threshold is None else float(threshold)
    yield Progress(0, 100, f"Preparing ({describe_device(device)})")
    network = bundle.load_network()
    crop = lung_crop(volume)
    cancel.check()
    image = model_grid_image(volume, crop, bundle.spacing_mm, bundle.hu_window)
    yield Progress(5, 100, "Running the model")
    notes: list[str] = []
    probabilities = None
    for attempt_device, batch in _attempts(device):
        try:
            probabilities = yield from _sliding_window(network, image, bundle, attempt_device, batch, cancel)
            if attempt_device != device:
                notes.append("Ran on the CPU after the GPU ran out of memory")
            device = attempt_device
            break
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            notes.append(f"GPU out of memory with {batch} window(s) at a time; retrying smaller")
    if probabilities is None:
        raise InferenceError("Inference ran out of memory on every device; close other programs and retry")
    yield Progress(90, 100, "Mapping the heatmap onto the study")
    back = torch.nn.functional.interpolate(probabilities, size=list(crop.shape), mode="trilinear",
                                           align_corners=False)[0, 0].numpy()
    heatmap = np.zeros(volume.shape, dtype=np.float32)
    heatmap[crop.box] = back
    stage = bundle.fp_reduction
    findings = extract_findings(volume, heatmap, stage.candidate_threshold if stage else threshold, bundle.name,
                                bundle.version, crop.box)
    if stage:
        cancel.check()
        yield Progress(95, 100, f"Checking {len(findings)} candidate(s)")
        findings = rescore(findings, image[0, 0].numpy(), crop, stage, bundle.load_fp_reduction(), threshold)
    yield Progress(100, 100, f"{len(findings)} finding(s)")
    return Analysis(bundle.name, bundle.version, bundle.weights_sha256, describe_device(device), threshold,
                    time.perf_counter() - started, heatmap, findings, scope_warnings(volume, bundle), bundle.notice,
                    notes, stage.weights_sha256 if stage else "")


def _attempts(device: str) -> list[tuple[str, int]]:
    """GPU: all windows of a batch at once, then one at a time, then the CPU."""
    return [("cuda", 4), ("cuda", 1), ("cpu", 1)] if device == "cuda" else [(device, 1)]


def _sliding_window(network, image, bundle: ModelBundle, device: str, batch: int,
                    cancel: CancelToken) -> Job:
    """MONAI sliding_window_inference on a helper thread, so this generator can report progress
    and cancel (the predictor checks the token between windows)."""
    import torch
    from monai.inferers import sliding_window_inference

    network = network.to(device)
    windows = window_count(image.shape[2:], bundle.patch_size)
    done = {"windows": 0}
    outcome: dict = {}

    def predictor(batch_of_windows):
        if cancel.cancelled:
            raise CancelledError()
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=device == "cuda"):
            output = flip_averaged(network, batch_of_windows, bundle.test_time_flips)
        done["windows"] += batch_of_windows.shape[0]
        return torch.sigmoid(output.float()) if bundle.output_activation == "sigmoid" else output.float()

    def work() -> None:
        try:
            with torch.inference_mode():
                outcome["result"] = sliding_window_inference(
                    image.to(device), roi_size=bundle.patch_size, sw_batch_size=batch, predictor=predictor,
                    overlap=OVERLAP, mode="gaussian", sw_device=device, device="cpu")
        except BaseException as exc:  # handed to the generator's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="sliding-window", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        yield Progress(5 + int(85 * min(done["windows"], windows) / windows), 100,
                       f"Running the model ({min(done['windows'], windows)}/{windows} windows)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def flip_averaged(network, windows, flips: tuple[tuple[int, ...], ...]):
    """The network's raw output averaged over flipped copies of the windows, each flipped back
    (test-time augmentation; `flips` are axes of the spatial (z, y, x) grid)."""
    import torch

    total = None
    for axes in flips:
        dims = [2 + axis for axis in axes]
        output = torch.flip(network(torch.flip(windows, dims)), dims).float() if dims else network(windows).float()
        total = output if total is None else total + output
    return total / len(flips)


def window_count(shape, patch) -> int:
    count = 1
    for size, window in zip(shape, patch):
        step = max(1, int(window * (1 - OVERLAP)))
        count *= max(1, int(np.ceil((max(size, window) - window) / step)) + 1)
    return count
