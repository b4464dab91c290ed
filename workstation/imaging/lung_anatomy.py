"""Real lung anatomy for the phantoms (issue #19): what a detector trained on smooth phantom
lungs has never seen and then calls a nodule in every real scan.

- Pulmonary artery and vein trees from each hilum to the pleura: bifurcations by Murray's law
  (r^3 = r1^3 + r2^3), from about 12 mm across to under 1 mm, so that vessels are seen end-on
  and in-plane, cross each other (arteries and veins interleave), and their density per volume
  falls toward the periphery. Sub-voxel vessels keep their integrated density (a thin faint
  line, not a one-voxel-wide dense one).
- Bronchi with walls beside the arteries (bronchovascular bundles), trachea and main bronchi.
- Fissures (both major fissures, the right minor one) as thin partial-volume sheets.
- Parenchymal texture (fine and coarse), and scanner blur and noise that depend on the
  reconstruction kernel (sharp: less blur, more and finer-grained noise) and slice thickness.
- Look-alikes that are not nodules: small scars (subpleural stellate densities) and mucus plugs
  (an airway filled with fluid, branching "finger in glove"); bifurcations and end-on vessels
  come with the trees. Juxtavascular nodules can be wrapped by a vessel (`wrap_vessel`).

Everything is drawn on the phantom's `_Canvas`, seeded by the phantom's generator.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

AIR, WALL, BLOOD, SCAR, MUCUS, PLEURA = -1000.0, 20.0, 40.0, -60.0, 25.0, -50.0
MIN_RADIUS_MM = 0.3  # the trees stop under 0.6 mm across
TWIG_RADIUS_MM = 1.0  # under 2 mm across, branches stop dividing and taper out
MAX_SEGMENTS_PER_LUNG = 6000  # keeps a 256-matrix phantom to a few seconds
SHARP_KERNELS = ("LUNG", "YC", "FC51", "BONEPLUS", "B70f", "B60f", "L")


@dataclass
class LungAnatomy:
    """What was drawn: the vessel mask (coverage > 0.5), every vessel segment (p0, p1, radius in
    mm), each tree's root point, and the look-alikes (scars, mucus plugs) with their centres."""

    vessel_mask: np.ndarray
    segments: list[tuple[np.ndarray, np.ndarray, float]] = field(default_factory=list)
    roots: list[np.ndarray] = field(default_factory=list)
    mimics: list[dict] = field(default_factory=list)

    def attachable_segments(self, edge_mm: float) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Vessels a juxtavascular nodule can touch: visible on this grid (over a voxel across,
        `edge_mm` the canvas's partial-volume ramp) and at least 1.6 mm across, not hilar."""
        return [seg for seg in self.segments if max(0.8, edge_mm / 2 + 0.3) <= seg[2] <= 3.5]


def draw_lung_anatomy(canvas, s: float, rng: np.random.Generator, lung: np.ndarray) -> LungAnatomy:
    """Airways, vessel trees, fissures, texture and look-alikes inside `lung` (bool mask)."""
    lung_float = lung.astype(np.float32)
    anatomy = LungAnatomy(np.zeros(canvas.shape, dtype=bool))
    _texture(canvas, rng, lung)
    _fissures(canvas, s, rng, lung)
    carina = np.array([0, -5 * s, 45 * s])
    _tube(canvas, np.array([0, -10 * s, 140 * s]), carina, 8.5 * s, 1.8 * s, lung_float, central=True)
    bronchi: list[tuple[np.ndarray, np.ndarray, float]] = []
    for sign in (-1.0, 1.0):
        hilum = carina + np.array([sign * 38, 8, -22]) * s
        _tube(canvas, carina, hilum, 6 * s, 1.5 * s, lung_float, central=True)
        centre = np.array([sign * 70 * s, 5.0, -10 * s])  # roughly the middle of the lung
        for kind, root, count, radius in (("artery", np.array([sign * 42, 5, -5]) * s, 4, 6.0 * s),
                                          ("vein", np.array([sign * 36, -8, -32]) * s, 3, 5.0 * s)):
            anatomy.roots.append(root)
            directions = _lobar_directions(sign, count, rng)
            segments = _grow_trees(canvas, root, directions, radius, centre, rng, lung)
            for p0, p1, r in segments:
                _vessel(canvas, p0, p1, r, lung_float, anatomy.vessel_mask)
            anatomy.segments += segments
            if kind == "artery":  # bronchi run beside the arteries, down to about 1 mm lumen
                bronchi += _bronchi_beside(canvas, segments, rng, lung_float)
    _mucus_plugs(canvas, bronchi, rng, lung_float, anatomy)
    _scars(canvas, rng, lung, lung_float, anatomy)
    return anatomy


def _lobar_directions(sign: float, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Main branches toward the upper, middle/lingula, lower and posterior-basal lung."""
    base = [[sign * 0.5, 0.1, 0.9], [sign * 0.8, -0.6, -0.2], [sign * 0.5, 0.5, -0.8], [sign * 0.3, 0.8, 0.1]]
    out = []
    for target in base[:count]:
        direction = np.array(target) + rng.normal(0, 0.15, 3)
        out.append(direction / np.linalg.norm(direction))
    return out


def _grow_trees(canvas, root: np.ndarray, directions: list[np.ndarray], radius: float, centre: np.ndarray,
                rng: np.random.Generator, lung: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Breadth-first by radius (largest first), so the segment budget thins every branch alike:
    asymmetric Murray bifurcations, the thinner child turning more, with a pull outward."""
    segments: list[tuple[np.ndarray, np.ndarray, float]] = []
    queue: list[tuple[float, int, np.ndarray, np.ndarray, float]] = []
    counter = 0
    for direction in directions:
        heapq.heappush(queue, (-radius, counter, root, direction, radius))
        counter += 1
    budget = MAX_SEGMENTS_PER_LUNG // 2
    while queue and len(segments) < budget:
        _, _, start, direction, r = heapq.heappop(queue)
        length = float(np.clip(r * rng.uniform(3.0, 6.0), 2.0, 25.0))
        end = None
        for attempt in range(3):  # near the pleura a branch turns back into the lung or stops there
            trial = start + direction * length * (1.0 - 0.3 * attempt)
            if _inside(canvas, lung, trial):
                end = trial
                break
            direction = direction - 0.8 * (trial - centre) / (np.linalg.norm(trial - centre) + 1e-9)
            direction /= np.linalg.norm(direction) + 1e-9
        if end is None:
            continue  # reached the pleura
        middle = (start + end) / 2 + rng.normal(0, 0.08 * length, 3)  # vessels curve
        segments += [(start, middle, r), (middle, end, r * 0.97)]
        r = r * 0.97
        if r < TWIG_RADIUS_MM:  # the last millimetre: unbranched twigs tapering out, drawn at once
            segments += _twig(canvas, end, direction, r, rng, lung)
            continue
        ratio = rng.uniform(0.45, 1.0)  # thinner child / thicker child
        big = r / (1 + ratio**3) ** (1 / 3)
        outward = end - centre
        outward /= np.linalg.norm(outward) + 1e-9
        plane = np.cross(direction, rng.normal(size=3))
        plane /= np.linalg.norm(plane) + 1e-9
        for child_radius, angle, side in ((big, rng.uniform(0.2, 0.55), 1.0), (big * ratio, rng.uniform(0.6, 1.1), -1.0)):
            child = direction * math.cos(angle) + side * plane * math.sin(angle) + 0.25 * outward
            child /= np.linalg.norm(child)
            counter += 1
            heapq.heappush(queue, (-child_radius, counter, end, child, child_radius))
    return segments


def _twig(canvas, start: np.ndarray, direction: np.ndarray, radius: float, rng: np.random.Generator,
          lung: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """An unbranched end of a tree, narrowing by a quarter every 2-4 mm until under MIN_RADIUS_MM."""
    out = []
    while radius >= MIN_RADIUS_MM:
        direction = direction + rng.normal(0, 0.25, 3)
        direction /= np.linalg.norm(direction)
        end = start + direction * rng.uniform(2.0, 4.0)
        if not _inside(canvas, lung, end):
            break
        out.append((start, end, radius))
        start, radius = end, radius * 0.75
    return out


def _inside(canvas, mask: np.ndarray, point_mm: np.ndarray) -> bool:
    i, j, k = np.rint((point_mm - canvas.origin) / canvas.spacing).astype(int)
    if not (0 <= k < mask.shape[0] and 0 <= j < mask.shape[1] and 0 <= i < mask.shape[2]):
        return False
    return bool(mask[k, j, i])


def _tube_distance(canvas, p0: np.ndarray, p1: np.ndarray, pad: float):
    """(box, distance in mm from the segment p0-p1) over the box around it, or None."""
    box = canvas.box(np.minimum(p0, p1) - pad, np.maximum(p0, p1) + pad)
    if box is None:
        return None
    z, y, x = canvas.axes(box)
    d = (p1 - p0).astype(np.float32)
    length2 = float(d @ d) or 1e-6
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1] + (z - p0[2]) * d[2]) / length2, 0, 1)
    distance = np.sqrt((x - p0[0] - t * d[0]) ** 2 + (y - p0[1] - t * d[1]) ** 2 + (z - p0[2] - t * d[2]) ** 2)
    return box, distance


