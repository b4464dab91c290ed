"""Where inference runs: CUDA, then Apple MPS, then the CPU; the user can force one."""

from __future__ import annotations

from workstation.errors import InferenceError

CHOICES = ("auto", "cuda", "mps", "cpu")


def choose_device(preference: str = "auto") -> str:
    import torch

    if preference not in CHOICES:
        raise InferenceError(f"Unknown device {preference!r}; choose one of {', '.join(CHOICES)}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if preference == "cuda" and not cuda:
        raise InferenceError("No CUDA GPU is available here; use --device cpu or auto")
    if preference == "mps" and not mps:
        raise InferenceError("Apple MPS is not available here; use --device cpu or auto")
    if preference != "auto":
        return preference
    return "cuda" if cuda else "mps" if mps else "cpu"


def describe_device(device: str) -> str:
    import torch

    if device == "cuda":
        return f"CUDA GPU ({torch.cuda.get_device_name(0)})"
    if device == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"


TYPICAL_LUNG_BOX_MM = (300.0, 220.0, 260.0)  # (x, y, z) of an adult chest's lung box with margins


def estimate_inference_seconds(bundle, device: str) -> float:
    """A measured estimate for one typical chest CT: one window through the network (after a
    warm-up) times the windows a typical lung box needs, plus a second for loading and resampling."""
    import time

    import torch

    from workstation.inference.runner import window_count

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
