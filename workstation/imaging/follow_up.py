"""A follow-up CT of a phantom patient with known truth (issue #24): the same anatomy and nodules
months later, in another pose (shifted, turned about the body axis), at another breathing level
(lungs scaled along the body axis; optionally also a non-linear diaphragm movement, larger at the
base of the right lung, that no affine map undoes), with new noise; some nodules grown by known volume factors,
some stable, one resolved and one new. The truth says which nodule is which, their designed
volumes and the volume doubling times, and the transform from the prior's patient coordinates to
the follow-up's, so registration and matching can be scored.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from workstation.imaging.phantom import AIR, Nodule, Phantom, PhantomSpec, generate_phantom
from workstation.imaging.volume import Volume
from workstation.review.comparison import GROWTH_MM

DAYS_PER_MONTH = 30.44


@dataclass(frozen=True)
class FollowUpPlan:
    """What changes between the two scans, drawn from the follow-up's seed."""

    months: float
    seed: int
    volume_factor: dict[int, float]  # prior nodule id -> volume ratio (1.0: stable)
    resolved: int  # the prior nodule id that is gone
    new_diameter_mm: float
    shift_mm: tuple[float, float, float]
    rotation_deg: float  # about the body (z) axis
    breathing: float  # scale of the anatomy along z (below 1: less inspiration)

    def prior_to_current(self, centre_mm: np.ndarray) -> np.ndarray:
        """4x4 map of patient mm from the prior scan to the follow-up (about `centre_mm`)."""
        angle = math.radians(self.rotation_deg)
        rotation = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
        linear = rotation @ np.diag([1.0, 1.0, self.breathing])
        transform = np.eye(4)
        transform[:3, :3] = linear
        transform[:3, 3] = centre_mm - linear @ centre_mm + np.array(self.shift_mm)
        return transform


def plan_follow_up(prior_nodules: list[dict], months: float, seed: int) -> FollowUpPlan:
    """One nodule resolved, about half of the rest grown (doubling times of 100-600 days), the
    others stable, one new; a pose change of a few mm and degrees and a breathing change of a few %."""
    rng = np.random.default_rng(seed)
    ids = [int(n["id"]) for n in prior_nodules]
    resolved = int(rng.choice(ids))
    factors = {}
    for number, nodule_id in enumerate(i for i in ids if i != resolved):
        if number % 2 == 0:  # grown
            doubling_days = float(rng.uniform(100, 600))
            factors[nodule_id] = round(2 ** (months * DAYS_PER_MONTH / doubling_days), 4)
        else:
            factors[nodule_id] = 1.0
    return FollowUpPlan(months, seed, factors, resolved, round(float(rng.uniform(6, 10)), 1),
                        tuple(round(float(v), 2) for v in rng.uniform(-8, 8, 3)),  # type: ignore[arg-type]
                        round(float(rng.uniform(-4, 4)), 2), round(float(rng.uniform(0.95, 1.0)), 3))


@dataclass(frozen=True)
class DiaphragmWarp:
    """A non-linear breathing change in the prior's patient mm: points move up the body axis by
    `base_mm` x (depth below the lung apex, 0..1)^3, fully on the patient's right side and a third
    of it on the left (the right hemidiaphragm sits higher and moves more)."""

    base_mm: float
    apex_z_mm: float
    base_z_mm: float
    midline_x_mm: float

    def displacement(self, points_mm: np.ndarray) -> np.ndarray:
        """(N, 3) points -> (N, 3) displacements."""
        points = np.asarray(points_mm, dtype=float).reshape(-1, 3)
        depth = np.clip((self.apex_z_mm - points[:, 2]) / (self.apex_z_mm - self.base_z_mm), 0.0, 1.0)
        right = 1.0 / (1.0 + np.exp((points[:, 0] - self.midline_x_mm) / 20.0))  # LPS: the right is -x
        moved = np.zeros_like(points)
        moved[:, 2] = self.base_mm * depth ** 3 * (1 / 3 + 2 / 3 * right)
        return moved

    def forward(self, points_mm: np.ndarray) -> np.ndarray:
        points = np.asarray(points_mm, dtype=float).reshape(-1, 3)
        return points + self.displacement(points)

    def inverse(self, points_mm: np.ndarray) -> np.ndarray:
        """The prior points that `forward` moves onto `points_mm` (fixed point: the warp is gentle)."""
        target = np.asarray(points_mm, dtype=float).reshape(-1, 3)
        source = target.copy()
        for _ in range(50):
            step = target - self.displacement(source) - source
            source += step
            if np.abs(step).max() < 1e-6:
                break
        return source


@dataclass(frozen=True)
class FollowUpCase:
    prior: Phantom
    follow: Phantom  # posed: on the scanner's grid, the anatomy moved
    truth: dict