def tube_cover(canvas, distance: np.ndarray, radius: float) -> np.ndarray:
    """Partial-volume coverage of a tube: the canvas's edge ramp for tubes wider than a voxel;
    for thinner ones a Gaussian that keeps the cross-section's area (pi r^2), so a 0.6 mm
    vessel on a 2 mm grid is a faint line, as a scanner shows it, not a dense voxel-wide one."""
    if radius >= canvas.edge / 2:
        return canvas.coverage(distance - radius)
    sigma2 = (canvas.edge / 2.355) ** 2 + radius**2 / 2
    return np.minimum(1.0, radius**2 / (2 * sigma2)) * np.exp(-distance**2 / (2 * sigma2))


def _vessel(canvas, p0, p1, radius: float, within: np.ndarray, mask: np.ndarray) -> None:
    found = _tube_distance(canvas, p0, p1, radius + 2 * canvas.edge)
    if found is None:
        return
    box, distance = found
    cover = tube_cover(canvas, distance, radius) * within[box]
    canvas.blend(box, cover, BLOOD)
    mask[box] |= cover > 0.5


def _tube(canvas, p0, p1, lumen: float, wall: float, within: np.ndarray, central: bool = False,
          fill: float = AIR) -> None:
    """An airway: a wall, then its lumen (air, or mucus for a plug). Central airways (trachea,
    main bronchi) lie outside the lung mask and are drawn everywhere."""
    for radius, hu in ((lumen + wall, WALL), (lumen, fill)):
        found = _tube_distance(canvas, p0, p1, radius + 2 * canvas.edge)
        if found is None:
            continue
        box, distance = found
        cover = tube_cover(canvas, distance, radius)
        if not central:
            cover = cover * within[box]
        canvas.blend(box, cover, hu)


