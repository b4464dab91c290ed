"""Heatmap -> findings on known blobs, the nodule type from the HU profile, and findings of
two passes merged one per lesion."""

from __future__ import annotations

import numpy as np

from workstation.imaging.heatmap import blob_heatmap
from workstation.imaging.volume import Volume
from workstation.inference.findings import Finding, aerated_border_share, extract_findings, merge_passes, nodule_type


def _volume() -> Volume:
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    affine[:3, 3] = (-50, -60, -30)
    voxels = np.full((60, 120, 120), -850, dtype=np.int16)
    return Volume(voxels, affine)


def test_blobs_become_findings_at_their_centres_sorted_by_probability() -> None:
    volume = _volume()
    centres = [np.array([-10.0, -20.0, 0.0]), np.array([20.0, 10.0, 20.0])]
    heat = blob_heatmap(volume, centres, [12.0, 8.0])
    heat[volume.shape[0] // 2:] *= 0.8  # the second blob weaker
    findings = extract_findings(volume, heat, 0.5, "m", "1")
    assert [f.id for f in findings] == [1, 2]
    assert findings[0].probability > findings[1].probability
    for finding, centre in zip(findings, centres):
        assert np.linalg.norm(np.array(finding.center_mm) - centre) < 1.0
        np.testing.assert_allclose(volume.voxel_to_patient(finding.center_voxel), finding.center_mm, atol=0.01)
        assert finding.model_name == "m" and finding.volume_mm3 > 0 and finding.diameter_mm > 3


def test_fragments_a_voxel_apart_merge_and_specks_are_dropped() -> None:
    volume = _volume()
    heat = np.zeros(volume.shape, dtype=np.float32)
    heat[30:34, 50:56, 50:53] = 0.9
    heat[30:34, 50:56, 54:57] = 0.9  # one voxel gap
    heat[10, 10, 10] = 0.95  # a speck of under 8 mm3
    findings = extract_findings(volume, heat, 0.5, "m", "1")
    assert len(findings) == 1
    assert findings[0].diameter_mm > 7 * 0.8


def test_the_diameter_is_the_longest_across_one_slice_and_the_reach_is_3d() -> None:
    """A box of heat 4.0 x 8.0 mm across and 12 slices (18 mm) deep, as a lesion whose heat runs
    through thick slices: the reader's diameter is the diagonal of one slice, the reach the
    diagonal of the box (each plus one voxel, centres to edges)."""
    volume = _volume()  # 0.8 x 0.8 mm pixels, 1.5 mm slices
    heat = np.zeros(volume.shape, dtype=np.float32)
    heat[20:32, 50:60, 50:55] = 0.9  # (k, j, i): 12 slices, 10 rows, 5 columns
    (finding,) = extract_findings(volume, heat, 0.5, "m", "1")
    in_plane = np.hypot(4 * 0.8, 9 * 0.8)
    assert abs(finding.diameter_mm - (in_plane + 0.8)) < 0.06
    assert abs(finding.extent_mm - (np.hypot(in_plane, 11 * 1.5) + (0.8 + 0.8 + 1.5) / 3)) < 0.06
    assert finding.reach_mm == finding.extent_mm


def test_type_from_hu_profile() -> None:
    assert nodule_type(np.full(100, 30.0)) == "solid"
    assert nodule_type(np.concatenate([np.full(80, -600.0), np.full(20, 20.0)])) == "part-solid"
    assert nodule_type(np.full(100, -600.0)) == "ground-glass"


def test_a_large_solid_mass_measured_on_its_rim_is_solid() -> None:
    """Issue #19 item 5: the heat of a 31 mm mass lies on its rim, so the measured region is a
    shell half in the mass and half in the lung around it (plus a partial-volume band): solid,
    not part-solid. A part-solid nodule (ground glass around a solid core) measured with a halo of
    lung stays part-solid, and ground glass with a halo stays ground glass."""
    k, j, i = np.indices((40, 80, 80))
    radius_mm = np.sqrt(((k - 20) * 1.0) ** 2 + ((j - 40) * 0.7) ** 2 + ((i - 40) * 0.7) ** 2)
    mass = np.where(radius_mm <= 15.5, 30.0, -860.0)
    mass[np.abs(radius_mm - 15.5) < 1.0] = -400.0  # partial volume at its edge
    rim = np.abs(radius_mm - 15.5) <= 5.0
    assert (mass[rim] > -250).mean() < 0.5  # what made it part-solid
    assert nodule_type(mass[rim]) == "solid"
    part_solid = np.where(radius_mm <= 4.0, 30.0, np.where(radius_mm <= 8.0, -600.0, -860.0))
    assert nodule_type(part_solid[radius_mm <= 10.0]) == "part-solid"
    ground_glass = np.where(radius_mm <= 8.0, -600.0, -860.0)
    assert nodule_type(ground_glass[radius_mm <= 10.0]) == "ground-glass"


def _finding(centre, diameter: float, probability: float) -> Finding:
    return Finding(0, tuple(centre), (0.0, 0.0, 0.0), diameter, 1.0, -100.0, probability, "solid", "m", "1")


def test_passes_merge_one_finding_per_lesion() -> None:
    # a 45 mm mass: the fine pass finds two pieces of its rim, the coarse pass the whole of it
    rim = [_finding((22, 0, 0), 8, 0.4), _finding((-28, 5, 0), 9, 0.35)]  # the second just touches it
    nodule_elsewhere = _finding((31, 0, 0), 10, 0.9)  # 1 mm clear of the mass
    mass = _finding((0, 0, 0), 50, 0.99)
    merged = merge_passes([rim + [nodule_elsewhere], [mass]])
    assert [(f.id, f.center_mm) for f in merged] == [(1, (0, 0, 0)), (2, (31, 0, 0))]
    # where the fine pass is the more probable, its finding stands for the lesion
    merged = merge_passes([[_finding((1, 0, 0), 20, 0.98)], [_finding((0, 0, 0), 24, 0.9)]])
    assert [(f.center_mm, f.diameter_mm) for f in merged] == [((1, 0, 0), 20)]


def test_findings_of_one_pass_are_never_merged() -> None:
    close = [_finding((0, 0, 0), 30, 0.9), _finding((5, 0, 0), 8, 0.8)]
    assert len(merge_passes([close, []])) == 2


def test_aerated_border_tells_a_lung_lesion_from_a_soft_tissue_border() -> None:
    spacing = np.array([2.0, 0.7, 0.7])  # (k, j, i) mm: thick slices, fine pixels
    hu = np.full((30, 120, 120), -850, dtype=np.int16)
    k, j, i = np.indices(hu.shape)
    ball = ((k - 15) * 2.0) ** 2 + ((j - 60) * 0.7) ** 2 + ((i - 60) * 0.7) ** 2 <= 15**2
    lesion = np.argwhere(ball)
    assert aerated_border_share(hu, lesion, spacing) == 1.0  # free in the lung
    hu[:, :, 60:] = 40  # half of it against soft tissue (a mediastinum), like a juxtapleural mass
    assert 0.35 < aerated_border_share(hu, lesion, spacing) < 0.65
    hu[:] = 40  # the heart's own border: no lung around it at all
    assert aerated_border_share(hu, lesion, spacing) == 0.0
