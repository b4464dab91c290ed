"""Model bundles: the shipped one loads; every broken bundle is refused before deserialising."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from workstation.errors import ModelBundleError
from workstation.inference.bundle import ModelBundle
from workstation.inference.registry import SHIPPED_MODELS, find_model, list_models

DEMO = SHIPPED_MODELS / "lung-nodule-demo"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    target = tmp_path / "lung-nodule-demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("checkpoint.*", "fpr-checkpoint.*", "snapshot-*", "*.py"))
    return target


def _edit(folder: Path, change) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    change(meta)
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_shipped_demo_bundle_is_valid_and_says_what_it_is() -> None:
    bundle = ModelBundle.from_folder(DEMO)
    assert bundle.name == "lung-nodule-demo" and bundle.architecture == "monai.networks.nets.UNet"
    # 0.8.0: phantoms and three real patients' CT; the notice and intended use say both, and what it is not for
    assert "not for diagnosis" in bundle.notice and "real patients' CT" in bundle.notice
    assert "synthetic" in bundle.intended_use and "real CT of three patients" in bundle.intended_use
    assert bundle.operating_points and all(0 <= p.sensitivity <= 1 for p in bundle.operating_points)
    assert (DEMO / "weights.safetensors").stat().st_size < 5 * 1024**2  # a few MB at most
    network = bundle.load_network()
    assert sum(p.numel() for p in network.parameters()) > 10_000
    assert find_model("lung-nodule-demo").weights_sha256 == bundle.weights_sha256


@pytest.mark.parametrize("weights_file", ["weights.safetensors", "fpr.safetensors"])
def test_tampered_weights_are_refused(bundle_copy: Path, weights_file: str) -> None:
    weights = bundle_copy / weights_file
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelBundleError, match="do not match their sha256"):
        ModelBundle.from_folder(bundle_copy)


def test_architecture_outside_the_allow_list_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["architecture"].__setitem__("class", "os.system"))
    with pytest.raises(ModelBundleError, match="not on the allow-list"):
        ModelBundle.from_folder(bundle_copy)


def test_unknown_architecture_arguments_are_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["architecture"]["args"].__setitem__("__class__", "x"))
    with pytest.raises(ModelBundleError, match="arguments not allowed"):
        ModelBundle.from_folder(bundle_copy)


@pytest.mark.parametrize("missing", ["weights.safetensors", "MODEL_CARD.md", "metadata.json"])
def test_missing_files_are_refused(bundle_copy: Path, missing: str) -> None:
    (bundle_copy / missing).unlink()
    with pytest.raises(ModelBundleError):
        ModelBundle.from_folder(bundle_copy)


def test_pickle_weights_are_refused(bundle_copy: Path) -> None:
    (bundle_copy / "weights.pt").write_bytes(b"\x80\x04not really")
    _edit(bundle_copy, lambda m: m["weights"].update({"file": "weights.pt"}))
    with pytest.raises(ModelBundleError, match="safetensors"):
        ModelBundle.from_folder(bundle_copy)


def test_registry_lists_broken_bundles_with_the_reason(bundle_copy: Path, home: Path) -> None:
    broken = home / "models" / "broken"
    shutil.copytree(bundle_copy, broken)
    _edit(broken, lambda m: m.update({"name": "broken"}))  # a user bundle may not take the shipped name
    (broken / "weights.safetensors").write_bytes(b"junk")
    entries = {e.folder.name: e for e in list_models()}
    assert entries["lung-nodule-demo"].available
    assert not entries["broken"].available and "sha256" in entries["broken"].reason


def test_registry_says_when_a_bundle_needs_a_gpu(bundle_copy: Path, home: Path) -> None:
    import torch

    gpu_only = home / "models" / "gpu-only"
    shutil.copytree(bundle_copy, gpu_only)
    _edit(gpu_only, lambda m: m.update({"requires_gpu": True, "name": "gpu-only"}))
    entry = {e.folder.name: e for e in list_models()}["gpu-only"]
    if torch.cuda.is_available():
        assert entry.available
    else:
        assert not entry.available and "needs a CUDA GPU" in entry.reason


def test_no_pickle_loading_anywhere_in_the_source() -> None:
    pattern = re.compile(r"\b(pickle\.loads?|torch\.load|joblib\.load|cloudpickle|dill\.load|numpy\.load|np\.load)\b")
    offenders = []
    for path in list((REPO / "workstation").rglob("*.py")) + list((REPO / "ui").rglob("*.py")) + \
            list((REPO / "models").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and not _restricted_torch_load(path, line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, offenders


def _restricted_torch_load(path: Path, line: str) -> bool:
    """The one allowed use: a MONAI bundle's model.pt, read with torch's restricted unpickler
    (weights_only=True: tensors only) and converted to safetensors at import (#25)."""
    return path.name == "monai_import.py" and "torch.load" in line and "weights_only=True" in line


def test_the_restricted_load_is_what_the_source_uses() -> None:
    source = (REPO / "workstation" / "inference" / "monai_import.py").read_text(encoding="utf-8")
    calls = re.findall(r"torch\.load\((.*)\)", source)
    assert calls and all("weights_only=True" in call for call in calls)


def test_shipped_bundle_has_a_checked_second_stage() -> None:
    bundle = ModelBundle.from_folder(DEMO)
    stage = bundle.fp_reduction
    assert stage is not None and stage.architecture == "monai.networks.nets.Classifier"
    assert 0 < stage.candidate_threshold < bundle.default_threshold
    classifier = bundle.load_fp_reduction()
    assert sum(p.numel() for p in classifier.parameters()) > 10_000


def test_second_stage_outside_the_allow_list_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["false_positive_reduction"]["architecture"].__setitem__("class", "builtins.eval"))
    with pytest.raises(ModelBundleError, match="not on the allow-list"):
        ModelBundle.from_folder(bundle_copy)


