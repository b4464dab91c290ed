"""Crash safety in benchmark mode: SIGKILL a decision storm 1,000 times (issue #5).

    python -m tests.benchmarks.bench_crash [RUNS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.review.storm import kill_during_storm


def main(runs: int = 1000) -> None:
    failures = []
    started = time.time()
    for seed in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            problems = kill_during_storm(Path(folder) / "review.db", seed)
        if problems:
            failures.append((seed, problems))
        if (seed + 1) % 100 == 0:
            print(f"{seed + 1} kills, {len(failures)} with problems ({time.time() - started:.0f}s)", flush=True)
    print(f"{runs} SIGKILLs: {runs - len(failures)} clean, {len(failures)} with problems {failures[:5]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
