"""Priors and growth (issue #24): registration plus matching of a 512x512x300 phantom pair on 2 CPU
threads (target <= 15 s), matching accuracy on 20 phantom pairs (correct pairings / all, new and
resolved called), and the volume-change error against each pair's truth.

The 20 pairs use truth-seeded findings: each phantom's own nodules (centre, long axis, voxel volume)
stand in for the accepted findings of both reads, so the accuracy measures registration and matching,
not the detector (the AI on 40 scans would take far longer than this shared 2-core machine allows).
Their volume change is therefore the phantom's voxelised volumes against the designed factor. The
volume change the AI itself measures is taken on a few pairs (`--ai-pairs`, default 3): the demo
model run on both scans, each truth nodule's nearest AI finding within its radius as its measurement.

    .venv/bin/python -m tests.benchmarks.bench_compare [--pairs 20] [--matrix 256] [--ai-pairs 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from types import SimpleNamespace

import numpy as np

from workstation.imaging.follow_up import generate_follow_up
from workstation.imaging.phantom import PhantomSpec
from workstation.imaging.registration import register_job
from workstation.jobs import run_job
from workstation.review.comparison import match_nodules

THREADS = 2
MONTHS = (6.0, 12.0, 24.0)


def _threads() -> None:
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(THREADS)


def _seeded(nodules: list[dict]) -> list[SimpleNamespace]:
    """The phantom's nodules as accepted findings (numbered by their truth id)."""
    return [SimpleNamespace(number=n["id"], center_mm=tuple(n["centre_mm"]), diameter_mm=n["diameter_mm"],
                            volume_mm3=n["volume_mm3"], type="solid") for n in nodules]


def _case(index: int, matrix: int, slice_thickness_mm: float | None = None, diaphragm_mm: float = 0.0):
    spec = PhantomSpec.from_seed(300 + index, matrix=matrix, slice_thickness_mm=slice_thickness_mm)
    return generate_follow_up(spec, MONTHS[index % len(MONTHS)], 700 + index, diaphragm_mm)


def _match(case) -> tuple[object, list, float, float]:
    """Registration then matching of the truth-seeded findings; (registration, pairs, seconds, CPU
    seconds of all threads: the fairer figure on a shared machine)."""
    start, cpu = time.perf_counter(), time.process_time()
    registration = run_job(register_job(case.follow.volume, case.prior.volume))
    pairs = match_nodules(_seeded(case.truth["current_nodules"]), _seeded(case.truth["prior_nodules"]),
                          registration.to_current, case.truth["days"],
                          current_voxel_mm=max(case.follow.volume.spacing_mm),
                          prior_voxel_mm=max(case.prior.volume.spacing_mm))
    return registration, pairs, time.perf_counter() - start, time.process_time() - cpu


def timing_row(diaphragm_mm: float = 0.0) -> tuple[str, float, float, str]:
    """The 512x512x300 pair: registration plus matching, 2 threads (phantom generation not timed);
    with `diaphragm_mm`, a breathing change that needs the deformable stage."""
    case = _case(0, 512, slice_thickness_mm=280.0 / 300, diaphragm_mm=diaphragm_mm)
    shape = case.follow.volume.shape
    registration, pairs, seconds, cpu = _match(case)
    warped = f", lung bases {diaphragm_mm:g} mm higher" if diaphragm_mm else ""
    return (f"Registration + matching, {shape[2]}x{shape[1]}x{shape[0]} pair{warped}, CPU {THREADS} threads (s)",
            seconds, -15.0, f"CPU time {cpu:.1f} s (both threads); {registration.statement}; {len(pairs)} pairs")


def accuracy(pairs_count: int, matrix: int) -> dict:
    """Pairings, statuses, new/resolved calls, doubling times and volume ratios over `pairs_count` pairs."""
    tally = {"pairings": 0, "pairings_right": 0, "new": 0, "new_right": 0, "resolved": 0, "resolved_right": 0,
             "status_right": 0, "vdt": 0, "vdt_inside": 0, "volume_errors": [], "seconds": [], "quality": [],
             "wrong": []}
    for index in range(pairs_count):
        case = _case(index, matrix)
        registration, pairs, seconds, _cpu = _match(case)
        truth = case.truth
        tally["seconds"].append(seconds)
        tally["quality"].append(registration.quality)
        found = {(p.current.number if p.current else None, p.prior.number if p.prior else None): p for p in pairs}
        for match in truth["matches"]:
            tally["pairings"] += 1
            pair = found.get((match["current_id"], match["prior_id"]))
            if pair is None:
                tally["wrong"].append(f"pair {index}: prior {match['prior_id']} -> current {match['current_id']}")
                continue
            tally["pairings_right"] += 1
            tally["status_right"] += pair.status == match["status"]
            if match["designed"] == "grown":
                tally["volume_errors"].append(pair.volume_change / match["designed_volume_factor"] - 1)
                if pair.doubling_range_days:
                    tally["vdt"] += 1
                    fast, slow = pair.doubling_range_days
                    tally["vdt_inside"] += fast <= match["doubling_time_days"] <= slow
        for kind, key in (("new", "current_id"), ("resolved", "prior_id")):
            for item in truth[kind]:
                tally[kind] += 1
                ids = (item[key], None) if kind == "new" else (None, item[key])
                right = ids in found and found[ids].status == kind
                tally[f"{kind}_right"] += right
                if not right:
                    tally["wrong"].append(f"pair {index}: {kind} {item[key]} not called")
    return tally


