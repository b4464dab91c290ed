"""Run a model bundle on a Volume: device choice, lung crop, resampling to the model's spacing,
MONAI sliding-window inference with progress and cancel, and the heatmap mapped back onto
the study's own grid. A core job: the GUI worker and the CLI run the same generator."""

from __future__ import annotations

import errno
import gc
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from workstation.errors import CancelledError, InferenceError
from workstation.imaging.volume import Volume
from workstation.inference.bundle import LargeLesionPass, ModelBundle
from workstation.inference.device import choose_device, describe_device
from workstation.inference.findings import Finding, extract_findings, merge_passes
from workstation.inference.fp_reduction import rescore
from workstation.inference.preprocess import (LungCrop, distance_to_lung_mm, lung_crop, model_grid_image,
                                              search_voxel_mm)
from workstation.inference.scope import scope_warnings
from workstation.jobs import CancelToken, Job, Progress

OVERLAP = 0.25
POLL_S = 0.1
ALLOCATION_FAILED = ("can't allocate memory", "cannot allocate memory", "out of memory")


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
    stage_seconds: dict[str, float] = field(default_factory=dict)  # preparing, resampling, network, findings

    def to_dict(self) -> dict:
        model = {"name": self.model_name, "version": self.model_version, "sha256": self.model_sha256}
        if self.second_stage_sha256:
            model["second_stage_sha256"] = self.second_stage_sha256
        return {"model": model,
                "device": self.device, "threshold": self.threshold, "runtime_s": round(self.runtime_s, 2),
                "stage_seconds": {stage: round(seconds, 3) for stage, seconds in self.stage_seconds.items()},
                "scope_warnings": self.scope_warnings, "notice": self.notice, "notes": self.notes,
                "findings": [f.to_dict() for f in self.findings]}


def run_inference_job(volume: Volume, bundle: ModelBundle, device: str = "auto", threshold: float | None = None,
                      cancel: CancelToken | None = None, threads: int | None = None) -> Job[Analysis]:
    """Yields Progress; returns the Analysis. CancelledError within about POLL_S of a cancel;
    InferenceError, saying so, when the computer runs out of memory (on a GPU, the batches
    shrink and then the CPU takes over first)."""
    try:
        return (yield from _analyse(volume, bundle, device, threshold, cancel or CancelToken(), threads))
    except Exception as exc:
        if not _out_of_memory(exc):
            raise
        raise InferenceError("This computer ran out of memory while running the model; close other programs "
                             "and run the AI again") from exc


