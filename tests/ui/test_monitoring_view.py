"""Model monitoring in the viewer (#25 item 3): the window draws the core's rows per model version,
month and subgroup, says what each figure was computed on, shows drift alerts in words, computes
off the GUI thread and exports through the core's staged, audited export (radiologists and admins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reporting.test_dicom_results import PASSWORD, imported_case
from workstation.imaging.phantom import write_demo_case
from workstation.imaging.volume import SeriesMetadata
from workstation.review.monitoring import MonitoringReport, StudyUse, drift_alerts, summarise
from workstation.review.session import ReviewSession
from workstation.review.users import add_user, login


def _use(n: int, month: str, model: str, accepted: int, rejected: int, sex: str = "F",
         manufacturer: str = "GE") -> StudyUse:
    return StudyUse(f"1.2.{n}", model, month, SeriesMetadata(manufacturer=manufacturer, slice_thickness=1.25,
                                                             patient_sex=sex),
                    accepted + rejected + 1, accepted, rejected, ("vessel",) * rejected + ("scar/fibrosis",),
                    n % 2, 120.0 + n, f"{month}-{1 + n % 27:02d}T10:00:00+00:00")


def synthetic_report(by: str | None = None) -> MonitoringReport:
    """Two model versions over three months; the newer one's acceptance falls in the last month."""
    uses = []
    for n in range(36):
        month = ("2026-09", "2026-10", "2026-11")[n % 3]
        model = "lung-nodule-demo 0.6.0" if n < 12 else "lung-nodule-demo 0.7.0"
        accepted = 1 if month == "2026-11" and model.endswith("0.7.0") else 4
        uses.append(_use(n, month, model, accepted, 5 - accepted, sex="FM"[n % 2],
                         manufacturer="Canon" if month == "2026-11" and n % 4 else "GE"))
    return MonitoringReport(by, summarise(uses, by), drift_alerts(uses), uses, "2026-12-01T09:00:00+00:00")


def test_the_view_draws_what_each_figure_was_computed_on(qtbot) -> None:
    from ui.widgets.monitoring_view import MonitoringView

    view = MonitoringView()
    qtbot.addWidget(view)
    view.show()
    view.show_report(synthetic_report(), "dr_lee")
    assert "Computed on 36 studies with AI runs 2026-09-01 to 2026-11-" in view.scope_label.text()
    assert "lung-nodule-demo 0.6.0, lung-nodule-demo 0.7.0" in view.scope_label.text()
    assert "Drift alerts" in view.alerts_label.text() and "fewer than chance explains" in view.alerts_label.text()
    assert view.legend_entries == ["lung-nodule-demo 0.6.0 (12 studies, 60 decisions)",
                                   "lung-nodule-demo 0.7.0 (24 studies, 120 decisions)"]
    assert [tick for _x, tick in view.accept_plot.getAxis("bottom")._tickLevels[0]] == ["2026-09", "2026-10",
                                                                                        "2026-11"]
    for caption in view.captions.values():
        assert caption.text().startswith("Computed on 36 studies, runs 2026-09-01 to 2026-11-")
    assert view.table.rowCount() == 6
    view.model.setCurrentText("lung-nodule-demo 0.6.0")  # one model version: its own figures and scope
    assert view.captions["accept"].text().startswith("Computed on 12 studies")
    assert view.table.rowCount() == 3 and view.captions["reasons"].text().endswith(
        "lung-nodule-demo 0.6.0; all months together.")


def test_a_subgroup_splits_the_lines(qtbot) -> None:
    from ui.widgets.monitoring_view import MonitoringView

    view = MonitoringView()
    qtbot.addWidget(view)
    view.show_report(synthetic_report("sex"), "dr_lee")
    view.model.setCurrentText("lung-nodule-demo 0.7.0")
    assert view.legend_entries == ["female (12 studies, 60 decisions)", "male (12 studies, 60 decisions)"]
    assert "split by sex" in view.scope_label.text()


def test_calm_months_say_so(qtbot) -> None:
    from ui.widgets.monitoring_view import MonitoringView

    uses = [_use(n, "2026-10", "demo 1.0", 3, 1) for n in range(3)]
    view = MonitoringView()
    qtbot.addWidget(view)
    view.show_report(MonitoringReport(None, summarise(uses), [], uses, "2026-12-01T09:00:00+00:00"), "x")
    assert view.alerts_label.text().startswith("No drift alert")
    assert "demo 1.0: 12 decisions in 2026-10, 0 before (too few to test acceptance)" in view.alerts_label.text()


@pytest.fixture
def read_study(window, tmp_path: Path, home: Path):
    """A demo case in the library with a recorded run and a radiologist's decisions on it."""
    case = tmp_path / "case"
    write_demo_case(case, seed=11, matrix=128, slice_thickness_mm=10.0)
    study, series, analysis, _truth = imported_case(home, case)
    admin = add_user(window.store, None, "admin", PASSWORD, "admin")
    add_user(window.store, admin, "dr_lee", PASSWORD, "radiologist")
    add_user(window.store, admin, "student", PASSWORD, "trainee")
    reader = login(window.store, "dr_lee", PASSWORD)
    session = ReviewSession(window.store, reader, study["study_uid"])
    ids = session.record_analysis(analysis, series["series_uid"])
    session.accept(ids[0])
    session.reject(ids[1], "vessel")
    return window, reader


def test_the_window_computes_off_the_gui_thread_and_exports_audited(read_study, qtbot, tmp_path: Path) -> None:
    window, reader = read_study
    window.review.set_user(reader)
    window.actions_by_key["monitoring"].trigger()
    view = window.monitoring.view
    qtbot.waitUntil(lambda: view.report is not None, timeout=20000)
    assert window.monitoring.runner is not window.runner  # never waits for a study load or Run AI
    assert "Computed on 1 study" in view.scope_label.text() and view.table.rowCount() == 1
    assert view.csv_button.isEnabled() and view.json_button.isEnabled()
    out = tmp_path / "exports" / "monitor.json"
    out.parent.mkdir()
    window.monitoring.export("json", out)
    qtbot.waitUntil(lambda: "Exported to" in view.scope_label.text(), timeout=10000)  # delivered, not just written
    assert json.loads(out.read_text())["computed_on"]["studies"] == 1
    assert not list(out.parent.glob(".*partial"))
    exported = [value for (value,) in window.store.connection.execute(
        "SELECT new_value FROM audit WHERE action = 'exported' AND user = 'dr_lee'")]
    assert any("monitoring json" in value for value in exported)
    window.review.set_user(login(window.store, "student", PASSWORD))  # a trainee looks, but exports nothing
    window.monitoring.show_monitoring()
    qtbot.waitUntil(lambda: view.refresh_button.isEnabled(), timeout=20000)
    assert view.report is not None and "for student" in view.scope_label.text()
    assert not view.csv_button.isEnabled() and "trainee may not export" in view.csv_button.toolTip()



def test_an_empty_store_says_why_the_figures_are_empty(qtbot) -> None:
    from ui.widgets.monitoring_view import MonitoringView

    view = MonitoringView()
    qtbot.addWidget(view)
    view.show_report(MonitoringReport(None, [], [], [], "2026-12-01T09:00:00+00:00"), "admin")
    assert "Nothing to test yet: no AI run is recorded" in view.alerts_label.text()
    assert not view.csv_button.isEnabled() and view.captions["accept"].text().startswith("Computed on no studies")
    view.show_report(synthetic_report(), "admin")  # data again: the blank axes give way
    assert view.accept_plot.getAxis("left")._tickLevels is None and view.csv_button.isEnabled()
