"""Settings: where the data folder is, and the limits that protect against hostile input."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs


def data_home() -> Path:
    """The managed data folder: $WORKSTATION_HOME, else the platform's user data folder."""
    override = os.environ.get("WORKSTATION_HOME")
    if override:
        return Path(override).expanduser().resolve()
    return Path(platformdirs.user_data_dir("workstation", appauthor=False)).resolve()


@dataclass(frozen=True)
class ImportLimits:
    """Sizes beyond which input is refused before any allocation (memory bombs)."""

    max_file_bytes: int = 2 * 1024**3
    max_rows_or_columns: int = 4096
    max_frames: int = 5000
    max_volume_voxels: int = 1024 * 1024 * 1200  # ~2.4 GB as int16
    max_zip_member_bytes: int = 1024**3


LIMITS = ImportLimits()
