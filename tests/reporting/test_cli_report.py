"""The report commands as a user runs them: analyze --report, report, export, settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pypdf import PdfReader

from workstation.cli import main
from workstation.dicom.load import load_largest_series_job
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run

PASSWORD = "correct horse 1"


def _text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(str(path)).pages)


def test_analyze_writes_a_draft_report_recorded_in_the_audit(small_phantom_dir, home, tmp_path, capsys) -> None:
    out = tmp_path / "reports" / "draft.pdf"
    assert main(["analyze", str(small_phantom_dir / "dicom"), "--report", str(out)]) == 0
    assert "Report DRAFT (not reviewed)" in capsys.readouterr().out
    text = _text(out)
    assert "DRAFT" in text and find_model().weights_sha256[:12] in text
    store = ReviewStore.in_home(home)
    user, action = store.connection.execute("SELECT user, action FROM audit ORDER BY seq DESC").fetchone()
    assert action == "exported" and user.startswith("os:")


def test_report_export_and_settings_on_a_signed_library_study(small_phantom_dir, home, tmp_path, capsys,
                                                              monkeypatch) -> None:
    assert main(["import", str(small_phantom_dir / "dicom")]) == 0
    assert main(["settings", "institution", "Centre de santé Kayes"]) == 0
    library = StudyLibrary(home)
    study = library.studies()[0]
    volume = run_job(load_largest_series_job([library.series_folder(library.series(study["key"])[0])]))
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_sow", PASSWORD, "radiologist")
    session = ReviewSession(store, login(store, "dr_sow", PASSWORD), study["study_uid"])
    session.record_analysis(run_job(run_inference_job(volume, find_model(), threshold=0.05)), volume.metadata.series_uid)
    added = session.add(tuple(volume.voxel_to_patient((64, 64, volume.shape[0] // 2))), 9.0, "solid")
    session.sign("One solid nodule.", password=PASSWORD, allow_undecided=True,
                 undecided_reason="out of scope for this test")
    capsys.readouterr()

    out = tmp_path / "final.pdf"
    assert main(["report", "1", "--out", str(out)]) == 2  # accounts exist: who exports must log in
    assert "--as USER" in capsys.readouterr().err and not out.exists()
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    assert main(["report", "1", "--out", str(out), "--as", "dr_sow"]) == 0
    assert "signed by dr_sow" in capsys.readouterr().out
    text = _text(out)
    assert "Centre de santé Kayes" in text and "One solid nodule." in text and "9.0 mm" in text
    assert "Category 4A" in text  # a 9 mm solid nodule: Lung-RADS 4A, from the rule it prints

    assert main(["export", "1", "--csv", "--as", "dr_sow"]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.startswith("decision_id,") and f",{added}," in csv_text
    assert main(["export", "1", "--json", "--out", str(tmp_path / "d.json"), "--as", "dr_sow"]) == 0
    assert json.loads((tmp_path / "d.json").read_text())["readers"][0]["status"] == "signed"
    exports = store.connection.execute("SELECT count(*) FROM audit WHERE action = 'exported' AND user = 'dr_sow'")
    assert exports.fetchone()[0] == 3

    monkeypatch.setenv("WORKSTATION_PASSWORD", "wrong password")
    assert main(["report", "1", "--out", str(tmp_path / "x.pdf"), "--as", "dr_sow"]) == 2
    assert not (tmp_path / "x.pdf").exists()


@pytest.mark.parametrize("argv", [["report", "nope", "--out", "r.pdf"], ["export", "nope", "--csv"]])
def test_unknown_study_is_one_clear_sentence(argv, home, capsys) -> None:
    assert main(argv) == 2
    assert "No study 'nope'" in capsys.readouterr().err


def test_a_report_appears_at_its_name_only_once_recorded(tmp_path: Path, monkeypatch) -> None:
    """#21 item 8: written under a staging name, recorded, then renamed, so a crash leaves the
    name asked for either absent or recorded; an export that cannot be audited leaves nothing."""
    import workstation.reporting.study as study_module
    from workstation.imaging.phantom import PhantomSpec, generate_phantom
    from workstation.reporting.study import export_decisions
    from workstation.review.session import ReviewSession
    from workstation.review.store import ReviewStore, StoreError

    store = ReviewStore(tmp_path / "review.db")
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    volume = generate_phantom(PhantomSpec.from_seed(3, matrix=128)).volume
    ReviewSession(store, admin, volume.metadata.study_uid)
    seen = []
    real_append = study_module.audit.append

    def append_and_look(connection, user, action, **kwargs):
        seen.append(sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".pdf" or "partial" in p.name))
        return real_append(connection, user, action, **kwargs)

    monkeypatch.setattr(study_module.audit, "append", append_and_look)
    out = tmp_path / "report.pdf"
    run_job(study_module.study_report_job(store, volume, out, generated_by="admin"))
    assert out.is_file() and len(seen) == 1 and "report.pdf" not in seen[0] and any("partial" in n for n in seen[0])
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    store.connection.execute("PRAGMA query_only = ON")  # the audit row cannot be written
    with pytest.raises(StoreError):
        export_decisions(store, volume.metadata.study_uid, tmp_path / "decisions.json", "json", exported_by="admin")
    store.connection.execute("PRAGMA query_only = OFF")
    assert not [p for p in tmp_path.iterdir() if "decisions" in p.name]
    store.close()
