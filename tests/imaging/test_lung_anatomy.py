"""Phantoms with real lung anatomy (issue #19): connected tapering vessel trees, seeded,
juxtavascular nodules touching their vessel, look-alikes recorded apart from the nodules, and
noise that follows the reconstruction kernel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from workstation.errors import PhantomError
from workstation.imaging.phantom import PhantomSpec, generate_phantom


def _spec(seed: int, **changes) -> PhantomSpec:
    return replace(PhantomSpec.from_seed(seed, matrix=160, slice_thickness_mm=2.0, anatomy="lung"), **changes)


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(_spec(21, nodule_count=6))


def test_same_seed_gives_the_same_phantom(phantom) -> None:
    again = generate_phantom(_spec(21, nodule_count=6))
    np.testing.assert_array_equal(phantom.volume.voxels, again.volume.voxels)
    np.testing.assert_array_equal(phantom.vessel_mask, again.vessel_mask)
    assert phantom.nodules == again.nodules and phantom.mimics == again.mimics
    other = generate_phantom(_spec(22, nodule_count=6))
    assert not np.array_equal(other.vessel_mask, phantom.vessel_mask)


def test_vessel_trees_are_present_connected_and_reach_the_periphery(phantom) -> None:
    mask = phantom.vessel_mask
    spacing = np.array(phantom.volume.spacing_mm[::-1])
    assert mask.sum() * np.prod(spacing) > 20_000  # over 20 ml of vessels
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
    assert sizes[:4].sum() >= 0.95 * mask.sum()  # one tree system per lung (arteries and veins may meet)
    k, j, i = np.nonzero(mask)
    x = phantom.volume.origin_mm[0] + i * spacing[2]
    assert (x < -20).sum() > 1000 and (x > 20).sum() > 1000  # both lungs
    lung = (phantom.volume.voxels < -500) & (phantom.volume.voxels > -990)
    depth = ndimage.distance_transform_edt(lung | mask, sampling=spacing)
    assert np.percentile(depth[mask], 5) < 6  # vessels come within a few mm of the pleura


def test_vessels_taper_from_hilum_to_under_a_millimetre() -> None:
    from workstation.imaging import lung_anatomy
    from workstation.imaging.phantom import _Canvas

    spec = _spec(5)
    canvas = _Canvas(spec)
    lung = np.zeros(canvas.shape, dtype=bool)
    z, y, x = canvas.axes(tuple(slice(0, n) for n in canvas.shape))
    for sign in (-1, 1):
        lung |= ((x - sign * 70) / 60) ** 2 + (y / 50) ** 2 + (z / 90) ** 2 < 1
    anatomy = lung_anatomy.draw_lung_anatomy(canvas, 1.0, np.random.default_rng(0), lung)
    radii = np.array([r for _, _, r in anatomy.segments])
    assert radii.max() >= 5.0 and radii.min() < 0.5  # ~12 mm down to under 1 mm across
    assert (radii < 1.0).sum() > (radii > 2.0).sum()  # many more small branches than large ones


def test_juxtavascular_nodules_touch_a_vessel() -> None:
    checked = 0
    for seed in range(30, 40):
        phantom = generate_phantom(_spec(seed, nodule_count=6))
        for nodule in phantom.nodules:
            if nodule["attached_to"] != "vessel":
                continue
            grown = ndimage.binary_dilation(phantom.nodule_mask == nodule["id"], iterations=2)
            assert (grown & phantom.vessel_mask).any(), (seed, nodule)
            checked += 1
        if checked >= 4:
            break
    assert checked >= 4


def test_look_alikes_are_recorded_and_are_not_nodules() -> None:
    kinds = set()
    for seed in (40, 41, 42):
        phantom = generate_phantom(_spec(seed))
        kinds |= {m["kind"] for m in phantom.mimics}
        for mimic in phantom.mimics:  # a look-alike is never counted as a nodule
            assert all(np.linalg.norm(np.subtract(mimic["centre_mm"], n["centre_mm"])) > 0 for n in phantom.nodules)
    assert {"scar", "mucus plug"} <= kinds


def test_sharp_kernels_are_noisier_than_soft_ones() -> None:
    def air_noise(kernel: str) -> float:
        phantom = generate_phantom(_spec(7, kernel=kernel, nodule_count=1))
        v = phantom.volume.voxels.astype(float)
        centre = v.shape[1] // 2
        air = v[:, 2:12, centre - 10:centre + 10]  # in the field of view, in front of the body
        return float(np.std(air - air.mean()))

    assert air_noise("LUNG") > 1.4 * air_noise("STANDARD")


def test_anatomy_is_validated_and_simple_stays_the_default() -> None:
    assert PhantomSpec.from_seed(3).anatomy == "simple"
    assert generate_phantom(PhantomSpec.from_seed(3, matrix=96, slice_thickness_mm=2.5)).vessel_mask is None
    with pytest.raises(PhantomError):
        PhantomSpec(seed=1, anatomy="realistic")
