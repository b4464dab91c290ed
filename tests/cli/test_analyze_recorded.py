"""A headless AI run on a library study is part of the record, as the viewer's Run AI is (#27)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from workstation.cli import main
from workstation.review.audit import verify
from workstation.review.store import ReviewStore

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run

PASSWORD = "correct horse battery"


@pytest.fixture
def library_study(home: Path, small_phantom_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    assert main(["import", str(small_phantom_dir / "dicom")]) == 0
    return small_phantom_dir


def _rows(home: Path, sql: str) -> list[tuple]:
    store = ReviewStore.in_home(home)
    try:
        return store.connection.execute(sql).fetchall()
    finally:
        store.close()


def test_analyze_on_a_library_study_records_the_run(home: Path, library_study: Path, tmp_path: Path, capsys):
    assert main(["users", "add", "boss", "--role", "admin"]) == 0
    out = tmp_path / "out.json"
    assert main(["analyze", "1", "--as", "boss", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    payload = json.loads(out.read_text())
    assert payload["findings"], "the phantom's nodules were found"
    (analysis_id, user, model, version, sha, stages), = _rows(
        home, "SELECT id, created_by, model_name, model_version, model_sha256, details FROM analyses")
    assert payload["analysis_id"] == analysis_id and f"Recorded as analysis {analysis_id} by boss" in printed
    assert (user, model, version, sha) == ("boss", payload["model"]["name"], payload["model"]["version"],
                                           payload["model"]["sha256"])
    assert set(json.loads(stages)["stage_seconds"]) >= {"network", "findings"}
    stored = _rows(home, "SELECT probability, diameter_mm FROM findings ORDER BY id")
    assert [round(p, 4) for p, _ in stored] == [round(f["probability"], 4) for f in payload["findings"]]
    (who, action, study, details), = _rows(home, "SELECT user, action, study_uid, details FROM audit "
                                                 "WHERE action = 'analysis_run'")
    assert (who, study) == ("boss", payload["study_uid"])
    assert json.loads(details)["model"] == payload["model"]["name"]
    assert (home / "heatmaps" / f"analysis-{analysis_id}.heatmap").is_file()
    assert main(["audit", "verify"]) == 0

    # a second run is a second analysis; the first stays, and its findings are not proposed twice
    assert main(["analyze", "1", "--as", "boss"]) == 0
    assert "the same model already ran on this series" in capsys.readouterr().out
    runs = _rows(home, "SELECT id, details FROM analyses ORDER BY id")
    assert [run[0] for run in runs] == [analysis_id, analysis_id + 1]
    assert json.loads(runs[1][1])["repeats"] == analysis_id
    assert len(_rows(home, "SELECT id FROM findings")) == len(stored)
    assert len(_rows(home, "SELECT seq FROM audit WHERE action = 'analysis_run'")) == 2
    store = ReviewStore.in_home(home)
    assert verify(store.connection).ok
    store.close()


def test_a_recorded_run_needs_a_login_once_accounts_exist(home: Path, library_study: Path, capsys):
    assert main(["users", "add", "boss", "--role", "admin"]) == 0
    assert main(["users", "--as", "boss", "add", "student", "--role", "trainee"]) == 0
    capsys.readouterr()
    assert main(["analyze", "1"]) == 2
    assert "--as USER" in capsys.readouterr().err
    assert main(["analyze", "1", "--as", "student", "--report", str(home / "r.pdf")]) == 2
    assert "may not export" in capsys.readouterr().err
    assert _rows(home, "SELECT id FROM analyses") == []  # refused before the model ran
    assert main(["analyze", "1", "--as", "student"]) == 0  # a trainee may run the AI
    assert _rows(home, "SELECT created_by FROM analyses") == [("student",)]


def test_a_path_outside_the_library_is_not_recorded_unless_imported(home: Path, small_phantom_dir: Path,
                                                                     tmp_path: Path, capsys):
    folder = tmp_path / "usb"
    shutil.copytree(small_phantom_dir / "dicom", folder)
    assert main(["analyze", str(folder)]) == 0
    assert "NOT RECORDED" in capsys.readouterr().out
    assert _rows(home, "SELECT id FROM analyses") == []
    assert main(["analyze", str(folder), "--import"]) == 0  # no accounts yet: the OS account records it
    assert "Recorded as analysis 1 by os:" in capsys.readouterr().out
    assert main(["list"]) == 0 and "1 series" in capsys.readouterr().out
    assert len(_rows(home, "SELECT id FROM analyses")) == 1


def test_the_headless_demo_records_its_run(home: Path, tmp_path: Path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    (run_by,), = _rows(home, "SELECT created_by FROM analyses")
    assert run_by.startswith("os:")
    head = _rows(home, "SELECT seq, hash FROM audit WHERE action = 'analysis_run'")[0]
    text = "".join(page.extract_text() for page in PdfReader(out / "report-draft.pdf").pages)
    assert f"row {head[0]}, SHA-256 {head[1][:12]}" in text.replace("\n", "")
