"""One entry point for every benchmark: `make bench` (or `python -m tests.benchmarks.run`)."""

from __future__ import annotations

import math
import platform
import os

from tests.benchmarks import bench_load


def main() -> None:
    print(f"# benchmarks on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{'measure':<58} {'ratio':>7} {'target':>7}  result  notes")
    for name, ratio, target, note in bench_load.main():
        verdict = "" if math.isnan(target) else ("PASS" if ratio <= target else "MISS")
        target_text = "" if math.isnan(target) else f"<={target:.2f}"
        print(f"{name:<58} {ratio:7.2f} {target_text:>7}  {verdict:<6}  {note}")


if __name__ == "__main__":
    main()
