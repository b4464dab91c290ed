"""De-identification against issue #21: the Basic Profile removes descriptions, the Clean
Descriptors Option keeps only vocabulary words, hostile nesting and overlong values are refused
or removed fast and in bounded memory (the real CLI in a subprocess under an address-space cap),
and a refusal leaves nothing behind."""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ImplicitVRLittleEndian

from tests.canary_series import CANARY, KEPT_DESCRIPTION, leaks, write_canary_series
from tests.hostile_dicom import nested_sequence, write_with_nesting
from workstation.dicom.confidentiality.vocabulary import clean_descriptor
from workstation.dicom.deidentify import (
    TEACHING_OPTIONS, DeidentificationError, Deidentifier, DeidOptions, deidentify_job,
)
from workstation.dicom.structure import StructureLimits, check_structure
from workstation.errors import SizeLimitError
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.review.store import ReviewStore
from workstation.teaching.pack import export_pack_job, read_pack

SECRET = b"test-secret-for-the-profile"
DESCRIPTIONS = ("StudyDescription", "SeriesDescription", "ImageComments", "ProtocolName",
                "RequestedProcedureDescription", "PerformedProcedureStepDescription", "AdditionalPatientHistory",
                "ProcedureCodeSequence", "RequestAttributesSequence")
MEMORY_CAP = 2 * 1024**3


@pytest.fixture
def canaries(small_phantom_dir: Path, tmp_path: Path) -> Path:
    return write_canary_series(small_phantom_dir / "dicom", tmp_path / "in")


# -- the profile and the option --------------------------------------------------------------------

@pytest.mark.parametrize("options", [DeidOptions(), DeidOptions(modified_dates=False,
                                                                 retain_patient_characteristics=False)],
                         ids=["default", "remove-dates-and-characteristics"])
def test_the_basic_profile_removes_descriptions_comments_and_protocols(canaries: Path, tmp_path: Path,
                                                                       options: DeidOptions) -> None:
    out = tmp_path / "out"
    summary = run_job(deidentify_job([canaries], out, SECRET, options))
    assert summary.files == len(list(canaries.iterdir()))
    assert leaks(out) == []
    dataset = pydicom.dcmread(next(out.rglob("*.dcm")))
    assert [keyword for keyword in DESCRIPTIONS if keyword in dataset] == []
    assert "113105" not in {item.CodeValue for item in dataset.DeidentificationMethodCodeSequence}


