"""A phantom patient scanned twice (#24): the prior demo case and its follow-up months later, on
disk with the follow-up's truth.json, shared by the core and viewer tests of the linked prior."""

from __future__ import annotations

import json
from pathlib import Path

PRIOR_SEED, FOLLOW_SEED, MONTHS = 21, 5, 12


def write_pair(root: Path, matrix: int = 128, slice_thickness_mm: float = 2.5) -> dict:
    """{'prior': DICOM folder, 'follow': DICOM folder, 'truth': the follow-up's truth.json}."""
    from workstation.imaging.follow_up import write_follow_up_case
    from workstation.imaging.phantom import write_demo_case

    root = Path(root)
    write_demo_case(root / "prior", seed=PRIOR_SEED, matrix=matrix, slice_thickness_mm=slice_thickness_mm)
    _series, truth_path = write_follow_up_case(root / "follow", PRIOR_SEED, MONTHS, FOLLOW_SEED, matrix=matrix,
                                               slice_thickness_mm=slice_thickness_mm)
    return {"prior": root / "prior" / "dicom", "follow": root / "follow" / "dicom",
            "truth": json.loads(truth_path.read_text())}
