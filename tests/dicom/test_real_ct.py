"""Geometry on real scanner files with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from workstation.dicom.load import load_volume, scan


def _hu(path: Path) -> tuple[np.ndarray, pydicom.Dataset]:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept), ds


def test_empty_uids_still_group_into_one_series_sorted_by_position(real_ct: Path) -> None:
    folder = real_ct / "abdomen-j2k-empty-uids"
    result = scan([folder])
    assert len(result.studies) == 1 and len(result.series) == 1
    series = result.series[0]
    assert series.uids_derived and series.key.startswith("2.25.")
    volume = load_volume(folder)
    assert volume.shape == (20, 512, 512)
    assert volume.spacing_mm == pytest.approx((0.9765625, 0.9765625, 2.0))
    # InstanceNumber rises as z falls here: slice 0 must be the lowest z, not the lowest InstanceNumber.
    files = sorted(folder.iterdir())
    by_z = sorted(files, key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]))
    lowest, _ = _hu(by_z[0])
    highest, ds_high = _hu(by_z[-1])
    assert int(pydicom.dcmread(by_z[0], stop_before_pixels=True).InstanceNumber) > int(ds_high.InstanceNumber)
    np.testing.assert_array_equal(volume.voxels[0], lowest)
    np.testing.assert_array_equal(volume.voxels[-1], highest)
    assert volume.origin_mm[2] == pytest.approx(-804.5)
    assert volume.orientation_code() == "LPS"


def test_same_result_for_zip_of_the_series(real_ct: Path, tmp_path: Path) -> None:
    import zipfile

    folder = real_ct / "abdomen-j2k-empty-uids"
    archive = tmp_path / "study.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for f in sorted(folder.iterdir())[::-1]:
            out.write(f, f"nested/{f.name}")
    from_zip, from_folder = load_volume(archive), load_volume(folder)
    np.testing.assert_array_equal(from_zip.voxels, from_folder.voxels)
    np.testing.assert_allclose(from_zip.affine, from_folder.affine)
    assert from_zip.metadata.series_uid == from_folder.metadata.series_uid  # derived keys are stable


def test_gantry_tilt_resampled_onto_a_grid_that_keeps_every_pixel_in_place(real_ct: Path) -> None:
    folder = real_ct / "head-gantry-tilt"
    volume = load_volume(folder)
    text = " ".join(volume.warnings)
    assert "Gantry tilt of 18.5 degrees" in text
    assert "Slice spacing varies from 1.08 to 7.00 mm" in text
    assert volume.interpolated_slices
    # The grid axes are orthogonal; the slice axis is the acquired planes' normal.
    direction = volume.direction
    np.testing.assert_allclose(direction.T @ direction, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(direction[:, 1], [0, 0.9483237, -0.3173047], atol=1e-6)
    # Every measured source pixel sampled back from the volume at its patient position.
    errors = []
    for path in sorted(folder.iterdir())[::5]:
        source, ds = _hu(path)
        row, col = np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        j, i = np.mgrid[100:400:7, 100:400:7]
        points = (np.array(ds.ImagePositionPatient, float) + i[..., None] * dc * row + j[..., None] * dr * col)
        ijk = volume.patient_to_voxel(points.reshape(-1, 3))
        sampled = ndimage.map_coordinates(volume.voxels.astype(np.float32), ijk[:, ::-1].T, order=1, cval=-1000)
        k = float(np.median(ijk[:, 2]))
        if abs(k - round(k)) < 0.05 and round(k) not in volume.interpolated_slices:  # a measured grid slice
            errors.append(np.median(np.abs(sampled - source[j, i].ravel())))
    assert len(errors) >= 3 and max(errors) < 5.0  # HU; a shifted or mis-tilted grid gives hundreds


def test_pixel_padding_value_becomes_air(real_ct: Path) -> None:
    folder = real_ct / "head-gantry-tilt"
    raw = pydicom.dcmread(next(iter(sorted(folder.iterdir()))))
    assert int(raw.PixelPaddingValue) == -1500 and (raw.pixel_array == -1500).any()
    volume = load_volume(folder)
    assert volume.voxels.min() >= -1024  # no -1500 'padding HU' left anywhere


@pytest.mark.parametrize("name", ["chest-5mm-lesion14mm", "chest-5mm-mass45mm"])
def test_labelled_lesion_centre_lands_on_the_lesion(real_ct: Path, name: str) -> None:
    truth = json.loads((real_ct / f"{name}.truth.json").read_text())["lesions"][0]
    volume = load_volume(real_ct / name)
    ijk = volume.patient_to_voxel(truth["center_mm"])
    if "center_voxel_col_row_slice" in truth:
        np.testing.assert_allclose(ijk, truth["center_voxel_col_row_slice"], atol=0.6)
    i, j, k = np.rint(ijk).astype(int)
    patch = volume.voxels[k, j - 3:j + 4, i - 3:i + 4].astype(float)
    assert abs(patch.mean() - truth["mean_hu"]) < 120  # soft tissue, far from lung (-850) or air
    assert volume.warnings == ()