def _out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation failure: torch's CPU allocator, mmap of the weights and MPS
    raise plain RuntimeErrors; the operating system's refusal (ENOMEM) can surface as an OSError
    anywhere, e.g. while a lazily imported module is found."""
    import torch

    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(words in message for words in ALLOCATION_FAILED)


def _analyse(volume: Volume, bundle: ModelBundle, device: str, threshold: float | None, cancel: CancelToken,
             threads: int | None) -> Job[Analysis]:
    import torch

    started = time.perf_counter()
    device = choose_device(device)
    if threads:
        torch.set_num_threads(threads)
    threshold = bundle.default_threshold if threshold is None else float(threshold)
    yield Progress(0, 100, f"Preparing ({describe_device(device)})")
    clock = StageClock()
    network, classifier = bundle.load_network(), bundle.load_fp_reduction()
    crop = lung_crop(volume)
    clock.lap("preparing")
    notes: list[str] = []
    if bundle.detects_boxes:  # boxes and scores: findings straight from the detector, heat drawn from its boxes
        findings, heat, device = yield from _detections(volume, crop, bundle, network, device, threshold, cancel,
                                                        notes)
        clock.lap("network")
    else:
        findings, heat, device = yield from _heatmap_findings(volume, crop, bundle, network, classifier, device,
                                                              threshold, cancel, notes, clock)
    heatmap = np.zeros(volume.shape, dtype=np.float32)
    heatmap[crop.box] = heat
    yield Progress(100, 100, f"{len(findings)} finding(s)")
    stage = bundle.fp_reduction
    return Analysis(bundle.name, bundle.version, bundle.weights_sha256, describe_device(device), threshold,
                    time.perf_counter() - started, heatmap, findings, scope_warnings(volume, bundle, crop.lung_ml),
                    bundle.notice, notes, stage.weights_sha256 if stage else "", clock.seconds)


def _heatmap_findings(volume: Volume, crop: LungCrop, bundle: ModelBundle, network, classifier, device: str,
                      threshold: float, cancel: CancelToken, notes: list[str], clock: "StageClock") -> Job:
    """(findings, heat over the crop, device) of a heatmap network: its passes, merged."""
    passes = _passes(bundle)
    large_network = bundle.load_large_lesion_network()
    heat = np.zeros(crop.shape, dtype=np.float32)  # the passes' maximum, over the lung crop
    found: list[list[Finding]] = []
    for number, (spacing, large, span) in enumerate(passes, start=1):
        cancel.check()
        label = "Running the model" if len(passes) == 1 else f"Running the model, pass {number} of {len(passes)}"
        image = model_grid_image(volume, crop, spacing, bundle.hu_window)
        clock.lap("resampling")
        pass_network = large_network if large is not None and large_network is not None else network
        pass_heat, device = yield from _network_output(pass_network, image, crop.shape, bundle, device, cancel,
                                                       notes, span, label)
        clock.lap("network")
        found.append(_pass_findings(volume, pass_heat, image, crop, bundle, classifier, threshold, large))
        if large is not None:  # its heat shows only on the lesions it kept, not on what it left out
            pass_heat *= _around(found[-1], volume, crop)
        np.maximum(heat, pass_heat, out=heat)
        clock.lap("findings")
        yield Progress(span[1], 100, f"Pass {number}: {len(found[-1])} finding(s)")
    # before merging: a finding that cannot be a nodule must not displace another pass's one
    found, away = _near_lung(found, volume, crop, bundle.max_distance_from_lung_mm)
    findings = merge_passes(found)
    if away:  # nor is their heat shown: red outside the body with no finding beside it misleads
        heat *= ~(_around(away, volume, crop) & ~_around(findings, volume, crop))
    clock.lap("findings")
    return findings, heat, device


def _detections(volume: Volume, crop: LungCrop, bundle: ModelBundle, network, device: str, threshold: float,
                cancel: CancelToken, notes: list[str]) -> Job:
    """(findings, heat over the crop, device) of a detector; on running out of GPU memory, the CPU."""
    import torch

    from workstation.inference.detection import run_detector

    try:
        return (yield from run_detector(volume, crop, bundle, network, device, threshold, cancel))
    except torch.OutOfMemoryError:
        if device != "cuda":
            raise
    gc.collect()
    torch.cuda.empty_cache()
    notes.append("Ran on the CPU after the GPU ran out of memory")
    return (yield from run_detector(volume, crop, bundle, network, "cpu", threshold, cancel))


class StageClock:
    """Seconds spent per stage, summed over passes: `lap(stage)` books the time since the last lap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def _passes(bundle: ModelBundle) -> list[tuple[tuple[float, float, float], LargeLesionPass | None, tuple[int, int]]]:
    """(spacing, the large-lesion pass's rules or None, progress span) per detector pass: the
    model's own grid, then the large-lesion grid when the bundle has one (it has 1/8 the voxels
    at twice the spacing, hence the small span)."""
    large = bundle.large_lesion_pass
    if large is None:
        return [(bundle.spacing_mm, None, (5, 95))]
    return [(bundle.spacing_mm, None, (5, 85)), (large.spacing_mm, large, (85, 95))]


def _near_lung(passes: list[list[Finding]], volume: Volume, crop: LungCrop,
               max_distance_mm: float | None) -> tuple[list[list[Finding]], list[Finding]]:
    """(each pass's findings whose edge lies within `max_distance_mm` of aerated lung, all the
    others). The lung search's grid is coarse (at most 4 mm a step, but one slice through thick
    slices: 8 mm through 8 mm ones), so half its voxel is allowed on top. All are kept when the bundle sets no distance or no lung was found
    (the scope banner says so)."""
    tagged = [(number, f) for number, found in enumerate(passes) for f in found]
    if max_distance_mm is None or crop.lung_mask is None or not tagged:
        return passes, []
    distance = distance_to_lung_mm(crop, volume.spacing_mm, np.array([f.center_voxel[::-1] for _, f in tagged]))
    allowed = max_distance_mm + search_voxel_mm(crop, volume.spacing_mm) / 2
    near = [d - f.reach_mm / 2 <= allowed for (_, f), d in zip(tagged, distance)]
    kept = [[f for (source, f), ok in zip(tagged, near) if ok and source == number] for number in range(len(passes))]
    return kept, [f for (_, f), ok in zip(tagged, near) if not ok]


