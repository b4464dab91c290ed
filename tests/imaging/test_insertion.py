"""Synthetic nodules inserted into real CT: contrast, size and position as asked, nothing
changed beyond the blending radius, density only ever added, partial volume through thick slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workstation.dicom.load import load_volume
from workstation.errors import PhantomError
from workstation.imaging.insertion import NoduleModel, ScanResolution, insert_nodule
from workstation.imaging.insertion_sites import LungMap, choose_site

BACKGROUNDS = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct-backgrounds"


def _real(name: str):
    folder = BACKGROUNDS / name / "dicom"
    if not folder.is_dir():
        pytest.skip("shared real CT backgrounds not available")
    return load_volume(folder)


@pytest.fixture(scope="module")
def thin():  # a real thin-slice (1.5 mm) chest crop: real vessels and noise
    volume = _real("ts-aorta-crop")
    return volume, LungMap.from_volume(volume)


def _distance_mm(volume, centre_mm) -> np.ndarray:
    k, j, i = np.indices(volume.shape)
    points = np.stack([i, j, k], axis=-1) @ volume.affine[:3, :3].T + volume.affine[:3, 3]
    return np.linalg.norm(points - np.asarray(centre_mm), axis=-1)


def test_lung_map_finds_real_lungs_in_crops(thin) -> None:
    volume, lungs = thin
    millilitres = lungs.lung.sum() * np.prod(volume.spacing_mm) / 1000
    assert 200 < millilitres < 4000
    assert np.median(volume.voxels[lungs.aerated]) < -700  # aerated lung, not the mediastinum


def test_inserted_solid_nodule_has_the_asked_contrast_size_and_position(thin) -> None:
    volume, lungs = thin
    rng = np.random.default_rng(3)
    centre = choose_site(volume, lungs, 14.0, "none", rng)
    assert centre is not None
    nodule = NoduleModel("solid", tuple(centre), 14.0, solid_hu=30.0)
    inserted = insert_nodule(volume, nodule)
    delta = inserted.volume.voxels.astype(float) - volume.voxels.astype(float)
    distance = _distance_mm(volume, centre)
    core = distance <= 4.0
    assert abs(inserted.volume.voxels[core].mean() - 30.0) < 25  # real noise stays, the mean is the asked HU
    assert delta[core].mean() > 700  # from about -850 lung to about 30
    half = delta > delta[core].mean() / 2
    diameter = 2 * (half.sum() * np.prod(volume.spacing_mm) * 3 / (4 * np.pi)) ** (1 / 3)
    assert abs(diameter - 14.0) < 1.5
    ijk = np.array(np.nonzero(half)).mean(axis=1)[::-1]
    assert np.linalg.norm(volume.voxel_to_patient(ijk) - centre) < 1.0
    assert np.all(delta[distance > inserted.blend_radius_mm] == 0)
    assert np.any(delta[distance > 7.0 + 1.0] != 0)  # the blur reaches a little beyond the edge
    assert inserted.mask.sum() * np.prod(volume.spacing_mm) == pytest.approx(4 / 3 * np.pi * 7.0**3, rel=0.15)


def test_ground_glass_on_a_vessel_keeps_the_vessel(thin) -> None:
    volume, lungs = thin
    rng = np.random.default_rng(5)
    centre = choose_site(volume, lungs, 12.0, "vessel", rng)
    assert centre is not None
    inserted = insert_nodule(volume, NoduleModel("ground-glass", tuple(centre), 12.0, ground_glass_hu=-600.0,
                                                 attached_to="vessel"))
    delta = inserted.volume.voxels.astype(int) - volume.voxels.astype(int)
    assert delta.min() >= 0  # density added, never removed
    within = inserted.mask & (volume.voxels > -300)
    assert within.any()  # the site really touches a real vessel
    assert np.all(inserted.volume.voxels[within] >= volume.voxels[within])
    core = _distance_mm(volume, centre) <= 3.0
    assert abs(inserted.volume.voxels[core & (volume.voxels < -300)].mean() - -600.0) < 60  # off the vessel: as asked


def test_part_solid_nodule_has_a_dense_core_in_a_fainter_rim(thin) -> None:
    volume, lungs = thin
    centre = choose_site(volume, lungs, 16.0, "none", np.random.default_rng(8))
    inserted = insert_nodule(volume, NoduleModel("part-solid", tuple(centre), 16.0, solid_hu=20.0,
                                                 ground_glass_hu=-550.0, core_fraction=0.4))
    distance = _distance_mm(volume, centre)
    core = inserted.volume.voxels[distance <= 2.0].mean()
    rim = inserted.volume.voxels[(distance >= 5.0) & (distance <= 6.5)].mean()
    assert core > -150 and -700 < rim < -350


def test_thick_slices_blur_a_small_nodule_through_the_slice() -> None:
    volume = _real("lpcd-a0002-8mm-B40f")
    lungs = LungMap.from_volume(volume)
    centre = choose_site(volume, lungs, 6.0, "none", np.random.default_rng(2))
    nodule = NoduleModel("solid", tuple(centre), 6.0, solid_hu=30.0)
    thick = insert_nodule(volume, nodule)
    thin = insert_nodule(volume, nodule, ScanResolution(1.0, 1.0))
    assert ScanResolution.from_volume(volume).slice_thickness_mm == 8.0
    peak = lambda result: (result.volume.voxels.astype(float) - volume.voxels).max()  # noqa: E731
    assert peak(thick) < 0.9 * peak(thin)  # a 6 mm nodule fills at most 3/4 of an 8 mm slice


def test_insertion_is_validated_and_leaves_the_input_alone(thin) -> None:
    volume, _ = thin
    before = volume.voxels.copy()
    with pytest.raises(PhantomError):
        NoduleModel("calcified", (0.0, 0.0, 0.0), 10.0)
    with pytest.raises(PhantomError):
        insert_nodule(volume, NoduleModel("solid", (9e3, 9e3, 9e3), 10.0))
    centre = volume.voxel_to_patient(np.array(volume.shape[::-1]) / 2)
    insert_nodule(volume, NoduleModel("solid", tuple(centre), 10.0))
    np.testing.assert_array_equal(volume.voxels, before)
