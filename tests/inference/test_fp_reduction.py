"""The second stage: candidate patches sit on the candidates, and rescoring keeps its promise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.bundle import ModelBundle
from workstation.inference.findings import extract_findings
from workstation.inference.fp_reduction import candidate_patches, combined_probability, rescore
from workstation.inference.preprocess import LungCrop, lung_crop, model_grid_image, model_grid_index, patch_at
from workstation.inference.registry import SHIPPED_MODELS


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    return ModelBundle.from_folder(SHIPPED_MODELS / "lung-nodule-demo")


def test_model_grid_index_follows_the_resampling() -> None:
    """A smooth blob resampled the way the runner resamples is centred where the mapping says."""
    from scipy import ndimage

    crop = LungCrop((slice(3, 43), slice(10, 70), slice(5, 55)))
    rng = np.random.default_rng(1)
    for _ in range(5):
        point = np.array([rng.integers(s.start + 10, s.stop - 10) for s in crop.box])
        volume = np.zeros((50, 80, 60), dtype=np.float32)
        volume[tuple(point)] = 1.0
        volume = ndimage.gaussian_filter(volume, 3.0)  # smooth: sampling a single voxel coarsely aliases
        region = torch.from_numpy(volume[crop.box])[None, None]
        shape = [31, 47, 29]  # coarser, like 1.0 mm -> 1.5 mm, and unequal per axis
        resampled = torch.nn.functional.interpolate(region, size=shape, mode="trilinear", align_corners=False)[0, 0]
        spread = resampled.numpy()
        centroid = np.array([(spread.sum(axis=tuple(a for a in range(3) if a != axis)) * np.arange(n)).sum()
                             for axis, n in enumerate(shape)]) / spread.sum()
        np.testing.assert_allclose(model_grid_index(point, crop, shape), centroid, atol=0.1)


def test_rescoring_a_phantom_keeps_the_nodule_and_renumbers(bundle: ModelBundle) -> None:
    phantom = generate_phantom(PhantomSpec.from_seed(10007, matrix=256, nodule_count=3))
    volume = phantom.volume
    crop = lung_crop(volume)
    image = model_grid_image(volume, crop, bundle.spacing_mm, bundle.hu_window)[0, 0].numpy()
    # a heatmap that marks each true nodule and three points of plain lung: the classifier decides
    heatmap = np.zeros(volume.shape, dtype=np.float32)
    heatmap[phantom.nodule_mask > 0] = 0.9
    lung = np.argwhere((volume.voxels < -700) & (phantom.nodule_mask == 0))
    for k, j, i in lung[np.random.default_rng(0).choice(len(lung), 3)]:
        heatmap[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2] = 0.9
    candidates = extract_findings(volume, heatmap, 0.5, bundle.name, bundle.version)
    stage = bundle.fp_reduction
    patches = candidate_patches(image, crop, candidates, stage)
    assert patches.shape == (len(candidates), 1, *stage.patch_size)
    kept = rescore(candidates, image, crop, stage, bundle.load_fp_reduction(), threshold=0.0)
    assert [f.id for f in kept] == list(range(1, len(candidates) + 1))
    assert [f.probability for f in kept] == sorted((f.probability for f in kept), reverse=True)
    big = [n for n in phantom.nodules if n["diameter_mm"] >= 10]
    on_nodule = [f for f in kept if any(np.linalg.norm(np.array(f.center_mm) - n["centre_mm"]) <= n["diameter_mm"] / 2
                                        for n in big)]
    assert big and on_nodule and on_nodule[0].probability >= bundle.default_threshold
    strict = rescore(candidates, image, crop, stage, bundle.load_fp_reduction(), threshold=bundle.default_threshold)
    assert all(f.probability >= bundle.default_threshold for f in strict) and len(strict) <= len(kept)


def test_combined_probability_needs_both_stages() -> None:
    assert combined_probability([1.0], [0.0])[0] == 0.0
    assert combined_probability([0.25], [1.0])[0] == pytest.approx(0.5)


def test_patches_keep_their_shape_at_and_beyond_the_edges() -> None:
    image = np.arange(20 * 30 * 40, dtype=np.float32).reshape(20, 30, 40)
    inside = patch_at(image, (10, 15, 20), (8, 8, 8))
    np.testing.assert_array_equal(inside, image[6:14, 11:19, 16:24])
    for centre in [(0, 0, 0), (19, 29, 39), (-50, 15, 20), (10, 100, 20), (-9, -9, -9)]:
        patch = patch_at(image, centre, (8, 8, 8))
        assert patch.shape == (8, 8, 8)
    assert not patch_at(image, (-50, 15, 20), (8, 8, 8)).any()  # wholly outside: zeros
