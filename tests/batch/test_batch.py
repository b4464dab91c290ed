"""`workstation batch` (#25 item 4): a backlog of library studies analysed on a Dask LocalCluster of
worker processes, every run recorded as Run AI records it; a broken study fails alone."""

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
    assert main(["batch", "--unread", "--workers", "1", "--model", model]) == 1  # only the broken one is left
    assert "Analysed 0 of 1 studies" in capsys.readouterr().out


def test_nothing_to_do_is_said(home: Path, capsys) -> None:
    assert main(["batch"]) == 2
    assert "No studies to analyse" in capsys.readouterr().err
