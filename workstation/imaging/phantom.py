"""Seeded synthetic chest CT phantoms with known ground truth.

A phantom is anatomy drawn analytically in patient millimetres (LPS, axial, feet-first
supine): body with fat and muscle, two lungs at about -850 HU with a gravity gradient,
airways, branching pulmonary vessels (the main source of false positives for a nodule
detector), ribs, spine, sternum, heart, aorta, a table, and nodules of three kinds placed
freely, against the pleura or against a vessel (4-30 mm by default; up to 70 mm masses when
asked). Every edge carries partial-volume blending and the image carries correlated noise, so
that a detector cannot key on crisp edges.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from workstation.errors import PhantomError
from workstation.imaging.volume import SeriesMetadata, Volume

AIR, FAT, MUSCLE, BLOOD, BONE, CORTEX, LUNG = -1000.0, -100.0, 45.0, 40.0, 350.0, 900.0, -850.0
NODULE_KINDS = ("solid", "part-solid", "ground-glass")
SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5)
SURNAMES = ("OKAFOR", "NAKAMURA", "GARCIA", "MULLER", "KOWALSKI", "HASSAN", "SILVA", "JOHANSSON", "MBEKI",
            "ROSSI", "CHEN", "IVANOVA", "OBRIEN", "DUBOIS", "PATEL", "NGUYEN")
KERNELS = ("B45f", "LUNG", "YC", "FC51", "BONEPLUS", "STANDARD")
ANATOMIES = ("simple", "lung")  # "lung": real lung anatomy from lung_anatomy.py (issue #19)


@dataclass(frozen=True)
class PhantomSpec:
    """Everything that defines one phantom; `from_seed` draws a realistic one."""

    seed: int
    matrix: int = 512
    pixel_spacing_mm: float = 0.75
    slice_thickness_mm: float = 1.25
    z_extent_mm: float = 280.0
    body_scale: float = 1.0  # 1.0 ~ an average adult chest
    nodule_count: int = 4
    nodule_diameter_mm: tuple[float, float] = (4.0, 30.0)  # drawn log-uniformly; larger ones are masses
    noise_hu: float = 18.0
    patient_age: int = 60
    patient_sex: str = "F"
    kernel: str = "B45f"
    kvp: int = 120
    anatomy: str = "simple"  # "lung" adds vessel trees to the pleura, bronchi, fissures, texture, look-alikes

    def __post_init__(self) -> None:
        if self.anatomy not in ANATOMIES:
            raise PhantomError(f"Anatomy {self.anatomy!r} must be one of {', '.join(ANATOMIES)}")
        if not 32 <= self.matrix <= 1024:
            raise PhantomError(f"Matrix {self.matrix} must be between 32 and 1024")
        if not 0.2 <= self.pixel_spacing_mm <= 5 or not 0.3 <= self.slice_thickness_mm <= 10:
            raise PhantomError("Pixel spacing or slice thickness out of range")
        low, high = self.nodule_diameter_mm
        if not 3 <= low <= high <= 70:
            raise PhantomError(f"Nodule diameters {low}-{high} mm must lie within 3-70 mm")
        if self.matrix * self.pixel_spacing_mm < 300 * self.body_scale:
            raise PhantomError("The field of view is too small for the body; raise matrix or spacing")

    @classmethod
    def from_seed(cls, seed: int, matrix: int = 512, slice_thickness_mm: float | None = None,
                  nodule_count: int | None = None,
                  nodule_diameter_mm: tuple[float, float] = (4.0, 30.0), anatomy: str = "simple") -> "PhantomSpec":
        """A realistic draw: in-plane 0.68-0.9 mm at 512 (scaled for other matrices), 1-2.5 mm slices.
        The anatomy draws nothing here, so a seed's acquisition is the same for both anatomies."""
        rng = np.random.default_rng([seed, 17])
        fov = float(rng.uniform(350, 460))
        sex = str(rng.choice(["F", "M"]))
        return cls(
            seed=seed, matrix=matrix, pixel_spacing_mm=round(fov / matrix, 4),
            slice_thickness_mm=slice_thickness_mm or float(rng.choice(SLICE_THICKNESSES)),
            body_scale=float(rng.uniform(0.85, 1.0) if sex == "F" else rng.uniform(0.92, 1.08)) * min(1.0, fov / 380),
            nodule_count=int(nodule_count if nodule_count is not None else rng.integers(2, 7)),
            nodule_diameter_mm=(float(nodule_diameter_mm[0]), float(nodule_diameter_mm[1])),
            noise_hu=float(rng.uniform(12, 28)), patient_age=int(rng.integers(35, 86)), patient_sex=sex,
            kernel=str(rng.choice(KERNELS)), kvp=int(rng.choice([100, 120, 120, 140])), anatomy=anatomy,
        )


