"""Shared fixtures: real scanner data, an isolated data folder, small phantom series."""

from __future__ import annotations

import locale
import os
import shutil
from pathlib import Path

import pytest

REAL_CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-ct"
if not REAL_CT.is_dir():  # CI clones the repository next to shared/ as well; allow an override
    REAL_CT = Path(os.environ.get("WORKSTATION_REAL_CT", "/work/shared/data/real-ct"))


@pytest.fixture(scope="session")
def real_ct() -> Path:
    if not REAL_CT.is_dir():
        pytest.skip("shared real CT data not available")
    return REAL_CT


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("WORKSTATION_HOME", str(folder))
    return folder


@pytest.fixture(scope="session")
def small_phantom_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 128x128 phantom series (GE-like storage, padding values) with truth.json."""
    from workstation.imaging.phantom import write_demo_case

    out = tmp_path_factory.mktemp("phantom")
    write_demo_case(out, seed=11, matrix=128, slice_thickness_mm=2.5)
    return out


@pytest.fixture
def phantom_copy(small_phantom_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the small phantom's DICOM folder that a test may damage."""
    target = tmp_path / "series"
    shutil.copytree(small_phantom_dir / "dicom", target)
    return target


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With pytest-xdist (--dist loadgroup): a file's tests run on one worker, so its module and
    session fixtures (phantoms, model runs) are made once; and every test that puts a window on
    the display shares one worker, one after another, since two processes' windows on one X
    display take each other's focus."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group("display" if path.startswith("tests/ui/") else path))


_MODEL_RUNS: dict[str, object] = {}


@pytest.fixture
def model_runs_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real model's run on one volume is made once per test session and replayed after that,
    for tests whose subject is what happens around a run (recording, reports, logins, audit), not
    the run itself: the model is deterministic on the CPU (tests/inference/test_runner.py checks
    that with a second run), and each run of a phantom costs 20-40 s on two cores. The replay
    still passes through run_inference_job (its progress, cancel check and error translation);
    tests of the runner itself do not use this."""
    import copy
    import hashlib

    from workstation.inference import runner
    from workstation.jobs import Progress

    analyse = runner._analyse

    def once(volume, bundle, device, threshold, cancel, threads):
        digest = hashlib.sha256(volume.voxels.tobytes())
        for part in (volume.affine.tobytes(), repr(volume.voxels.shape), repr(volume.metadata),
                     bundle.weights_sha256, repr(bundle.folder), str(device), repr(threshold)):
            digest.update(str(part).encode() if not isinstance(part, bytes) else part)
        key = digest.hexdigest()
        if key not in _MODEL_RUNS:
            _MODEL_RUNS[key] = yield from analyse(volume, bundle, device, threshold, cancel, threads)
        cancel.check()
        yield Progress(100, 100, "Replayed the session's run of this model on this volume")
        return copy.deepcopy(_MODEL_RUNS[key])

    monkeypatch.setattr(runner, "_analyse", once)


_START_CTYPE = locale.setlocale(locale.LC_CTYPE)


@pytest.fixture(autouse=True)
def _keep_the_character_locale():
    """SimpleITK's DICOM reader (GDCM, in tests/jpeg_lossless.py) sets the C locale, which turns
    Python's decoding of every later tool's output (pdftotext, dcmtk) to ASCII: 5 report tests
    failed after it in a full run. Each test starts with the session's own character locale. (The
    app never reads DICOM through SimpleITK: it registers arrays.)"""
    yield
    if locale.setlocale(locale.LC_CTYPE) != _START_CTYPE:
        locale.setlocale(locale.LC_CTYPE, _START_CTYPE)
