"""Insert a synthetic nodule into a real CT Volume.

The nodule is a lesion model in patient millimetres (solid, part-solid or ground-glass; a
lobulated sphere as in `phantom.py`) turned into a change of HU that is *added* on top of the
real image: the real noise, vessels and texture under the lesion stay. Its partial volume is
integrated over each voxel's own footprint (pixel in-plane, the slice thickness through the
slices) and then blurred to the scan's in-plane resolution (from its reconstruction kernel), so
an inserted nodule on an 8 mm slice looks as smeared as a real one does. Density is only ever
added: a ground-glass nodule over a vessel leaves the vessel as it was, as real ones do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
from scipy import ndimage

from workstation.errors import PhantomError
from workstation.imaging.volume import Volume

NODULE_KINDS = ("solid", "part-solid", "ground-glass")
ATTACHMENTS = ("none", "vessel", "pleura")
SHARP_KERNEL_WORDS = ("LUNG", "B6", "B7", "B8", "YC", "YD", "FC5", "BONE", "SHARP", "L", "D")
BACKGROUND_SIGMA_MM = 1.5  # the local background the lesion replaces, smoothed so its noise is not subtracted
MAX_LOBULATION = 0.36  # three lobes of at most 0.12 each (as the phantom's)


@dataclass(frozen=True)
class ScanResolution:
    """How sharp a scan is: the in-plane blur of its kernel (FWHM, mm, on top of the pixel) and
    the thickness each slice integrates over."""

    inplane_fwhm_mm: float
    slice_thickness_mm: float

    def __post_init__(self) -> None:
        if not 0 <= self.inplane_fwhm_mm <= 5 or not 0.3 <= self.slice_thickness_mm <= 12:
            raise PhantomError("In-plane blur must be 0-5 mm and slice thickness 0.3-12 mm")

    @classmethod
    def from_volume(cls, volume: Volume) -> "ScanResolution":
        """From the series' tags: sharp (lung/bone) kernels blur about 0.6 mm, soft ones 1.0 mm;
        the thickness is the tagged one, or the slice spacing when there is none."""
        kernel = (volume.metadata.kernel or "").upper()
        sharp = kernel in ("L", "D") or any(word in kernel for word in SHARP_KERNEL_WORDS if len(word) > 1)
        thickness = volume.metadata.slice_thickness or volume.spacing_mm[2]
        return cls(0.6 if sharp else 1.0, float(np.clip(thickness, 0.3, 12)))


@dataclass(frozen=True)
class NoduleModel:
    """What to insert: centre (LPS mm), diameter, kind and how dense. `lobes` are (unit vector,
    amplitude) lobulations; `attached_to` only records where it was put."""

    kind: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    solid_hu: float = 30.0
    ground_glass_hu: float = -600.0
    core_fraction: float = 0.5
    attached_to: str = "none"
    lobes: tuple[tuple[float, float, float, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in NODULE_KINDS:
            raise PhantomError(f"Nodule kind {self.kind!r} must be one of {', '.join(NODULE_KINDS)}")
        if not 2 <= self.diameter_mm <= 70:
            raise PhantomError(f"Nodule diameter {self.diameter_mm} mm must lie within 2-70 mm")
        if self.attached_to not in ATTACHMENTS:
            raise PhantomError(f"Attachment {self.attached_to!r} must be one of {', '.join(ATTACHMENTS)}")
        if not 0.1 <= self.core_fraction <= 0.9:
            raise PhantomError("The solid core must be 0.1-0.9 of the radius")

    @classmethod
    def draw(cls, rng: np.random.Generator, centre_mm, diameter_mm: float, kind: str,
             attached_to: str = "none") -> "NoduleModel":
        """Densities and lobulation drawn as the phantom generator draws them."""
        lobes = tuple((*(v / np.linalg.norm(v)), float(rng.uniform(-0.12, 0.12))) for v in rng.normal(size=(3, 3)))
        return cls(kind, tuple(float(v) for v in centre_mm), float(diameter_mm), float(rng.uniform(-10, 60)),
                   float(rng.uniform(-680, -480)), float(rng.uniform(0.35, 0.6)), attached_to, lobes)


@dataclass
class Insertion:
    """The volume with the nodule in it, where the nodule covers over half a voxel, how far from
    its centre anything changed at most, and its truth record (as a phantom's)."""

    volume: Volume
    mask: np.ndarray  # bool (k, j, i): nodule occupancy > 0.5 after blurring
    blend_radius_mm: float
    truth: dict


def blend_radius_mm(nodule: NoduleModel, volume: Volume, resolution: ScanResolution) -> float:
    """Beyond this distance from the centre no voxel changes: the lesion's largest radius, the
    blur's reach (3 sigma), half a voxel's footprint diagonal and half the slice thickness."""
    spacing = np.array(volume.spacing_mm)
    sigma = resolution.inplane_fwhm_mm / 2.355
    footprint = float(np.linalg.norm([spacing[0], spacing[1], max(resolution.slice_thickness_mm, spacing[2])])) / 2
    return nodule.diameter_mm / 2 * (1 + MAX_LOBULATION) + 3 * sigma + footprint + 0.5


def insert_nodule(volume: Volume, nodule: NoduleModel, resolution: ScanResolution | None = None,
                  index: int = 1) -> Insertion:
    """A new Volume with `nodule` added on top of `volume`'s own image (the input is not changed)."""
    resolution = resolution or ScanResolution.from_volume(volume)
    reach = blend_radius_mm(nodule, volume, resolution)
    box = _box(volume, np.array(nodule.centre_mm), reach)
    if box is None:
        raise PhantomError("The nodule lies outside the volume")
    outer, core = _occupancy(volume, nodule, box, resolution)
    old = volume.voxels[box].astype(np.float32)
    spacing_kji = np.array(volume.spacing_mm[::-1])
    background = ndimage.gaussian_filter(old, BACKGROUND_SIGMA_MM / spacing_kji, mode="nearest")
    if nodule.kind == "solid":
        delta = outer * (nodule.solid_hu - background)
    else:
        delta = outer * (nodule.ground_glass_hu - background)
        if nodule.kind == "part-solid":
            delta += core * (nodule.solid_hu - nodule.ground_glass_hu)
    delta = np.maximum(delta, 0.0)  # density is added, never taken away (vessels run through lesions)
    voxels = volume.voxels.copy()
    info = np.iinfo(voxels.dtype) if np.issubdtype(voxels.dtype, np.integer) else None
    new = old + delta
    if info is not None:
        new = np.clip(np.rint(new), info.min, info.max)
    voxels[box] = new.astype(voxels.dtype)
    mask = np.zeros(volume.shape, dtype=bool)
    mask[box] = outer > 0.5
    inside = voxels[box][outer > 0.5]
    truth = {"id": index, "kind": nodule.kind, "centre_mm": [round(float(v), 3) for v in nodule.centre_mm],
             "diameter_mm": round(nodule.diameter_mm, 2), "attached_to": nodule.attached_to,
             "volume_mm3": round(float((outer > 0.5).sum() * np.prod(spacing_kji)), 1),
             "mean_hu": round(float(inside.mean()), 1) if inside.size else None, "inserted": True,
             "model": {k: v for k, v in asdict(nodule).items() if k in ("solid_hu", "ground_glass_hu", "core_fraction")}}
    return Insertion(replace(volume, voxels=voxels), mask, reach, truth)


def _box(volume: Volume, centre_mm: np.ndarray, reach_mm: float) -> tuple[slice, slice, slice] | None:
    """The (k, j, i) index box holding every voxel within `reach_mm` of the centre."""
    spacing = np.array(volume.spacing_mm)
    centre = volume.patient_to_voxel(centre_mm)
    low = np.floor(centre - reach_mm / spacing).astype(int)
    high = np.ceil(centre + reach_mm / spacing).astype(int) + 1
    size = np.array(volume.shape[::-1])
    low, high = np.maximum(low, 0), np.minimum(high, size)
    if np.any(high <= low):
        return None
    return slice(low[2], high[2]), slice(low[1], high[1]), slice(low[0], high[0])


def _occupancy(volume: Volume, nodule: NoduleModel, box, resolution: ScanResolution
               ) -> tuple[np.ndarray, np.ndarray]:
    """(whole lesion, solid core) occupancy per voxel of `box`: averaged over sub-samples of the
    voxel's footprint (3x3 in-plane, through the slice thickness every 0.5 mm or less), then
    blurred in-plane by the kernel. Truncated at 3 sigma, so nothing reaches past the blend radius."""
    spacing = np.array(volume.spacing_mm)
    thickness = max(resolution.slice_thickness_mm, 1e-3)
    z_steps = max(1, int(np.ceil(thickness / 0.5)))
    in_plane = (np.arange(3) - 1) / 3.0  # voxel units
    through = ((np.arange(z_steps) + 0.5) / z_steps - 0.5) * thickness / spacing[2]
    ks, js, is_ = box
    k, j, i = np.meshgrid(np.arange(ks.start, ks.stop), np.arange(js.start, js.stop),
                          np.arange(is_.start, is_.stop), indexing="ij")
    outer = np.zeros(k.shape, dtype=np.float32)
    core = np.zeros(k.shape, dtype=np.float32)
    centre = np.array(nodule.centre_mm)
    radius = nodule.diameter_mm / 2
    samples = 0
    for dk in through:
        for dj in in_plane:
            for di in in_plane:
                points = (np.stack([i + di, j + dj, k + dk], axis=-1) @ volume.affine[:3, :3].T
                          + volume.affine[:3, 3] - centre)
                distance = np.linalg.norm(points, axis=-1) + 1e-6
                lobulation = sum(a * (points @ np.array([u, v, w])) / distance for u, v, w, a in nodule.lobes)
                outer += distance <= radius * (1 + lobulation)
                if nodule.kind == "part-solid":
                    core += distance <= radius * nodule.core_fraction
                samples += 1
    outer /= samples
    core /= samples
    sigma_px = resolution.inplane_fwhm_mm / 2.355 / spacing[:2][::-1]  # (j, i)
    if sigma_px.max() > 0:
        sigma = (0.0, float(sigma_px[0]), float(sigma_px[1]))
        outer = ndimage.gaussian_filter(outer, sigma, mode="constant", truncate=3.0)
        core = ndimage.gaussian_filter(core, sigma, mode="constant", truncate=3.0)
    return outer, core
