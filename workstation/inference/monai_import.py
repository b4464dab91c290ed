"""Import a MONAI bundle (configs/metadata.json, configs/inference.json, models/model.pt) as one
of our model bundles (issue #25 item 1), without ever running the bundle's code:

- the network is built only from an allow-listed MONAI class named in `network_def`, with
  literal arguments: a `$` expression, an `@` reference or a `%` macro anywhere in what we read
  is refused, never evaluated;
- the weights are read once with `torch.load(weights_only=True)` (plain tensors; a pickle that
  carries code is refused), loaded strictly into that network, and written as safetensors with
  their sha256;
- spacing and HU window come from the preprocessing's Spacingd and ScaleIntensityRanged;
- the card says it is imported and unvalidated here: no operating point is claimed.

Segmentation networks with one output channel become heatmaps; MONAI's RetinaNet detector (the
layout of the `lung_nodule_ct_detection` bundle) is read by workstation.inference.detection,
whose `$` backbone and detector calls are parsed as data, never run, and its boxes become
findings.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from workstation.config import LIMITS
from workstation.errors import ModelBundleError
from workstation.files import sha256_file
from workstation.inference.architectures import ALLOWED_ARCHITECTURES, DETECTOR_ARCHITECTURE, literal_value
from workstation.inference.bundle import ModelBundle

MAX_CONFIG_BYTES = 4 * 1024**2
MAX_WEIGHTS_BYTES = 2 * 1024**3


_literal = literal_value


def _json(path: Path, label: str) -> dict:
    if not path.is_file():
        raise ModelBundleError(f"The bundle has no {label} (a MONAI bundle has configs/metadata.json and "
                               "configs/inference.json; YAML configs are not read)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelBundleError(f"The bundle's {label} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelBundleError(f"The bundle's {label} cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelBundleError(f"The bundle's {label} is not a JSON object")
    return data


def _network(inference: dict) -> tuple[str, dict]:
    definition = inference.get("network_def")
    if not isinstance(definition, dict) or "_target_" not in definition:
        raise ModelBundleError("The bundle's inference.json has no network_def with a _target_ class")
    target = str(definition["_target_"])
    from workstation.inference.detection import is_detection_network, read_detector

    if is_detection_network(target):
        return read_detector(inference)
    class_name = target if target.startswith("monai.") else f"monai.networks.nets.{target}"
    if class_name not in ALLOWED_ARCHITECTURES:
        raise ModelBundleError(f"Network class {target!r} is not on the allow-list "
                               f"({', '.join(sorted(c.rsplit('.', 1)[-1] for c in ALLOWED_ARCHITECTURES))})")
    arguments = {key: _literal(value, f"network_def.{key}") for key, value in definition.items() if key != "_target_"}
    unknown = set(arguments) - ALLOWED_ARCHITECTURES[class_name]
    if unknown:
        raise ModelBundleError(f"Network arguments not allowed: {', '.join(sorted(unknown))}")
    if arguments.get("out_channels", 1) != 1:
        raise ModelBundleError("Only networks with one output channel (a sigmoid heatmap) fit this workstation")
    return class_name, arguments


def _preprocessing(inference: dict, roi: list[int] | None = None) -> tuple[list[float], list[float], list[int]]:
    """(spacing x,y,z, HU window, patch size) from the transforms and the inferer (a detector's
    window size, `roi`, comes from its own sliding-window setting)."""
    transforms = (inference.get("preprocessing") or {}).get("transforms") or []
    spacing = window = None
    for transform in transforms if isinstance(transforms, list) else []:
        if not isinstance(transform, dict):
            continue
        name = str(transform.get("_target_", "")).rsplit(".", 1)[-1]
        if name in ("Spacingd", "Spacing"):
            spacing = _literal(transform.get("pixdim"), "Spacingd.pixdim")
        elif name in ("ScaleIntensityRanged", "ScaleIntensityRange"):
            window = [_literal(transform.get("a_min"), "a_min"), _literal(transform.get("a_max"), "a_max")]
    if roi is None:
        roi = _literal((inference.get("inferer") or {}).get("roi_size"), "inferer.roi_size")
    if spacing is None or window is None or roi is None:
        raise ModelBundleError("The bundle's inference.json does not state its spacing (Spacingd), HU window "
                               "(ScaleIntensityRanged) and window size (inferer.roi_size) as literal values")
    try:
        return [float(v) for v in spacing], [float(v) for v in window], [int(v) for v in roi][::-1]
    except (TypeError, ValueError) as exc:
        raise ModelBundleError(f"The bundle's spacing, window or window size is not numeric: {exc}") from exc


def _state_dict(path: Path) -> dict:
    import pickle

    import torch

    if not path.is_file():
        raise ModelBundleError("The bundle has no models/model.pt")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ModelBundleError(f"models/model.pt is larger than {MAX_WEIGHTS_BYTES} bytes")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError) as exc:
        raise ModelBundleError("models/model.pt holds more than plain tensors (code or unknown objects) or is "
                               f"damaged; refused without running it ({type(exc).__name__})") from exc
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict):
        loaded = loaded["model"]
    if not isinstance(loaded, dict) or not loaded or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ModelBundleError("models/model.pt is not a state dict of tensors")
    return loaded


def _unpacked(source: Path, scratch: Path) -> Path:
    """The bundle's root folder: `source` itself, or a zip extracted with its sizes checked first."""
    from workstation.dicom.sources import check_zip_member, safe_join
    from workstation.errors import SizeLimitError, UnsafePathError

    if source.is_dir():
        root = source
    else:
        try:
            with zipfile.ZipFile(source) as archive:
                members = archive.infolist()
                if len(members) > 10_000:
                    raise ModelBundleError("The bundle zip holds more than 10,000 entries")
                for member in members:
                    check_zip_member(member.file_size, member.compress_size, member.filename)
                    if member.file_size > max(MAX_WEIGHTS_BYTES, LIMITS.max_zip_member_bytes):
                        raise ModelBundleError(f"{member.filename} in the bundle zip is too large")
                    if member.is_dir():
                        continue
                    target = safe_join(scratch, *[p for p in member.filename.split("/") if p])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as stream, open(target, "wb") as out:
                        shutil.copyfileobj(stream, out, 1 << 20)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelBundleError(f"The bundle zip cannot be read: {exc}") from exc
        except (SizeLimitError, UnsafePathError) as exc:
            raise ModelBundleError(f"The bundle zip was refused: {exc}") from exc
        root = scratch
    candidates = [p.parent.parent for p in root.rglob("configs/metadata.json")]
    if len(candidates) != 1:
        raise ModelBundleError("Not a MONAI bundle: expected one configs/metadata.json")
    return candidates[0]


