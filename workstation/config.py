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
    max_zip_members: int = 200_000
    # Real DICOM deflates 2-20x, an empty-padded slice a few hundred times; a bomb 1,000x and more.
    # Small members are exempt: whatever their ratio, they cannot exhaust anything.
    max_zip_ratio: int = 400
    zip_ratio_free_bytes: int = 16 * 1024**2
    # teaching packs: checked against what the zip declares, before anything is extracted
    max_pack_members: int = 100_000
    max_pack_bytes: int = 16 * 1024**3
    max_pack_manifest_bytes: int = 16 * 1024**2


LIMITS = ImportLimits()


SETTINGS_FILE = "settings.json"
KNOWN_SETTINGS = {"institution": "the institution name printed on every report page"}


def read_settings(home: Path) -> dict[str, str]:
    """The clinic's settings (DATA/settings.json); a missing or damaged file means defaults."""
    import json

    try:
        values = json.loads((Path(home) / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {key: str(value) for key, value in values.items() if key in KNOWN_SETTINGS} if isinstance(values, dict) \
        else {}


def write_setting(home: Path, key: str, value: str) -> None:
    import json

    if key not in KNOWN_SETTINGS:
        raise ValueError(f"Unknown setting {key!r}; known: {', '.join(KNOWN_SETTINGS)}")
    values = {**read_settings(home), key: value}
    path = Path(home) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(values, indent=1, ensure_ascii=False), encoding="utf-8")
    temporary.replace(path)