def generate_follow_up(prior_spec: PhantomSpec, months: float, seed: int, diaphragm_mm: float = 0.0) -> FollowUpCase:
    """The follow-up phantom and its truth against the prior phantom of `prior_spec`; with
    `diaphragm_mm`, a non-linear breathing change on top of the pose (`DiaphragmWarp`)."""
    prior = generate_phantom(prior_spec)
    plan = plan_follow_up(prior.nodules, months, seed)

    def edit(nodules: list[Nodule], place_one) -> list[Nodule]:
        kept = []
        for nodule_id, nodule in enumerate(nodules, 1):
            if nodule_id == plan.resolved:
                continue
            scale = plan.volume_factor[nodule_id] ** (1 / 3)
            kept.append(replace(nodule, diameter_mm=round(nodule.diameter_mm * scale, 2)))
        return [*kept, place_one(plan.new_diameter_mm, seed)]

    follow = generate_phantom(prior_spec, edit_nodules=edit, noise_seed=seed + 7919)
    centre = prior.volume.voxel_to_patient(np.array(prior.volume.shape[::-1], dtype=float) / 2 - 0.5)
    transform = plan.prior_to_current(centre)
    warp = _diaphragm_warp(prior, diaphragm_mm) if diaphragm_mm else None
    follow = _posed(_warped(follow, warp) if warp else follow, transform)
    truth = _truth(prior, follow, plan, transform)
    if warp:  # the matrix alone no longer maps the prior: say so, and keep the warp's parameters
        truth["diaphragm_warp"] = {k: round(float(v), 3) for k, v in vars(warp).items()}
    return FollowUpCase(prior, follow, truth)


def _diaphragm_warp(prior: Phantom, base_mm: float) -> DiaphragmWarp:
    """The warp spanning the prior's lungs: the slices holding air enclosed by the body."""
    voxels = prior.volume.voxels
    air = voxels < -400
    labels, _ = ndimage.label(air)
    touching = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(),
                                         labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    lung_slices = np.nonzero((air & ~np.isin(labels, touching)).any(axis=(1, 2)))[0]
    z = [prior.volume.voxel_to_patient((0.0, 0.0, float(k)))[2] for k in (lung_slices.min(), lung_slices.max())]
    centre = prior.volume.voxel_to_patient(np.array(voxels.shape[::-1], dtype=float) / 2 - 0.5)
    return DiaphragmWarp(base_mm, max(z), min(z), float(centre[0]))


def _warped(phantom: Phantom, warp: DiaphragmWarp) -> Phantom:
    """The phantom's anatomy moved by the warp, slice by slice (memory stays one slice of points)."""
    volume = phantom.volume
    rows, cols = np.mgrid[0:volume.shape[1], 0:volume.shape[2]]
    moved = np.empty_like(volume.voxels)
    to_voxel = np.linalg.inv(volume.affine)
    for k in range(volume.shape[0]):
        voxel = np.stack([cols.ravel(), rows.ravel(), np.full(rows.size, k), np.ones(rows.size)]).astype(float)
        source = warp.inverse((volume.affine @ voxel)[:3].T)
        i, j, kk = (to_voxel @ np.vstack([source.T, np.ones(len(source))]))[:3]
        moved[k] = ndimage.map_coordinates(volume.voxels, [kk, j, i], order=1, mode="nearest").reshape(rows.shape)
    nodules = []
    for item in phantom.nodules:
        centre = warp.forward(np.array(item["centre_mm"]))[0]
        nodules.append({**item, "centre_mm": [round(float(v), 3) for v in centre]})
    return replace(phantom, volume=Volume(moved, volume.affine, metadata=volume.metadata), nodules=nodules)


def _posed(phantom: Phantom, prior_to_current: np.ndarray) -> Phantom:
    """The phantom's anatomy moved by the transform, on the same voxel grid (the scanner's)."""
    volume = phantom.volume
    affine = volume.affine
    # output voxel (i, j, k) -> its patient point -> the un-posed point it shows -> the input voxel
    voxel_map = np.linalg.inv(affine) @ np.linalg.inv(prior_to_current) @ affine
    permute = np.zeros((4, 4))
    permute[[0, 1, 2, 3], [2, 1, 0, 3]] = 1  # (i, j, k) <-> the array's (k, j, i)
    array_map = permute @ voxel_map @ permute
    moved = ndimage.affine_transform(volume.voxels.astype(np.float32), array_map[:3, :3], array_map[:3, 3],
                                     order=1, mode="constant", cval=AIR)
    voxels = np.clip(np.rint(moved), -1024, 3071).astype(np.int16)
    voxels[:, phantom.outside_fov] = int(AIR)
    nodules = []
    for item in phantom.nodules:
        centre = (prior_to_current @ np.array([*item["centre_mm"], 1.0]))[:3]
        nodules.append({**item, "centre_mm": [round(float(v), 3) for v in centre],
                        "centre_voxel": [round(float(v), 2) for v in volume.patient_to_voxel(centre)]})
    return replace(phantom, volume=Volume(voxels, affine, metadata=volume.metadata), nodules=nodules)


