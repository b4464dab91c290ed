"""The real-CT split of the model bundle: no patient both trains and evaluates the model."""

from __future__ import annotations

import json
from pathlib import Path

SPLIT = Path(__file__).resolve().parents[2] / "models" / "lung-nodule-demo" / "real_split.json"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_no_patient_is_on_both_sides() -> None:
    split = json.loads(SPLIT.read_text())
    train = {e["patient"] for e in split["train"]}
    evaluate = {e["patient"] for e in split["evaluate"]}
    assert train and evaluate
    assert not train & evaluate
    series = [e["series"] for side in ("train", "evaluate") for e in split[side]]
    assert len(series) == len(set(series))


def test_series_of_one_acquisition_share_a_patient_and_a_side() -> None:
    split = json.loads(SPLIT.read_text())
    side_of = {e["series"]: (side, e["patient"]) for side in ("train", "evaluate") for e in split[side]}
    for pair in (("lpcd-a0001-5mm-L", "lpcd-a0001-5mm-B"), ("lpcd-a0002-8mm-B70f", "lpcd-a0002-8mm-B40f"),
                 ("ts-aorta-crop", "ts-example-ct")):
        assert side_of[pair[0]] == side_of[pair[1]]


def test_held_out_side_has_thin_and_thick_series_when_the_data_is_here() -> None:
    split = json.loads(SPLIT.read_text())
    for side in ("train", "evaluate"):
        for entry in split[side]:
            folder = SHARED / entry["path"]
            if SHARED.is_dir():
                assert folder.is_dir(), entry["path"]
    if (SHARED / "real-ct-backgrounds").is_dir():
        thickness = [json.loads((SHARED / e["path"]).parent.joinpath("info.json").read_text())["slice_thickness"]
                     for e in split["evaluate"] if e["path"].startswith("real-ct-backgrounds/")]
        assert min(thickness) <= 2.5 < max(thickness)
