"""A model run's heatmap on disk, so a report made later shows what the reader saw.

Stored as uint8 (1/255 steps are finer than any display or threshold needs), cropped to the
box where the heatmap is not zero and zlib-compressed, behind a one-line JSON header: a
300x512x512 study's heatmap is a few hundred kilobytes. Read back without any loader that
could unpickle.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from workstation.errors import WorkstationError
from workstation.files import write_atomically


def save_heatmap(path: Path, heatmap: np.ndarray) -> Path:
    """Write atomically (a crash never leaves half a file under the real name)."""
    quantised = np.clip(np.rint(np.asarray(heatmap, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    nonzero = np.nonzero(quantised.any(axis=(1, 2)))[0], np.nonzero(quantised.any(axis=(0, 2)))[0], \
        np.nonzero(quantised.any(axis=(0, 1)))[0]
    low = np.array([axis.min() if axis.size else 0 for axis in nonzero])
    high = np.array([axis.max() + 1 if axis.size else 0 for axis in nonzero])
    values = quantised[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    header = {"format": "workstation-heatmap-1", "shape": list(quantised.shape), "low": low.tolist(),
              "box": list(values.shape)}
    path = Path(path)
    write_atomically(path, json.dumps(header).encode() + b"\n" +
                     zlib.compress(np.ascontiguousarray(values).tobytes(), 6))
    return path


def load_heatmap(path: Path) -> np.ndarray:
    """float32 in 0..1 on the study's grid; a clear error for a missing or damaged file."""
    try:
        header_line, _, payload = Path(path).read_bytes().partition(b"\n")
        header = json.loads(header_line)
        shape, low, box = (tuple(int(v) for v in header[key]) for key in ("shape", "low", "box"))
        values = np.frombuffer(zlib.decompress(payload), dtype=np.uint8).reshape(box)
        heatmap = np.zeros(shape, dtype=np.float32)
        heatmap[low[0]:low[0] + box[0], low[1]:low[1] + box[1], low[2]:low[2] + box[2]] = values / np.float32(255)
    except (OSError, KeyError, ValueError, TypeError, zlib.error) as exc:
        raise WorkstationError(f"The stored heatmap {Path(path).name} cannot be read: {exc}") from exc
    return heatmap
