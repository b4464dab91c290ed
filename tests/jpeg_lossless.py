"""Write JPEG Lossless (process 14, SV1) copies of DICOM files with GDCM through SimpleITK:
pydicom cannot encode this syntax, and a second, independent encoder keeps our decoder honest."""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk


def write_jpeg_lossless(source: Path, target: Path) -> Path:
    """`target` gets a .dcm suffix (SimpleITK picks its writer by extension); UIDs are kept."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(source))
    reader.LoadPrivateTagsOn()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetUseCompression(True)
    writer.SetCompressor("JPEG")
    target = target.with_name(target.name + ".dcm") if target.suffix != ".dcm" else target
    writer.SetFileName(str(target))
    writer.Execute(reader.Execute())
    return target
