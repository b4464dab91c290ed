"""The Storage SCP with dcmtk's storescu as the sending scanner: batches are filed into the library
when the sender releases; unknown callers are refused and logged; an aborted batch is discarded;
non-CT or damaged instances never break a good batch (#23 item 2)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.network.conftest import free_port
from workstation.imaging.phantom import write_demo_case
from workstation.library import StudyLibrary
from workstation.network.receiver import Received, StorageReceiver

STORESCU = shutil.which("storescu")
pytestmark = pytest.mark.skipif(STORESCU is None, reason="dcmtk's storescu is not installed")


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("scanner")
    write_demo_case(folder, seed=21, matrix=128, slice_thickness_mm=10.0)
    return sorted((folder / "dicom").iterdir())


def _storescu(port: int, files: list[Path], calling: str = "SCANNER1") -> subprocess.CompletedProcess:
    return subprocess.run([STORESCU, "-aet", calling, "-aec", "WORKSTATION", "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def receiver(home: Path):
    batches: list[Received] = []
    done = threading.Event()

    def imported(batch: Received) -> None:
        batches.append(batch)
        done.set()

    scp = StorageReceiver(home, "WORKSTATION", free_port(), allowed_calling={"SCANNER1"}, on_imported=imported,
                          host="127.0.0.1")
    scp.start()
    yield scp, batches, done
    scp.stop()


def test_a_pushed_series_lands_in_the_library(receiver, series: list[Path], home: Path) -> None:
    scp, batches, done = receiver
    sent = _storescu(scp.port, series)
    assert sent.returncode == 0, sent.stderr
    assert done.wait(30)
    [batch] = batches
    assert batch.calling_ae == "SCANNER1" and batch.instances == len(series) and batch.error is None
    [study] = StudyLibrary(home).studies()
    assert study["study_uid"] == str(pydicom.dcmread(series[0], stop_before_pixels=True).StudyInstanceUID)
    assert StudyLibrary(home).series(study["key"])[0]["slices"] == len(series)
    assert not any((home / "incoming").iterdir())
    for path in (home / "studies").rglob("*"):  # nothing written outside the library's own tree
        assert home in path.resolve().parents


def test_an_unknown_caller_is_refused_and_logged(receiver, series: list[Path], home: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    scp, batches, _done = receiver
    with caplog.at_level(logging.WARNING, logger="workstation.network.receiver"):
        sent = _storescu(scp.port, series[:2], calling="INTRUDER")
    assert sent.returncode != 0
    assert scp.refused == ["INTRUDER"] and "unknown calling AE title 'INTRUDER'" in caplog.text
    assert batches == [] and StudyLibrary(home).studies() == []


def test_a_killed_receivers_partial_batch_is_cleared_at_start(home: Path) -> None:
    stale = home / "incoming" / "scp-0123"
    stale.mkdir(parents=True)
    (stale / "x.dcm").write_bytes(b"half")
    scp = StorageReceiver(home, "WORKSTATION", free_port(), host="127.0.0.1")
    scp.start()
    scp.stop()
    assert not stale.exists() and StudyLibrary(home).studies() == []


def test_an_aborted_batch_is_discarded(receiver, series: list[Path], home: Path) -> None:
    from pynetdicom import AE

    scp, batches, _done = receiver
    ae = AE(ae_title="SCANNER1")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")
    assoc = ae.associate("127.0.0.1", scp.port, ae_title="WORKSTATION")
    assert assoc.is_established
    for path in series[:3]:
        assert assoc.send_c_store(pydicom.dcmread(path)).Status == 0
    assert len(list((home / "incoming").rglob("*.dcm"))) == 3
    assoc.abort()
    deadline = time.monotonic() + 10
    while any((home / "incoming").rglob("*.dcm")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any((home / "incoming").rglob("*.dcm")) and batches == []
    assert StudyLibrary(home).studies() == []


def test_a_bad_neighbour_does_not_spoil_the_batch(receiver, series: list[Path], tmp_path: Path,
                                                  home: Path) -> None:
    scp, batches, done = receiver
    mr = Path(get_testdata_file("MR_small.dcm"))  # not CT: skipped with its reason by the import
    sent = _storescu(scp.port, [*series, mr])
    assert done.wait(30), sent.stderr
    [batch] = batches
    assert batch.instances == len(series) + 1
    assert StudyLibrary(home).series(StudyLibrary(home).studies()[0]["key"])[0]["slices"] == len(series)
    assert any("CT" in reason or "modality" in reason.lower() for _label, reason in batch.report.skipped)


def test_the_receive_command(series: list[Path], home: Path) -> None:
    port = free_port()
    env = {**os.environ, "WORKSTATION_HOME": str(home), "WORKSTATION_HEADLESS": "1"}
    launcher = Path(sys.executable).parent / "workstation"
    process = subprocess.Popen([str(launcher), "receive", "--aet", "WORKSTATION", "--port", str(port),
                                "--allow", "SCANNER1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        assert "Receiving as WORKSTATION" in process.stdout.readline()
        assert _storescu(port, series).returncode == 0
        line = process.stdout.readline()
        assert f"SCANNER1: {len(series)} instance(s), 1 study(ies) in the library" in line
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(15)
    assert process.returncode == 0
    assert len(StudyLibrary(home).studies()) == 1


def test_received_studies_are_analysed(series: list[Path], home: Path) -> None:
    from tests.validation.test_site_evaluation import _coarse_demo_model
    from workstation.review.store import ReviewStore

    model = _coarse_demo_model(home)
    port = free_port()
    env = {**os.environ, "WORKSTATION_HOME": str(home), "WORKSTATION_HEADLESS": "1"}
    launcher = Path(sys.executable).parent / "workstation"
    process = subprocess.Popen([str(launcher), "receive", "--port", str(port), "--allow", "SCANNER1", "--analyze",
                                "--model", model], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "Receiving as" in process.stdout.readline()
        assert _storescu(port, series).returncode == 0
        assert "1 study(ies) in the library" in process.stdout.readline()
        assert "candidate finding(s) to review" in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    store = ReviewStore.in_home(home)
    assert store.connection.execute("SELECT model_name FROM analyses").fetchall() == [(model,)]
    store.close()


def test_a_batch_cannot_bring_more_than_the_limit(receiver, series: list[Path], home: Path, monkeypatch) -> None:
    from workstation.network import dimse

    scp, batches, done = receiver
    monkeypatch.setattr(dimse, "MAX_INSTANCES_PER_BATCH", 3)
    sent = _storescu(scp.port, series[:5])
    assert done.wait(30), sent.stderr
    [batch] = batches
    assert batch.instances == 3  # the other two were answered 'out of resources'
    assert "0xa700" in (sent.stdout + sent.stderr).lower() or sent.returncode != 0


def test_a_refusal_is_told_to_whoever_listens(series: list[Path], home: Path) -> None:
    refused: list[str] = []
    scp = StorageReceiver(home, "WORKSTATION", free_port(), allowed_calling={"SCANNER1"}, host="127.0.0.1",
                          on_refused=refused.append)
    scp.start()
    try:
        assert _storescu(scp.port, series[:1], calling="INTRUDER").returncode != 0
    finally:
        scp.stop()
    assert refused == ["INTRUDER"]
