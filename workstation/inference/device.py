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
