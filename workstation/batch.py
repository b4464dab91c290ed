"""Batch screening on dask.distributed (issue #25 item 4): the AI over many library studies, on
this machine's cores (a LocalCluster of single-threaded worker processes) or on a Dask scheduler
the site runs on other machines. Workers only compute (load the series, run the model); this
process records every run as the viewer's Run AI does (analysis, findings, heatmap, audit row),
one writer for the review store. A study that fails is reported with its reason and never stops
the others; cancel stops what has not started. A worker process that dies (killed, out of memory)
takes only its own study down: the study is tried once more on a fresh worker (the local
cluster's scheduler allows one failure, and each worker is given one study at a time so that no
bystander is counted against), then reported. Resumable: a study this model (the same weights)
has already been run on is skipped, so a batch run again after an interruption does the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job, Progress


RETRIES_AFTER_A_DEAD_WORKER = 1


@dataclass
class BatchReport:
    recorded: dict[str, int] = field(default_factory=dict)  # study UID -> analysis id
    failed: dict[str, str] = field(default_factory=dict)  # study UID -> reason
    findings: int = 0
    skipped: list[str] = field(default_factory=list)  # study UIDs this model had already been run on


def analyze_task(paths: list[str], bundle_folder: str, device: str, threshold: float | None):
    """On a worker: the largest series under `paths`, and the model's Analysis on it (plain
    objects Dask can send back)."""
    import torch

    from workstation.dicom.load import load_largest_series_job
    from workstation.inference.bundle import ModelBundle
    from workstation.inference.runner import run_inference_job
    from workstation.jobs import run_job

    torch.set_num_threads(1)  # one process per core: threads would fight over the same cores
    volume = run_job(load_largest_series_job([Path(p) for p in paths]))
    bundle = ModelBundle.from_folder(Path(bundle_folder))
    analysis = run_job(run_inference_job(volume, bundle, device=device, threshold=threshold))
    return volume.metadata, analysis, volume.affine, volume.shape


def _client(scheduler: str | None, workers: int):
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise WorkstationError(f"The Dask scheduler at {scheduler} did not answer ({exc})") from exc
    import dask

    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers (to hand memory back to the
    # system sooner); glibc then maps and faults in every large array afresh, and one analysis took
    # 1.5 s instead of 0.9 s (bench_batch, 2026-12-01). A worker here runs one study after another
    # with arrays of the same sizes, so glibc's own reuse is kept; one thread per library as before.
    environ = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
    with dask.config.set({"distributed.scheduler.allowed-failures": RETRIES_AFTER_A_DEAD_WORKER,
                          "distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=40)
    return Client(cluster)


def analyses_on_cluster(tasks: dict[str, list[Path]], bundle, *, workers: int = 2, scheduler: str | None = None,
                        device: str = "cpu", threshold: float | None = None, cancel: CancelToken | None = None,
                        task=analyze_task) -> Iterator[tuple[str, object]]:
    """(task key, (SeriesMetadata, Analysis, affine, shape) or the exception) as each task
    finishes; `task` is what a worker runs per series (analyze_task; the tests give others)."""
    from dask.distributed import KilledWorker, as_completed

    cancel = cancel or CancelToken()
    client = _client(scheduler, workers)
    try:
        # as many studies in flight as the cluster has threads, one more each time one finishes:
        # a worker then holds only the study it runs, and when it dies no other study is counted
        # against (the scheduler's own queue does not hold back a handful of studies)
        waiting = iter(tasks.items())
        futures: dict = {}
        finished = as_completed()

        def submit_next() -> None:
            key, paths = next(waiting, (None, None))
            if key is not None:
                future = client.submit(task, [str(p) for p in paths], str(bundle.folder), device, threshold,
                                       pure=False, key=f"analyze-{key}")
                futures[future] = key
                finished.add(future)

        for _ in range(min(len(tasks), max(1, sum(client.nthreads().values())))):
            submit_next()
        for future in finished:
            if cancel.cancelled:
                client.cancel(list(futures))
                cancel.check()
            try:
                outcome = future.result()
            except KilledWorker:
                outcome = WorkstationError(
                    "the worker process running it died (killed, or out of memory), and again when it was tried "
                    "once more on a fresh worker; the other studies went on")
            except Exception as exc:  # noqa: BLE001 - a worker's failure of any kind is that task's alone
                outcome = exc
            submit_next()
            yield futures[future], outcome
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and not scheduler:
            cluster.close()


def batch_analyze_job(store, user, series_folders: dict[str, Path], bundle, *, workers: int = 2,
                      scheduler: str | None = None, device: str = "cpu", threshold: float | None = None,
                      cancel: CancelToken | None = None) -> Job[BatchReport]:
    """Analyse each study (its series folder) on the cluster; record each run as it arrives."""
    from workstation.review.analyses import record_analysis

    user.require("run_ai")
    report = BatchReport(skipped=sorted(already_analysed(store, series_folders, bundle)))
    series_folders = {uid: folder for uid, folder in series_folders.items() if uid not in report.skipped}
    yield Progress(0, len(series_folders), f"Analysing {len(series_folders)} studies")
    if not series_folders:
        return report
    tasks = {uid: [folder] for uid, folder in series_folders.items()}
    for done, (uid, outcome) in enumerate(analyses_on_cluster(tasks, bundle, workers=workers, scheduler=scheduler,
                                                              device=device, threshold=threshold, cancel=cancel), 1):
        if isinstance(outcome, Exception):
            report.failed[uid] = str(outcome) if isinstance(outcome, WorkstationError) else \
                f"{type(outcome).__name__}: {str(outcome)[:200]}"
        else:
            metadata, analysis, _affine, _shape = outcome
            recorded = record_analysis(store, user, metadata.study_uid, metadata.series_uid, analysis)  # + heatmap
            report.recorded[uid] = recorded.analysis_id
            report.findings += len(analysis.findings)
        yield Progress(done, len(series_folders), f"{done} of {len(series_folders)} studies analysed")
    return report


def already_analysed(store, study_uids: Iterable[str], bundle) -> set[str]:
    """Those of `study_uids` that this bundle (the same weights) has already been run on."""
    done = {row[0] for row in store.connection.execute(
        "SELECT DISTINCT study_uid FROM analyses WHERE model_sha256 = ?", (bundle.weights_sha256,))}
    return {uid for uid in study_uids if uid in done}


def unread_studies(store, library) -> Iterable[dict]:
    """Library studies without any recorded AI run: the screening backlog."""
    analysed = {row[0] for row in store.connection.execute("SELECT DISTINCT study_uid FROM analyses")}
    return [study for study in library.studies() if study["study_uid"] not in analysed]
