"""Bundles in the user's data folder (DATA/models): one that takes a shipped bundle's name is
refused and the shipped one still runs; one with its own name runs, and every Analysis it makes
says it is user-installed (the notice the panel, the PDF report and the JSON show)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from workstation.cli import main as cli
from workstation.errors import ModelBundleError
from workstation.dicom.load import load_largest_series_job
from workstation.files import sha256_file
from workstation.inference.registry import SHIPPED_MODELS, find_model, list_models
from workstation.inference.runner import run_inference_job
from workstation.jobs import run_job

DEMO = SHIPPED_MODELS / "lung-nodule-demo"
MARK = "User-installed model (DATA/models/{}), not shipped with Workstation."


def _user_bundle(home: Path, folder: str, name: str, version: str = "9.9.9") -> Path:
    """A copy of the demo bundle with its own weights (one value changed, checksum re-made):
    a different model, valid in every respect but its name."""
    target = home / "models" / folder
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("checkpoint.*", "fpr-checkpoint.*", "snapshot-*",
                                                                "*.py"))
    weights = target / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0x01
    weights.write_bytes(bytes(data))
    meta = json.loads((target / "metadata.json").read_text())
    meta.update(name=name, version=version)
    meta["weights"]["sha256"] = sha256_file(weights)
    (target / "metadata.json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize(("folder", "name"), [("lung-nodule-demo", "lung-nodule-demo"),
                                              ("innocent", "lung-nodule-demo"),
                                              ("lung-nodule-demo", "something-else"),
                                              ("Lung-Nodule-Demo", " LUNG-NODULE-DEMO")])
def test_a_user_bundle_taking_the_shipped_name_is_refused(home: Path, capsys, folder: str, name: str) -> None:
    shipped = find_model("lung-nodule-demo")
    impostor = _user_bundle(home, folder, name)
    entry = next(e for e in list_models() if e.folder == impostor)
    assert not entry.available and "takes the name of the shipped model 'lung-nodule-demo'" in entry.reason
    used = find_model("lung-nodule-demo")
    assert used.folder == DEMO and used.weights_sha256 == shipped.weights_sha256 and used.version != "9.9.9"
    assert "User-installed" not in used.notice
    for other in {folder, name.strip()} - {"lung-nodule-demo"}:  # nor is it reachable by its other name
        with pytest.raises(ModelBundleError):
            find_model(other)
    assert cli(["models"]) == 0
    out = capsys.readouterr().out
    assert f"{folder}: NOT usable - it takes the name of the shipped model" in out
    assert "lung-nodule-demo 9.9.9" not in out


def test_a_user_bundle_with_its_own_name_runs_and_says_so(home: Path, small_phantom_dir: Path) -> None:
    _user_bundle(home, "my-nodule-model", "my-nodule-model", "1.0.0")
    bundle = find_model("my-nodule-model")
    assert bundle.notice.startswith(MARK.format("my-nodule-model"))
    assert bundle.notice.endswith(find_model("lung-nodule-demo").notice)  # the bundle's own warning stays
    volume = run_job(load_largest_series_job([small_phantom_dir / "dicom"]))
    analysis = run_job(run_inference_job(volume, bundle, threshold=0.05))
    assert (analysis.model_name, analysis.model_version) == ("my-nodule-model", "1.0.0")
    assert analysis.notice.startswith(MARK.format("my-nodule-model"))
    assert analysis.to_dict()["notice"].startswith("User-installed model")
