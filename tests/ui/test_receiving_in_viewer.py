"""Receiving from scanners in the viewer (#23 item 2), with dcmtk's storescu as the scanner: the
viewer listens on the node book's AE title and port, a pushed study lands in the library and the
study browser, a notice says it is complete, the AI runs on it off the GUI thread (a setting), an
unknown caller is refused and listed; the AE title and port are an admin's audited setting."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.network.conftest import free_port
from workstation.imaging.phantom import write_demo_case
from workstation.library import StudyLibrary
from workstation.network.nodes import NodeBook, RemoteNode, load_nodes, save_nodes
from workstation.review.users import add_user, login

STORESCU = shutil.which("storescu")
pytestmark = pytest.mark.skipif(STORESCU is None, reason="dcmtk's storescu is not installed")
PASSWORD = "battery staple"


@pytest.fixture(scope="module")
def scanner_case(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scanner")
    write_demo_case(folder, seed=21, matrix=128, slice_thickness_mm=10.0)
    return sorted((folder / "dicom").iterdir())


@pytest.fixture
def desk(window, home: Path):
    """The window with an admin logged in and the scanner SCANNER1 in the node book on a free port."""
    port = free_port()
    save_nodes(home, NodeBook({"ct1": RemoteNode("ct1", "SCANNER1", "127.0.0.1", 104)}, "WORKSTATION", port))
    admin = add_user(window.store, None, "admin", PASSWORD, "admin")
    add_user(window.store, admin, "dr_lee", PASSWORD, "radiologist")
    window.review.set_user(admin)
    yield window, port
    window.receiving.stop_listening()


def _send(port: int, files: list[Path], calling: str = "SCANNER1") -> subprocess.Popen:
    return subprocess.Popen([STORESCU, "-aet", calling, "-aec", "WORKSTATION", "127.0.0.1", str(port),
                             *map(str, files)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _events(window) -> list[str]:
    panel = window.receiving.panel
    return [panel.events.item(i).text() for i in range(panel.events.count())]


def test_a_pushed_study_lands_in_the_browser_with_a_notice(desk, scanner_case: list[Path], qtbot, home: Path):
    window, port = desk
    window.actions_by_key["receive"].trigger()
    panel = window.receiving.panel
    assert panel.isVisible() and panel.ae_edit.text() == "WORKSTATION" and panel.port_box.value() == port
    assert "SCANNER1 (ct1)" in panel.senders_label.text()
    qtbot.mouseClick(panel.listen_button, qtbot_button())
    assert window.receiving.receiver is not None and panel.listen_button.text() == "Stop listening"
    assert f"Receiving on {port}" in window.receiving.indicator.text()
    sender = _send(port, scanner_case)
    qtbot.waitUntil(lambda: window.browser.tree.topLevelItemCount() == 1, timeout=30000)
    assert sender.wait(30) == 0, sender.stdout.read()
    assert window.receiving.notice.isVisible()
    assert window.receiving.notice.text().startswith("Study received from SCANNER1:")
    assert f"{len(scanner_case)} images" in window.receiving.notice.text()
    assert any("Study received from SCANNER1" in e for e in _events(window))
    [study] = StudyLibrary(home).studies()
    assert study["patient_name"] not in window.receiving.notice.text()  # no identifier across the room
    imported = window.store.connection.execute("SELECT user, details FROM audit WHERE action = 'imported'").fetchall()
    assert imported and imported[-1][0] == "admin" and "dicom:SCANNER1" in imported[-1][1]
    window.browser.tree.setCurrentItem(window.browser.tree.topLevelItem(0))
    window.browser.reload()  # as the next arrival reloads it: the reader's selection stays
    assert window.browser.tree.currentItem().data(0, Qt.ItemDataRole.UserRole) == study["key"]
    window.receiving.on_lock(True)  # behind the lock: not even the description (free text)
    assert window.receiving._describe(study["key"]) == f"a study (1 series, {len(scanner_case)} images)"
    window.receiving.on_lock(False)
    qtbot.mouseClick(panel.listen_button, qtbot_button())
    assert window.receiving.receiver is None and not window.receiving.indicator.isVisible()


def test_an_unknown_caller_is_refused_and_listed(desk, scanner_case: list[Path], qtbot, home: Path) -> None:
    window, port = desk
    window.receiving.show_receiving()
    assert window.receiving.start_listening()
    sender = _send(port, scanner_case[:2], calling="INTRUDER")
    qtbot.waitUntil(lambda: any("Refused an association from 'INTRUDER'" in e for e in _events(window)),
                    timeout=20000)
    assert sender.wait(20) != 0
    assert "1 refused" in window.receiving.indicator.text() and StudyLibrary(home).studies() == []
    assert window.browser.tree.topLevelItemCount() == 0


QUICK_RUNS: list = []  # the thread each stand-in run ran on


def _quick_model_job(home: Path, user, study_key: str, model, cancel):
    """A recorded run in a second (two findings, a flat heatmap) in place of the network: the queue,
    the runner and the notices are under test here, the model in the slow test below."""
    import numpy as np

    from workstation.inference.findings import Finding
    from workstation.inference.runner import Analysis
    from workstation.jobs import Progress
    from workstation.review.analyses import record_analysis
    from workstation.review.store import ReviewStore

    library = StudyLibrary(home)
    study = library.find_study(study_key)
    series = library.series(study["key"])[0]
    yield Progress(0, 1, "a quick stand-in model")
    QUICK_RUNS.append(threading.current_thread())
    time.sleep(0.5)
    findings = [Finding(n + 1, (10.0 * n, 0.0, 0.0), (64.0, 64.0, 5.0), 6.0, 100.0, 20.0, 0.8, "solid", "quick", "1")
                for n in range(2)]
    heatmap = np.zeros((series["slices"], series["rows"], series["columns"]), np.float32)
    analysis = Analysis("quick", "1", "cd" * 32, "CPU", 0.3, 1.0, heatmap, findings, [], "Stand-in.")
    store = ReviewStore.in_home(home)
    try:
        return record_analysis(store, user, study["study_uid"], series["series_uid"], analysis)
    finally:
        store.close()


def test_received_ct_studies_get_the_ai_off_the_gui_thread(desk, scanner_case: list[Path], qtbot, home: Path):
    window, port = desk
    window.receiving.analyse_job = _quick_model_job
    QUICK_RUNS.clear()
    _receive_and_analyse(window, port, scanner_case, qtbot, "quick")
    [thread] = QUICK_RUNS
    assert thread is not threading.main_thread() and thread.name.startswith("job: AI on a received study")


@pytest.mark.slow
def test_received_ct_studies_get_the_real_model(desk, scanner_case: list[Path], qtbot, home: Path):
    from tests.validation.test_site_evaluation import _coarse_demo_model

    window, port = desk
    window.settings.setValue("receiving/model", _coarse_demo_model(home))
    _receive_and_analyse(window, port, scanner_case, qtbot, "coarse-demo")


def _receive_and_analyse(window, port: int, scanner_case: list[Path], qtbot, model_name: str) -> None:
    window.receiving.show_receiving()
    window.receiving.panel.analyse.setChecked(True)  # the setting, as the reader ticks it
    assert window.settings.value("receiving/analyse") == "true"
    assert window.receiving.start_listening()
    ticks: list[float] = []
    timer_id = window.startTimer(50)
    original = window.timerEvent
    window.timerEvent = lambda event: ticks.append(time.monotonic())  # the GUI thread's heartbeat
    try:
        sender = _send(port, scanner_case)
        qtbot.waitUntil(lambda: any("AI ran on a received study" in e for e in _events(window)), timeout=60000)
    finally:
        window.killTimer(timer_id)
        window.timerEvent = original
    assert sender.wait(30) == 0
    gaps = [b - a for a, b in zip(ticks, ticks[1:])]
    # the run took seconds; the longest pauses measured were 0.3-0.65 s, during the job thread's first
    # seconds (loading the series and importing torch, which hold the GIL in C code for a while)
    assert gaps and max(gaps) < 2.0, f"the GUI thread stalled {max(gaps):.2f} s"
    [(model, who)] = window.store.connection.execute("SELECT model_name, created_by FROM analyses").fetchall()
    assert model == model_name and who == "admin"
    assert f"candidate finding(s) to review ({model_name} " in window.receiving.notice.text()
    assert window.runner.busy is False  # the reader's own job runner stayed free


def test_a_busy_port_is_said_in_a_sentence(desk, qtbot) -> None:
    window, port = desk
    blocker = socket.socket()
    blocker.bind(("0.0.0.0", port))
    blocker.listen()
    try:
        window.receiving.show_receiving()
        assert not window.receiving.start_listening()
        assert f"Cannot listen on port {port}" in window.receiving.panel.state_label.text()
        assert not window.receiving.panel.listen_button.isChecked()
    finally:
        blocker.close()


def test_the_ae_title_and_port_are_an_admins_audited_setting(desk, qtbot, home: Path) -> None:
    window, port = desk
    window.receiving.show_receiving()
    panel = window.receiving.panel
    panel.ae_edit.setText("READROOM2")
    panel.port_box.setValue(port + 1)
    qtbot.mouseClick(panel.save_button, qtbot_button())
    assert (load_nodes(home).local_ae, load_nodes(home).receive_port) == ("READROOM2", port + 1)
    changed = window.store.connection.execute("SELECT user, new_value FROM audit WHERE action = 'settings_changed' "
                                              "AND object_id = 'pacs-nodes'").fetchall()
    assert changed[-1][0] == "admin" and "READROOM2" in changed[-1][1]
    window.review.set_user(login(window.store, "dr_lee", PASSWORD))
    window.receiving.show_receiving()
    assert not panel.save_button.isEnabled() and "An admin sets" in panel.ae_edit.toolTip()


def qtbot_button():
    return Qt.MouseButton.LeftButton
