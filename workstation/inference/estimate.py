"""How long the AI should take here: the figure the first run and `workstation check` show.

It sits beside the device choice and the runner (it uses both), so neither imports the other.
"""

from __future__ import annotations

import time

from workstation.inference.runner import window_count

TYPICAL_LUNG_BOX_MM = (300.0, 220.0, 260.0)  # (x, y, z) of an adult chest's lung box with margins


def estimate_inference_seconds(bundle, device: str) -> float:
    """A measured estimate for one typical chest CT: one window through the network (after a
    warm-up) times the windows a typical lung box needs in each pass of the model (its own grid,
    then the large-lesion grid), each window once per test-time flip, plus two seconds for loading,
    the lung search and the findings. (Counting the first pass's windows once, as it did, promised
    about a third of the measured time: 7.8 s against 22 s on this 2-core machine, #22 item 11.)"""
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
    return 2.0 + one * max(1, len(bundle.test_time_flips)) * typical_window_count(bundle)


def typical_window_count(bundle) -> int:
    """Sliding windows over a typical lung box, summed over the model's passes."""
    spacings = [bundle.spacing_mm] + ([bundle.large_lesion_pass.spacing_mm] if bundle.large_lesion_pass else [])
    return sum(window_count([round(mm / step) for mm, step in zip(TYPICAL_LUNG_BOX_MM[::-1], spacing[::-1])],
                            bundle.patch_size) for spacing in spacings)