def _around(findings: list[Finding], volume: Volume, crop: LungCrop, margin_mm: float = 5.0) -> np.ndarray:
    """Boolean mask over the crop: within half each finding's reach plus `margin_mm` of its centre."""
    mask = np.zeros(crop.shape, dtype=bool)
    spacing = np.array(volume.spacing_mm[::-1])  # (k, j, i)
    start = np.array([s.start for s in crop.box])
    for finding in findings:
        centre = np.array(finding.center_voxel[::-1]) - start
        reach = finding.reach_mm / 2 + margin_mm
        low = np.maximum(np.floor(centre - reach / spacing).astype(int), 0)
        high = np.minimum(np.ceil(centre + reach / spacing).astype(int) + 1, crop.shape)
        if np.any(high <= low):
            continue
        axes = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high))]
        distance = sum(((axis - c) * d) ** 2 for axis, c, d in zip(axes, centre, spacing))
        mask[tuple(slice(a, b) for a, b in zip(low, high))] |= distance <= reach**2
    return mask


def _network_output(network, image, crop_shape: tuple[int, int, int], bundle: ModelBundle, device: str,
                    cancel: CancelToken, notes: list[str], span: tuple[int, int], label: str) -> Job:
    """(probabilities resampled onto the crop's grid as float32 numpy, the device that produced
    them). The windows are blended and resampled on the device that ran them: on a GPU nothing
    travels to the CPU but the final heatmap. On running out of GPU memory, retries with smaller
    batches, then the CPU, noting each step in `notes`; the last attempt running out of memory
    is left to the job, which says so in a sentence."""
    import torch

    def heat_on(attempt_device: str, batch: int) -> Job:
        probabilities = yield from _sliding_window(network, image, bundle, attempt_device, batch, cancel, span,
                                                   label)
        with torch.inference_mode():
            return torch.nn.functional.interpolate(probabilities, size=list(crop_shape), mode="trilinear",
                                                   align_corners=False)[0, 0].cpu().numpy()

    *retried, (last_device, last_batch) = _attempts(device)
    for attempt_device, batch in retried:
        heat = None
        try:
            heat = yield from heat_on(attempt_device, batch)
        except torch.OutOfMemoryError:
            notes.append(f"GPU out of memory with {batch} window(s) at a time; retrying smaller")
        if heat is not None:
            return heat, attempt_device
        # outside the except clause: the exception's traceback holds the failed attempt's
        # tensors, in a cycle through the frames, until the collector breaks it
        gc.collect()
        torch.cuda.empty_cache()
    heat = yield from heat_on(last_device, last_batch)
    if last_device != device:
        notes.append("Ran on the CPU after the GPU ran out of memory")
    return heat, last_device


def _pass_findings(volume: Volume, heat: np.ndarray, image, crop: LungCrop, bundle: ModelBundle, classifier,
                   threshold: float, large: LargeLesionPass | None) -> list[Finding]:
    """One pass's heatmap (over the crop) -> findings, rescored by the second stage on the same
    model-grid image when the bundle has one; the large-lesion pass keeps only large lung lesions."""
    stage = bundle.fp_reduction
    findings = extract_findings(volume, heat, stage.candidate_threshold if stage else threshold, bundle.name,
                                bundle.version, crop.box, large.min_diameter_mm if large else 0.0,
                                large.min_aerated_border if large else 0.0)
    if stage:
        findings = rescore(findings, image[0, 0].numpy(), crop, stage, classifier, threshold)
    return findings


def _attempts(device: str) -> list[tuple[str, int]]:
    """GPU: 16 windows at a time (a large GPU's throughput), then 4, then one, then the CPU."""
    return [("cuda", 16), ("cuda", 4), ("cuda", 1), ("cpu", 1)] if device == "cuda" else [(device, 1)]


def _sliding_window(network, image, bundle: ModelBundle, device: str, batch: int, cancel: CancelToken,
                    span: tuple[int, int], label: str) -> Job:
    """MONAI sliding_window_inference on a helper thread, so this generator can report progress
    and cancel (the predictor checks the token between windows)."""
    import torch
    from monai.inferers import sliding_window_inference

    network = network.to(device)
    blend_on = "cuda" if device == "cuda" else "cpu"  # some MPS builds lack 3D trilinear resampling
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
                    overlap=OVERLAP, mode="gaussian", sw_device=device, device=blend_on)
        except BaseException as exc:  # handed to the generator's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="sliding-window", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
        finished = min(done["windows"], windows)
        yield Progress(span[0] + int((span[1] - span[0]) * finished / windows), 100,
                       f"{label} ({finished}/{windows} windows)")
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
