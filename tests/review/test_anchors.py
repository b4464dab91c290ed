"""Anchors outside review.db catch a chain rebuilt from scratch or cut at its end (#20, item 4):
the anchor log, a report that left the machine, a backup."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from workstation.cli import main
from workstation.library import StudyLibrary
from workstation.review import audit
from workstation.review.anchors import ANCHOR_FILE, anchor_of_report
from workstation.review.record_rows import row_digest
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run

PASSWORD = "correct horse battery"


@pytest.fixture
def signed_study(home: Path, small_phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A library study read and signed, its report exported, a backup made; returns the report."""
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    assert main(["import", str(small_phantom_dir / "dicom")]) == 0
    store = ReviewStore.in_home(home)
    add_user(store, None, "boss", PASSWORD, "admin")
    store.close()
    assert main(["analyze", "1", "--as", "boss"]) == 0
    store = ReviewStore.in_home(home)
    session = ReviewSession(store, login(store, "boss", PASSWORD), StudyLibrary(home).studies()[0]["study_uid"])
    session.sign("One nodule.", password=PASSWORD, allow_undecided=True,
                 undecided_reason="out of scope for this test")
    store.close()
    report = tmp_path / "report.pdf"
    assert main(["report", "1", "--out", str(report), "--as", "boss"]) == 0
    assert main(["backup", str(tmp_path / "backups"), "--as", "boss"]) == 0
    return report


def _rebuild_chain(database: Path, *edits: str) -> None:
    """What an attacker who knows the algorithm does: edit, then recompute every row hash (and the
    clinical rows' hashes the rows record) and the head, with the triggers put back."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("DROP TRIGGER audit_no_update")
    for edit in edits:
        connection.execute(edit)
    prev = audit.GENESIS
    rows = connection.execute(f"SELECT {', '.join(audit.COLUMNS)} FROM audit ORDER BY seq").fetchall()
    for seq, time_utc, user, action, study, obj, old, new, details, _prev, _hash, recorded in rows:
        if recorded:
            recorded = json.dumps([[t, r, row_digest(connection, t, r) if d else None]
                                   for t, r, d in json.loads(recorded)], separators=(",", ":"))
        digest = audit.row_hash(prev, seq, time_utc, user, action, study, obj, old, new, details, recorded)
        connection.execute("UPDATE audit SET prev_hash = ?, hash = ?, rows = ? WHERE seq = ?",
                           (prev, digest, recorded, seq))
        prev = digest
    connection.execute("UPDATE audit_head SET seq = ?, hash = ?", (len(rows), prev))
    connection.execute("CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'x'); END")
    connection.close()


def test_a_rebuilt_chain_passes_alone_but_not_against_its_anchors(signed_study: Path, home: Path, capsys) -> None:
    assert main(["audit", "verify", "--report", str(signed_study)]) == 0
    assert (home / ANCHOR_FILE).read_text().count("\n") >= 3  # signing, report, backup
    _rebuild_chain(home / "review.db", "UPDATE reading_sessions SET impression = 'No nodules. Discharge.'")
    store = ReviewStore.in_home(home)
    assert audit.verify(store.connection).ok  # the rebuild is consistent in itself...
    store.close()
    capsys.readouterr()
    assert main(["audit", "verify"]) == 1  # ...but not with the anchor log
    assert "recomputed" in capsys.readouterr().out
    (home / ANCHOR_FILE).unlink()  # the attacker removes the log too; the report that left still holds
    assert main(["audit", "verify", "--report", str(signed_study)]) == 1
    assert "the report report.pdf" in capsys.readouterr().out
    backup = next((signed_study.parent / "backups").iterdir())
    assert main(["audit", "verify", "--backup", str(backup)]) == 1
    assert f"the backup {backup.name}" in capsys.readouterr().out


def test_a_cut_tail_is_caught_by_the_anchor_log(signed_study: Path, home: Path, capsys) -> None:
    connection = sqlite3.connect(home / "review.db", isolation_level=None)
    connection.execute("DROP TRIGGER audit_no_delete")
    last = connection.execute("SELECT max(seq) FROM audit").fetchone()[0]
    connection.execute("DELETE FROM audit WHERE seq > ?", (last - 3,))
    seq, digest = connection.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    connection.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, digest))
    connection.close()
    assert main(["audit", "verify"]) == 1
    assert "no longer has" in capsys.readouterr().out


def test_the_report_carries_the_head_it_printed(signed_study: Path, home: Path) -> None:
    seq, digest = anchor_of_report(signed_study)
    store = ReviewStore.in_home(home)
    assert store.connection.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()[0] == digest
    store.close()
