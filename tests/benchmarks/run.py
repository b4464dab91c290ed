"""One entry point for every benchmark: `make bench` (or `xvfb-run -a python -m tests.benchmarks.run`).

Each row prints the measured value, its target and PASS/MISS; load rows are ratios against
baselines measured in the same run (SimpleITK, a raw read of the same bytes)."""

from __future__ import annotations

import math
import os
import platform

from tests.benchmarks import (bench_batch, bench_compare, bench_hostile, bench_inference, bench_load, bench_network,
                              bench_report, bench_startup, bench_viewer)


def _verdict(value: float, target: float) -> tuple[str, str]:
    """Positive target: at least; negative: at most (absolute); ratios use 'at most' too."""
    if math.isnan(target):
        return "", ""
    if target < 0:
        return f"<={-target:g}", "PASS" if value <= -target else "MISS"
    return f">={target:g}", "PASS" if value >= target else "MISS"


def main() -> None:
    print(f"# benchmarks on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{'measure':<62} {'value':>8} {'target':>8}  result  notes")
    rows = [(name, ratio, -target if not math.isnan(target) else target, note)
            for name, ratio, target, note in bench_load.main() + bench_startup.main()]
    rows += bench_hostile.main()
    rows += bench_network.main()
    rows += bench_inference.main()
    rows += bench_batch.main()
    rows += bench_report.main()
    rows += bench_compare.main()  # the demo model's own volume change only when run alone (--ai-pairs)
    if os.environ.get("DISPLAY"):
        rows += bench_viewer.main()
    else:
        print("(viewer benchmarks skipped: no display; run under xvfb-run)")
    for name, value, target, note in rows:
        target_text, verdict = _verdict(value, target)
        print(f"{name:<62} {value:8.2f} {target_text:>8}  {verdict:<6}  {note}")


if __name__ == "__main__":
    main()
