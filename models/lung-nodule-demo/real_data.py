"""Real CT for training and evaluation (issue #19): the patient split, the labelled lesions to
keep out of negatives, and real backgrounds with synthetic nodules inserted.

`real_split.json` says which series train and which evaluate; a patient is on one side only
(tests/imaging/test_real_split.py checks it). Series live in the shared data folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPLIT = HERE / "real_split.json"
SHARED_DATA = HERE.parents[2] / "shared" / "data"
THIN_MAX_MM = 2.5
INSERT_DIAMETERS_MM = (5.0, 30.0)  # drawn log-uniformly; most of the FROC's weight is >= 6 mm
INSERT_KINDS = (("solid", 0.5), ("part-solid", 0.25), ("ground-glass", 0.25))
INSERT_ATTACHMENTS = (("none", 0.4), ("vessel", 0.35), ("pleura", 0.25))
Box = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class RealSeries:
    series: str
    patient: str
    path: Path
    labelled: Path | None

    @property
    def available(self) -> bool:
        return self.path.is_dir()


def load_split(path: Path = SPLIT, data: Path = SHARED_DATA) -> dict[str, list[RealSeries]]:
    """{"train": [...], "evaluate": [...]} with paths resolved under `data`."""
    raw = json.loads(Path(path).read_text())
    return {side: [RealSeries(e["series"], e["patient"], data / e["path"],
                              data / e["labelled"] if e.get("labelled") else None) for e in raw[side]]
            for side in ("train", "evaluate")}


def lesion_boxes(entry: RealSeries, volume) -> list[Box]:
    """(min, max) LPS mm boxes of the series' labelled lesions: the Lung-PET-CT-Dx per-slice tumour
    boxes joined into one box per label (one slice spacing more in z each way), or a pyradiomics
    truth's centre with its in-plane extent and slice range."""
    if entry.labelled is None or not entry.labelled.exists():
        return []
    raw = json.loads(entry.labelled.read_text())
    dz = volume.spacing_mm[2]
    boxes: list[Box] = []
    if "boxes" in raw:
        for label in sorted({b["label"] for b in raw["boxes"]}):
            low = np.min([b["lps_mm_min"] for b in raw["boxes"] if b["label"] == label], axis=0)
            high = np.max([b["lps_mm_max"] for b in raw["boxes"] if b["label"] == label], axis=0)
            boxes.append((low - [0, 0, dz], high + [0, 0, dz]))
    for lesion in raw.get("lesions", []):
        centre = np.array(lesion["center_mm"], dtype=float)
        half = lesion.get("max_inplane_extent_mm", 20) / 2
        first, last = lesion.get("slices", [None, None])
        z = [centre[2] - half, centre[2] + half]
        if first is not None:
            z = sorted(float(volume.voxel_to_patient([0, 0, s])[2]) for s in (first, last))
        boxes.append((np.array([centre[0] - half, centre[1] - half, z[0] - dz]),
                      np.array([centre[0] + half, centre[1] + half, z[1] + dz])))
    return boxes


def is_thin(volume) -> bool:
    thickness = volume.metadata.slice_thickness or volume.spacing_mm[2]
    return thickness <= THIN_MAX_MM


def insert_nodules(volume, lungs, boxes: list[Box], seed: int, count: int,
                   diameters_mm: tuple[float, float] = INSERT_DIAMETERS_MM):
    """(volume with up to `count` synthetic nodules, their truth records, their uint8 mask of
    ids): kinds and attachments drawn as INSERT_KINDS / INSERT_ATTACHMENTS say, each at least
    5 mm from the others and never near a labelled lesion. Seeded: same seed, same volume."""
    from workstation.imaging.insertion import NoduleModel, ScanResolution, insert_nodule
    from workstation.imaging.insertion_sites import choose_site

    rng = np.random.default_rng([seed, 19])
    resolution = ScanResolution.from_volume(volume)
    mask = np.zeros(volume.shape, dtype=np.uint8)
    truth: list[dict] = []
    avoid = list(boxes)
    for _attempt in range(count * 4):
        if len(truth) == count:
            break
        diameter = float(np.exp(rng.uniform(*np.log(diameters_mm))))
        kind = str(rng.choice([k for k, _ in INSERT_KINDS], p=[p for _, p in INSERT_KINDS]))
        attached = str(rng.choice([a for a, _ in INSERT_ATTACHMENTS], p=[p for _, p in INSERT_ATTACHMENTS]))
        if kind != "solid":
            diameter = max(diameter, 6.0)  # as the phantoms: sub-solid nodules under 6 mm are not reported
        centre = choose_site(volume, lungs, diameter, attached, rng, avoid)
        if centre is None:
            continue
        inserted = insert_nodule(volume, NoduleModel.draw(rng, centre, diameter, kind, attached), resolution,
                                 index=len(truth) + 1)
        volume = inserted.volume
        mask[inserted.mask & (mask == 0)] = len(truth) + 1
        truth.append(inserted.truth)
        half = inserted.blend_radius_mm + 5
        avoid.append((centre - half, centre + half))
    return volume, truth, mask
