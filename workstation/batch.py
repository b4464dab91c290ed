"""Batch screening on dask.distributed (issue #25 item 4): the AI over many library studies, on
this machine's cores (a LocalCluster of single-threaded worker processes) or on a Dask scheduler
the site runs on other machines. Workers only compute (load the series, run the model); this
process records every run as the viewer's Run AI does (analysis, findings, heatmap, audit row),
one writer for the review store. A study that fails is reported with its reason and never stops
the others; cancel stops what has not started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job, Progress


@dataclass
class BatchReport:
    recorded: dict[str, int] = field(default_factory=dict)  # study UID -> analysis id
    failed: dict[str, str] = field(default_factory=dict)  # study UID -> reason
    findings: int = 0


def analyze_task(series_folder: str, bundle_folder: str, device: str, threshold: float | None):
    """On a worker: the series' volume and the model's Analysis (a plain object Dask can send)."""
    import torch

    from workstation.dicom.load import load_largest_series_job
    from workstation.inference.bundle import ModelBundle
    from workstation.inference.runner import run_inference_job
    from workstation.jobs import run_job

    torch.set_num_threads(1)  # one process per core: threads would fight over the same cores
    volume = run_job(load_largest_series_job([Path(series_folder)]))
    bundle = ModelBundle.from_folder(Path(bundle_folder))
    analysis = run_job(run_inference_job(volume, bundle, device=device, threshold=threshold))
    return volume.metadata.study_uid, volume.metadata.series_uid, analysis


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


def batch_analyze_job(store, user, series_folders: dict[str, Path], bundle, *, workers: int = 2,
                      scheduler: str | None = None, device: str = "cpu", threshold: float | None = None,
                      cancel: CancelToken | None = None) -> Job[BatchReport]:
    """Analyse each study (its series folder) on the cluster; record each run as it arrives."""
    from dask.distributed import as_completed

    from workstation.review.analyses import record_analysis

    cancel = cancel or CancelToken()
    user.require("run_ai")
    report = BatchReport()
    client = _client(scheduler, workers)
    try:
        futures = {client.submit(analyze_task, str(folder), str(bundle.folder), device, threshold, pure=False,
                                 key=f"analyze-{uid}"): uid for uid, folder in series_folders.items()}
        yield Progress(0, len(futures), f"Analysing {len(futures)} studies on {len(client.scheduler_info()['workers'])} "
                                        "worker(s)")
        for done, future in enumerate(as_completed(futures), 1):
            uid = futures[future]
            if cancel.cancelled:
                client.cancel(list(futures))
                cancel.check()
            try:
                study_uid, series_uid, analysis = future.result()
                recorded = record_analysis(store, user, study_uid, series_uid, analysis)  # heatmap kept too
                report.recorded[uid] = recorded.analysis_id
                report.findings += len(analysis.findings)
            except WorkstationError as exc:
                report.failed[uid] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a worker's failure of any kind is that study's, not the batch's
                report.failed[uid] = f"{type(exc).__name__}: {str(exc)[:200]}"
            yield Progress(done, len(futures), f"{done} of {len(futures)} studies analysed")
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and not scheduler:
            cluster.close()
    return report


def unread_studies(store, library) -> Iterable[dict]:
    """Library studies without any recorded AI run: the screening backlog."""
    analysed = {row[0] for row in store.connection.execute("SELECT DISTINCT study_uid FROM analyses")}
    return [study for study in library.studies() if study["study_uid"] not in analysed]
