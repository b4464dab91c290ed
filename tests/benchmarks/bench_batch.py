"""Batch screening throughput (issue #25 measures): STUDIES phantom studies (128x128 matrix,
2.5 mm slices) analysed four ways in the same run, each in a fresh copy of one data folder:

- `workstation analyze STUDY` run on them one after another, one process each, as a person
  would type it (torch's default threads: both cores);
- the same analyses one after another in one process with one torch thread (what a worker does,
  without Dask: the like-for-like baseline for one worker);
- `workstation batch --unread --workers 1` and `--workers 2` (Dask LocalCluster, one thread a
  worker), cluster start-up included.

Goals: 2 workers >= 1.7x one worker; one worker within 5% of the sequential loop (at least 0.95
of its rate). Memory: the peak resident set of each worker process (sampled every 0.2 s).

To keep the run to minutes the model is the demo network at 2 mm (a user-installed copy of its
bundle, without its second stage and large-lesion pass): the same code path, a fraction of the
shipped model's cost per study; the matrix matters little, since the network's work follows the
lungs' size in millimetres. Every mode must record the same number of findings (the model is
deterministic), or the run says so.

    .venv/bin/python -m tests.benchmarks.bench_batch [--studies 20] [--spacing 3.0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STUDIES = 20
MODEL = "bench-demo"


def _cli(home: Path, *arguments: str, threads: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKSTATION_HOME": str(home)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run([sys.executable, "-m", "workstation.cli", *arguments], env=env, capture_output=True,
                          text=True, check=False)


def _model(home: Path, spacing_mm: float) -> None:
    from workstation.paths import shipped

    folder = home / "models" / MODEL
    shutil.copytree(shipped("models") / "lung-nodule-demo", folder,
                    ignore=shutil.ignore_patterns("*.py", "checkpoint*", "snapshot*", "evaluation*", "fpr*"))
    meta = json.loads((folder / "metadata.json").read_text())
    meta.pop("false_positive_reduction", None)
    meta.pop("large_lesion_pass", None)
    meta.update(name=MODEL, test_time_flips=[[]])
    meta["input"].update(spacing_mm=[spacing_mm] * 3, patch_size=[48, 48, 48])
    (folder / "metadata.json").write_text(json.dumps(meta))


class TreeSampler:
    """Peak resident memory per descendant process of this one, and the load average, sampled
    in a thread while a mode runs."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self.peaks: dict[int, tuple[float, str]] = {}  # pid -> (MB, command line)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = self._psutil.Process()
        while not self._stop.wait(0.2):
            for child in me.children(recursive=True):
                try:
                    mb = child.memory_info().rss / 2**20
                    line = " ".join(child.cmdline())[:120]
                except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                    continue
                if mb > self.peaks.get(child.pid, (0.0, ""))[0]:
                    self.peaks[child.pid] = (mb, line)

    def worker_peaks_mb(self) -> list[float]:
        """Dask worker processes: spawned by multiprocessing (the CLI and the resource tracker are not)."""
        return sorted((mb for mb, line in self.peaks.values() if "multiprocessing" in line and "spawn" in line
                       and "resource_tracker" not in line), reverse=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _findings(home: Path) -> tuple[int, int]:
    """(analyses, findings) recorded in the data folder's review store."""
    connection = sqlite3.connect(home / "review.db")
    try:
        return (connection.execute("SELECT COUNT(*) FROM analyses").fetchone()[0],
                connection.execute("SELECT COUNT(*) FROM findings").fetchone()[0])
    finally:
        connection.close()


def _in_process_loop(home: Path, uids: list[str]) -> None:
    """Each study loaded and analysed in this one process, one torch thread (a worker's work)."""
    script = (
        "import sys, torch\n"
        "from workstation.cli.common import load_library_study\n"
        "from workstation.inference.registry import find_model\n"
        "from workstation.inference.runner import run_inference_job\n"
        "from workstation.jobs import run_job\n"
        "torch.set_num_threads(1)\n"
        f"bundle = find_model({MODEL!r})\n"
        "for uid in sys.argv[1:]:\n"
        "    run_job(run_inference_job(load_library_study(uid), bundle, 'cpu'))\n")
    env = {**os.environ, "WORKSTATION_HOME": str(home)}
    subprocess.run([sys.executable, "-c", script, *uids], env=env, check=True, capture_output=True)


def main(studies: int = STUDIES, spacing_mm: float = 2.0) -> list[tuple[str, float, float, str]]:
    from workstation.imaging.phantom import write_demo_case

    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        template = root / "template"
        for seed in range(studies):
            write_demo_case(root / "cases" / f"case-{seed}", seed=600 + seed, matrix=128, slice_thickness_mm=2.5)
        _model(template, spacing_mm)
        imported = _cli(template, "import", *(str(p / "dicom") for p in sorted((root / "cases").iterdir())))
        if imported.returncode:
            raise RuntimeError(imported.stderr[-2000:])
        uids = [s["study_uid"] for s in json.loads(_cli(template, "list", "--json").stdout)]
        assert len(uids) == studies, uids
        load_before = os.getloadavg()[0]
        results: dict[str, dict] = {}

        def measure(mode: str, run) -> None:
            home = root / mode
            shutil.copytree(template, home)
            cpu = _children_cpu()
            with TreeSampler() as sampler:
                start = time.perf_counter()
                run(home)
                seconds = time.perf_counter() - start
            results[mode] = {"seconds": seconds, "per_minute": studies / seconds * 60,
                             "cpu_s": _children_cpu() - cpu, "recorded": _findings(home),
                             "workers_mb": sampler.worker_peaks_mb(), "load": os.getloadavg()[0],
                             "peak_mb": max((mb for mb, _ in sampler.peaks.values()), default=float("nan"))}

        def cli_loop(home: Path) -> None:
            for uid in uids:
                done = _cli(home, "analyze", uid, "--model", MODEL, "--device", "cpu")
                if done.returncode:
                    raise RuntimeError(done.stderr[-2000:])

        def batch(workers: int):
            def run(home: Path) -> None:
                done = _cli(home, "batch", "--unread", "--workers", str(workers), "--model", MODEL)
                if done.returncode:
                    raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
            return run

        measure("analyze loop", cli_loop)
        measure("in-process loop", lambda home: _in_process_loop(home, uids))
        measure("batch 1 worker", batch(1))
        measure("batch 2 workers", batch(2))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    recorded = {mode: r["recorded"] for mode, r in results.items() if mode != "in-process loop"}
    same = len({value for value in recorded.values()}) == 1
    loop, alone, one, two = (results[m] for m in ("analyze loop", "in-process loop", "batch 1 worker",
                                                  "batch 2 workers"))
    conditions = f"load average {load_before:.1f} before the first mode, on {os.cpu_count()} cores"

    def note(mode: str) -> str:
        r = results[mode]
        recorded = "not recorded" if mode == "in-process loop" else \
            f"{r['recorded'][1]} findings recorded in {r['recorded'][0]} runs"
        return (f"{r['seconds']:.0f} s wall, {r['cpu_s']:.0f} s CPU for {studies} studies; {recorded}; "
                f"largest process {r['peak_mb']:.0f} MB; load average {r['load']:.1f} at its end")

    worker_mb = one["workers_mb"][:1] + two["workers_mb"][:2]
    return [
        (f"batch: `workstation analyze` x{studies}, one after another (studies/min)", loop["per_minute"],
         float("nan"), note("analyze loop") + f"; {conditions}"),
        (f"batch: the same analyses in one process, 1 thread (studies/min)", alone["per_minute"], float("nan"),
         note("in-process loop")),
        ("batch: --workers 1 (studies/min)", one["per_minute"], float("nan"), note("batch 1 worker")),
        ("batch: --workers 2 (studies/min)", two["per_minute"], float("nan"), note("batch 2 workers")),
        ("batch: 2 workers / 1 worker", two["per_minute"] / one["per_minute"], 1.7, ""),
        ("batch: 1 worker / `analyze` loop", one["per_minute"] / loop["per_minute"], 0.95,
         "goal: within 5% (or faster)"),
        ("batch: 1 worker / in-process loop (1 thread)", one["per_minute"] / alone["per_minute"], 0.95,
         "like for like: the same work and threads, without Dask"),
        ("batch: peak memory of a worker process (MB)", max(worker_mb, default=float("nan")), float("nan"),
         "workers' peaks: " + ", ".join(f"{mb:.0f}" for mb in worker_mb) +
         ("" if same else f"; MODES DISAGREE on what they recorded: {recorded}")),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=STUDIES)
    parser.add_argument("--spacing", type=float, default=2.0, help="the benchmark model's grid, mm")
    options = parser.parse_args()
    for name, value, target, text in main(options.studies, options.spacing):
        goal = "" if target != target else f">={target:g}"
        verdict = "" if not goal else ("PASS" if value >= target else "MISS")
        print(f"{name:<64} {value:8.2f} {goal:>7} {verdict:<5} {text}")
