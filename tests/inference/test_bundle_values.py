"""Bundle values a model cannot run with are refused by name when the bundle loads (#21 item 9):
before, hu_window [0, 0] or a NaN threshold loaded and silently gave 'No findings'."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workstation.errors import ModelBundleError
from workstation.inference.bundle import ModelBundle
from workstation.inference.registry import SHIPPED_MODELS


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Path:
    target = tmp_path / "lung-nodule-demo"
    shutil.copytree(SHIPPED_MODELS / "lung-nodule-demo", target,
                    ignore=shutil.ignore_patterns("checkpoint*", "fpr-checkpoint*", "snapshot-*", "*.py"))
    return target


def _set(folder: Path, path: tuple[str, ...], value) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    target = meta
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    (folder / "metadata.json").write_text(json.dumps(meta))  # json writes NaN as NaN, which it reads back


@pytest.mark.parametrize(("path", "value", "named"), [
    (("input", "hu_window"), [0, 0], "hu_window"),
    (("input", "hu_window"), [400, -1000], "hu_window"),
    (("input", "spacing_mm"), [0.0, 1.0, 1.0], "spacing_mm"),
    (("input", "spacing_mm"), [float("nan"), 1.0, 1.0], "spacing_mm"),
    (("input", "patch_size"), [0, 64, 64], "patch_size"),
    (("default_threshold",), float("nan"), "default_threshold"),
    (("default_threshold",), 1.5, "default_threshold"),
    (("operating_points",), [{"threshold": 0.3, "sensitivity": 2.0, "false_positives_per_scan": 1}],
     "operating point"),
])
def test_values_a_model_cannot_run_with_are_refused(bundle_copy: Path, path, value, named: str) -> None:
    _set(bundle_copy, path, value)
    with pytest.raises(ModelBundleError, match=named):
        ModelBundle.from_folder(bundle_copy)


def test_the_shipped_values_pass(bundle_copy: Path) -> None:
    assert ModelBundle.from_folder(bundle_copy).default_threshold > 0


def test_each_operating_point_says_what_it_was_measured_on(bundle_copy: Path) -> None:
    assert {p.measured_on for p in ModelBundle.from_folder(bundle_copy).operating_points} == {
        "real CT of 4 held-out patients with synthetic nodules inserted (real_split.json), not real annotated nodules"}
    _set(bundle_copy, ("operating_points",), [{"threshold": 0.3, "sensitivity": 0.4, "false_positives_per_scan": 2,
                                               "evaluation": "inserted nodules in held-out real CT"}])
    point = ModelBundle.from_folder(bundle_copy).operating_points[0]
    assert point.measured_on == "inserted nodules in held-out real CT"


def _own_large_lesion_weights(folder: Path) -> bytes:
    """The large-lesion pass given its own weights file (here a copy of the main ones, last bias changed)."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "weights.safetensors")
    last_bias = [name for name in tensors if name.endswith("bias")][-1]
    tensors[last_bias] = tensors[last_bias] - 5.0
    save_file(tensors, folder / "large-lesion-weights.safetensors")
    return (folder / "large-lesion-weights.safetensors").read_bytes()


def test_a_large_lesion_pass_with_its_own_weights_loads_them_checked(bundle_copy: Path) -> None:
    import hashlib

    import torch

    data = _own_large_lesion_weights(bundle_copy)
    meta = json.loads((bundle_copy / "metadata.json").read_text())
    _set(bundle_copy, ("large_lesion_pass",), {**meta["large_lesion_pass"], "weights": {
        "file": "large-lesion-weights.safetensors", "sha256": hashlib.sha256(data).hexdigest()}})
    bundle = ModelBundle.from_folder(bundle_copy)
    main, large = bundle.load_network(), bundle.load_large_lesion_network()
    assert large is not None and bundle.large_lesion_pass.weights_file == "large-lesion-weights.safetensors"
    differs = [name for name, value in large.state_dict().items()
               if not torch.equal(value, main.state_dict()[name])]
    assert len(differs) == 1 and differs[0].endswith("bias")

    _set(bundle_copy, ("large_lesion_pass", "weights", "sha256"), "0" * 64)  # tampered with, or the wrong file
    with pytest.raises(ModelBundleError, match="sha256"):
        ModelBundle.from_folder(bundle_copy)


def test_without_its_own_weights_the_large_lesion_pass_uses_the_main_network(bundle_copy: Path) -> None:
    meta = json.loads((bundle_copy / "metadata.json").read_text())
    _set(bundle_copy, ("large_lesion_pass",), {k: v for k, v in meta["large_lesion_pass"].items() if k != "weights"})
    assert ModelBundle.from_folder(bundle_copy).load_large_lesion_network() is None
