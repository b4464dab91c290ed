"""Batch screening on dask.distributed (issue #25 item 4): the AI over many library studies, on
this machine's cores (a LocalCluster of single-threaded worker processes) or on a Dask scheduler
the site runs on other machines. Workers only compute (load the series, run the model); this
process records every run as the viewer's Run AI does (analysis, findings, heatmap, audit row),
one writer for the review store. A study that fails is reported with its reason and never stops
the others; cancel stops what has not started.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job, Progress


@dataclass
class BatchReport:
    recorded: dict[str, int] = field(default_factory=dict)  # study UID -> analysis id
    failed: dict[str, str] = field(default_factory=dict)  # study UID -> reason
    findings: int = 0


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
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    return Client(cluster)


def analyses_on_cluster(tasks: dict[str, list[Path]], bundle, *, workers: int = 2, scheduler: str | None = None,
                        device: str = "cpu", threshold: float | None = None, cancel: CancelToken | None = None
                        ) -> Iterator[tuple[str, object]]:
    """(task key, (SeriesMetadata, Analysis, affine, shape) or the exception) as each task finishes."""
    from dask.distributed import as_completed

    cancel = cancel or CancelToken()
    client = _client(scheduler, workers)
    try:
        futures = {client.submit(analyze_task, [str(p) for p in paths], str(bundle.folder), device, threshold,
                                 pure=False, key=f"analyze-{key}"): key for key, paths in tasks.items()}
        for future in as_completed(futures):
            if cancel.cancelled:
                client.cancel(list(futures))
                cancel.check()
            try:
                yield futures[future], future.result()
            except Exception as exc:  # noqa: BLE001 - a worker's failure of any kind is that task's alone
                yield futures[future], exc
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
    report = BatchReport()
    yield Progress(0, len(series_folders), f"Analysing {len(series_folders)} studies")
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


def unread_studies(store, library) -> Iterable[dict]:
    """Library studies without any recorded AI run: the screening backlog."""
    analysed = {row[0] for row in store.connection.execute("SELECT DISTINCT study_uid FROM analyses")}
    return [study for study in library.studies() if study["study_uid"] not in analysed]
