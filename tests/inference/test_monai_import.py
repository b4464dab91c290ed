"""`workstation models import` of a MONAI bundle (#25 item 1): a bundle in MONAI's layout built
here (BasicUNet, random weights) becomes a usable model; pickled code, unknown classes,
expressions, a detection network without its parts and weights that do not fit are refused,
nothing evaluated (detection bundles proper: test_monai_detection.py)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from workstation.cli import main
from workstation.errors import ModelBundleError
from workstation.inference.monai_import import import_monai_bundle
from workstation.inference.registry import list_models

NETWORK = {"_target_": "BasicUNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 1,
           "features": [4, 4, 8, 8, 16, 4]}


def _bundle(folder: Path, network: dict | None = None, weights: object | None = None, **inference_extra) -> Path:
    from monai.networks.nets import BasicUNet

    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "metadata.json").write_text(json.dumps({
        "name": "tiny_lung_seg", "version": "0.1.2", "monai_version": "1.4.0", "license": "Apache-2.0",
        "description": "A tiny lung lesion segmenter", "data_source": "random weights, no data"}))
    inference = {
        "network_def": network or NETWORK,
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": [0.703, 0.703, 1.25]},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1024, "a_max": 300, "b_min": 0.0,
             "b_max": 1.0, "clip": True}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [64, 64, 32]}, **inference_extra}
    (folder / "configs" / "inference.json").write_text(json.dumps(inference))
    if weights is None:
        torch.manual_seed(0)
        weights = BasicUNet(spatial_dims=3, in_channels=1, out_channels=1, features=(4, 4, 8, 8, 16, 4)).state_dict()
    torch.save(weights, folder / "models" / "model.pt")
    return folder


def test_a_monai_bundle_becomes_a_model(tmp_path: Path, home: Path, capsys) -> None:
    source = _bundle(tmp_path / "bundle")
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in source.rglob("*"):
            out.write(path, f"tiny_lung_seg/{path.relative_to(source)}")
    assert main(["models", "import", str(archive)]) == 0
    assert "No accuracy figure is claimed" in capsys.readouterr().out
    [entry] = [e for e in list_models() if e.bundle and e.bundle.name == "monai-tiny_lung_seg"]
    bundle = entry.bundle
    assert bundle.spacing_mm == (0.703, 0.703, 1.25) and bundle.hu_window == (-1024.0, 300.0)
    assert bundle.patch_size == (32, 64, 64) and bundle.operating_points == ()
    network = bundle.load_network()
    original = torch.load(source / "models" / "model.pt", weights_only=True)
    for key, tensor in network.state_dict().items():
        assert torch.equal(tensor, original[key]), key
    card = (bundle.folder / "MODEL_CARD.md").read_text()
    assert "No figure on this card was measured here" in card
    from workstation.review.store import ReviewStore

    store = ReviewStore.in_home(home)
    row = store.connection.execute("SELECT user, new_value FROM audit WHERE action = 'model_imported'").fetchone()
    store.close()
    assert json.loads(row[1])["weights_sha256"] == bundle.weights_sha256
    assert main(["models", "import", str(archive)]) == 2
    assert "already installed" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):
        return (print, ("this ran",))  # a pickle that runs code when unpickled


@pytest.mark.parametrize(("case", "message"), [
    ("pickled code", "holds more than plain tensors"),
    ("unknown class", "not on the allow-list"),
    ("expression", "is an expression"),
    ("detector", "does not say what it builds"),
    ("wrong weights", "do not fit the network"),
    ("no spacing", "does not state its spacing"),
    ("argument", "Network arguments not allowed"),
])
def test_refusals(tmp_path: Path, case: str, message: str, capsys) -> None:
    kwargs: dict = {}
    if case == "pickled code":
        kwargs["weights"] = {"layer": _Payload()}
    elif case == "unknown class":
        kwargs["network"] = {"_target_": "torch.nn.Linear", "in_features": 1, "out_features": 1}
    elif case == "expression":
        kwargs["network"] = {**NETWORK, "features": "$__import__('os').system('touch /tmp/owned')"}
    elif case == "detector":
        kwargs["network"] = {"_target_": "RetinaNet", "spatial_dims": 3}
    elif case == "wrong weights":
        kwargs["weights"] = {"conv.weight": torch.zeros(3, 3)}
    elif case == "argument":
        kwargs["network"] = {**NETWORK, "forward_hook": "x"}
    source = _bundle(tmp_path / "bundle", **kwargs)
    if case == "no spacing":
        inference = json.loads((source / "configs" / "inference.json").read_text())
        inference["preprocessing"]["transforms"][1]["pixdim"] = "@spacing"
        (source / "configs" / "inference.json").write_text(json.dumps(inference))
        message = "is an expression"
    with pytest.raises(ModelBundleError, match=message):
        import_monai_bundle(source, tmp_path / "models", imported_by="admin")
    assert "this ran" not in capsys.readouterr().out
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert not Path("/tmp/owned").exists()


def test_a_pickle_is_not_even_opened_with_pickle(tmp_path: Path) -> None:
    """weights_only=True: torch's restricted unpickler, not pickle.load."""
    source = _bundle(tmp_path / "bundle", weights={"layer": _Payload()})
    data = (source / "models" / "model.pt").read_bytes()
    assert data[:2] == b"PK"  # torch's zip container, whose data.pkl holds the payload
    with pytest.raises(pickle.UnpicklingError):
        torch.load(source / "models" / "model.pt", weights_only=True)
