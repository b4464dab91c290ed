"""How long the AI should take here: the figure the first run and `workstation check` show.

It sits beside the device choice and the runner (it uses both), so neither imports the other.
"""

from __future__ import annotations

import time

from workstation.inference.runner import window_count

TYPICAL_LUNG_BOX_MM = (300.0, 220.0, 260.0)  # (x, y, z) of an adult chest's lung box with margins


def estimate_inference_seconds(bundle, device: str) -> float:
    """A measured estimate for one typical chest CT: one window through the network (after a
    warm-up) times the windows a typical lung box needs, plus a second for loading and resampling."""
    import torch

    network = bundle.load_network().to(device)
    patch = torch.zeros((1, 1, *bundle.patch_size), device=device)
    with torch.inference_mode():
        network(patch)  # warm-up (kernel selection, allocation)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        network(patch)
        if device == "cuda":
            torch.cuda.synchronize()
        one = time.perf_counter() - start
    shape = [round(mm / spacing) for mm, spacing in zip(TYPICAL_LUNG_BOX_MM[::-1], bundle.spacing_mm[::-1])]
    return 1.0 + one * window_count(shape, bundle.patch_size)
