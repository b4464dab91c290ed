"""One exception hierarchy. Every message is one sentence a clinician can act on."""

from __future__ import annotations


class WorkstationError(Exception):
    """Base of every error the workstation reports to a user."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message if path is None else f"{message} ({path})")


class DicomError(WorkstationError):
    """A file is not usable DICOM."""


class NotDicomError(DicomError):
    """The file is not a DICOM file at all."""


class CorruptDicomError(DicomError):
    """The file claims to be DICOM but is damaged or truncated."""


class UnsupportedDicomError(DicomError):
    """Valid DICOM that this workstation does not handle (not CT, colour, ...)."""


class PixelDecodeError(DicomError):
    """Pixel data cannot be decoded (unknown compression, damaged stream)."""


class SizeLimitError(DicomError):
    """The data declares a size that is absurd or larger than allowed; refused before allocating."""


class GeometryError(WorkstationError):
    """Slices do not form one consistent volume."""


class NoSeriesError(WorkstationError):
    """Nothing loadable was found at a path."""


class LibraryError(WorkstationError):
    """The local study library cannot complete an operation."""


class UnsafePathError(LibraryError):
    """A path derived from input data would escape the data folder."""


class PhantomError(WorkstationError):
    """A phantom cannot be generated with the given parameters."""


class ModelBundleError(WorkstationError):
    """A model bundle is refused (missing files, wrong checksum, architecture not allowed)."""


class InferenceError(WorkstationError):
    """Inference could not run (device unavailable, out of memory on every fallback)."""


class CancelledError(WorkstationError):
    """The user cancelled a running job."""

    def __init__(self, message: str = "The operation was cancelled.") -> None:
        super().__init__(message)