def test_clean_descriptors_keeps_only_vocabulary_words(canaries: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_job(deidentify_job([canaries], out, SECRET, TEACHING_OPTIONS))
    assert leaks(out) == []
    dataset = pydicom.dcmread(next(out.rglob("*.dcm")))
    assert dataset.StudyDescription.startswith(KEPT_DESCRIPTION)
    assert dataset.SeriesDescription == ""  # "Canarywoman Mrs Name": not one word of identity-free vocabulary
    assert dataset.ProtocolName == "CHEST 1.25mm B30f" and dataset.ImageComments == "nodule"
    assert dataset.ProcedureCodeSequence[0].CodeMeaning == "CT CHEST"
    assert dataset.ProcedureCodeSequence[0].CodeValue == "CTCHEST"  # the code itself stays
    assert dataset.RequestAttributesSequence[0].ScheduledProcedureStepDescription == "Chest for"
    assert "113105" in {item.CodeValue for item in dataset.DeidentificationMethodCodeSequence}


@pytest.mark.parametrize("text, cleaned", [
    ("CT CHEST W CONTRAST", "CT CHEST W CONTRAST"),
    ("CT CHEST W/O CONTRAST", "CT CHEST W/O CONTRAST"),  # the slash survives: W/O keeps its meaning
    ("ABD/PELVIS C+", "ABD/PELVIS C+"),
    ("Thorax 1.0 x 1.0 Br40d3", "Thorax 1.0 x 1.0 Br40d3"),
    ("Canary Mrs Name", ""),
    ("seen by Dr Okafor 20231012", ""),  # names and dates: no vocabulary word
    ("MRN 1234567 chest", "chest"),  # long numbers never pass as "numbers with units"
    ("Lung^Okafor_HeadSeq", "Lung"),
    ("Müller Thorax", "Thorax"),
])
def test_the_vocabulary_cleaning(text: str, cleaned: str) -> None:
    assert clean_descriptor(text) == cleaned


def test_a_vocabulary_word_that_names_the_patient_is_dropped(small_phantom_dir: Path) -> None:
    dataset = pydicom.dcmread(next((small_phantom_dir / "dicom").iterdir()))
    dataset.PatientName = "Head^Anna"
    dataset.SeriesDescription = "CT HEAD CHEST"
    assert Deidentifier(SECRET, TEACHING_OPTIONS).dataset(dataset).SeriesDescription == "CT CHEST"


def test_a_pack_export_holds_no_canary(canaries: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("WORKSTATION_HOME", str(home))
    run_job(StudyLibrary(home).import_job([canaries]))
    store = ReviewStore.in_home(home)
    try:
        for name, options in (("teaching", None), ("basic", DeidOptions())):
            pack = tmp_path / f"{name}.zip"
            run_job(export_pack_job(home, store, ["1"], pack, notes="left base", created_by="trainer",
                                    options=options))
            _manifest, files = read_pack(pack)
            assert files and all(CANARY not in data.lower() for data in files.values()), name
            assert CANARY not in pack.read_bytes().lower()
            first = pydicom.dcmread(io.BytesIO(next(data for n, data in files.items() if n.endswith(".dcm"))))
            assert ("StudyDescription" in first) == (options is None), name  # packs clean, not drop, by default
    finally:
        store.close()


# -- limits: fast, named refusals in bounded memory -----------------------------------------------------

def _capped_cli(home: Path, *args: str, timeout: float = 120) -> tuple[int, str, float]:
    """The real `workstation` command under a 2 GB address-space cap: (exit code, stderr, seconds)."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    env = {**os.environ, "WORKSTATION_HOME": str(home), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "workstation.cli", *args], env=env, preexec_fn=cap,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize("depth, defined", [(300, False), (1000, True), (3000, False)])
def test_deep_nesting_is_refused_fast_and_leaves_nothing(small_phantom_dir: Path, tmp_path: Path, depth: int,
                                                         defined: bool) -> None:
    source = tmp_path / "in"
    path = write_with_nesting(next((small_phantom_dir / "dicom").iterdir()), source / "nested.dcm", depth, defined)
    assert path.stat().st_size < 200_000
    out = tmp_path / "out" / "copy"
    code, stderr, seconds = _capped_cli(tmp_path / "home", "deidentify", str(source), str(out))
    assert code == 2, stderr
    assert "nests sequences more than 32 deep" in stderr and "Traceback" not in stderr
    assert seconds < 60  # was 65-78 s and 24 GB at depth 300; the refusal itself takes milliseconds
    assert not out.exists() and not out.parent.exists()  # not even the folder it made for the copy


def test_a_pack_of_a_study_with_deep_nesting_is_refused_and_not_written(small_phantom_dir: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("WORKSTATION_HOME", str(home))
    source = tmp_path / "in"
    for path in sorted((small_phantom_dir / "dicom").iterdir()):
        (source / path.name).parent.mkdir(parents=True, exist_ok=True)
        (source / path.name).write_bytes(path.read_bytes())
    write_with_nesting(sorted(source.iterdir())[3], sorted(source.iterdir())[3], 1000, defined=True)
    run_job(StudyLibrary(home).import_job([source]))
    store = ReviewStore.in_home(home)
    pack = tmp_path / "out" / "pack.zip"
    started = time.monotonic()
    try:
        with pytest.raises(SizeLimitError, match="nests sequences"):
            run_job(export_pack_job(home, store, ["1"], pack, created_by="trainer"))
    finally:
        store.close()
    assert time.monotonic() - started < 30 and not pack.exists()


def test_the_walk_measures_depth_without_recursing() -> None:
    deep = io.BytesIO(nested_sequence(100_000, defined=False))
    started = time.monotonic()
    with pytest.raises(SizeLimitError, match="more than 32 deep"):
        check_structure(deep, "deep.dcm")
    assert time.monotonic() - started < 5
    structure = check_structure(io.BytesIO(nested_sequence(5, defined=True)), "ok.dcm")
    assert structure.depth == 5
    with pytest.raises(SizeLimitError, match="data elements"):
        check_structure(io.BytesIO(nested_sequence(5, defined=True)), "many.dcm", StructureLimits(max_elements=8))


def test_a_deflated_data_set_is_walked_inflating_in_blocks_and_bounded() -> None:
    syntax = b"1.2.840.10008.1.2.1.99\0"
    head = b"\0" * 128 + b"DICM" + struct.pack("<HH", 2, 0x10) + b"UI" + struct.pack("<H", len(syntax)) + syntax
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = nested_sequence(40, defined=False) + struct.pack("<HH", 0x0009, 0x0010) + b"OB\0\0" + \
        struct.pack("<L", 8 * 1024**2) + b"\0" * (8 * 1024**2)
    data = head + deflate.compress(body) + deflate.flush()
    assert len(data) < 100_000
    with pytest.raises(SizeLimitError, match="more than 32 deep"):  # the nesting is seen through the deflate
        check_structure(io.BytesIO(data), "deflated.dcm")
    with pytest.raises(SizeLimitError, match="inflates to more than"):
        check_structure(io.BytesIO(data), "bomb.dcm", StructureLimits(max_sequence_depth=64,
                                                                      max_inflated_bytes=1024**2))
    assert check_structure(io.BytesIO(data), "ok.dcm", StructureLimits(max_sequence_depth=64)).depth == 40


def test_the_walk_never_sees_less_nesting_than_pydicom() -> None:
    """Over pydicom's own test files (explicit, implicit, big endian, deflated, encapsulated,
    DICOMDIR, SR), the header walk's depth is at least what pydicom parses."""
    def depth_of(dataset) -> int:
        return max([1 + depth_of(item) for element in dataset if element.VR == "SQ" for item in element.value] or [0])

    checked = 0
    for path in sorted(Path(get_testdata_file("CT_small.dcm")).parent.glob("*.dcm")):
        try:
            parsed = depth_of(pydicom.dcmread(path, force=True))
        except Exception:  # noqa: BLE001 - the corpus holds deliberately broken files
            continue
        with open(path, "rb") as stream:
            assert check_structure(stream, path.name).depth >= parsed, path.name
        checked += 1
    assert checked > 50


def test_overlong_values_are_removed_fast(small_phantom_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    dataset = pydicom.dcmread(next((small_phantom_dir / "dicom").iterdir()))
    dataset.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian  # 4-byte lengths: any value size fits
    dataset.PatientName = "A^" * (128 * 1024)  # 256 KB
    dataset.StudyDescription = "CT " * 90_000
    dataset.Manufacturer = "M" * (256 * 1024)  # kept (C) attributes too
    dataset.save_as(source / "long.dcm", enforce_file_format=True)
    out = tmp_path / "out"
    code, stderr, seconds = _capped_cli(tmp_path / "home", "deidentify", str(source), str(out),
                                        "--clean-descriptors")
    assert code == 0, stderr
    assert seconds < 60
    result = pydicom.dcmread(next(out.rglob("*.dcm")))
    assert "Manufacturer" not in result and "StudyDescription" not in result
    assert str(result.PatientName).startswith("TEACHING^")
    assert max(len(str(element.value)) for element in result if element.VR not in ("OB", "OW", "SQ")) < 1024


# -- a refusal leaves nothing behind ----------------------------------------------------------------------

def test_a_refused_deidentify_leaves_no_partial_files(small_phantom_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    slices = sorted((small_phantom_dir / "dicom").iterdir())
    for index, path in enumerate(slices):
        dataset = pydicom.dcmread(path)
        if index == len(slices) - 1:  # the last one read is refused, after all the others were written
            dataset.BurnedInAnnotation = "YES"
        dataset.save_as(source / f"{index:04d}.dcm")
    out = tmp_path / "parent" / "out"
    with pytest.raises(DeidentificationError, match="Refused"):
        run_job(deidentify_job([source], out, SECRET))
    assert not out.parent.exists()  # not even the folder it made for the copy
    out.mkdir(parents=True)
    with pytest.raises(DeidentificationError, match="Refused"):
        run_job(deidentify_job([source], out, SECRET))
    assert list(out.parent.iterdir()) == [out] and list(out.iterdir()) == []  # an empty OUT is left as it was
    summary = run_job(deidentify_job([source], out, SECRET, DeidOptions(allow_burned_in=True)))
    assert summary.files == len(slices) and len(list(out.rglob("*.dcm"))) == len(slices)
    with pytest.raises(DeidentificationError, match="not an empty folder"):
        run_job(deidentify_job([source], out, SECRET))  # never mixed with an earlier copy
    assert len(list(out.rglob("*.dcm"))) == len(slices)
