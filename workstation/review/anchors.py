"""Copies of the audit chain's head kept outside review.db, so that a chain recomputed from
scratch or cut at its end is caught.

Every signing, report or export and backup appends (seq, head hash) to an anchor log beside
the database; every report also carries the head in its text and in its PDF keywords, and a
backup in its manifest. `verify_with_anchors` checks the chain and then that every anchor
still names a row with that hash.

What this cannot do: someone who can write the whole data folder can also rewrite the anchor
log. What they cannot rewrite are the reports and backups that have left the machine; checking
the chain against one of those (`workstation audit verify --report FILE.pdf`, `--backup DIR`)
proves whether the chain still holds what it said then.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)
ANCHOR_FILE = "audit-anchors.jsonl"
_KEYWORDS = re.compile(rb"workstation-audit-head (\d+) ([0-9a-f]{64})")


def anchor_log(database: Path) -> Path:
    return Path(database).parent / ANCHOR_FILE


def record_anchor(connection: sqlite3.Connection, database: Path, event: str) -> None:
    """Append the current head to the anchor log (after the commit it anchors). A failure is
    logged, never raised: the change it anchors is already saved."""
    row = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    if row is None:
        return
    line = json.dumps({"seq": row[0], "hash": row[1], "event": event,
                       "time_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    try:
        with open(anchor_log(database), "a", encoding="utf-8") as stream:
            stream.write(line + "\n")
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as exc:
        log.warning("audit anchor not written: %s", exc)


def report_anchor_keywords(seq: int, head: str) -> str:
    return f"workstation-audit-head {seq} {head}"


def anchor_of_report(pdf: Path) -> tuple[int, str]:
    """(seq, head) a report of ours carries in its keywords (reportlab writes them in clear)."""
    match = _KEYWORDS.search(Path(pdf).read_bytes())
    if match is None:
        raise ValueError(f"{pdf} carries no audit chain head (not a report of this workstation?)")
    return int(match.group(1)), match.group(2).decode()


def anchors_in_log(database: Path) -> list[tuple[int, str, str]]:
    """(seq, hash, where it comes from) of every line of the anchor log."""
    path = anchor_log(database)
    if not path.is_file():
        return []
    anchors = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            entry = json.loads(line)
            anchors.append((int(entry["seq"]), str(entry["hash"]),
                            f"the anchor of {entry.get('event', '?')} at {entry.get('time_utc', '?')}"))
        except (ValueError, KeyError, TypeError):
            anchors.append((0, "", f"line {number} of {path.name}, which is damaged"))
    return anchors


def first_broken_anchor(connection: sqlite3.Connection, anchors: list[tuple[int, str, str]]
                        ) -> tuple[int, str] | None:
    """(seq, sentence) for the first anchor the chain no longer holds; None when all hold."""
    for seq, head, source in anchors:
        row = connection.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone() if seq else None
        if row is None:
            return seq, f"{source} names row {seq}, which the chain no longer has (the trail was cut or rebuilt)"
        if row[0] != head:
            return seq, f"row {seq} differs from {source} (the chain was recomputed after it)"
    return None
