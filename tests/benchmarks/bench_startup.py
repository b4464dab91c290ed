"""Whole-process `workstation info` on a 300-slice 512x512 series against a SimpleITK script
that reads the same series, each a fresh Python process (issue #26: <= 0.6x).

A command-line user pays for the interpreter, the imports and the read together; our loader
alone is several times faster than SimpleITK's (bench_load), so what this measures is mostly
how little each command imports. Best of 5 each, alternating, on the same page-cached files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workstation.dicom.write import SIEMENS_LIKE, write_ct_series
from workstation.imaging.phantom import PhantomSpec, generate_phantom

REPEATS = 5
SIMPLEITK_INFO = """
import sys
import SimpleITK as sitk
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(sys.argv[1]))
image = reader.Execute()
print(image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection())
"""


def _seconds(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> list[tuple[str, float, float, str]]:
    launcher = Path(sys.executable).parent / "workstation"
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary) / "series"
        spec = PhantomSpec(seed=8, matrix=512, pixel_spacing_mm=0.78, slice_thickness_mm=1.0, z_extent_mm=300.0)
        phantom = generate_phantom(spec)
        write_ct_series(phantom.volume, folder, phantom.tags, style=SIEMENS_LIKE, outside_fov=phantom.outside_fov)
        env = {**os.environ, "WORKSTATION_HEADLESS": "1", "WORKSTATION_HOME": str(Path(temporary) / "home")}
        ours_command = [str(launcher), "info", str(folder)]
        itk_command = [sys.executable, "-c", SIMPLEITK_INFO, str(folder)]
        _seconds(ours_command, env), _seconds(itk_command, env)  # page cache, .pyc files
        ours, itk = [], []
        for _ in range(REPEATS):
            ours.append(_seconds(ours_command, env))
            itk.append(_seconds(itk_command, env))
        help_seconds = min(_seconds([str(launcher), "--help"], env) for _ in range(REPEATS))
    return [("whole-process info 300x512x512: ours / SimpleITK script", min(ours) / min(itk), 0.6,
             f"ours {min(ours):.2f} s, SimpleITK {min(itk):.2f} s (fresh processes, best of {REPEATS})"),
            ("whole-process workstation --help (s)", help_seconds, float("nan"), "")]


if __name__ == "__main__":
    for row in main():
        print(row)
