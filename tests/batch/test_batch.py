"""`workstation batch` (#25 item 4): a backlog of library studies analysed on a Dask LocalCluster of
worker processes, every run recorded as Run AI records it; a broken study fails alone; run again,
what is done is skipped; a study whose worker is killed is tried once more, then reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.validation.test_site_evaluation import _coarse_demo_model
from workstation.cli import main
from workstation.imaging.phantom import write_demo_case
from workstation.library import StudyLibrary
from workstation.review.store import ReviewStore


@pytest.fixture(scope="module")
def backlog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("backlog")
    for seed in (41, 42, 43):
        write_demo_case(root / f"case-{seed}", seed=seed, matrix=128, slice_thickness_mm=10.0)
    return root


def test_a_backlog_on_dask_workers(backlog: Path, home: Path, capsys) -> None:
    model = _coarse_demo_model(home)
    assert main(["import", *(str(p / "dicom") for p in sorted(backlog.iterdir()))]) == 0
    library = StudyLibrary(home)
    studies = library.studies()
    broken = studies[2]
    for path in library.series_folder(library.series(broken["key"])[0]).glob("*.dcm"):
        path.write_bytes(b"not DICOM any more")  # the library's copy damaged on disk
    capsys.readouterr()
    assert main(["batch", "--unread", "--workers", "2", "--model", model]) == 1
    printed = capsys.readouterr().out
    assert "Analysed 2 of 3 studies" in printed and "failed: study" in printed
    store = ReviewStore.in_home(home)
    rows = store.connection.execute("SELECT study_uid, model_name FROM analyses").fetchall()
    audit = [json.loads(r[0] or "{}") for r in store.connection.execute(
        "SELECT new_value FROM audit WHERE action = 'analysis_run'")]
    store.close()
    assert sorted(r[0] for r in rows) == sorted(s["study_uid"] for s in studies[:2])
    assert {r[1] for r in rows} == {model} and len(audit) == 2
    # run again over all three, as after an interruption: the two done are skipped, only the broken one is tried
    assert main(["batch", *(s["study_uid"] for s in studies), "--unread", "--workers", "1", "--model", model]) == 1
    printed = capsys.readouterr().out
    assert "Analysed 0 of 1 studies" in printed and "2 already analysed with this model" in printed
    store = ReviewStore.in_home(home)
    assert store.connection.execute("SELECT COUNT(*) FROM analyses").fetchone()[0] == 2  # nothing redone
    store.close()


def test_nothing_to_do_is_said(home: Path, capsys) -> None:
    assert main(["batch"]) == 2
    assert "No studies to analyse" in capsys.readouterr().err


def test_a_killed_worker_s_study_is_tried_once_more_then_reported(tmp_path: Path) -> None:
    """SIGKILL of the worker process running a study: tried once more on a fresh worker, then
    reported in a sentence; a study whose first worker died succeeds on the second; the others
    are untouched."""
    from types import SimpleNamespace

    from tests.batch.dying_task import dying_task
    from workstation.batch import analyses_on_cluster
    from workstation.errors import WorkstationError

    tasks = {}
    for name in ("always", "once", "fine"):
        (tmp_path / name).mkdir()
        tasks[name] = [tmp_path / name]
    outcomes = dict(analyses_on_cluster(tasks, SimpleNamespace(folder=tmp_path), workers=1, task=dying_task))
    attempts = {name: len((tmp_path / name / "attempts").read_text().split()) for name in tasks}
    assert attempts == {"always": 2, "once": 2, "fine": 1}
    assert outcomes["once"] == 2 and outcomes["fine"] == 1
    assert isinstance(outcomes["always"], WorkstationError)
    assert "died" in str(outcomes["always"]) and "tried once more" in str(outcomes["always"])