def _bronchi_beside(canvas, arteries, rng: np.random.Generator, within: np.ndarray) -> list[tuple]:
    """A bronchus beside each artery segment of 1.3 mm radius or more: lumen about the artery's
    size, wall about a fifth of the lumen, offset to one side consistently along a branch."""
    drawn = []
    for p0, p1, radius in arteries:
        if radius < 1.3:
            continue
        axis = p1 - p0
        side = np.cross(axis, [0.3, 0.5, 0.8])
        side /= np.linalg.norm(side) + 1e-9
        lumen = radius * 0.8
        wall = max(0.4, 0.22 * lumen)
        offset = side * (radius + lumen + wall + 0.3)
        _tube(canvas, p0 + offset, p1 + offset, lumen, wall, within)
        drawn.append((p0 + offset, p1 + offset, lumen, wall))
    return drawn


def _mucus_plugs(canvas, bronchi: list[tuple], rng: np.random.Generator, within: np.ndarray,
                 anatomy: LungAnatomy) -> None:
    """One or two bronchi (2-6 mm lumen) filled with mucus: tubular soft tissue, not a nodule."""
    pool = [b for b in bronchi if 1.0 <= b[2] <= 3.0]
    for index in rng.choice(len(pool), size=min(len(pool), int(rng.integers(1, 3))), replace=False) if pool else []:
        p0, p1, lumen, wall = pool[int(index)]
        _tube(canvas, p0, p1, lumen, wall, within, fill=MUCUS)
        anatomy.mimics.append({"kind": "mucus plug", "centre_mm": [round(float(v), 2) for v in (p0 + p1) / 2],
                               "size_mm": round(float(np.linalg.norm(p1 - p0)), 1)})