def accuracy_rows(pairs_count: int, matrix: int) -> list[tuple[str, float, float, str]]:
    t = accuracy(pairs_count, matrix)
    errors = [abs(e) for e in t["volume_errors"]]
    every = t["pairings"] + t["new"] + t["resolved"]
    right = t["pairings_right"] + t["new_right"] + t["resolved_right"]
    note = f"{pairs_count} pairs at {matrix}x{matrix}, truth-seeded findings; {right} of {every}"
    return [
        ("Matching: correct pairings / all (matched + new + resolved)", right / every, 1.0,
         note + (f"; wrong: {', '.join(t['wrong'])}" if t["wrong"] else "")),
        ("Matching: nodules paired correctly / truth pairs", t["pairings_right"] / t["pairings"], 1.0,
         f"{t['pairings_right']} of {t['pairings']}"),
        ("Matching: new nodules called new", t["new_right"] / t["new"], 1.0, f"{t['new_right']} of {t['new']}"),
        ("Matching: resolved nodules called resolved", t["resolved_right"] / t["resolved"], 1.0,
         f"{t['resolved_right']} of {t['resolved']}"),
        ("Matching: status as the truth's Lung-RADS status / paired", t["status_right"] / max(t["pairings_right"], 1),
         float("nan"), "growing if the long axis grew > 1.5 mm, else stable"),
        ("Volume change (seeded voxel volumes) vs designed, median |error|", statistics.median(errors), float("nan"),
         f"max {max(errors):.3f} over {len(errors)} grown nodules; the phantom's voxelisation only"),
        ("Doubling time of the truth inside the stated range / grown", t["vdt_inside"] / max(t["vdt"], 1), 1.0,
         f"{t['vdt_inside']} of {t['vdt']}"),
        ("Registration + matching per pair (s), median", statistics.median(t["seconds"]), float("nan"),
         f"max {max(t['seconds']):.1f} s; alignment {_qualities(t['quality'])}"),
    ]


def _qualities(qualities: list[str]) -> str:
    return ", ".join(f"{q} {qualities.count(q)}" for q in ("good", "fair", "poor") if qualities.count(q))


def ai_volume_rows(pairs_count: int, matrix: int) -> list[tuple[str, float, float, str]]:
    """The demo model's volumes on both scans of a few pairs against the designed growth."""
    import torch

    from workstation.inference.registry import find_model
    from workstation.inference.runner import run_inference_job

    torch.set_num_threads(THREADS)
    bundle = find_model()
    errors, missed, seconds = [], 0, []
    for index in range(pairs_count):
        case = _case(index, matrix)
        start = time.perf_counter()
        runs = {side: run_job(run_inference_job(getattr(case, side).volume, bundle, "cpu", threads=THREADS))
                for side in ("prior", "follow")}
        seconds.append(time.perf_counter() - start)
        for match in case.truth["matches"]:
            if match["designed"] != "grown":
                continue
            prior = next(n for n in case.truth["prior_nodules"] if n["id"] == match["prior_id"])
            current = next(n for n in case.truth["current_nodules"] if n["id"] == match["current_id"])
            then, now = _nearest(runs["prior"].findings, prior), _nearest(runs["follow"].findings, current)
            if then is None or now is None:
                missed += 1
                continue
            errors.append(now.volume_mm3 / then.volume_mm3 / match["designed_volume_factor"] - 1)
    if not errors:
        return [("Volume change (AI volumes) vs designed", math.nan, math.nan, f"no grown nodule found on both scans "
                                                                               f"({missed} missed)")]
    absolute = [abs(e) for e in errors]
    return [("Volume change (AI volumes) vs designed, median |error|", statistics.median(absolute), float("nan"),
             f"max {max(absolute):.2f}, mean signed {statistics.mean(errors):+.2f}, {len(errors)} grown nodules on "
             f"{pairs_count} pairs at {matrix}x{matrix} ({missed} not found on both scans); demo model "
             f"{bundle.version}, {statistics.mean(seconds):.0f} s per pair for both runs")]


def _nearest(findings, nodule: dict):
    centre = np.array(nodule["centre_mm"])
    near = [(float(np.linalg.norm(np.array(f.center_mm) - centre)), f) for f in findings]
    near = [(d, f) for d, f in near if d <= max(nodule["diameter_mm"] / 2, 3.0)]
    return min(near, key=lambda item: item[0])[1] if near else None


def main(pairs: int = 20, matrix: int = 256, ai_pairs: int = 0) -> list[tuple[str, float, float, str]]:
    _threads()
    rows = [timing_row(), timing_row(diaphragm_mm=25.0)] + accuracy_rows(pairs, matrix)
    return rows + (ai_volume_rows(ai_pairs, matrix) if ai_pairs else [])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--ai-pairs", type=int, default=3)
    parser.add_argument("--timing-only", action="store_true", help="only the 512x512x300 pairs' timing")
    args = parser.parse_args()
    _threads()
    rows = [timing_row(), timing_row(diaphragm_mm=25.0)] if args.timing_only else main(args.pairs, args.matrix, args.ai_pairs)
    for name, value, target, note in rows:
        target_text = "" if math.isnan(target) else (f"<={-target:g}" if target < 0 else f">={target:g}")
        print(f"{name:<66} {value:8.3f} {target_text:>8}  {note}")