@dataclass(frozen=True)
class Nodule:
    kind: str
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    attached_to: str  # "none", "pleura" or "vessel"
    solid_hu: float
    ground_glass_hu: float
    core_fraction: float  # solid core radius / radius (part-solid only)
    lobes: tuple[tuple[float, float, float, float], ...] = field(default=(), repr=False)


@dataclass
class Phantom:
    volume: Volume
    spec: PhantomSpec
    nodules: list[dict]
    outside_fov: np.ndarray  # (rows, columns) pixels outside the reconstruction circle
    tags: dict[str, object]
    nodule_mask: np.ndarray  # uint8 (slices, rows, columns): nodule id (1..n) where a nodule covers > half a voxel
    vessel_mask: np.ndarray | None = None  # bool, where a vessel covers > half a voxel ("lung" anatomy only)
    mimics: list[dict] = field(default_factory=list)  # look-alikes that are not nodules ("lung" anatomy only)

    def truth(self) -> dict:
        return {"seed": self.spec.seed, "spec": asdict(self.spec), "coordinate_system": "DICOM patient LPS mm",
                "voxel_index_order": "column, row, slice (slice 0 = lowest z = most inferior)",
                "affine": self.volume.affine.round(6).tolist(), "nodules": self.nodules}


class _Canvas:
    """The HU volume with painting helpers that work inside bounding boxes only."""

    def __init__(self, spec: PhantomSpec) -> None:
        n = spec.matrix
        self.spacing = np.array([spec.pixel_spacing_mm, spec.pixel_spacing_mm, spec.slice_thickness_mm])
        slices = int(round(spec.z_extent_mm / spec.slice_thickness_mm))
        self.shape = (slices, n, n)  # (k, j, i)
        half = (n - 1) / 2.0 * spec.pixel_spacing_mm
        self.origin = np.array([-half, -half, -spec.z_extent_mm / 2.0])
        self.hu = np.full(self.shape, AIR, dtype=np.float32)
        self.edge = float(self.spacing.max())  # partial-volume ramp width in mm

    def axes(self, box: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """mm coordinates (z[:,None,None], y[None,:,None], x[None,None,:]) of a (k, j, i) box."""
        ks, js, is_ = box
        z = self.origin[2] + np.arange(ks.start, ks.stop) * self.spacing[2]
        y = self.origin[1] + np.arange(js.start, js.stop) * self.spacing[1]
        x = self.origin[0] + np.arange(is_.start, is_.stop) * self.spacing[0]
        return (z[:, None, None].astype(np.float32), y[None, :, None].astype(np.float32),
                x[None, None, :].astype(np.float32))

    def box(self, low_mm: np.ndarray, high_mm: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index box (k, j, i) covering an (x, y, z) mm box, or None if it misses the volume."""
        lo = np.floor((np.asarray(low_mm) - self.origin) / self.spacing).astype(int)
        hi = np.ceil((np.asarray(high_mm) - self.origin) / self.spacing).astype(int) + 1
        size = (self.shape[2], self.shape[1], self.shape[0])
        lo, hi = np.maximum(lo, 0), np.minimum(hi, size)
        if np.any(hi <= lo):
            return None
        return slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])

    def coverage(self, signed_distance_mm: np.ndarray) -> np.ndarray:
        return np.clip(0.5 - signed_distance_mm / self.edge, 0.0, 1.0)

    def blend(self, box: tuple[slice, slice, slice], cover: np.ndarray, hu: float | np.ndarray) -> None:
        region = self.hu[box]
        region += (hu - region) * cover

    def capsule(self, p0: np.ndarray, p1: np.ndarray, radius: float, hu: float,
                within: np.ndarray | None = None) -> None:
        """A tube between two points (x, y, z mm) with rounded ends."""
        pad = radius + self.edge
        box = self.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
        if box is None:
            return
        z, y, x = self.axes(box)
        d = (p1 - p0).astype(np.float32)
        length2 = float(d @ d) or 1e-6
        t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / length2, 0, 1)
        distance = np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2)
        cover = self.coverage(distance - radius)
        if within is not None:
            cover *= within[box]
        self.blend(box, cover, hu)


NoduleEdit = Callable[[list["Nodule"], Callable[[float, int], "Nodule"]], list["Nodule"]]


def generate_phantom(spec: PhantomSpec, *, edit_nodules: NoduleEdit | None = None,
                     noise_seed: int | None = None) -> Phantom:
    """Draw the phantom described by `spec` (same spec, same voxels). A follow-up scan of the same
    patient (follow_up.py) passes `edit_nodules` (grown, resolved, new: it is given the nodules and
    a placer of one more nodule of a diameter, from a seed) and its own `noise_seed`."""
    rng = np.random.default_rng(spec.seed)
    canvas = _Canvas(spec)
    s = spec.body_scale
    body, (ax, ay, fat) = _draw_body_and_lungs(canvas, s, rng)
    lung_mask = canvas.hu < -500  # inside the body: only the lungs are this dark so far
    lung_mask &= body
    _draw_mediastinum(canvas, s, rng)
    lung_mask &= canvas.hu < -500
    anatomy = None
    if spec.anatomy == "lung":
        from workstation.imaging import lung_anatomy

        anatomy = lung_anatomy.draw_lung_anatomy(canvas, s, rng, lung_mask)
        vessels = anatomy.attachable_segments(canvas.edge)
    else:
        vessels = _draw_vessels(canvas, s, rng, lung_mask)
        _draw_airways(canvas, s, rng, lung_mask)
    _draw_bones(canvas, s, ax - fat - 9 * s, ay - fat - 8 * s)
    nodules = _place_nodules(canvas, spec, rng, lung_mask, vessels)
    if edit_nodules is not None:
        def place_one(diameter: float, seed: int) -> Nodule:
            one = replace(spec, nodule_count=1, nodule_diameter_mm=(diameter, diameter))
            return _place_nodules(canvas, one, np.random.default_rng(seed), lung_mask, vessels)[0]

        nodules = edit_nodules(nodules, place_one)
    if noise_seed is not None:
        rng = np.random.default_rng(noise_seed)
    nodule_mask = np.zeros(canvas.shape, dtype=np.uint8)
    truth = [_draw_nodule(canvas, nodule, index, nodule_mask) for index, nodule in enumerate(nodules)]
    if anatomy is not None:
        within = lung_mask.astype(np.float32)
        for nodule, item in zip(nodules, truth):  # half the juxtavascular ones wrapped by a second vessel
            if nodule.attached_to == "vessel" and rng.random() < 0.5:
                lung_anatomy.wrap_vessel(canvas, anatomy, np.array(nodule.centre_mm), nodule.diameter_mm / 2, rng,
                                         within)
                item["wrapped_by_vessel"] = True
        lung_anatomy.add_scanner_blur_and_noise(canvas, spec.kernel, spec.slice_thickness_mm, spec.noise_hu, rng)
    else:
        _add_noise(canvas, spec, rng)
    outside_fov = _outside_reconstruction_circle(spec.matrix)
    canvas.hu[:, outside_fov] = AIR
    voxels = np.clip(np.rint(canvas.hu), -1024, 3071).astype(np.int16)
    tags = _tags(spec, rng)
    affine = np.diag([*canvas.spacing, 1.0])
    affine[:3, 3] = canvas.origin
    metadata = SeriesMetadata.from_dict({_snake(k): v for k, v in tags.items()})
    volume = Volume(voxels, affine, metadata=metadata)
    for item in truth:
        ijk = volume.patient_to_voxel(item["centre_mm"])
        item["centre_voxel"] = [round(float(v), 2) for v in ijk]
    if anatomy is None:
        return Phantom(volume, spec, truth, outside_fov, tags, nodule_mask)
    return Phantom(volume, spec, truth, outside_fov, tags, nodule_mask, anatomy.vessel_mask, anatomy.mimics)


def _snake(keyword: str) -> str:
    mapping = {"PatientName": "patient_name", "PatientID": "patient_id", "PatientAge": "patient_age",
               "PatientSex": "patient_sex", "StudyDate": "study_date", "StudyDescription": "study_description",
               "SeriesDescription": "series_description", "Manufacturer": "manufacturer",
               "ManufacturerModelName": "model", "ConvolutionKernel": "kernel", "SliceThickness": "slice_thickness",
               "KVP": "kvp", "BodyPartExamined": "body_part", "PatientBirthDate": "patient_birth_date"}
    return mapping.get(keyword, keyword)


def _draw_body_and_lungs(canvas: _Canvas, s: float, rng: np.random.Generator) -> np.ndarray:
    """Body outline (fat over muscle), table, and the lungs; returns the body mask."""
    k_count = canvas.shape[0]
    full = (slice(0, k_count), slice(0, canvas.shape[1]), slice(0, canvas.shape[2]))
    z, y, x = canvas.axes(full)
    ax, ay = 165 * s * rng.uniform(0.95, 1.05), 115 * s * rng.uniform(0.92, 1.08)
    fat = rng.uniform(8, 25) * s
    body = np.empty(canvas.shape, dtype=bool)
    lung_params = [(sign, 70 * s * rng.uniform(0.97, 1.03), 52 * s * rng.uniform(0.92, 1.04),
                    80 * s * rng.uniform(0.92, 1.03)) for sign in (-1.0, 1.0)]
    z_top, z_base = 125.0 * s, -105.0 * s * rng.uniform(0.9, 1.05)
    gradient = rng.uniform(40, 80)  # HU denser posteriorly (gravity, supine)
    for k in range(k_count):  # slice by slice keeps temporaries small
        zk = float(z[k, 0, 0])
        taper = 1.0 - 0.08 * max(0.0, zk / 140.0)
        r_body = np.sqrt((x / (ax * taper)) ** 2 + (y / ay) ** 2)[0]
        r_muscle = np.sqrt((x / (ax * taper - fat)) ** 2 + (y / (ay - fat)) ** 2)[0]
        body[k] = r_body <= 1.0
        slice_hu = canvas.hu[k]
        slice_hu += (FAT - slice_hu) * canvas.coverage((r_body - 1.0) * ax)
        slice_hu += (MUSCLE - slice_hu) * canvas.coverage((r_muscle - 1.0) * (ax - fat))
        for sign, cx, rx, ry in lung_params:
            height = (zk - z_base) / (z_top - z_base)
            if not 0.0 <= height <= 1.0:
                continue
            width = math.sqrt(max(0.0, 1.0 - height**4)) * (0.55 + 0.45 * math.sqrt(height * 4) if height < 0.25 else 1.0)
            dome = 25 * s * (1 - ((x[0] - sign * cx) / rx) ** 2 - (y[0] / ry) ** 2)
            r = np.sqrt(((x[0] - sign * cx) / (rx * width + 1e-3)) ** 2 + ((y[0] - 5) / (ry * width + 1e-3)) ** 2)
            inside = (r - 1.0) * rx * width
            above_diaphragm = (z_base + np.maximum(dome, 0)) - zk  # negative inside
            distance = np.maximum(inside, above_diaphragm)
            lung_hu = LUNG + gradient * np.clip((y[0] + ry) / (2 * ry), 0, 1)
            slice_hu += (lung_hu - slice_hu) * canvas.coverage(distance)
    table_y = ay + 18
    box = canvas.box(np.array([-200, table_y, -1e4]), np.array([200, table_y + 12, 1e4]))
    if box is not None:
        canvas.hu[box] = 150.0
    return body, (ax, ay, fat)


def _draw_mediastinum(canvas: _Canvas, s: float, rng: np.random.Generator) -> None:
    """Heart (an ellipsoid left-anterior-inferior) and aorta (ascending, arch, descending)."""
    centre = np.array([22 * s, -25 * s, -55 * s])
    radii = np.array([62, 52, 55]) * s * rng.uniform(0.9, 1.1, 3)
    box = canvas.box(centre - radii - 3, centre + radii + 3)
    if box is not None:
        z, y, x = canvas.axes(box)
        r = np.sqrt(((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
                    + ((z - centre[2]) / radii[2]) ** 2)
        canvas.blend(box, canvas.coverage((r - 1) * radii.min()), BLOOD)
    radius = 13 * s * rng.uniform(0.9, 1.2)
    path = np.array([[5, -20, -20], [5, -25, 40], [12, -5, 70], [25, 25, 60], [28, 40, 20], [25, 45, -60],
                     [20, 45, -140]]) * s
    for p0, p1 in zip(path[:-1], path[1:]):
        canvas.capsule(p0, p1, radius, BLOOD)
    canvas.capsule(np.array([0, -5, 115 * s]), np.array([0, -5, 20 * s]), 22 * s, MUSCLE)  # mediastinal fat/soft tissue


def _draw_airways(canvas: _Canvas, s: float, rng: np.random.Generator, lung: np.ndarray) -> None:
    top, carina = np.array([0, -10 * s, 140 * s]), np.array([0, -5 * s, 45 * s])
    for radius, hu in ((10.5 * s, MUSCLE), (8.5 * s, AIR)):
        canvas.capsule(top, carina, radius, hu)
    for sign in (-1.0, 1.0):
        hilum = carina + np.array([sign * 38, 8, -22]) * s
        for radius, hu in ((7.5 * s, MUSCLE), (6 * s, AIR)):
            canvas.capsule(carina, hilum, radius, hu)
        for _ in range(3):
            direction = np.array([sign * rng.uniform(0.4, 1), rng.uniform(-0.6, 0.6), rng.uniform(-1, 0.6)])
            end = hilum + direction / np.linalg.norm(direction) * rng.uniform(35, 55) * s
            canvas.capsule(hilum, end, 3.2 * s, MUSCLE, within=lung)
            canvas.capsule(hilum, end, 2.3 * s, AIR, within=lung)


def _draw_vessels(canvas: _Canvas, s: float, rng: np.random.Generator, lung: np.ndarray) -> list[tuple]:
    """Recursive branching trees from each hilum; returns segments (p0, p1, radius)."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []

    def grow(start: np.ndarray, direction: np.ndarray, length: float, radius: float, depth: int) -> None:
        if radius < 0.7 or depth > 7:
            return
        end = start + direction * length
        segments.append((start, end, radius))
        for _ in range(2):
            turn = rng.normal(0, 0.55, 3)
            child = direction + turn - np.dot(turn, direction) * direction * 0.5
            child /= np.linalg.norm(child)
            grow(end, child, length * rng.uniform(0.72, 0.88), radius * rng.uniform(0.68, 0.8), depth + 1)

    for sign in (-1.0, 1.0):
        hilum = np.array([sign * 42, 5, -5]) * s
        for target in ([sign, 0.2, 0.9], [sign, -0.5, -0.2], [sign, 0.6, -0.8], [sign * 0.6, -0.8, 0.5]):
            direction = np.array(target) + rng.normal(0, 0.15, 3)
            grow(hilum, direction / np.linalg.norm(direction), 28 * s * rng.uniform(0.9, 1.1),
                 5.5 * s * rng.uniform(0.85, 1.1), 0)
    lung_float = lung.astype(np.float32)
    for p0, p1, radius in segments:
        canvas.capsule(p0, p1, radius, BLOOD, within=lung_float)
    return segments


def _draw_bones(canvas: _Canvas, s: float, ax: float, ay: float) -> None:
    """Spine (vertebral bodies with discs), sternum and twelve pairs of ribs."""
    z_low, z_high = canvas.origin[2], canvas.origin[2] + canvas.shape[0] * canvas.spacing[2]
    spine_y, pitch = 62 * s, 27 * s
    z = z_low
    while z < z_high:
        centre_low, centre_high = np.array([0, spine_y, z + 3]), np.array([0, spine_y, z + pitch - 3])
        canvas.capsule(centre_low, centre_high, 17 * s, CORTEX)
        canvas.capsule(centre_low, centre_high, 14.5 * s, BONE - 150)
        canvas.capsule(np.array([0, spine_y + 28 * s, z + pitch / 2]), np.array([0, spine_y + 45 * s, z]), 5 * s, CORTEX)
        z += pitch
    canvas.capsule(np.array([0, spine_y + 24 * s, z_low]), np.array([0, spine_y + 24 * s, z_high]), 7 * s, 10.0)
    canvas.capsule(np.array([0, -98 * s, 110 * s]), np.array([0, -105 * s, -60 * s]), 7 * s, BONE)
    for rib in range(12):
        z_back = 120 * s - rib * 20 * s
        for sign in (-1.0, 1.0):
            angles = np.linspace(0.15, 2.6 - 0.06 * rib, 12)  # from the spine round to the front
            points = np.stack([sign * ax * np.sin(angles), ay * np.cos(angles),
                               z_back - 38 * s * (1 - np.cos(angles))], axis=1)
            for p0, p1 in zip(points[:-1], points[1:]):
                canvas.capsule(p0, p1, 4.5 * s, CORTEX)


def _place_nodules(canvas: _Canvas, spec: PhantomSpec, rng: np.random.Generator, lung: np.ndarray,
                   vessels: list[tuple]) -> list[Nodule]:
    placed: list[Nodule] = []
    lung_voxels = np.argwhere(lung[::2, ::2, ::2]) * 2  # a sample of candidate centres (k, j, i)
    if len(lung_voxels) == 0:
        raise PhantomError("The lungs do not fit in the field of view")
    attempts = 0
    while len(placed) < spec.nodule_count and attempts < 2000:
        attempts += 1
        kind = str(rng.choice(NODULE_KINDS, p=[0.6, 0.2, 0.2]))
        diameter = float(np.exp(rng.uniform(*np.log(spec.nodule_diameter_mm))))
        if kind != "solid":
            diameter = max(diameter, 6.0)  # sub-solid nodules under 6 mm are rarely reported
        attached = str(rng.choice(["none", "pleura", "vessel"], p=[0.5, 0.25, 0.25]))
        radius = diameter / 2
        if attached == "vessel":
            p0, p1, vessel_radius = vessels[int(rng.integers(len(vessels)))]
            point = p0 + (p1 - p0) * rng.uniform(0.2, 0.8)
            side = np.cross(p1 - p0, rng.normal(size=3))
            centre = point + side / (np.linalg.norm(side) + 1e-9) * (radius + vessel_radius * 0.3)
        else:
            k, j, i = lung_voxels[int(rng.integers(len(lung_voxels)))]
            centre = canvas.origin + np.array([i, j, k]) * canvas.spacing
            if attached == "pleura":
                centre = _towards_pleura(canvas, lung, centre, radius, rng)
                if centre is None:
                    continue
        if not _fits(canvas, lung, centre, radius, attached):
            continue
        if any(np.linalg.norm(centre - np.array(n.centre_mm)) < radius + n.diameter_mm / 2 + 5 for n in placed):
            continue
        solid_hu = float(rng.uniform(-10, 60))
        placed.append(Nodule(
            kind=kind, centre_mm=tuple(float(v) for v in centre), diameter_mm=round(diameter, 2), attached_to=attached,
            solid_hu=solid_hu, ground_glass_hu=float(rng.uniform(-680, -480)), core_fraction=float(rng.uniform(0.35, 0.6)),
            lobes=tuple((*(v / np.linalg.norm(v)), float(rng.uniform(-0.12, 0.12))) for v in rng.normal(size=(3, 3))),
        ))
    if len(placed) < spec.nodule_count:
        raise PhantomError(f"Could place only {len(placed)} of {spec.nodule_count} nodules")
    return placed


def _towards_pleura(canvas: _Canvas, lung: np.ndarray, centre: np.ndarray, radius: float,
                    rng: np.random.Generator) -> np.ndarray | None:
    """March from a point in the lung until the lung ends; put the centre one radius back inside."""
    direction = rng.normal(size=3)
    direction[2] *= 0.3  # mostly towards the chest wall, not the apex or diaphragm
    direction /= np.linalg.norm(direction)
    step = float(canvas.spacing.min())
    point = centre.copy()
    for _ in range(int(400 / step)):
        nxt = point + direction * step
        if not _inside(canvas, lung, nxt):
            return point - direction * radius * 0.85
        point = nxt
    return None


def _inside(canvas: _Canvas, mask: np.ndarray, point_mm: np.ndarray) -> bool:
    i, j, k = np.rint((point_mm - canvas.origin) / canvas.spacing).astype(int)
    if not (0 <= k < mask.shape[0] and 0 <= j < mask.shape[1] and 0 <= i < mask.shape[2]):
        return False
    return bool(mask[k, j, i])


def _fits(canvas: _Canvas, lung: np.ndarray, centre: np.ndarray, radius: float, attached: str) -> bool:
    """The centre is in the lung; a free nodule's whole sphere is too (sampled on its surface)."""
    if not _inside(canvas, lung, centre):
        return False
    if attached != "none":
        return True
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1],
                           [0.7, 0.7, 0], [-0.7, 0.7, 0], [0.7, -0.7, 0], [-0.7, -0.7, 0]])
    return all(_inside(canvas, lung, centre + d * (radius + 2)) for d in directions)