def _truth(prior: Phantom, follow: Phantom, plan: FollowUpPlan, transform: np.ndarray) -> dict:
    days = plan.months * DAYS_PER_MONTH
    prior_ids = [n["id"] for n in prior.nodules if n["id"] != plan.resolved]
    matches = []
    for prior_item, current_item in zip([n for n in prior.nodules if n["id"] != plan.resolved], follow.nodules):
        factor = plan.volume_factor[prior_item["id"]]
        grown_mm = current_item["diameter_mm"] - prior_item["diameter_mm"]
        matches.append({
            "prior_id": prior_item["id"], "current_id": current_item["id"],
            # what a reader applying Lung-RADS should say (a small nodule can grow in volume within 1.5 mm)
            "status": "growing" if grown_mm > GROWTH_MM else "stable",
            "designed": "grown" if factor > 1 else "unchanged", "designed_volume_factor": factor,
            "prior_diameter_mm": prior_item["diameter_mm"], "current_diameter_mm": current_item["diameter_mm"],
            "prior_volume_mm3": prior_item["volume_mm3"], "current_volume_mm3": current_item["volume_mm3"],
            "doubling_time_days": round(days * math.log(2) / math.log(factor), 1) if factor > 1 else None})
    new = follow.nodules[len(prior_ids)]
    return {"months": plan.months, "days": round(days, 1), "plan_seed": plan.seed,
            "prior_seed": prior.spec.seed, "prior_to_current": transform.round(6).tolist(),
            "shift_mm": list(plan.shift_mm), "rotation_deg": plan.rotation_deg, "breathing": plan.breathing,
            "matches": matches, "resolved": [{"prior_id": plan.resolved}],
            "new": [{"current_id": new["id"], "diameter_mm": new["diameter_mm"]}],
            "prior_nodules": prior.nodules, "current_nodules": follow.nodules}


def write_follow_up_case(out_dir: Path, prior_seed: int, months: float, seed: int, matrix: int = 512,
                         slice_thickness_mm: float | None = None, diaphragm_mm: float = 0.0) -> tuple[Path, Path]:
    """The follow-up as a DICOM series (same patient as the prior demo case, a new study dated
    `months` later) plus `truth.json`; returns both paths."""
    from pydicom.uid import generate_uid

    from workstation.dicom.write import GE_LIKE, SIEMENS_LIKE, write_ct_series

    spec = PhantomSpec.from_seed(prior_seed, matrix=matrix, slice_thickness_mm=slice_thickness_mm)
    case = generate_follow_up(spec, months, seed, diaphragm_mm)
    follow, truth, prior_tags = case.follow, case.truth, case.prior.tags
    prior_date = dt.datetime.strptime(str(prior_tags["StudyDate"]), "%Y%m%d")
    study_date = (prior_date + dt.timedelta(days=round(months * DAYS_PER_MONTH))).strftime("%Y%m%d")
    uid_seed = f"follow-up-{prior_seed}-{seed}-{months}-{matrix}-{spec.slice_thickness_mm}"
    uid_seed += f"-diaphragm-{diaphragm_mm}" if diaphragm_mm else ""  # other pixels: other UIDs
    tags = {**prior_tags, "StudyDate": study_date, "AccessionNumber": f"FU{seed:06d}{prior_seed:04d}"[:16],
            "StudyDescription": "CT CHEST FOLLOW-UP (synthetic phantom)",
            "StudyInstanceUID": str(generate_uid(entropy_srcs=[uid_seed, "study"])),
            "SeriesInstanceUID": str(generate_uid(entropy_srcs=[uid_seed, "series"]))}
    out_dir = Path(out_dir)
    series_dir = out_dir / "dicom"
    write_ct_series(follow.volume, series_dir, tags, style=GE_LIKE if seed % 2 else SIEMENS_LIKE,
                    outside_fov=follow.outside_fov, uid_seed=uid_seed)
    truth = {**truth, "study_uid": tags["StudyInstanceUID"], "series_uid": tags["SeriesInstanceUID"],
             "study_date": study_date, "prior_study_date": prior_tags["StudyDate"]}
    truth_path = out_dir / "truth.json"
    truth_path.write_text(json.dumps(truth, indent=1))
    return series_dir, truth_path
