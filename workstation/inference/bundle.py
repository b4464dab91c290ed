"""Model bundles: a folder with metadata.json, safetensors weights and a model card.

Everything is checked before anything is deserialised: required files, the weights'
sha256, and the architecture, which must be an allow-listed MONAI network class. Weights
are read with safetensors (plain tensors, no code): nothing here unpickles.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstation.errors import ModelBundleError
from workstation.files import sha256_file
from workstation.inference.architectures import ALLOWED_ARCHITECTURES, DETECTOR_ARCHITECTURE

REQUIRED_FIELDS = ("name", "version", "task", "modality", "intended_use", "limitations", "input", "architecture",
                   "weights", "output_activation", "default_threshold", "operating_points", "training_data",
                   "licence", "valid_inputs")


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    sensitivity: float
    false_positives_per_scan: float
    measured_on: str = ""  # the data the figures come from, said wherever they are shown


@dataclass(frozen=True)
class FalsePositiveReduction:
    """Optional second stage: a classifier that rescores each candidate from a patch around it."""

    architecture: str
    architecture_args: dict[str, Any]
    weights_file: str
    weights_sha256: str
    patch_size: tuple[int, int, int]  # (z, y, x) at the model spacing
    candidate_threshold: float  # heatmap level at which a blob becomes a candidate to rescore


@dataclass(frozen=True)
class LargeLesionPass:
    """Optional second detector pass on a coarser grid: a lesion larger than the network was
    trained on looks, at this spacing, like one it knows. Only its findings of at least
    `min_diameter_mm` count (smaller lesions are the first pass's job), and only those bordered
    by aerated lung for at least `min_aerated_border` of their border (not the heart's)."""

    spacing_mm: tuple[float, float, float]  # (x, y, z)
    min_diameter_mm: float
    min_aerated_border: float = 0.0
    # Its own detector weights (same architecture), checked like the main ones; "" = the main
    # network's. A detector fine-tuned for small real nodules can lose the large masses an
    # earlier one finds at this spacing: the pass keeps the one that finds them.
    weights_file: str = ""
    weights_sha256: str = ""


@dataclass(frozen=True)
class ModelBundle:
    """A validated bundle; `load_network` builds the network and loads the checked weights."""

    folder: Path
    name: str
    version: str
    task: str
    modality: str
    intended_use: str
    limitations: str
    spacing_mm: tuple[float, float, float]  # (x, y, z) the model expects
    hu_window: tuple[float, float]  # (low, high) clipped and scaled to 0..1
    patch_size: tuple[int, int, int]  # (z, y, x) sliding-window size
    architecture: str
    architecture_args: dict[str, Any]
    weights_file: str
    weights_sha256: str
    output_activation: str
    default_threshold: float
    operating_points: tuple[OperatingPoint, ...]
    valid_inputs: dict[str, Any]
    training_data: str
    licence: str
    evaluation: dict[str, Any] = field(default_factory=dict)
    notice: str = ""  # the line every view of this model's results must show
    requires_gpu: bool = False
    fp_reduction: FalsePositiveReduction | None = None
    # Test-time augmentation: the network's output is averaged over these flips of each window
    # (axes of the (z, y, x) model grid; () is the window as it is).
    test_time_flips: tuple[tuple[int, ...], ...] = ((),)
    large_lesion_pass: LargeLesionPass | None = None
    # Findings whose edge (centre less half their 3D reach) lies farther than this from
    # aerated lung are left out: outside the body, in bowel gas, in the neck. None: no such rule.
    max_distance_from_lung_mm: float | None = None

    def __post_init__(self) -> None:
        """Values a model cannot run with (a [0, 0] window, a NaN threshold) are refused here, by
        name, instead of silently giving 'No findings'."""
        _check(len(self.spacing_mm) == 3 and all(0.1 <= v <= 10 for v in self.spacing_mm),
               f"input spacing_mm {list(self.spacing_mm)} must be three values of 0.1-10 mm")
        low, high = self.hu_window if len(self.hu_window) == 2 else (math.nan, math.nan)
        _check(-2000 <= low < high <= 4000,
               f"input hu_window {list(self.hu_window)} must be low < high, within -2000..4000 HU")
        _check(len(self.patch_size) == 3 and all(8 <= v <= 512 for v in self.patch_size),
               f"input patch_size {list(self.patch_size)} must be three sizes of 8-512 voxels")
        _check(0 < self.default_threshold < 1, f"default_threshold {self.default_threshold} must lie between 0 and 1")
        for point in self.operating_points:
            _check(0 <= point.threshold <= 1 and 0 <= point.sensitivity <= 1
                   and 0 <= point.false_positives_per_scan < math.inf,
                   f"operating point {point} needs a threshold and a sensitivity in 0..1 and finite false positives")

    @classmethod
    def from_folder(cls, folder: Path) -> "ModelBundle":
        folder = Path(folder)
        meta_path = folder / "metadata.json"
        if not meta_path.is_file():
            raise ModelBundleError("Model bundle has no metadata.json", path=str(folder))
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelBundleError(f"metadata.json cannot be read: {exc}", path=str(folder)) from exc
        missing = [name for name in REQUIRED_FIELDS if name not in meta]
        if missing:
            raise ModelBundleError(f"metadata.json lacks {', '.join(missing)}", path=str(folder))
        class_name, arguments, digest = _checked_network(folder, meta["architecture"], meta["weights"])
        weights = meta["weights"]
        if not (folder / "MODEL_CARD.md").is_file():
            raise ModelBundleError("Model bundle has no MODEL_CARD.md", path=str(folder))
        model_input = meta["input"]
        try:
            return cls(
                folder=folder, name=str(meta["name"]), version=str(meta["version"]), task=str(meta["task"]),
                modality=str(meta["modality"]), intended_use=str(meta["intended_use"]),
                limitations=str(meta["limitations"]),
                spacing_mm=tuple(float(v) for v in model_input["spacing_mm"]),  # type: ignore[arg-type]
                hu_window=tuple(float(v) for v in model_input["hu_window"]),  # type: ignore[arg-type]
                patch_size=tuple(int(v) for v in model_input["patch_size"]),  # type: ignore[arg-type]
                architecture=class_name, architecture_args=arguments, weights_file=str(weights["file"]),
                weights_sha256=digest, output_activation=str(meta["output_activation"]),
                default_threshold=float(meta["default_threshold"]),
                operating_points=tuple(OperatingPoint(float(p["threshold"]), float(p["sensitivity"]),
                                                      float(p["false_positives_per_scan"]),
                                                      _measured_on(p, meta.get("evaluation", {})))
                                       for p in meta["operating_points"]),
                valid_inputs=dict(meta["valid_inputs"]), training_data=str(meta["training_data"]),
                licence=str(meta["licence"]), evaluation=dict(meta.get("evaluation", {})),
                notice=str(meta.get("notice", "")), requires_gpu=bool(meta.get("requires_gpu", False)),
                fp_reduction=_fp_reduction(folder, meta["false_positive_reduction"])
                if "false_positive_reduction" in meta else None,
                test_time_flips=_test_time_flips(meta.get("test_time_flips", [[]])),
                large_lesion_pass=_large_lesion_pass(folder, meta["architecture"], meta["large_lesion_pass"])
                if "large_lesion_pass" in meta else None,
                max_distance_from_lung_mm=_non_negative("max_distance_from_lung_mm",
                                                        meta.get("max_distance_from_lung_mm")),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ModelBundleError(f"metadata.json has a malformed field: {exc}", path=str(folder)) from exc

    @property
    def detects_boxes(self) -> bool:
        """A detector (boxes and scores, made into findings directly) rather than a heatmap network."""
        return self.architecture == DETECTOR_ARCHITECTURE

    def as_user_installed(self, location: str) -> "ModelBundle":
        """This bundle marked as not shipped. The runner copies the notice into every Analysis,
        which the findings panel, the PDF report and the JSON all show: so wherever its findings
        appear, they say first where the model came from."""
        marker = f"User-installed model ({location}), not shipped with Workstation."
        return dataclasses.replace(self, notice=f"{marker} {self.notice}".strip())

    def load_network(self):
        """The network with its checked weights, in eval mode (torch and MONAI imported here)."""
        return _load_network(self.folder, self.architecture, self.architecture_args, self.weights_file,
                             self.weights_sha256)

    def load_large_lesion_network(self):
        """The large-lesion pass's own network, checked like the main one; None when the pass uses
        the main network (or there is no such pass)."""
        large = self.large_lesion_pass
        if large is None or not large.weights_file:
            return None
        return _load_network(self.folder, self.architecture, self.architecture_args, large.weights_file,
                             large.weights_sha256)

    def load_fp_reduction(self):
        """The second-stage classifier, checked like the network; None when the bundle has none."""
        stage = self.fp_reduction
        if stage is None:
            return None
        return _load_network(self.folder, stage.architecture, stage.architecture_args, stage.weights_file,
                             stage.weights_sha256)


def _checked_network(folder: Path, architecture: dict, weights: dict) -> tuple[str, dict[str, Any], str]:
    """(class, arguments, weights sha256) after the allow-list, file and checksum checks."""
    class_name, arguments = architecture.get("class", ""), dict(architecture.get("args", {}))
    if class_name not in ALLOWED_ARCHITECTURES:
        raise ModelBundleError(f"Architecture {class_name!r} is not on the allow-list", path=str(folder))
    unknown = set(arguments) - ALLOWED_ARCHITECTURES[class_name]
    if unknown:
        raise ModelBundleError(f"Architecture arguments not allowed: {', '.join(sorted(unknown))}",
                               path=str(folder))
    weights_path = folder / str(weights.get("file", ""))
    if not weights.get("file") or "/" in weights["file"] or not weights_path.is_file():
        raise ModelBundleError(f"Weights file {weights.get('file')!r} is missing", path=str(folder))
    if not str(weights_path).endswith(".safetensors"):
        raise ModelBundleError("Weights must be a .safetensors file", path=str(folder))
    digest = sha256_file(weights_path)
    if digest != weights.get("sha256"):
        raise ModelBundleError(f"Weights do not match their sha256 (expected {str(weights.get('sha256'))[:12]}, "
                               f"found {digest[:12]}); the file is damaged or was replaced", path=str(folder))
    return class_name, arguments, digest


def _fp_reduction(folder: Path, stage: dict) -> FalsePositiveReduction:
    class_name, arguments, digest = _checked_network(folder, stage.get("architecture", {}), stage.get("weights", {}))
    return FalsePositiveReduction(class_name, arguments, str(stage["weights"]["file"]), digest,
                                  tuple(int(v) for v in stage["patch_size"]),  # type: ignore[arg-type]
                                  float(stage["candidate_threshold"]))


def _test_time_flips(flips: list) -> tuple[tuple[int, ...], ...]:
    parsed = tuple(tuple(int(axis) for axis in axes) for axes in flips)
    if not 1 <= len(parsed) <= 8 or any(a not in (0, 1, 2) for axes in parsed for a in axes) \
            or any(len(set(axes)) != len(axes) for axes in parsed):
        raise ValueError(f"test_time_flips must be 1 to 8 lists of distinct axes 0-2, not {flips!r}")
    return parsed


def _large_lesion_pass(folder: Path, architecture: dict, settings: dict) -> LargeLesionPass:
    spacing = tuple(float(v) for v in settings["spacing_mm"])
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"large_lesion_pass spacing_mm must be three positive numbers, not {spacing!r}")
    share = float(settings.get("min_aerated_border", 0.0))
    if not 0 <= share <= 1:
        raise ValueError(f"large_lesion_pass min_aerated_border must lie within 0-1, not {share}")
    weights_file = digest = ""
    if "weights" in settings:
        _, _, digest = _checked_network(folder, architecture, settings["weights"])
        weights_file = str(settings["weights"]["file"])
    return LargeLesionPass(spacing, float(settings["min_diameter_mm"]), share,  # type: ignore[arg-type]
                           weights_file, digest)


def _measured_on(point: dict, evaluation: dict) -> str:
    """Which data an operating point was measured on: its own 'evaluation' entry, else the
    bundle's evaluation (phantom seeds mean synthetic phantoms, never real CT)."""
    if point.get("evaluation"):
        return str(point["evaluation"])
    if "phantom_seeds" in evaluation:
        return f"{evaluation.get('cases', '?')} synthetic phantoms, not real CT"
    return "an evaluation the bundle does not name"


def _check(condition: bool, message: str) -> None:
    if not condition:  # comparisons with NaN are False, so NaN is refused too
        raise ValueError(message)


def _non_negative(name: str, value) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not number >= 0:  # also refuses NaN
        raise ValueError(f"{name} must be a number of 0 or more, not {value!r}")
    return number


def build_network(architecture: str, arguments: dict[str, Any]):
    """An allow-listed network class with checked arguments, untrained."""
    import importlib

    if architecture not in ALLOWED_ARCHITECTURES or set(arguments) - ALLOWED_ARCHITECTURES[architecture]:
        raise ModelBundleError(f"Architecture {architecture!r} or its arguments are not on the allow-list")
    if architecture == DETECTOR_ARCHITECTURE:
        from workstation.inference.detection import build_detector

        return build_detector(arguments)
    module_name, class_name = architecture.rsplit(".", 1)
    try:
        return getattr(importlib.import_module(module_name), class_name)(**arguments)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ModelBundleError(f"{class_name} cannot be built with these arguments: {exc}") from exc


def _load_network(folder: Path, architecture: str, arguments: dict[str, Any], weights_file: str, sha256: str):
    from safetensors.torch import load_file

    network = build_network(architecture, arguments)
    path = folder / weights_file
    if sha256_file(path) != sha256:  # changed since the bundle was validated
        raise ModelBundleError("Weights changed on disk after validation", path=str(path))
    state = load_file(str(path))
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelBundleError(f"Weights do not fit the architecture: {str(exc)[:200]}", path=str(path)) from exc
    network.eval()
    return network