def test_second_stage_with_a_missing_field_is_refused(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m["false_positive_reduction"].pop("patch_size"))
    with pytest.raises(ModelBundleError, match="malformed"):
        ModelBundle.from_folder(bundle_copy)


@pytest.mark.parametrize("flips", [[[3]], [[0, 0]], [], [[0]] * 9, "xyz"])
def test_malformed_test_time_flips_are_refused(bundle_copy: Path, flips) -> None:
    _edit(bundle_copy, lambda m: m.__setitem__("test_time_flips", flips))
    with pytest.raises(ModelBundleError, match="malformed"):
        ModelBundle.from_folder(bundle_copy)


def test_test_time_flips_default_to_none(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m.pop("test_time_flips", None))
    assert ModelBundle.from_folder(bundle_copy).test_time_flips == ((),)


def test_shipped_bundle_has_a_coarser_large_lesion_pass() -> None:
    bundle = ModelBundle.from_folder(DEMO)
    large = bundle.large_lesion_pass
    assert large is not None and min(large.spacing_mm) > max(bundle.spacing_mm) and large.min_diameter_mm > 6
    assert 0 < large.min_aerated_border < 1


@pytest.mark.parametrize("settings", [{"spacing_mm": [2, 2]}, {"spacing_mm": [2, 2, 0], "min_diameter_mm": 20},
                                      {"min_diameter_mm": 20}, "coarse",
                                      {"spacing_mm": [2, 2, 2], "min_diameter_mm": 20, "min_aerated_border": 2}])
def test_malformed_large_lesion_pass_is_refused(bundle_copy: Path, settings) -> None:
    _edit(bundle_copy, lambda m: m.__setitem__("large_lesion_pass", settings))
    with pytest.raises(ModelBundleError, match="malformed"):
        ModelBundle.from_folder(bundle_copy)


def test_large_lesion_pass_is_optional(bundle_copy: Path) -> None:
    _edit(bundle_copy, lambda m: m.pop("large_lesion_pass", None))
    assert ModelBundle.from_folder(bundle_copy).large_lesion_pass is None


@pytest.mark.parametrize("distance", [-1, "near", float("nan"), [15]])
def test_malformed_distance_from_lung_is_refused(bundle_copy: Path, distance) -> None:
    _edit(bundle_copy, lambda m: m.__setitem__("max_distance_from_lung_mm", distance))
    with pytest.raises(ModelBundleError, match="malformed"):
        ModelBundle.from_folder(bundle_copy)


def test_distance_from_lung_is_optional(bundle_copy: Path) -> None:
    assert ModelBundle.from_folder(DEMO).max_distance_from_lung_mm == 15
    _edit(bundle_copy, lambda m: m.pop("max_distance_from_lung_mm", None))
    assert ModelBundle.from_folder(bundle_copy).max_distance_from_lung_mm is None