def import_monai_bundle(source: Path, models_home: Path, imported_by: str) -> ModelBundle:
    """Convert the MONAI bundle at `source` (folder or zip) into DATA/models/<name>; returns it."""
    from safetensors.torch import save_file

    from workstation.inference.bundle import build_network

    with tempfile.TemporaryDirectory(prefix="monai-bundle-") as scratch:
        root = _unpacked(Path(source), Path(scratch) / "bundle")
        try:
            metadata = _json(root / "configs" / "metadata.json", "configs/metadata.json")
            inference = _json(root / "configs" / "inference.json", "configs/inference.json")
            class_name, arguments = _network(inference)
            detects = class_name == DETECTOR_ARCHITECTURE
            spacing, window, patch = _preprocessing(inference, arguments["sliding_window"]["roi_size"] if detects
                                                    else None)
        except RecursionError as exc:  # JSON nested thousands deep: not a config anyone wrote
            raise ModelBundleError("The bundle's config is nested too deeply to be a model's settings") from exc
        state = _state_dict(root / "models" / "model.pt")
        network = build_network(class_name, arguments)
        try:
            # a detector's checkpoint is its RetinaNet's (the bundle's CheckpointLoader loads @network)
            receiving = network.network if detects and not all(k.startswith("network.") for k in state) else network
            receiving.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelBundleError(f"The weights do not fit the network the config names: "
                                   f"{str(exc).splitlines()[0][:160]}") from exc
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in str(metadata.get("name") or root.name))[:64]
        version = str(metadata.get("version") or "0")
        target = Path(models_home) / f"monai-{name}"
        if target.exists():
            raise ModelBundleError(f"A model is already installed at {target}; remove it first")
        staging = Path(scratch) / "out"
        staging.mkdir()
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, staging / "weights.safetensors")
        original = sha256_file(root / "models" / "model.pt")
        meta = {
            "name": f"monai-{name}", "version": version,
            "task": (f"nodule detection (boxes with scores) from the imported MONAI bundle {name}" if detects else
                     f"segmentation heatmap from the imported MONAI bundle {name}"),
            "modality": "CT", "intended_use": str(metadata.get("description") or "")[:2000] +
            " Imported MONAI bundle: not validated on this site's cases; measure it first (workstation evaluate).",
            "limitations": "Imported as published; this workstation has not measured it. " +
            str(metadata.get("intended_use") or "")[:1000],
            "notice": f"Imported MONAI bundle {name} {version}: not validated here.",
            "input": {"spacing_mm": spacing, "hu_window": window, "patch_size": patch,
                      "preprocessing": "as the bundle's Spacingd and ScaleIntensityRanged (values read, code not run)"
                      + (f", laid out {arguments['orientation']} as its Orientationd states" if detects else "")},
            "architecture": {"class": class_name, "args": arguments},
            "weights": {"file": "weights.safetensors", "sha256": sha256_file(staging / "weights.safetensors")},
            "output_activation": "sigmoid", "default_threshold": 0.5, "operating_points": [],
            "valid_inputs": {"modality": "CT"},
            "training_data": str(metadata.get("data_source") or "not stated by the bundle")[:2000],
            "licence": str(metadata.get("license") or metadata.get("licence") or "not stated by the bundle"),
            "evaluation": {}, "imported": {"from": "MONAI bundle", "original_model_pt_sha256": original,
                                           "imported_by": imported_by,
                                           "monai_version": str(metadata.get("monai_version", ""))},
        }
        (staging / "metadata.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        (staging / "MODEL_CARD.md").write_text(
            f"# {meta['name']} {version} (imported MONAI bundle)\n\n"
            f"Imported by {imported_by} from a MONAI bundle; its config was read as data, never run.\n"
            f"Original models/model.pt sha256: {original}.\n\n"
            "**No figure on this card was measured here.** Run `workstation evaluate` on labelled cases of "
            "this site before relying on it.\n\n"
            + ("The detector's box scores are listed as the findings' probabilities; findings are listed from "
               "0.5, which is a default, not a measured operating point.\n\n" if detects else "") +
            f"Description from the bundle: {meta['intended_use']}\n\nLicence: {meta['licence']}\n", encoding="utf-8")
        ModelBundle.from_folder(staging)  # every check the registry makes, before it is installed
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), target)
    return ModelBundle.from_folder(target)
