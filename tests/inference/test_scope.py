"""The scope check from the image itself: a study without enough aerated lung is flagged, whatever
its tags say, and the lung search works on coarse and fine grids alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workstation.dicom.load import load_volume
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.preprocess import lung_crop
from workstation.inference.registry import find_model
from workstation.inference.scope import scope_warnings


@pytest.fixture(scope="module")
def bundle():
    return find_model("lung-nodule-demo")


def _lung_reasons(volume, bundle) -> list[str]:
    return [r for r in scope_warnings(volume, bundle, lung_crop(volume).lung_ml) if "lung" in r]


def test_a_head_ct_has_no_lung_and_says_so(bundle, real_ct: Path) -> None:
    assert _lung_reasons(load_volume(real_ct / "head-gantry-tilt"), bundle) == ["no aerated lung found in the image"]


def test_an_abdominal_ct_that_shows_only_a_sliver_of_lung_bases_says_how_little(bundle, real_ct: Path) -> None:
    (reason,) = _lung_reasons(load_volume(real_ct / "abdomen-j2k-empty-uids"), bundle)
    assert reason.startswith("only ") and "ml of aerated lung" in reason and "at least 500 ml" in reason


def test_real_chest_ct_without_a_body_part_tag_has_enough_lung(bundle, real_ct: Path) -> None:
    volume = load_volume(real_ct / "chest-5mm-mass45mm")
    assert not volume.metadata.body_part  # converted from NRRD: the tags cannot tell
    assert lung_crop(volume).lung_ml > 2000
    assert _lung_reasons(volume, bundle) == []


@pytest.mark.parametrize("matrix", [128, 256])
def test_lungs_are_found_on_coarse_and_fine_phantom_grids(bundle, matrix: int) -> None:
    """At 128x128 (3-3.6 mm pixels) a 4x coarser search grid bridges the chest wall and found no
    lung in some phantoms (seed 1021 among them): the crop was the whole volume."""
    volume = generate_phantom(PhantomSpec.from_seed(1021, matrix=matrix)).volume
    crop = lung_crop(volume)
    assert 1500 < crop.lung_ml < 5000 and crop.shape != volume.shape
    assert _lung_reasons(volume, bundle) == []


def test_bundles_that_state_no_lung_minimum_are_not_held_to_one(bundle, real_ct: Path) -> None:
    valid = {k: v for k, v in bundle.valid_inputs.items() if k != "min_lung_volume_ml"}
    other = dataclasses.replace(bundle, valid_inputs=valid)
    assert _lung_reasons(load_volume(real_ct / "head-gantry-tilt"), other) == []
