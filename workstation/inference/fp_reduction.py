"""Second stage: rescore each candidate with a classifier that sees a patch around it.

The detector's heatmap finds nodules but also lights up vessel branchings and pleural folds
with the same confidence; a small classifier looking at a cube around each candidate (the
bundle sets its size) tells the round from the tubular. The final probability is the geometric
mean of the two stages, so a candidate needs both to agree.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from workstation.inference.bundle import FalsePositiveReduction
from workstation.inference.findings import Finding, numbered
from workstation.inference.preprocess import LungCrop, model_grid_index, patch_at


def candidate_patches(image: np.ndarray, crop: LungCrop, findings: list[Finding],
                      stage: FalsePositiveReduction) -> np.ndarray:
    """(n, 1, z, y, x) float32 patches of the model-grid image around each finding's centre."""
    patches = [patch_at(image, model_grid_index(np.array(f.center_voxel[::-1]), crop, image.shape),
                        stage.patch_size) for f in findings]
    return np.stack(patches)[:, None].astype(np.float32)


def combined_probability(detector: np.ndarray, classifier: np.ndarray) -> np.ndarray:
    return np.sqrt(np.asarray(detector) * np.asarray(classifier))


def rescore(findings: list[Finding], image: np.ndarray, crop: LungCrop, stage: FalsePositiveReduction, network,
            threshold: float) -> list[Finding]:
    """Findings whose combined probability reaches `threshold`, highest first, renumbered. On the
    CPU always: a few dozen small patches cost milliseconds, not worth a transfer to the GPU."""
    import torch

    if not findings:
        return []
    batch = torch.from_numpy(candidate_patches(image, crop, findings, stage))
    with torch.inference_mode():
        scores = torch.sigmoid(network.cpu()(batch).float()).numpy()[:, 0]
    probabilities = combined_probability([f.probability for f in findings], scores)
    kept = [replace(f, probability=round(float(p), 4)) for f, p in zip(findings, probabilities) if p >= threshold]
    return numbered(kept)
