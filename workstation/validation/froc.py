"""FROC on labelled scans (LUNA16's rules): a candidate hits a nodule when its centre lies within
the nodule's radius (at least 2 mm); later hits on a found nodule are ignored; every other
candidate is a false positive. Sensitivity at 1/8 ... 8 false positives per scan, their mean
(CPM), and 95% intervals by bootstrap over scans."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class ScanResult:
    """One scan's candidates (probability, centre) and labelled nodules (centre, diameter)."""

    candidates: Sequence[tuple[float, tuple[float, float, float]]]
    nodules: Sequence[tuple[tuple[float, float, float], float]]

    def hits(self) -> list[tuple[float, int | None]]:
        """(probability, nodule index or None) per candidate, most probable first."""
        out = []
        for probability, centre in sorted(self.candidates, key=lambda c: -c[0]):
            hit = None
            for index, (nodule_centre, diameter) in enumerate(self.nodules):
                if np.linalg.norm(np.subtract(centre, nodule_centre)) <= max(diameter / 2, 2.0):
                    hit = index
                    break
            out.append((probability, hit))
        return out


def froc(scans: Sequence[ScanResult]) -> dict:
    """{"nodules", "scans", "sensitivity" {rate: value}, "cpm"} over `scans`."""
    events = []
    total = sum(len(scan.nodules) for scan in scans)
    for index, scan in enumerate(scans):
        seen: set[int] = set()
        for probability, hit in scan.hits():
            if hit is None:
                events.append((probability, True))
            elif hit not in seen:
                seen.add(hit)
                events.append((probability, False))
    events.sort(key=lambda e: -e[0])
    detected = false_positives = 0
    best = {rate: 0.0 for rate in FP_RATES}
    for _probability, is_false in events:
        if is_false:
            false_positives += 1
        else:
            detected += 1
        fp_per_scan = false_positives / max(len(scans), 1)
        for rate in FP_RATES:
            if fp_per_scan <= rate:
                best[rate] = max(best[rate], detected / max(total, 1))
    return {"nodules": total, "scans": len(scans), "sensitivity": {str(r): round(v, 3) for r, v in best.items()},
            "cpm": round(float(np.mean(list(best.values()))), 3)}


def froc_with_intervals(scans: Sequence[ScanResult], repeats: int = 1000, seed: int = 0) -> dict:
    """froc() plus 2.5-97.5 percentile intervals from `repeats` bootstrap samples of the scans."""
    result = froc(scans)
    if not scans:
        return {**result, "interval_95": None}
    rng = np.random.default_rng(seed)
    samples = {str(rate): [] for rate in FP_RATES}
    cpms = []
    for _ in range(repeats):
        drawn = [scans[i] for i in rng.integers(0, len(scans), len(scans))]
        sample = froc(drawn)
        for rate, value in sample["sensitivity"].items():
            samples[rate].append(value)
        cpms.append(sample["cpm"])
    interval = {rate: [round(float(np.percentile(v, 2.5)), 3), round(float(np.percentile(v, 97.5)), 3)]
                for rate, v in samples.items()}
    interval["cpm"] = [round(float(np.percentile(cpms, 2.5)), 3), round(float(np.percentile(cpms, 97.5)), 3)]
    return {**result, "interval_95": interval}
