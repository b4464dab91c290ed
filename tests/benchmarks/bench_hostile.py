"""Hostile input (issue #21): listing a zip is linear in its members, and `workstation info` on
any crafted file under 1 MB stays under 1 GB of memory.

Zip: `info` (scan of every member, in-process) on archives of 1,000 and 4,000 members, 16 real
slices plus one-byte members; the ratio of the two times should be about 4 (it was 15 when each
member reopened the archive). Memory: each crafted case runs `workstation info` in a fresh
process; its peak resident set (ru_maxrss of the child) is the measure.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pydicom

from workstation.dicom.series import scan_job
from workstation.dicom.sources import close_archives
from workstation.dicom.write import write_ct_series
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.jobs import run_job

MEMBER_COUNTS = (1000, 4000)


def _series(folder: Path) -> list[Path]:
    phantom = generate_phantom(PhantomSpec(seed=5, matrix=80, pixel_spacing_mm=4.0, slice_thickness_mm=10.0, z_extent_mm=160.0))
    write_ct_series(phantom.volume, folder, phantom.tags)
    return sorted(folder.iterdir())


def _zip_with(slices: list[Path], members: int, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in slices:
            out.write(path, f"series/{path.name}")
        for number in range(members - len(slices)):
            out.writestr(f"junk/{number:06d}", b"x")
    return archive


def _listing_seconds(archive: Path) -> float:
    best = float("inf")
    for _ in range(3):
        close_archives()
        start = time.perf_counter()
        scan = run_job(scan_job([archive]))
        best = min(best, time.perf_counter() - start)
        assert len(scan.series) == 1
    return best


def _crafted(slices: list[Path], folder: Path) -> dict[str, Path]:
    """Small files an attacker would send: each under 1 MB."""
    base = slices[0].read_bytes()
    cases: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        path = folder / name
        path.write_bytes(data)
        assert path.stat().st_size < 1 << 20, name
        cases[name] = path

    ds = pydicom.dcmread(io.BytesIO(base))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, "100000"
    out = io.BytesIO()
    ds.save_as(out)
    write("size-bomb.dcm", out.getvalue())
    opening = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    write("nested-3000.dcm", base[:132] + opening * 3000 + closing * 3000)
    write("huge-length.dcm", base[:140] + b"\xff\xff\xff\xff" + base[144:])
    far = folder / "far-off"
    far.mkdir()
    for index, path in enumerate(slices):
        ds = pydicom.dcmread(path)
        if index == len(slices) - 1:
            x, y, z = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, z + 1e9]
        ds.save_as(far / path.name)
    cases["far-off-slice (folder)"] = far
    bomb = folder / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(8):
            with archive.open(f"m{number}.dcm", "w", force_zip64=True) as member:
                for _ in range(64):
                    member.write(bytes(1 << 20))
    cases["zip of 8 x 64 MiB zeros"] = bomb
    return cases


def _peak_rss_mib(target: Path, home: Path) -> tuple[float, int]:
    """The child's own peak resident set (wait4 gives that process's rusage alone) and exit code."""
    launcher = Path(sys.executable).parent / "workstation"
    env = {**os.environ, "WORKSTATION_HEADLESS": "1", "WORKSTATION_HOME": str(home)}
    child = subprocess.Popen([str(launcher), "info", str(target)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, child.returncode


def main() -> list[tuple[str, float, float, str]]:
    rows: list[tuple[str, float, float, str]] = []
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        slices = _series(root / "series")
        seconds = {n: _listing_seconds(_zip_with(slices, n, root / f"z{n}.zip")) for n in MEMBER_COUNTS}
        small, large = MEMBER_COUNTS
        rows.append((f"zip scan {large} vs {small} members (time ratio, linear = {large // small})",
                     seconds[large] / seconds[small], -(large / small) * 1.5,
                     f"{seconds[small]:.2f} s vs {seconds[large]:.2f} s"))
        crafted = root / "crafted"
        crafted.mkdir()
        peaks = []
        for name, path in _crafted(slices, crafted).items():
            peak, code = _peak_rss_mib(path, root / "home")
            peaks.append((peak, name, code))
        worst = max(peaks)
        rows.append(("info peak memory on crafted files < 1 MB (MiB, worst)", worst[0], -1024.0,
                     f"worst: {worst[1]} (exit {worst[2]}); " + ", ".join(f"{n} exit {c}" for _p, n, c in peaks)))
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
