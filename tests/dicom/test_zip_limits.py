"""Zips are read from one open archive, and a member's declared size and compression ratio are
checked before a byte of it is inflated (#21, item 2)."""

from __future__ import annotations

import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from workstation.cli import main
from workstation.config import LIMITS
from workstation.dicom import sources
from workstation.dicom.load import load_volume
from workstation.dicom.series import scan_job
from workstation.errors import SizeLimitError
from workstation.jobs import run_job


def _zip_of(folder: Path, archive: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted(folder.iterdir()):
            out.write(path, f"series/{path.name}")
        for name, data in (extra or {}).items():
            out.writestr(name, data)
    return archive


def test_members_are_read_through_one_opening_of_the_archive(phantom_copy: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip_of(phantom_copy, tmp_path / "study.zip")
    sources.close_archives()
    openings = []
    real_zipfile = zipfile.ZipFile

    def counting(*args, **kwargs):
        openings.append(args[0] if args else kwargs.get("file"))
        return real_zipfile(*args, **kwargs)

    monkeypatch.setattr(sources.zipfile, "ZipFile", counting)
    volume = load_volume(archive)
    assert volume.shape[0] == len(list(phantom_copy.iterdir()))
    assert len(openings) == 1, f"the archive was opened {len(openings)} times"


def test_a_rewritten_archive_is_read_afresh(phantom_copy: Path, tmp_path: Path) -> None:
    archive = _zip_of(phantom_copy, tmp_path / "study.zip")
    before = load_volume(archive).shape[0]
    victim = sorted(phantom_copy.iterdir())[0]
    victim.unlink()
    time.sleep(0.01)  # a different mtime too, though the size alone already differs
    _zip_of(phantom_copy, archive)
    assert load_volume(archive).shape[0] == before - 1


def _bomb(archive: Path, size: int) -> Path:
    """A member of `size` zero bytes: it deflates about 1,000-fold."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        with out.open("bomb.dcm", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(size >> 20):
                member.write(block)
    return archive


def test_a_zip_bomb_is_refused_by_its_ratio_before_inflating(phantom_copy: Path, tmp_path: Path) -> None:
    archive = _bomb(tmp_path / "bomb.zip", 64 << 20)
    assert archive.stat().st_size < 1 << 20
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as out:  # a good series beside it
        for path in sorted(phantom_copy.iterdir()):
            out.write(path, f"series/{path.name}")
    bomb = next(s for s in sources.zip_sources(archive) if s.member == "bomb.dcm")
    tracemalloc.start()
    with pytest.raises(SizeLimitError, match="zip bomb"):
        bomb.read_bytes()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, "the member was inflated before it was refused"
    scan = run_job(scan_job([archive]))
    assert [len(s.slices) for s in scan.series] == [len(list(phantom_copy.iterdir()))]
    assert any("zip bomb" in reason for _label, reason in scan.skipped)


def test_a_well_compressed_small_member_is_not_a_bomb(tmp_path: Path) -> None:
    # A slice of air deflates several hundred-fold; under the ratio-free size it is just read.
    archive = _bomb(tmp_path / "air.zip", 4 << 20)
    member = next(sources.zip_sources(archive))
    assert member.declared_size == 4 << 20 and member.declared_size > LIMITS.max_zip_ratio * member.compressed_size
    assert len(member.read_bytes()) == 4 << 20


def test_a_member_declared_over_the_limit_is_refused_from_the_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _bomb(tmp_path / "big.zip", 3 << 20)
    monkeypatch.setattr(sources, "LIMITS", type(LIMITS)(max_zip_member_bytes=2 << 20))
    with pytest.raises(SizeLimitError, match="over the 2097152-byte limit"):
        next(sources.zip_sources(archive)).read_bytes()


def test_too_many_entries_is_a_named_refusal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for number in range(50):
            out.writestr(f"m{number}", b"x")
    monkeypatch.setattr(sources, "LIMITS", type(LIMITS)(max_zip_members=40))
    assert main(["info", str(archive)]) != 0
    assert "holds 50 entries, more than the limit of 40" in capsys.readouterr().err