def _scars(canvas, rng: np.random.Generator, lung: np.ndarray, within: np.ndarray, anatomy: LungAnatomy) -> None:
    """Two to four small subpleural scars: three thin strands from one point, 4-10 mm long."""
    edge = lung & ~ndimage.binary_erosion(lung, iterations=3)
    pool = np.argwhere(edge[::2, ::2, ::2]) * 2
    if not len(pool):
        return
    for _ in range(int(rng.integers(2, 5))):
        k, j, i = pool[int(rng.integers(len(pool)))]
        centre = canvas.origin + np.array([i, j, k]) * canvas.spacing
        for _strand in range(3):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            end = centre + direction * rng.uniform(4, 10)
            found = _tube_distance(canvas, centre, end, 1.2 + 2 * canvas.edge)
            if found is None:
                continue
            box, distance = found
            canvas.blend(box, tube_cover(canvas, distance, float(rng.uniform(0.5, 1.2))) * within[box], SCAR)
        anatomy.mimics.append({"kind": "scar", "centre_mm": [round(float(v), 2) for v in centre], "size_mm": 10.0})


def _fissures(canvas, s: float, rng: np.random.Generator, lung: np.ndarray) -> None:
    """Major fissures (oblique, posterior-superior to anterior-inferior) in both lungs, the minor
    fissure (horizontal, anterior) in the right; 0.5 mm sheets with partial volume."""
    thickness = 0.5
    sigma2 = (canvas.edge / 2.355) ** 2 + thickness**2 / 12
    peak = min(1.0, thickness / math.sqrt(2 * math.pi * sigma2))
    ks, js, is_ = (np.nonzero(lung.any(axis=a)) for a in ((1, 2), (0, 2), (0, 1)))
    if not len(ks[0]):
        return
    box = (slice(ks[0].min(), ks[0].max() + 1), slice(js[0].min(), js[0].max() + 1), slice(is_[0].min(), is_[0].max() + 1))
    z, y, x = canvas.axes(box)
    within = lung[box]
    region = canvas.hu[box]
    for sign in (-1.0, 1.0):
        tilt = rng.uniform(0.45, 0.7)  # the fissure's slope (y per z)
        normal = np.array([sign * 0.4, 1.0, tilt])  # on an axial slice: antero-lateral to postero-medial
        normal /= np.linalg.norm(normal)
        point = np.array([sign * 70 * s, 5 * s, -10 * s]) + rng.normal(0, 4, 3)
        warp = rng.uniform(2, 6) * np.sin((x - point[0]) / rng.uniform(25, 45))  # fissures are not flat
        major = (normal[0] * (x - point[0]) + normal[1] * (y - point[1]) + normal[2] * (z - point[2])
                 + warp * 0.3)
        side = (np.sign(x) == sign) & within
        region += (PLEURA - region) * (peak * np.exp(-major**2 / (2 * sigma2)) * side)
        if sign < 0:  # patient right (LPS x < 0): the minor fissure, in front of the major one
            distance = (z - point[2] - rng.uniform(5, 15) * s) + 0.15 * (y - point[1])
            region += (PLEURA - region) * (peak * np.exp(-distance**2 / (2 * sigma2)) * side * (major < 0))


