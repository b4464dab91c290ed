"""Volume: CT voxels in HU plus the affine that places every voxel in patient space.

Index order of `voxels` is (slice, row, column) = (k, j, i); the affine maps the column
vector (i, j, k, 1) to DICOM patient LPS millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from workstation.errors import GeometryError


@dataclass(frozen=True)
class SeriesMetadata:
    """Identifiers and acquisition facts later features need (scope checks, reports, audits)."""

    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""  # (0010,0021): a Patient ID is unique only within its issuer
    patient_birth_date: str = ""
    patient_age: str = ""
    patient_sex: str = ""
    study_uid: str = ""
    series_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: str = ""
    accession_number: str = ""
    modality: str = "CT"
    manufacturer: str = ""
    model: str = ""
    kernel: str = ""
    slice_thickness: float | None = None
    kvp: float | None = None
    institution: str = ""
    body_part: str = ""
    sop_class_uid: str = ""
    transfer_syntax: str = ""
    uids_derived: bool = False

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SeriesMetadata":
        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                continue
            if name in ("slice_thickness", "kvp"):
                kwargs[name] = _optional_float(value)
            elif name == "uids_derived":
                kwargs[name] = bool(value)
            else:
                kwargs[name] = "" if value is None else str(value)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _optional_float(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, eq=False)
class Volume:
    """A CT volume. Validates its shape and geometry on construction."""

    voxels: np.ndarray
    affine: np.ndarray
    frame_of_reference_uid: str = ""
    metadata: SeriesMetadata = field(default_factory=SeriesMetadata)
    warnings: tuple[str, ...] = ()
    interpolated_slices: tuple[int, ...] = ()  # slice indices made by interpolation, not measured

    def __post_init__(self) -> None:
        if self.voxels.ndim != 3 or min(self.voxels.shape) < 1:
            raise GeometryError(f"A volume needs 3 non-empty dimensions, got shape {self.voxels.shape}")
        affine = np.asarray(self.affine, dtype=float)
        if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
            raise GeometryError("The volume affine must be a finite 4x4 matrix")
        if not np.allclose(affine[3], [0, 0, 0, 1]):
            raise GeometryError("The last row of the volume affine must be 0 0 0 1")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-9:
            raise GeometryError("The volume affine is singular (zero spacing or parallel axes)")
        object.__setattr__(self, "affine", affine)

    @classmethod
    def from_geometry(cls, voxels: np.ndarray, origin: np.ndarray, row_direction: np.ndarray,
                      column_direction: np.ndarray, slice_step: np.ndarray, spacing_cr: tuple[float, float],
                      **kwargs: Any) -> "Volume":
        """Build from DICOM terms: origin = first voxel centre, spacing_cr = (column, row) spacing."""
        affine = np.eye(4)
        affine[:3, 0] = np.asarray(row_direction) * spacing_cr[0]
        affine[:3, 1] = np.asarray(column_direction) * spacing_cr[1]
        affine[:3, 2] = slice_step
        affine[:3, 3] = origin
        return cls(voxels=voxels, affine=affine, **kwargs)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(slices, rows, columns)."""
        return tuple(int(n) for n in self.voxels.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        """(column, row, slice) spacing: lengths of the affine's axes."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 unit axis directions (columns: i, j, k) in LPS."""
        return self.affine[:3, :3] / np.array(self.spacing_mm)

    @property
    def origin_mm(self) -> np.ndarray:
        return self.affine[:3, 3].copy()

    def voxel_to_patient(self, ijk: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """(column, row, slice) index or indices (N x 3) to LPS mm."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_voxel(self, xyz: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """LPS mm to fractional (column, row, slice) index."""
        xyz = np.asarray(xyz, dtype=float)
        return (xyz - self.affine[:3, 3]) @ np.linalg.inv(self.affine[:3, :3]).T

    def orientation_code(self) -> str:
        """Three letters naming where each index axis (i, j, k) points, e.g. 'LPS' for axial."""
        letters = (("L", "R"), ("P", "A"), ("S", "I"))
        code = ""
        for axis in self.direction.T:
            dominant = int(np.argmax(np.abs(axis)))
            code += letters[dominant][0 if axis[dominant] > 0 else 1]
        return code

    def hu_range(self) -> tuple[float, float]:
        return float(self.voxels.min()), float(self.voxels.max())

    @property
    def nbytes(self) -> int:
        return int(self.voxels.nbytes)

    def summary(self) -> dict[str, Any]:
        """What `workstation info` prints for a series."""
        low, high = self.hu_range()
        meta = self.metadata
        return {
            "shape": list(self.shape), "shape_order": "slices, rows, columns",
            "spacing_mm": [round(v, 6) for v in self.spacing_mm], "spacing_order": "column, row, slice",
            "affine": self.affine.round(6).tolist(), "orientation": self.orientation_code(),
            "hu_range": [low, high], "dtype": str(self.voxels.dtype),
            "identifiers": {"patient_id": meta.patient_id, "patient_name": meta.patient_name,
                            "study_uid": meta.study_uid, "series_uid": meta.series_uid,
                            "frame_of_reference_uid": self.frame_of_reference_uid,
                            "uids_derived": meta.uids_derived},
            "metadata": meta.to_dict(), "interpolated_slices": list(self.interpolated_slices),
            "warnings": list(self.warnings),
        }


MASKED = "(hidden)"


def masked_identifiers(volume: Volume) -> Volume:
    """The same voxels with the patient's name, ID, birth date, accession and dates hidden
    (presentation mode: what may be shown to an audience)."""
    from dataclasses import replace

    return replace(volume, metadata=replace(volume.metadata, patient_name=MASKED, patient_id=MASKED,
                                            issuer_of_patient_id="", patient_birth_date="", accession_number=MASKED,
                                            study_date="", study_time="", institution=""))
