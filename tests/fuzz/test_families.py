"""Hostile series, archives, media, names and nesting (tests/fuzz/families.py): every case ends in
a result or a named error, the good series beside it always loads whole, within a time bound.

WORKSTATION_FUZZ_FAMILY_CASES sets the cases per family (default 120; the three that build a
library or a large archive per case run half as many: 540 in all, which with test_fuzz.py's
4,460 byte mutants makes the default suite's 5,000); the long run sets both counts.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.fuzz.families import FAMILIES, Series
from workstation.dicom.write import write_ct_series
from workstation.errors import WorkstationError
from workstation.imaging.phantom import PhantomSpec, generate_phantom

CASES = int(os.environ.get("WORKSTATION_FUZZ_FAMILY_CASES", "120"))
COSTLY = {"duplicate_uid", "zip_archive", "name_bytes"}  # a library or a 1,500-member archive per case
PER_CASE_SECONDS = 20.0


def _series(folder: Path, seed: int) -> Series:
    phantom = generate_phantom(PhantomSpec(seed=seed, matrix=80, pixel_spacing_mm=4.0, slice_thickness_mm=10.0,
                                           z_extent_mm=80.0))
    files = write_ct_series(phantom.volume, folder, phantom.tags, uid_seed=f"fuzz-{seed}")
    import pydicom

    return Series(sorted(files), str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID))


@pytest.fixture(scope="module")
def two_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Series, Series]:
    root = tmp_path_factory.mktemp("fuzz-series")
    return _series(root / "good", 1), _series(root / "victim", 2)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_ends_in_result_or_named_error(family: str, two_series: tuple[Series, Series],
                                              tmp_path: Path) -> None:
    good, victim = two_series
    assert good.uid != victim.uid
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0
    cases = CASES // 2 if family in COSTLY else CASES
    for index in range(cases):
        work = tmp_path / f"case-{index}"
        work.mkdir()
        rng = np.random.default_rng([index, sorted(FAMILIES).index(family)])
        start = time.perf_counter()
        try:
            outcomes[FAMILIES[family](rng, work, good, victim)] += 1
        except WorkstationError as exc:
            outcomes[f"named error: {type(exc).__name__}"] += 1
        except AssertionError as exc:
            failures.append(f"{family} case {index}: {exc}"[:300])
        except Exception as exc:  # noqa: BLE001 - recording exactly what must never happen
            failures.append(f"{family} case {index}: {type(exc).__name__}: {exc}"[:300])
        slowest = max(slowest, time.perf_counter() - start)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{family}: {cases} cases: {dict(outcomes)}; slowest {slowest:.2f}s")
    assert not failures, "\n".join(failures[:10])
    assert slowest < PER_CASE_SECONDS