def _texture(canvas, rng: np.random.Generator, lung: np.ndarray) -> None:
    """Parenchymal heterogeneity: fine (lobular, ~1.5 mm) and coarse (perfusion, ~8 mm) texture."""
    shape = canvas.shape
    fine = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.5 / canvas.spacing[::-1])
    coarse = ndimage.zoom(rng.standard_normal(tuple(max(2, n // 8) for n in shape), dtype=np.float32),
                          [n / max(2, n // 8) for n in shape], order=1)[:shape[0], :shape[1], :shape[2]]
    fine *= rng.uniform(10, 25) / (fine.std() + 1e-6)
    coarse *= rng.uniform(8, 20) / (coarse.std() + 1e-6)
    canvas.hu += (fine + coarse) * lung


def wrap_vessel(canvas, anatomy: LungAnatomy, centre: np.ndarray, radius: float, rng: np.random.Generator,
                within: np.ndarray) -> None:
    """A small vessel curving round a nodule's surface over 120-220 degrees, touching it: the
    juxtavascular nodule a detector must not lose to the vessel, and must not call a vessel."""
    vessel_radius = float(rng.uniform(0.6, 1.3))
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    v = np.cross(u, rng.normal(size=3))
    v /= np.linalg.norm(v)
    distance = radius + vessel_radius * 0.4
    start = rng.uniform(0, 2 * math.pi)
    angles = start + np.linspace(0, math.radians(rng.uniform(120, 220)), 7)
    points = [centre + distance * (math.cos(a) * u + math.sin(a) * v) for a in angles]
    tangent_out = (points[-1] - points[-2]) / (np.linalg.norm(points[-1] - points[-2]) + 1e-9)
    points.append(points[-1] + tangent_out * radius)
    for p0, p1 in zip(points[:-1], points[1:]):
        _vessel(canvas, p0, p1, vessel_radius, within, anatomy.vessel_mask)
        anatomy.segments.append((p0, p1, vessel_radius))


def add_scanner_blur_and_noise(canvas, kernel: str, slice_thickness_mm: float, noise_hu: float,
                               rng: np.random.Generator) -> None:
    """In-plane blur and noise as the reconstruction kernel makes them: a sharp (lung, bone)
    kernel blurs less (0.35 mm) and has about twice the noise, finer grained; a soft one blurs
    0.7 mm. Noise falls with the square root of the slice thickness (more photons per voxel)."""
    sharp = kernel in SHARP_KERNELS
    spacing_kji = canvas.spacing[::-1]
    blur_mm = 0.35 if sharp else 0.7
    canvas.hu[:] = ndimage.gaussian_filter(canvas.hu, (0.0, blur_mm / spacing_kji[1], blur_mm / spacing_kji[2]))
    grain_px = 0.55 if sharp else 1.0
    level = noise_hu * (2.0 if sharp else 1.0) * math.sqrt(1.25 / slice_thickness_mm)
    gain = 2 * math.sqrt(math.pi) * grain_px  # restores the std lost by the Gaussian smoothing
    for k in range(canvas.shape[0]):
        white = rng.standard_normal(canvas.shape[1:], dtype=np.float32)
        canvas.hu[k] += ndimage.gaussian_filter(white, grain_px, truncate=3.0) * (level * gain)
