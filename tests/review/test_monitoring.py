"""Monitoring in use (#25 item 3): the readers' decisions on the AI's findings summarised per model,
month and subgroup; drift alerts for acceptance, input mix and out-of-scope inputs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.reporting.test_dicom_results import PASSWORD, imported_case
from workstation.cli import main
from workstation.imaging.phantom import write_demo_case
from workstation.imaging.volume import SeriesMetadata
from workstation.review.monitoring import StudyUse, drift_alerts, summarise
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login


def _use(month: str, accepted: int, rejected: int, manufacturer: str = "GE", thickness: float = 1.25) -> StudyUse:
    return StudyUse(f"1.2.{month}.{accepted}.{rejected}", "demo 1.0", month,
                    SeriesMetadata(manufacturer=manufacturer, slice_thickness=thickness, patient_sex="F"),
                    accepted + rejected, accepted, rejected, ("vessel",) * rejected)


def test_summaries_by_month_and_group() -> None:
    uses = [_use("2026-10", 3, 1), _use("2026-10", 1, 1, manufacturer="Siemens"), _use("2026-11", 0, 2)]
    rows = summarise(uses, "manufacturer")
    october_ge = next(r for r in rows if r["month"] == "2026-10" and r["group"] == "GE")
    assert october_ge["accept_rate"] == 0.75 and october_ge["reasons"] == {"vessel": 1}
    assert [r["studies"] for r in summarise(uses)] == [2, 1]


def test_drift_alerts() -> None:
    steady = [_use("2026-10", 8, 2) for _ in range(5)]
    assert drift_alerts(steady + [_use("2026-11", 8, 2) for _ in range(5)]) == []
    alerts = drift_alerts(steady + [_use("2026-11", 1, 9) for _ in range(5)])
    assert any("readers accepted 10% of its findings in 2026-11, against 80% before" in a for a in alerts)
    mix = drift_alerts(steady + [_use("2026-11", 8, 2, manufacturer="Canon") for _ in range(5)])
    assert any("manufacturer 'Canon' made 100%" in a for a in mix)
    thick = drift_alerts([_use("2026-11", 8, 2, thickness=5.0)], {"demo 1.0": {"slice_thickness_mm": [0.5, 2.5]}})
    assert thick == ["demo 1.0: 1 of 1 studies in 2026-11 had slices outside the 0.5-2.5 mm it was validated on"]


def test_the_monitor_command(tmp_path: Path, home: Path, monkeypatch, capsys) -> None:
    case = tmp_path / "case"
    write_demo_case(case, seed=11, matrix=128, slice_thickness_mm=10.0)
    study, series, analysis, _truth = imported_case(home, case)
    store = ReviewStore.in_home(home)
    add_user(store, add_user(store, None, "admin", PASSWORD, "admin"), "dr_lee", PASSWORD, "radiologist")
    session = ReviewSession(store, login(store, "dr_lee", PASSWORD), study["study_uid"])
    ids = session.record_analysis(analysis, series["series_uid"])
    session.accept(ids[0])
    session.reject(ids[2], "vessel")
    session.add((-40.0, 20.0, 0.0), 7.0)
    store.close()
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    capsys.readouterr()
    out = tmp_path / "monitor.json"
    assert main(["monitor", "--by", "slice thickness", "--json", str(out), "--as", "dr_lee"]) == 0
    assert "accepted  50% of 2" in capsys.readouterr().out
    [row] = json.loads(out.read_text())["rows"]
    assert row["group"] == "thick (> 2.5 mm)" and row["reasons"] == {"vessel": 1}
    assert row["missed_added_per_scan"] == 1.0 and row["findings_per_scan"] == 4.0
    assert any("outside the" in a for a in json.loads(out.read_text())["alerts"])  # 10 mm: beyond the card's scope


def test_the_export_is_staged_audited_and_a_radiologists(tmp_path: Path, home: Path) -> None:
    import pytest

    from workstation.jobs import run_job
    from workstation.review.monitoring import export_monitoring, monitoring_job
    from workstation.review.users import PermissionDenied

    case = tmp_path / "case"
    write_demo_case(case, seed=11, matrix=128, slice_thickness_mm=10.0)
    study, series, analysis, _truth = imported_case(home, case)
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_lee", PASSWORD, "radiologist")
    add_user(store, admin, "trainee", PASSWORD, "trainee")
    reader = login(store, "dr_lee", PASSWORD)
    session = ReviewSession(store, reader, study["study_uid"])
    ids = session.record_analysis(analysis, series["series_uid"])
    session.accept(ids[0])
    report = run_job(monitoring_job(home, "dr_lee", "sex", scopes={}))
    assert report.scope().studies == 1 and report.scope().models == (report.rows[0]["model"],)
    assert report.scope().first == report.uses[0].run_at[:10] and "Computed on 1 study" in report.scope().sentence()
    out = tmp_path / "monitor.csv"
    with pytest.raises(PermissionDenied):
        export_monitoring(store, login(store, "trainee", PASSWORD), report, out, "csv")
    assert not out.exists() and not list(tmp_path.glob(".monitor.csv.*"))
    digest = export_monitoring(store, reader, report, out, "csv")
    assert out.read_text().splitlines()[0].startswith("model,month,group,studies")
    export_monitoring(store, reader, report, tmp_path / "monitor.json", "json")
    assert json.loads((tmp_path / "monitor.json").read_text())["computed_on"]["studies"] == 1
    exported = [value for (value,) in store.connection.execute("SELECT new_value FROM audit WHERE action = 'exported'")]
    assert any(digest in value and "monitoring csv" in value for value in exported)
    assert store.connection.execute("SELECT COUNT(*) FROM audit WHERE action = 'library_listed' "
                                    "AND user = 'dr_lee'").fetchone()[0] == 1
    store.close()