def _draw_nodule(canvas: _Canvas, nodule: Nodule, index: int, mask: np.ndarray) -> dict:
    centre = np.array(nodule.centre_mm)
    radius = nodule.diameter_mm / 2
    pad = radius * 1.2 + canvas.edge
    box = canvas.box(centre - pad, centre + pad)
    z, y, x = canvas.axes(box)
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    distance = np.sqrt(dx**2 + dy**2 + dz**2) + 1e-6
    lobulation = sum(a * (dx * u + dy * v + dz * w) / distance for u, v, w, a in nodule.lobes)
    surface = distance - radius * (1 + lobulation)
    cover = canvas.coverage(surface)
    if nodule.kind == "solid":
        canvas.blend(box, cover, nodule.solid_hu)
    else:
        canvas.blend(box, cover, nodule.ground_glass_hu)
        if nodule.kind == "part-solid":
            canvas.blend(box, canvas.coverage(distance - radius * nodule.core_fraction), nodule.solid_hu)
    inside = cover > 0.5
    mask[box][inside] = index + 1
    voxel_volume = float(np.prod(canvas.spacing))
    return {
        "id": index + 1, "kind": nodule.kind, "centre_mm": [round(v, 3) for v in nodule.centre_mm],
        "diameter_mm": nodule.diameter_mm, "volume_mm3": round(float(inside.sum()) * voxel_volume, 1),
        "attached_to": nodule.attached_to,
        "mean_hu": round(float(canvas.hu[box][inside].mean()), 1) if inside.any() else None,
    }


