"""A damaged or incomplete series loads what is there, says so, and never shifts slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from workstation.dicom.load import load_volume
from workstation.errors import GeometryError, NoSeriesError, WorkstationError


def _by_position(folder: Path) -> list[Path]:
    return sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                       .ImagePositionPatient[2]))


def test_one_corrupt_slice_is_reported_and_interpolated_in_place(phantom_copy: Path) -> None:
    intact = load_volume(phantom_copy)
    files = _by_position(phantom_copy)
    victim = files[30]
    victim.write_bytes(victim.read_bytes()[:-5000])  # truncated pixel data
    damaged = load_volume(phantom_copy)
    assert damaged.shape == intact.shape
    np.testing.assert_allclose(damaged.affine, intact.affine, atol=1e-6)
    assert any("1 slice(s) missing" in w for w in damaged.warnings)
    assert any("File skipped" in w and "truncated" in w and victim.name in w for w in damaged.warnings)
    assert damaged.interpolated_slices == (30,)
    others = [k for k in range(intact.shape[0]) if k != 30]
    np.testing.assert_array_equal(damaged.voxels[others], intact.voxels[others])


def test_missing_slices_are_detected(phantom_copy: Path) -> None:
    intact = load_volume(phantom_copy)
    for path in _by_position(phantom_copy)[50:52]:
        path.unlink()
    gappy = load_volume(phantom_copy)
    assert any("2 slice(s) missing" in w for w in gappy.warnings)
    assert gappy.shape == intact.shape and gappy.interpolated_slices == (50, 51)
    np.testing.assert_array_equal(gappy.voxels[52:], intact.voxels[52:])


def test_mixed_orientations_in_one_stack_are_refused(phantom_copy: Path) -> None:
    from workstation.dicom.geometry import stack_geometry
    from workstation.dicom.series import scan_job
    from workstation.jobs import run_job

    headers = run_job(scan_job([phantom_copy])).series[0].slices
    odd = headers[3].__class__(**{**headers[3].__dict__, "orientation": (1.0, 0, 0, 0, 0, -1.0)})
    with pytest.raises(GeometryError):
        stack_geometry([*headers[:3], odd])


def test_folder_without_dicom_gives_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(NoSeriesError, match="No CT series found"):
        load_volume(tmp_path)


def test_non_ct_file_is_refused_with_its_kind() -> None:
    from pydicom.data import get_testdata_file

    with pytest.raises(WorkstationError, match="Not a CT image"):
        load_volume(Path(get_testdata_file("MR_small.dcm")))
