"""Load a 300-slice 512x512 series: ours vs SimpleITK's ImageSeriesReader vs a raw read.

Ratios are measured in the same run on the same (page-cached) files, so machine noise
affects all three alike. Targets (issue #2): uncompressed <= 0.4x SimpleITK, JPEG-lossless
<= 1.0x SimpleITK, peak memory <= 1.5x the volume's bytes.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path

import SimpleITK as sitk

from tests.jpeg_lossless import write_jpeg_lossless

from workstation.dicom.load import load_volume
from workstation.dicom.write import SIEMENS_LIKE, write_ct_series
from workstation.imaging.phantom import PhantomSpec, generate_phantom

REPEATS = 3


def make_series(root: Path) -> tuple[Path, Path]:
    spec = PhantomSpec(seed=8, matrix=512, pixel_spacing_mm=0.78, slice_thickness_mm=1.0, z_extent_mm=300.0)
    phantom = generate_phantom(spec)
    plain = root / "explicit"
    write_ct_series(phantom.volume, plain, phantom.tags, style=SIEMENS_LIKE, outside_fov=phantom.outside_fov)
    jpeg = root / "jpeg-lossless"
    jpeg.mkdir()
    for path in sorted(plain.iterdir()):  # GDCM writes JPEG Lossless SV1 (pydicom cannot encode it)
        write_jpeg_lossless(path, jpeg / path.name)
    return plain, jpeg


def best_time(function) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def raw_read(folder: Path) -> None:
    for path in folder.iterdir():
        path.read_bytes()


def simpleitk_read(folder: Path) -> None:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.Execute()


def peak_memory_ratio(folder: Path) -> float:
    tracemalloc.start()
    volume = load_volume(folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / volume.nbytes


def main() -> list[tuple[str, float, float, str]]:
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        plain, jpeg = make_series(Path(temporary))
        for name, folder, target in (("uncompressed", plain, 0.4), ("JPEG lossless", jpeg, 1.0)):
            load_volume(folder)  # warm the page cache and imports for everyone
            ours = best_time(lambda: load_volume(folder))
            itk = best_time(lambda: simpleitk_read(folder))
            raw = best_time(lambda: raw_read(folder))
            rows.append((f"load 300x512x512 {name}: ours / SimpleITK", ours / itk, target,
                         f"ours {ours:.2f}s, SimpleITK {itk:.2f}s"))
            rows.append((f"load 300x512x512 {name}: ours / raw file read", ours / raw, float("nan"),
                         f"raw read {raw:.2f}s"))
        ratio = peak_memory_ratio(plain)
        rows.append(("peak traced memory / volume bytes (uncompressed)", ratio, 1.5, "tracemalloc"))
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
