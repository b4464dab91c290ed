"""Window/level presets and conversion of HU to display grey levels."""

from __future__ import annotations

import numpy as np

# (centre, width) in HU, the conventions radiologists expect.
PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (60.0, 400.0),
}


def apply_window(hu: np.ndarray, centre: float, width: float) -> np.ndarray:
    """HU to uint8 grey levels for a window (linear, clipped)."""
    low = centre - width / 2.0
    scaled = (np.asarray(hu, dtype=np.float32) - low) * (255.0 / max(width, 1e-3))
    return np.clip(scaled, 0, 255).astype(np.uint8)
