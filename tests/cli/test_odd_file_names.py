"""A file name that is not valid UTF-8 (any bytes, from patient media) is handled and logged
safely (#21 item 5)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from workstation.cli import main


def test_names_with_any_bytes_import_and_log_without_an_error(home: Path, small_phantom_dir: Path, tmp_path: Path,
                                                             capfd) -> None:
    folder = tmp_path / "usb"
    folder.mkdir()
    first = sorted((small_phantom_dir / "dicom").iterdir())[0]
    shutil.copy(first, os.fsdecode(bytes(folder) + b"/slice\xff\xfe.dcm"))
    junk = os.fsdecode(bytes(folder) + b"/notes\xff.txt")
    Path(junk).write_bytes(b"not dicom")
    assert main(["import", str(folder)]) == 0
    assert main(["info", junk]) == 2  # a named error, not an internal one
    captured = capfd.readouterr()
    assert "Logging error" not in captured.err and "Traceback" not in captured.err
    assert "No CT series found" in captured.err
    log = (home / "logs" / "workstation.log").read_text(encoding="utf-8")
    assert "info failed: WorkstationError" in log and "notes" not in log  # names from patient media stay out (item 7)
