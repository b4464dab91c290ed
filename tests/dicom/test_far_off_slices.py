"""A slice far off its series (a damaged or crafted position) is left out with a warning, a
grid that would explode is refused before allocating, and a good neighbour series still loads
(#21, item 1)."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import pydicom
import pytest

from workstation.cli import main
from workstation.dicom.load import load_volume
from workstation.errors import SizeLimitError


def _by_position(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                       .ImagePositionPatient[2]))


def _move(path: Path, dz: float = 0.0, dx: float = 0.0) -> None:
    ds = pydicom.dcmread(path)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    ds.ImagePositionPatient = [x + dx, y, z + dz]
    ds.save_as(path)


@pytest.mark.parametrize(("dz", "dx"), [(1e9, 0.0), (1e5, 0.0), (-1e9, 0.0), (0.0, 1e7)])
def test_a_far_off_slice_is_left_out_with_a_warning(phantom_copy: Path, dz: float, dx: float) -> None:
    intact = load_volume(phantom_copy)
    files = _by_position(phantom_copy)
    victim = files[-1] if dz > 0 else files[0] if dz < 0 else files[len(files) // 2]
    _move(victim, dz, dx)
    tracemalloc.start()
    volume = load_volume(phantom_copy)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert volume.shape[0] in (intact.shape[0] - 1, intact.shape[0])  # an inner one is interpolated back
    assert any("was left out" in w and "mm" in w for w in volume.warnings), volume.warnings
    assert peak < 4 * intact.nbytes


def test_two_clusters_far_apart_are_refused_before_allocating(phantom_copy: Path) -> None:
    files = _by_position(phantom_copy)
    for path in files[len(files) // 2:]:  # half the series 100 m further on: no majority to keep
        _move(path, dz=1e5)
    with pytest.raises(SizeLimitError, match="positions are probably damaged"):
        load_volume(phantom_copy)


def test_info_reports_the_good_series_beside_a_damaged_one(home: Path, phantom_copy: Path, small_phantom_dir: Path,
                                                          tmp_path: Path, capsys) -> None:
    folder = tmp_path / "usb"
    shutil.copytree(phantom_copy, folder / "bad")
    good = folder / "good"
    shutil.copytree(small_phantom_dir / "dicom", good)
    for path in good.iterdir():  # another series: its own UIDs
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = ds.SeriesInstanceUID + ".9"
        ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
        ds.save_as(path)
    files = _by_position(folder / "bad")
    for path in files[len(files) // 2:]:
        _move(path, dz=1e5)
    assert main(["info", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "series could not be loaded" in out and "positions are probably damaged" in out
    assert out.count("shape ") == 1  # the good one is described