def _add_noise(canvas: _Canvas, spec: PhantomSpec, rng: np.random.Generator) -> None:
    """Correlated in-plane noise with the requested standard deviation (CT noise is not white)."""
    sigma_px = 0.8
    gain = 2 * math.sqrt(math.pi) * sigma_px  # restores the std lost by the Gaussian smoothing
    for k in range(canvas.shape[0]):
        white = rng.standard_normal(canvas.shape[1:], dtype=np.float32)
        canvas.hu[k] += ndimage.gaussian_filter(white, sigma_px, truncate=3.0) * (spec.noise_hu * gain)


def _outside_reconstruction_circle(matrix: int) -> np.ndarray:
    centre = (matrix - 1) / 2
    j, i = np.ogrid[:matrix, :matrix]
    return (i - centre) ** 2 + (j - centre) ** 2 > (matrix / 2) ** 2


def _tags(spec: PhantomSpec, rng: np.random.Generator) -> dict[str, object]:
    surname = SURNAMES[spec.seed % len(SURNAMES)]
    year = int(rng.integers(2019, 2027))
    study_date = f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    return {
        "PatientName": f"PHANTOM^{surname}", "PatientID": f"PH{spec.seed:06d}",
        "PatientBirthDate": f"{year - spec.patient_age}0101", "PatientAge": f"{spec.patient_age:03d}Y",
        "PatientSex": spec.patient_sex, "StudyDate": study_date, "StudyTime": "101500",
        "StudyDescription": "CT CHEST (synthetic phantom)", "SeriesDescription": f"Chest {spec.slice_thickness_mm} mm",
        "SeriesNumber": 2, "AccessionNumber": f"SYN{spec.seed:08d}", "Manufacturer": "Workstation synthetic phantom",
        "ManufacturerModelName": "ChestPhantom 1", "ConvolutionKernel": spec.kernel,
        "SliceThickness": spec.slice_thickness_mm, "KVP": spec.kvp, "BodyPartExamined": "CHEST",
        "InstitutionName": "Synthetic", "ReferringPhysicianName": "", "StudyID": str(spec.seed % 100000),
    }


