"""Where the shipped folders (models/, resources/) are: beside the package in a source checkout,
or under the environment's share/workstation/ when installed from the offline bundle."""

from __future__ import annotations

import sys
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1]
INSTALLED_ROOT = Path(sys.prefix) / "share" / "workstation"


def shipped(name: str) -> Path:
    """`models` or `resources`: the checkout's folder if present, else the installed one."""
    for root in (SOURCE_ROOT, INSTALLED_ROOT):
        if (root / name).is_dir():
            return root / name
    return INSTALLED_ROOT / name  # missing: callers report it (no models found, fonts missing)
