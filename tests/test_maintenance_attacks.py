"""Backup and restore as an attacker would use them: a manifest that walks out of the target,
links that lead elsewhere, an edited review store with re-made checksums, a backup aimed into
the data folder itself. Each is refused with one sentence, and nothing is written anywhere."""

from __future__ import annotations

import gc

import json
import os
import sqlite3
from pathlib import Path

import pytest

from workstation.errors import WorkstationError
from workstation.files import sha256_file
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.maintenance import MANIFEST, MaintenanceError, backup, restore
from workstation.review.audit import verify
from workstation.review.store import ReviewStore
from workstation.review.users import add_user


@pytest.fixture
def clinic(tmp_path: Path, small_phantom_dir: Path) -> Path:
    """A data folder with one imported study and an audit trail of a few rows."""
    home = tmp_path / "clinic" / "data"
    run_job(StudyLibrary(home).import_job([small_phantom_dir / "dicom"]))
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", "clinic admin 1", "admin")
    add_user(store, admin, "drsmith", "clinic admin 1", "radiologist")
    add_user(store, admin, "ana", "clinic admin 1", "trainee")
    store.close()
    return home


def _snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` (links not followed) with what it is: any write shows up here.
    Unreferenced SQLite connections are closed first: one closing during the walk removes its
    -shm file between the listing and the read."""
    gc.collect()
    return {str(p.relative_to(root)): ("link" if p.is_symlink() else "dir" if p.is_dir() else sha256_file(p))
            for p in sorted(root.rglob("*"))}


def _remake_manifest(target: Path, extra: dict[str, str] | None = None) -> None:
    """What an attacker does after editing a backup: checksums made to fit again."""
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["files"] = {p.relative_to(target).as_posix(): sha256_file(p) for p in sorted(target.rglob("*"))
                         if p.is_file() and p.name != MANIFEST}
    manifest["files"].update(extra or {})
    (target / MANIFEST).write_text(json.dumps(manifest))


def _one_sentence(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, WorkstationError) and "\n" not in message and "Traceback" not in message
    return message


def test_an_untouched_backup_restores_and_its_chain_verifies(clinic: Path, tmp_path: Path) -> None:
    target = backup(clinic, tmp_path / "usb")
    manifest = json.loads((target / MANIFEST).read_text())
    restored = tmp_path / "restored"
    (restored / "logs").mkdir(parents=True)  # a log the app wrote before the restore is kept
    assert restore(target, restored) == len(manifest["files"])
    assert sorted(p.name for p in restored.iterdir()) == sorted({"logs", *(n.split("/")[0] for n in manifest["files"])})
    connection = sqlite3.connect(restored / "review.db")
    result = verify(connection)
    connection.close()
    assert result.ok and manifest["audit_head"] == {"seq": result.rows, "hash": result.head} and result.rows >= 3


@pytest.mark.parametrize("attack", ["dot-dot", "absolute", "linked file", "linked folder", "target's logs link"])
def test_a_manifest_path_leading_outside_is_refused_with_nothing_written(clinic: Path, tmp_path: Path,
                                                                           attack: str) -> None:
    target = backup(clinic, tmp_path / "usb" / "stick")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "ESCAPED.txt").write_text("written by the backup")
    restored = tmp_path / "new" / "data"
    if attack == "dot-dot":  # resolves to usb/x/ESCAPED.txt in the backup, new/x/ESCAPED.txt on restore
        (tmp_path / "usb" / "x").mkdir()
        (tmp_path / "usb" / "x" / "ESCAPED.txt").write_text("written outside the data folder")
        extra = {"../../x/ESCAPED.txt": sha256_file(tmp_path / "usb" / "x" / "ESCAPED.txt")}
    elif attack == "absolute":
        extra = {str(outside / "ESCAPED.txt"): sha256_file(outside / "ESCAPED.txt")}
    elif attack == "linked file":  # would copy any file the restoring user can read into the data folder
        (target / "studies" / "ESCAPED.txt").symlink_to(outside / "ESCAPED.txt")
        extra = {}
    elif attack == "linked folder":
        (target / "evil").symlink_to(outside, target_is_directory=True)
        extra = {"evil/ESCAPED.txt": sha256_file(outside / "ESCAPED.txt")}
    else:  # the target's own logs folder is a link: writing through it lands elsewhere
        (target / "logs").mkdir()
        (target / "logs" / "ESCAPED.txt").write_text("through the link")
        restored.mkdir(parents=True)
        (restored / "logs").symlink_to(outside, target_is_directory=True)
        extra = {}
    _remake_manifest(target, extra)
    before = _snapshot(tmp_path)
    with pytest.raises(MaintenanceError) as error:
        restore(target, restored)
    assert "leads outside" in _one_sentence(error)
    assert _snapshot(tmp_path) == before  # nothing written inside the target or anywhere else
    assert not (tmp_path / "new" / "x").exists()


def test_an_edited_review_store_with_remade_checksums_is_refused(clinic: Path, tmp_path: Path) -> None:
    target = backup(clinic, tmp_path / "usb")
    connection = sqlite3.connect(target / "review.db")
    for (trigger,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        connection.execute(f"DROP TRIGGER {trigger}")
    connection.execute("UPDATE audit SET user = 'mallory' WHERE seq = 2")
    connection.commit()
    connection.close()
    _remake_manifest(target)
    restored = tmp_path / "restored"
    before = _snapshot(tmp_path)
    with pytest.raises(MaintenanceError) as error:
        restore(target, restored)
    assert "audit trail does not verify" in _one_sentence(error) and "row 2" in str(error.value)
    assert not restored.exists() and _snapshot(tmp_path) == before  # nothing switched in, no staging left


def test_a_backup_with_an_escalated_account_is_refused(clinic: Path, tmp_path: Path) -> None:
    target = backup(clinic, tmp_path / "usb")
    connection = sqlite3.connect(target / "review.db")
    connection.execute("UPDATE users SET role = 'admin' WHERE username = 'ana'")
    connection.commit()
    connection.close()
    _remake_manifest(target)
    with pytest.raises(MaintenanceError, match="does not verify"):
        restore(target, tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_a_cut_audit_tail_is_refused_against_the_manifests_head(clinic: Path, tmp_path: Path) -> None:
    """Deleting the newest row and fixing audit_head: the clinical row that audit row recorded is
    now unaccounted for, and the head in the manifest (unless re-made too) no longer matches."""
    target = backup(clinic, tmp_path / "usb")
    connection = sqlite3.connect(target / "review.db")
    for (trigger,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        connection.execute(f"DROP TRIGGER {trigger}")
    last = connection.execute("SELECT max(seq) FROM audit").fetchone()[0]
    connection.execute("DELETE FROM audit WHERE seq = ?", (last,))
    connection.execute("UPDATE audit_head SET seq = ?, hash = (SELECT hash FROM audit WHERE seq = ?)",
                       (last - 1, last - 1))
    connection.commit()
    assert "not in the audit trail" in verify(connection).reason  # the chain covers the record
    connection.close()
    _remake_manifest(target)
    restored = tmp_path / "restored"
    with pytest.raises(MaintenanceError) as error:
        restore(target, restored)
    assert "does not verify" in _one_sentence(error)  # (before the manifest's head is even compared)
    assert not restored.exists()


@pytest.mark.parametrize("how", ["subfolder", "the folder itself", "through a link"])
def test_a_backup_into_the_data_folder_is_refused_before_writing(clinic: Path, tmp_path: Path, how: str) -> None:
    if how == "subfolder":
        destination = clinic / "backups" / "today"
    elif how == "the folder itself":
        destination = clinic
    else:
        (tmp_path / "usb").symlink_to(clinic, target_is_directory=True)
        destination = tmp_path / "usb" / "backups"
    before = _snapshot(tmp_path)
    with pytest.raises(MaintenanceError) as error:
        backup(clinic, destination)
    assert "inside the data folder" in _one_sentence(error)
    assert _snapshot(tmp_path) == before


def test_a_failed_backup_removes_its_partial_copy(clinic: Path, tmp_path: Path, monkeypatch) -> None:
    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("workstation.maintenance.shutil.copytree", full_disk)
    with pytest.raises(MaintenanceError, match="No space left") as error:
        backup(clinic, tmp_path / "usb")
    _one_sentence(error)
    assert os.listdir(tmp_path / "usb") == []
