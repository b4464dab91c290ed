"""A model run's heatmap on disk, so a report made later shows what the reader saw.

Stored as uint8 (1/255 steps are finer than any display or threshold needs) and cropped to the
box where the heatmap is not zero: a 300x512x512 study's heatmap is a few hundred kilobytes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from workstation.errors import WorkstationError


def save_heatmap(path: Path, heatmap: np.ndarray) -> Path:
    """Write atomically (a crash never leaves half a file under the real name)."""
    quantised = np.clip(np.rint(np.asarray(heatmap, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    nonzero = np.nonzero(quantised.any(axis=(1, 2)))[0], np.nonzero(quantised.any(axis=(0, 2)))[0], \
        np.nonzero(quantised.any(axis=(0, 1)))[0]
    low = np.array([axis.min() if axis.size else 0 for axis in nonzero])
    high = np.array([axis.max() + 1 if axis.size else 0 for axis in nonzero])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".heatmap-", suffix=".npz")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            np.savez_compressed(stream, shape=np.array(quantised.shape), low=low,
                                values=quantised[low[0]:high[0], low[1]:high[1], low[2]:high[2]])
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def load_heatmap(path: Path) -> np.ndarray:
    """float32 in 0..1 on the study's grid; a clear error for a missing or damaged file."""
    try:
        with np.load(Path(path)) as data:
            shape, low, values = tuple(int(v) for v in data["shape"]), data["low"], data["values"]
    except (OSError, KeyError, ValueError) as exc:
        raise WorkstationError(f"The stored heatmap {Path(path).name} cannot be read: {exc}") from exc
    heatmap = np.zeros(shape, dtype=np.float32)
    high = low + np.array(values.shape)
    heatmap[low[0]:high[0], low[1]:high[1], low[2]:high[2]] = values.astype(np.float32) / 255
    return heatmap
