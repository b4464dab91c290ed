"""Labels of a site's cases: a LUNA16-style CSV (seriesuid, coordX, coordY, coordZ, diameter_mm)
or LIDC-IDRI XML reading sessions (several readers; each nodule as contours, or a centre point for
a small one), nodules of several readers grouped, each with how many readers marked it."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from workstation.errors import WorkstationError
from workstation.imaging.volume import Volume

SMALL_NODULE_MM = 3.0  # LIDC: nodules under 3 mm are marked by a centre only
MAX_LABEL_BYTES = 64 * 1024**2


class LabelError(WorkstationError):
    """The labels cannot be read (format, missing columns, a series they do not fit)."""


@dataclass(frozen=True)
class Label:
    center_mm: tuple[float, float, float]
    diameter_mm: float
    readers: int = 1  # how many readers marked it (agreement level)


def read_luna_csv(path: Path) -> dict[str, list[Label]]:
    """{SeriesInstanceUID: labels} from annotations.csv columns."""
    if Path(path).stat().st_size > MAX_LABEL_BYTES:
        raise LabelError(f"{Path(path).name} is larger than {MAX_LABEL_BYTES} bytes")
    labels: dict[str, list[Label]] = {}
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        needed = {"seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise LabelError(f"{Path(path).name} needs the columns {', '.join(sorted(needed))} (LUNA16)")
        for number, row in enumerate(reader, 2):
            try:
                centre = (float(row["coordX"]), float(row["coordY"]), float(row["coordZ"]))
                diameter = float(row["diameter_mm"])
            except ValueError as exc:
                raise LabelError(f"{Path(path).name} line {number}: {exc}") from exc
            if not all(np.isfinite([*centre, diameter])) or diameter <= 0:
                raise LabelError(f"{Path(path).name} line {number}: a position or diameter is not a number")
            labels.setdefault(row["seriesuid"].strip(), []).append(Label(centre, diameter))
    return labels


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_lidc_xml(path: Path, volume: Volume) -> list[Label]:
    """The nodules of an LIDC reading-session file on `volume`'s grid (a Volume, or anything with
    its `shape` and `voxel_to_patient`), readers grouped."""
    if Path(path).stat().st_size > MAX_LABEL_BYTES:
        raise LabelError(f"{Path(path).name} is larger than {MAX_LABEL_BYTES} bytes")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise LabelError(f"{Path(path).name} is not readable XML: {exc}") from exc
    z_of_slice = np.array([volume.voxel_to_patient((0, 0, k))[2] for k in range(volume.shape[0])])
    per_reader: list[list[Label]] = []
    for session in (e for e in root.iter() if _strip(e.tag) == "readingSession"):
        marks = []
        for nodule in (e for e in session if _strip(e.tag) in ("unblindedReadNodule", "unblindedRead")):
            points, widest = [], 0.0
            for roi in (e for e in nodule if _strip(e.tag) == "roi"):
                z = next((float(e.text) for e in roi if _strip(e.tag) == "imageZposition" and e.text), None)
                if z is None:
                    continue
                k = int(np.argmin(np.abs(z_of_slice - z)))
                outline = []
                for edge in (e for e in roi if _strip(e.tag) == "edgeMap"):
                    x = next((float(e.text) for e in edge if _strip(e.tag) == "xCoord" and e.text), None)
                    y = next((float(e.text) for e in edge if _strip(e.tag) == "yCoord" and e.text), None)
                    if x is not None and y is not None:
                        outline.append(volume.voxel_to_patient((x, y, k)))
                if len(outline) > 1:  # the diameter is the widest outline, across one slice (as readers measure)
                    ring = np.array(outline)
                    widest = max(widest, float(np.max(np.linalg.norm(ring[:, None] - ring[None], axis=-1))))
                points += outline
            if not points:
                continue
            marks.append(Label(tuple(float(v) for v in np.mean(points, axis=0)), max(widest, SMALL_NODULE_MM)))
        per_reader.append(marks)
    return group_readers(per_reader)


def group_readers(per_reader: list[list[Label]]) -> list[Label]:
    """One label per nodule: marks of different readers within each other's radius are the same
    nodule (centre and diameter averaged, readers counted)."""
    groups: list[list[Label]] = []
    for marks in per_reader:
        for mark in marks:
            for group in groups:
                centre = np.mean([g.center_mm for g in group], axis=0)
                if np.linalg.norm(np.subtract(mark.center_mm, centre)) <= max(mark.diameter_mm,
                                                                              group[0].diameter_mm) / 2 + 1.0:
                    group.append(mark)
                    break
            else:
                groups.append([mark])
    return [Label(tuple(float(v) for v in np.mean([g.center_mm for g in group], axis=0)),
                  float(np.mean([g.diameter_mm for g in group])), len(group)) for group in groups]
