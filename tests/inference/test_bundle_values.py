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
        "50 synthetic phantoms, not real CT"}
    _set(bundle_copy, ("operating_points",), [{"threshold": 0.3, "sensitivity": 0.4, "false_positives_per_scan": 2,
                                               "evaluation": "inserted nodules in held-out real CT"}])
    point = ModelBundle.from_folder(bundle_copy).operating_points[0]
    assert point.measured_on == "inserted nodules in held-out real CT"
