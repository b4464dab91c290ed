"""No patient-derived text in the log (#21 item 7): a canary series (names, IDs, descriptions,
comments, and its folder and file names) goes through import, analyze, report, deidentify and a
refused deidentify with the real CLI and a fresh data folder; the log names its series by an
opaque key and holds no canary."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pydicom
import pytest

from tests.canary_series import CANARY, PATIENT_ID, leaks, write_canary_series
from tests.hostile_dicom import write_with_nesting
from workstation.cli import main
from workstation.dicom.deidentify import Deidentifier, installation_secret
from workstation.privacy import loggable_error, opaque_key


def test_the_log_names_series_by_key_and_holds_no_canary(home: Path, small_phantom_dir: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    media = tmp_path / "Canaryman_USB"
    series = write_canary_series(small_phantom_dir / "dicom", media)
    source = pydicom.dcmread(next(series.iterdir()))
    assert main(["import", str(media)]) == 0
    assert main(["analyze", "1"]) == 0
    assert main(["report", "1", "--out", str(tmp_path / "report.pdf")]) == 0
    assert main(["deidentify", str(media), str(tmp_path / "copy")]) == 0
    assert leaks(tmp_path / "copy") == []  # the default command's output, every byte
    # failures too: a refused file, an output folder in use, a file that is not DICOM, no such study
    write_with_nesting(next(series.iterdir()), series / "Canarywoman_deep.dcm", depth=100)
    assert main(["deidentify", str(series), str(tmp_path / "copy2")]) == 2
    assert main(["deidentify", str(media), str(tmp_path / "copy")]) == 2
    junk = series / "Canarywoman_notes.txt"
    junk.write_bytes(b"Canarywoman is not DICOM")
    assert main(["info", str(junk)]) == 2
    assert main(["report", "Canarywoman", "--out", str(tmp_path / "x.pdf")]) == 2
    shown = capsys.readouterr()
    assert "Canarywoman_deep.dcm nests sequences" in shown.err  # the user is told which file, on screen

    log = (home / "logs" / "workstation.log").read_bytes()
    assert CANARY not in log.lower(), [line for line in log.decode().splitlines() if "canary" in line.lower()]
    assert PATIENT_ID.encode() not in log and source.SeriesInstanceUID.encode() not in log
    text = log.decode()
    key = opaque_key(source.SeriesInstanceUID)
    for command in ("import", "analyze", "report"):
        assert re.search(rf"INFO workstation: {command}: .*{key}", text), f"{command} does not log series {key}"
    deidentified = opaque_key(Deidentifier(installation_secret(home)).uid(source.SeriesInstanceUID))
    assert re.search(rf"INFO workstation: deidentify: .*{deidentified}", text)
    assert text.count("deidentify failed: ") == 2 and "report failed: LibraryError" in text


def test_a_logged_error_keeps_its_kind_and_place_but_not_its_sentence(tmp_path: Path) -> None:
    path = tmp_path / "Canarywoman.dcm"
    try:
        try:
            shutil.copy(path, tmp_path / "other.dcm")
        except OSError as exc:
            raise ValueError(f"{path.name} is unreadable") from exc
    except ValueError as exc:
        logged = loggable_error(exc)
    assert "canary" not in logged.lower()
    assert logged.startswith("ValueError at cli/test_log_privacy.py:")
    assert "caused by FileNotFoundError[ENOENT]" in logged
