"""Write a Volume as a CT Image Storage series (one file per slice).

Used for synthetic phantoms, benchmarks and tests; the real scanner files in tests keep
us honest about what we read. Compressed syntaxes use pydicom's encoders (RLE, JPEG-LS via
pyjpegls, JPEG 2000 via pylibjpeg-openjpeg).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID, ExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless, RLELossless, generate_uid,
)

from workstation import __version__
from workstation.dicom.headers import CT_IMAGE
from workstation.imaging.volume import Volume

SYNTAXES: dict[str, UID] = {
    "explicit": ExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpegls": JPEGLSLossless,
    "j2k": JPEG2000Lossless,
}


@dataclass(frozen=True)
class ScannerStyle:
    """How a vendor stores HU: GE-like signed with a padding value, Siemens-like unsigned."""

    signed: bool
    padding_value: int | None  # stored value outside the reconstruction circle, or None


GE_LIKE = ScannerStyle(signed=True, padding_value=-2000)
SIEMENS_LIKE = ScannerStyle(signed=False, padding_value=None)
RESCALE_INTERCEPT = -1024


def write_ct_series(volume: Volume, out_dir: Path, tags: dict[str, object], *, syntax: str = "explicit",
                    style: ScannerStyle = SIEMENS_LIKE, outside_fov: np.ndarray | None = None,
                    uid_seed: str | None = None) -> list[Path]:
    """Write `volume` (HU) as a series; `outside_fov` marks (rows, columns) padding pixels.

    `tags` supplies patient/study attributes by keyword. Instance numbers run from the top
    slice down (as many scanners do), so they disagree with the storage order on purpose.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entropy = [uid_seed] if uid_seed is not None else None
    study_uid = str(tags.get("StudyInstanceUID") or generate_uid(entropy_srcs=entropy and entropy + ["study"]))
    series_uid = str(tags.get("SeriesInstanceUID") or generate_uid(entropy_srcs=entropy and entropy + ["series"]))
    frame_uid = volume.frame_of_reference_uid or str(generate_uid(entropy_srcs=entropy and entropy + ["frame"]))
    spacing = volume.spacing_mm
    direction = volume.direction
    orientation = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]]).round(8)]
    count = volume.shape[0]
    paths = []
    for k in range(count):
        position = volume.voxel_to_patient((0, 0, k))
        ds = _base_dataset(tags, study_uid, series_uid, frame_uid)
        sop_uid = str(generate_uid(entropy_srcs=entropy and entropy + [f"slice{k}"]))
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = count - k
        ds.ImagePositionPatient = [float(v) for v in position.round(4)]
        ds.ImageOrientationPatient = orientation
        ds.SliceLocation = float(position[2].round(4))
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(tags.get("SliceThickness") or spacing[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.PixelRepresentation = 1 if style.signed else 0
        ds.BitsStored, ds.HighBit = (16, 15) if style.signed else (12, 11)
        ds.RescaleIntercept, ds.RescaleSlope = RESCALE_INTERCEPT, 1
        ds.RescaleType = "HU"
        stored = np.clip(np.rint(volume.voxels[k]) - RESCALE_INTERCEPT, 0, 4095)
        stored = stored.astype(np.int16 if style.signed else np.uint16)
        if style.padding_value is not None and outside_fov is not None:
            stored[outside_fov] = style.padding_value
            ds.PixelPaddingValue = style.padding_value
        ds.file_meta = _file_meta(sop_uid)
        ds.PixelData = stored.tobytes()
        if syntax != "explicit":
            ds.compress(SYNTAXES[syntax], encoding_plugin="pylibjpeg" if syntax == "j2k" else "")
        path = out_dir / f"IM{k:05d}"  # no extension, as on many scanner exports
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _base_dataset(tags: dict[str, object], study_uid: str, series_uid: str, frame_uid: str) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE
    ds.Modality = "CT"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.PatientPosition = "FFS"
    today = dt.date.today().strftime("%Y%m%d")
    ds.ContentDate = today
    for keyword, value in tags.items():
        if keyword not in ("StudyInstanceUID", "SeriesInstanceUID") and value not in (None, ""):
            setattr(ds, keyword, value)
    ds.SoftwareVersions = f"workstation {__version__}"
    return ds


def _file_meta(sop_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    return meta
