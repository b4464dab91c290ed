"""The bundled demo case: a seeded phantom generated on first use, with its ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from workstation.imaging.heatmap import blob_heatmap
from workstation.imaging.volume import Volume

DEMO_SEED = 3  # six nodules of all three kinds, free, juxtapleural and juxtavascular


def demo_folder(home: Path) -> Path:
    return Path(home) / "demo-case"


def ensure_demo_case(home: Path) -> Path:
    """The demo phantom's DICOM folder, generated from DEMO_SEED the first time (a few seconds)."""
    folder = demo_folder(home)
    if not (folder / "truth.json").is_file():
        from workstation.imaging.phantom import write_demo_case  # scipy.ndimage: only when generating

        write_demo_case(folder, seed=DEMO_SEED)
    return folder / "dicom"


def demo_truth_for(volume: Volume, home: Path) -> dict | None:
    """The ground truth of the demo case if `volume` is it, else None."""
    path = demo_folder(home) / "truth.json"
    if not path.is_file():
        return None
    truth = json.loads(path.read_text(encoding="utf-8"))
    return truth if truth.get("study_uid") == volume.metadata.study_uid else None


def truth_overlay(volume: Volume, truth: dict) -> tuple[np.ndarray, list[tuple[np.ndarray, float]]]:
    """A heatmap and finding markers drawn from ground-truth nodules (for the viewer's overlay)."""
    nodules = truth["nodules"]
    centres = [np.array(n["centre_mm"]) for n in nodules]
    diameters = [float(n["diameter_mm"]) for n in nodules]
    heatmap = blob_heatmap(volume, centres, diameters)
    markers = [(centre, diameter / 2) for centre, diameter in zip(centres, diameters)]
    return heatmap, markers