def write_demo_case(out_dir: Path, seed: int = 3, matrix: int = 512, syntax: str = "explicit",
                    slice_thickness_mm: float | None = None) -> tuple[Path, Path]:
    """Generate a phantom and write it as a DICOM series plus `truth.json`; returns both paths."""
    from pydicom.uid import generate_uid

    from workstation.dicom.write import GE_LIKE, SIEMENS_LIKE, write_ct_series

    spec = PhantomSpec.from_seed(seed, matrix=matrix, slice_thickness_mm=slice_thickness_mm)
    phantom = generate_phantom(spec)
    out_dir = Path(out_dir)
    series_dir = out_dir / "dicom"
    style = GE_LIKE if seed % 2 else SIEMENS_LIKE
    uid_seed = f"phantom-{seed}-{matrix}-{spec.slice_thickness_mm}"
    tags = {**phantom.tags, "StudyInstanceUID": str(generate_uid(entropy_srcs=[uid_seed, "study"])),
            "SeriesInstanceUID": str(generate_uid(entropy_srcs=[uid_seed, "series"]))}
    write_ct_series(phantom.volume, series_dir, tags, syntax=syntax, style=style,
                    outside_fov=phantom.outside_fov, uid_seed=uid_seed)
    truth = {**phantom.truth(), "study_uid": tags["StudyInstanceUID"], "series_uid": tags["SeriesInstanceUID"]}
    truth_path = out_dir / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1))
    return series_dir, truth_path
