"""#21 items 2 and 8 for teaching packs: a pack appears at its name only once its export is in the
audit trail; a member that inflates like a zip bomb is refused before anything is extracted."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from tests.teaching.test_pack_quiz import trainer_home  # noqa: F401 - the fixture
from workstation.files import sha256_file
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.review.store import StoreError
from workstation.teaching import pack as pack_module
from workstation.teaching.pack import MANIFEST, MANIFEST_CHECKSUM, PackError, export_pack_job, import_pack_job


def test_a_pack_is_visible_only_after_its_export_is_recorded(trainer_home, tmp_path: Path,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    home, store, _ = trainer_home
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    seen: list[list[str]] = []
    real_append = pack_module.audit.append

    def append_and_look(connection, user, action, **kwargs):
        seen.append(sorted(p.name for p in out_dir.iterdir()))
        return real_append(connection, user, action, **kwargs)

    monkeypatch.setattr("workstation.review.exports.audit.append", append_and_look)
    out = out_dir / "lecture.zip"
    run_job(export_pack_job(home, store, ["1"], out, created_by="dr_trainer"))
    assert len(seen) == 1 and "lecture.zip" not in seen[0] and any(n.endswith(".partial") for n in seen[0])
    assert sorted(p.name for p in out_dir.iterdir()) == ["lecture.zip"]
    row = store.connection.execute("SELECT new_value FROM audit WHERE action = 'exported' ORDER BY rowid DESC").fetchone()
    recorded = json.loads(row[0])
    assert recorded["kind"] == "teaching-pack" and recorded["sha256"] == sha256_file(out)

    store.connection.execute("PRAGMA query_only = ON")  # the audit row cannot be written
    with pytest.raises(StoreError):
        run_job(export_pack_job(home, store, ["1"], out_dir / "second.zip", created_by="dr_trainer"))
    store.connection.execute("PRAGMA query_only = OFF")
    assert sorted(p.name for p in out_dir.iterdir()) == ["lecture.zip"]


def test_a_member_that_inflates_like_a_bomb_is_refused_before_extraction(trainer_home,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    home, store, _ = trainer_home
    pack = run_job(export_pack_job(home, store, ["1"], tmp_path / "lecture.zip", created_by="dr_trainer"))
    with zipfile.ZipFile(pack) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    victim = next(name for name in members if name.endswith(".dcm"))
    members[victim] = bytes(64 << 20)  # zeros: about 1,000-fold, honestly declared
    manifest = json.loads(members[MANIFEST])
    manifest["files"][victim] = hashlib.sha256(members[victim]).hexdigest()
    text = json.dumps(manifest).encode()
    members[MANIFEST], members[MANIFEST_CHECKSUM] = text, f"{hashlib.sha256(text).hexdigest()}  {MANIFEST}\n".encode()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    studies = len(StudyLibrary(home).studies())
    with pytest.raises(PackError, match=r"refused as a zip bomb .*; nothing was extracted"):
        run_job(import_pack_job(bomb, home, store, imported_by="admin"))
    assert len(StudyLibrary(home).studies()) == studies
