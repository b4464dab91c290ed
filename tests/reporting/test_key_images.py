"""Key images without a model run: the heatmap is drawn as an outline that leaves the lesion visible."""

from __future__ import annotations

import numpy as np

from workstation.imaging.volume import Volume
from workstation.reporting.key_images import OUTLINE_RGB, finding_key_images, heat_outline


def _ball_volume() -> tuple[Volume, np.ndarray, np.ndarray]:
    """A bright 12 mm ball in air on a 1 mm grid, and a heatmap that covers it."""
    k, j, i = np.mgrid[0:40, 0:64, 0:64]
    distance = np.sqrt((i - 32) ** 2 + (j - 32) ** 2 + (k - 20) ** 2)
    voxels = np.where(distance <= 6, 40, -900).astype(np.int16)
    volume = Volume.from_geometry(voxels, np.array([-32.0, -32.0, -20.0]), np.array([1.0, 0, 0]),
                                  np.array([0, 1.0, 0]), np.array([0, 0, 1.0]), (1.0, 1.0))
    heatmap = np.clip(1.0 - distance / 10.0, 0, 1).astype(np.float32)
    return volume, heatmap, volume.voxel_to_patient((32, 32, 20))


def test_outline_is_a_thin_border_not_a_fill() -> None:
    heat = np.zeros((20, 20), dtype=np.float32)
    heat[5:15, 5:15] = 1.0
    edge = heat_outline(heat, 0.5, (40, 40))
    assert edge.any() and not edge[20, 20]  # the border is drawn, the middle is not
    assert edge.sum() < 0.35 * (edge.shape[0] * edge.shape[1])


def test_close_up_shows_the_lesion_under_an_outline() -> None:
    volume, heatmap, centre = _ball_volume()
    close_up = finding_key_images(volume, heatmap, centre, 12.0, "1", 0.3)[1].image
    rgb = np.asarray(close_up).astype(int)
    middle = rgb[rgb.shape[0] // 2 - 3:rgb.shape[0] // 2 + 3, rgb.shape[1] // 2 - 3:rgb.shape[1] // 2 + 3]
    assert np.abs(middle[..., 0] - middle[..., 2]).max() < 10  # grey lesion: no heat colour over it
    assert middle.mean() > 150  # and bright (the ball at lung window)
    outline = np.all(rgb == np.array(OUTLINE_RGB), axis=-1)
    assert outline.sum() > 50


def test_unreviewed_candidate_numbers_are_listed_as_ranges() -> None:
    from workstation.reporting.pdf import _number_ranges

    assert _number_ranges([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12" and _number_ranges([7]) == "7"
