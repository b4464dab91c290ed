"""Fuzz the whole import path with seeded mutants of real files (4,460 in the default suite; with
test_families.py's 540 hostile series, archives and media, over 5,000 in all).

Each mutant must end in a Volume or a named WorkstationError, within a per-file time bound;
WORKSTATION_FUZZ_MUTANTS raises the count for a longer run.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from tests.fuzz.mutants import MUTATORS, mutate
from workstation.dicom.load import load_volume
from workstation.errors import SizeLimitError, WorkstationError

MUTANTS = int(os.environ.get("WORKSTATION_FUZZ_MUTANTS", "4460"))
PER_FILE_SECONDS = 10.0


def _bases(real_ct: Path) -> list[Path]:
    return [
        Path(get_testdata_file("CT_small.dcm")),
        Path(get_testdata_file("eCT_Supplemental.dcm")),
        Path(get_testdata_file("693_J2KR.dcm")),
        Path(get_testdata_file("MR_small_RLE.dcm")),
        Path(get_testdata_file("JPEG-LL.dcm")),
        Path(get_testdata_file("bad_sequence.dcm")),  # CT, JPEG lossless
        sorted((real_ct / "abdomen-j2k-empty-uids").iterdir())[0],
        sorted((real_ct / "head-gantry-tilt").iterdir())[0],
    ]


def test_fuzzed_files_end_in_volume_or_named_error(real_ct: Path, tmp_path: Path) -> None:
    bases = [(path.name, path.read_bytes()) for path in _bases(real_ct)]
    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    slowest = 0.0
    alone, beside = tmp_path / "mutant", tmp_path / "series"
    beside.mkdir()
    for index in range(MUTANTS):
        name, data = bases[index % len(bases)]
        kind, mutant = mutate(data, index)
        if index % 2:  # the mutant after an intact file of its series: read by the fast header walker
            (beside / "0-intact").write_bytes(data)
            (beside / "1-mutant").write_bytes(mutant)
            target = beside
        else:
            alone.write_bytes(mutant)
            target = alone
        start = time.perf_counter()
        try:
            load_volume(target)
            outcomes["volume"] += 1
        except WorkstationError:
            outcomes["named error"] += 1
        except Exception as exc:  # noqa: BLE001 - recording exactly what must never happen
            unexpected.append(f"mutant {index} ({kind} of {name}): {type(exc).__name__}: {exc}"[:300])
        slowest = max(slowest, time.perf_counter() - start)
    print(f"\n{MUTANTS} mutants: {dict(outcomes)}; slowest {slowest:.2f}s")
    assert not unexpected, "\n".join(unexpected[:20])
    assert slowest < PER_FILE_SECONDS
    assert outcomes["volume"] > 0 and outcomes["named error"] > 0


def test_size_bombs_are_refused_before_allocating(tmp_path: Path) -> None:
    import pydicom

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, "100000"
    path = tmp_path / "bomb.dcm"
    ds.save_as(path)
    with pytest.raises(WorkstationError, match="65535x65535 is beyond the 4096 limit"):
        load_volume(path)
    from workstation.dicom.headers import read_headers
    from workstation.dicom.sources import DicomSource

    with pytest.raises(SizeLimitError):
        read_headers(DicomSource(path))


def test_every_mutator_is_exercised() -> None:
    assert MUTANTS >= 4460 or os.environ.get("WORKSTATION_FUZZ_MUTANTS")
    assert len({index % len(MUTATORS) for index in range(min(MUTANTS, 100))}) == len(MUTATORS)
