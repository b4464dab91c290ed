"""Heatmap -> findings: threshold, connected components (fragments merged), measurements."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from workstation.imaging.volume import Volume
from workstation.inference.preprocess import LUNG_HU

MIN_VOLUME_MM3 = 8.0  # smaller blobs are noise, not a reportable nodule (a 2.5 mm sphere)
# A finding is found as a blob at the (low) candidate level, but measured where the heatmap
# reaches half the blob's peak: the blob's halo made diameters 35% too large for 6-10 mm
# nodules and diluted the HU profile (validation phantoms, see the model card).
LESION_LEVEL = 0.5
SOLID_HU = -250.0
PART_SOLID_SHARE = 0.05  # of the lesion's tissue denser than SOLID_HU: a solid component
AERATED_HU = -750.0  # below this a voxel of the measured region is lung around the lesion, not lesion
BORDER_SHELL_MM = 3.0


@dataclass(frozen=True)
class Finding:
    id: int
    center_mm: tuple[float, float, float]  # patient LPS
    center_voxel: tuple[float, float, float]  # (column, row, slice)
    diameter_mm: float  # longest diameter within one slice (axial): what a reader measures and reports
    volume_mm3: float
    mean_hu: float
    probability: float  # peak of the heatmap in the finding
    type: str  # solid, part-solid or ground-glass
    model_name: str
    model_version: str
    extent_mm: float = 0.0  # longest distance across the finding in 3D (0 when not measured)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def reach_mm(self) -> float:
        """How far the finding reaches across, in any direction: the overlap and distance rules
        use it, because on thick slices a lesion reaches farther through the slices than across one."""
        return max(self.extent_mm, self.diameter_mm)


def nodule_type(hu: np.ndarray) -> str:
    """From the HU profile: the share of the lesion's tissue (denser than aerated lung) that is
    denser than -250 HU (soft tissue). The measured region reaches past a lesion into the lung
    around it, most where the heat lies on a large mass's rim: counted in, that aerated lung made
    a solid mass look half ground glass, so part-solid (issue #19 item 5)."""
    hu = np.asarray(hu)
    tissue = hu[hu >= AERATED_HU]
    solid_share = float((tissue > SOLID_HU).mean()) if tissue.size else 0.0
    if solid_share >= 0.5:
        return "solid"
    return "part-solid" if solid_share >= PART_SOLID_SHARE else "ground-glass"


def extract_findings(volume: Volume, heat: np.ndarray, threshold: float, model_name: str, model_version: str,
                     box: tuple[slice, slice, slice] | None = None, min_diameter_mm: float = 0.0,
                     min_aerated_border: float = 0.0) -> list[Finding]:
    """Findings sorted by probability (highest first). `heat` covers `box` of the volume's grid
    (the lung crop), or the whole volume when there is no box. Findings whose 3D extent is under
    `min_diameter_mm`, or whose border is aerated lung for less than `min_aerated_border` of it, are left out."""
    box = box or tuple(slice(0, n) for n in volume.shape)  # type: ignore[assignment]
    if heat.shape != tuple(s.stop - s.start for s in box):
        raise ValueError(f"heatmap shape {heat.shape} does not match the box {box}")
    mask = heat >= threshold
    if not mask.any():
        return []
    # fragments of one nodule a voxel apart belong together
    labels, count = ndimage.label(ndimage.binary_dilation(mask, iterations=1))
    labels[~mask] = 0
    offset = np.array([s.start for s in box])
    spacing = np.array(volume.spacing_mm)
    voxel_volume = float(np.prod(spacing))
    hu = volume.voxels[box]
    findings = []
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is None:
            continue
        component = labels[region] == index
        if float(component.sum()) * voxel_volume < MIN_VOLUME_MM3:
            continue
        local = heat[region]
        peak = float(local[component].max())
        lesion = component & (local >= LESION_LEVEL * peak)  # the lesion itself, not its low-level halo
        weights = local * component
        kji = np.argwhere(component) + np.array([r.start for r in region])
        centre_kji = (kji * weights[component][:, None]).sum(axis=0) / weights.sum() + offset
        centre_ijk = centre_kji[::-1]
        lesion_kji = np.argwhere(lesion) + np.array([r.start for r in region])
        points_mm = volume.voxel_to_patient(lesion_kji[:, ::-1] + offset[::-1])
        extent_mm = _longest_distance(points_mm) + spacing.mean()  # plus one voxel: centres to edges
        if extent_mm < min_diameter_mm or (
                min_aerated_border and aerated_border_share(hu, lesion_kji, spacing[::-1]) < min_aerated_border):
            continue
        lesion_hu = hu[region][lesion]
        findings.append(Finding(
            id=0, center_mm=tuple(float(v) for v in volume.voxel_to_patient(centre_ijk).round(2)),
            center_voxel=tuple(float(v) for v in centre_ijk.round(2)),
            diameter_mm=round(_longest_axial_diameter(points_mm, lesion_kji[:, 0], spacing), 1),
            volume_mm3=round(float(lesion.sum()) * voxel_volume, 1), mean_hu=round(float(lesion_hu.mean()), 1),
            probability=round(peak, 4), type=nodule_type(lesion_hu), model_name=model_name,
            model_version=model_version, extent_mm=round(extent_mm, 1)))
    return numbered(findings)


def aerated_border_share(hu: np.ndarray, lesion_kji: np.ndarray, spacing_kji: np.ndarray) -> float:
    """Share of a BORDER_SHELL_MM shell around the lesion (its (k, j, i) voxels in `hu`) that is
    aerated lung. A lesion of the lung borders lung; the heart's or the mediastinum's convexity,
    which a coarse look can take for a mass, borders mostly soft tissue."""
    pad = np.ceil(BORDER_SHELL_MM / spacing_kji).astype(int) + 1
    low = np.maximum(lesion_kji.min(axis=0) - pad, 0)
    high = np.minimum(lesion_kji.max(axis=0) + pad + 1, hu.shape)
    inside = np.zeros(tuple(high - low), dtype=bool)
    inside[tuple((lesion_kji - low).T)] = True
    distance = ndimage.distance_transform_edt(~inside, sampling=spacing_kji)
    shell = (distance > 0) & (distance <= BORDER_SHELL_MM)
    around = hu[tuple(slice(a, b) for a, b in zip(low, high))][shell]
    return float((around < LUNG_HU).mean()) if around.size else 0.0


def merge_passes(passes: list[list[Finding]]) -> list[Finding]:
    """Findings of passes at different scales, one per lesion: where findings of two passes
    overlap (their spheres of `reach_mm` do) the more probable one stays. Findings
    of one pass are never merged with each other. Renumbered."""
    tagged = sorted(((f, n) for n, found in enumerate(passes) for f in found), key=lambda t: -t[0].probability)
    kept: list[tuple[Finding, int]] = []
    for finding, source in tagged:
        centre = np.array(finding.center_mm)
        if all(source == other_source or np.linalg.norm(centre - np.array(other.center_mm))
               > (other.reach_mm + finding.reach_mm) / 2 for other, other_source in kept):
            kept.append((finding, source))
    return numbered([finding for finding, _ in kept])


def numbered(findings: list[Finding]) -> list[Finding]:
    """Sorted by probability, highest first, with ids 1..n in that order."""
    ordered = sorted(findings, key=lambda f: -f.probability)
    return [Finding(**{**f.to_dict(), "id": number}) for number, f in enumerate(ordered, start=1)]


def _longest_axial_diameter(points_mm: np.ndarray, slices: np.ndarray, spacing: np.ndarray) -> float:
    """The longest in-plane distance across the lesion on any one of its slices, plus one pixel
    (centres to edges): the reader's long-axis measurement. Taken in 3D, a lesion on 5 mm slices
    measured twice its size, because its heat runs a slice beyond it each way (a real 14 mm
    lesion measured 31 mm; 13.7 mm this way)."""
    return max(_longest_distance(points_mm[slices == k]) for k in np.unique(slices)) + float(spacing[:2].mean())


def _longest_distance(points_mm: np.ndarray) -> float:
    """Longest distance between any two of the points (voxel centres)."""
    if len(points_mm) > 400:  # the extreme points along many directions stand in for all
        directions = np.random.default_rng(0).normal(size=(64, 3))
        projections = points_mm @ directions.T
        points_mm = points_mm[np.unique(np.concatenate([projections.argmin(axis=0), projections.argmax(axis=0)]))]
    difference = points_mm[:, None, :] - points_mm[None, :, :]
    return float(np.sqrt((difference**2).sum(axis=-1)).max())
