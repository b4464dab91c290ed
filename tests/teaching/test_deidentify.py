"""De-identification: every attribute in real test data is decided by the pinned table or our
retained list; a canary in every profile attribute never leaves; UIDs stay consistent;
burned-in text is refused unless overridden."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from workstation.dicom.deidentify import (
    DESCRIPTORS, EDITION, PATIENT_CHARACTERISTICS, TEACHING_OPTIONS, DeidentificationError, DeidOptions, Deidentifier,
    action_table, decision, deidentify_job,
)
from workstation.jobs import run_job

SECRET = b"test-secret-for-deidentification"
CANARY = "QZXCANARY7"
CANARY_DATE = "19230417"
CANARY_UID = "1.2.826.0.1.3680043.8.498.3133742"


def _all_test_files(real_ct: Path | None, phantom: Path) -> list[Path]:
    roots = [Path(get_testdata_file("CT_small.dcm")).parent, Path(get_testdata_file("eCT_Supplemental.dcm")).parent,
             phantom]
    if real_ct is not None:
        roots.append(real_ct)
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def test_the_table_is_one_pinned_edition() -> None:
    table = json.loads((Path(__file__).parents[2] / "workstation" / "dicom" / "confidentiality" /
                        f"table_{EDITION}.json").read_text())
    assert table["edition"] == EDITION and "Table E.1-1" in table["standard"]
    actions, _, _ = action_table()
    assert actions["00100010"] in ("Z", "D") and actions["0020000D"] == "U" and actions["00080080"] == "X/Z/D"


def test_every_attribute_in_the_test_data_is_decided(small_phantom_dir: Path, real_ct) -> None:
    undecided: dict[str, str] = {}

    def walk(dataset: Dataset, origin: str) -> None:
        for element in dataset:
            if element.tag.is_private or element.tag.group == 0x0002 or element.tag.element == 0:
                continue
            if decision(int(element.tag)) is None:
                undecided.setdefault(f"{int(element.tag):08X} {element.keyword}", origin)
            if element.VR == "SQ":
                for item in element.value:
                    walk(item, origin)

    files = _all_test_files(real_ct, small_phantom_dir)
    read = 0
    for path in files:
        try:
            dataset = pydicom.dcmread(path, force=True)
        except Exception:  # noqa: BLE001 - the corpus holds deliberately broken files
            continue
        read += 1
        try:
            walk(dataset, path.name)
        except Exception:  # noqa: BLE001 - values that cannot even be parsed are not attributes we keep
            continue
    assert read > 200
    assert not undecided, f"decide these in confidentiality/retained.json: {undecided}"


def _canary_series(source: Path, target: Path) -> Path:
    """The phantom with a canary in every profile attribute (and nested, private, file names)."""
    actions, _, retained = action_table()
    folder = target / f"{CANARY}_series"
    folder.mkdir(parents=True)
    retained_sequence = next(int(tag, 16) for tag, action in sorted(retained.items())
                             if action == "K" and _vr(int(tag, 16)) == "SQ")
    for index, path in enumerate(sorted(source.iterdir())):
        dataset = pydicom.dcmread(path)
        for number, tag in enumerate(sorted(actions)):
            value = _canary(int(tag, 16), number)
            if value is not None and tag not in PATIENT_CHARACTERISTICS:
                dataset.add_new(int(tag, 16), _vr(int(tag, 16)), value)
        nested = Dataset()
        nested.PatientName = f"{CANARY}^Nested"
        nested.InstitutionName = f"{CANARY} nested hospital"
        nested.ReferencedSOPInstanceUID = f"{CANARY_UID}.9.{index}"
        nested.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        dataset.add_new(retained_sequence, "SQ", Sequence([nested]))
        dataset.OtherPatientIDsSequence = Sequence([Dataset()])
        dataset.OtherPatientIDsSequence[0].PatientID = f"{CANARY}-other"
        block = dataset.private_block(0x0011, "QZX PRIVATE CREATOR", create=True)
        block.add_new(0x01, "LO", f"{CANARY} private")
        dataset.save_as(folder / f"{CANARY}_{index:03d}.dcm")
    return folder


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return ""


def _canary(tag: int, number: int):
    if tag >> 16 in (0x0000, 0x0002):  # command and file meta groups are not dataset attributes
        return None
    vr = _vr(tag)
    if vr in ("PN",):
        return f"{CANARY}^Given{number}"
    if vr in ("LO", "LT", "ST", "UT", "UC", "SH"):
        return f"{CANARY}-{number}"
    if vr in ("CS", "AE"):
        return CANARY
    if vr == "DA":
        return CANARY_DATE
    if vr == "DT":
        return CANARY_DATE + "101010"
    if vr == "UI":
        return f"{CANARY_UID}.{number}"
    return None  # numbers, times, sequences, binary: no canary that could be told apart


def _leaks(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        if CANARY in path.name:
            found.append(f"name {path}")
        if path.is_file():
            data = path.read_bytes()
            for token in (CANARY, CANARY_DATE, CANARY_UID):
                if token.encode() in data:
                    found.append(f"{token} in {path}")
    return found


@pytest.mark.parametrize("options", [DeidOptions(), TEACHING_OPTIONS], ids=["basic", "clean-descriptors"])
def test_no_canary_leaves_in_files_or_names(small_phantom_dir: Path, tmp_path: Path, options: DeidOptions) -> None:
    canaries = _canary_series(small_phantom_dir / "dicom", tmp_path / "in")
    out = tmp_path / "out"
    summary = run_job(deidentify_job([canaries], out, SECRET, options))
    assert summary.files == len(list(canaries.iterdir())) and len(summary.series) == 1
    assert _leaks(out) == []
    dataset = pydicom.dcmread(next(out.rglob("*.dcm")))
    assert dataset.PatientIdentityRemoved == "YES" and dataset.LongitudinalTemporalInformationModified == "MODIFIED"
    assert {item.CodeValue for item in dataset.DeidentificationMethodCodeSequence} == {
        "113100", "113108", "113107"} | ({"113105"} if options.clean_descriptors else set())
    assert dataset.PatientSex and dataset.PatientAge  # retained characteristics
    assert not any(element.tag.is_private for element in dataset)


def test_uids_are_remapped_consistently_and_references_resolve(small_phantom_dir: Path, tmp_path: Path) -> None:
    source = sorted((small_phantom_dir / "dicom").iterdir())
    first, second = pydicom.dcmread(source[0]), pydicom.dcmread(source[1])
    second.ReferencedImageSequence = Sequence([Dataset()])
    second.ReferencedImageSequence[0].ReferencedSOPInstanceUID = first.SOPInstanceUID
    second.ReferencedImageSequence[0].ReferencedSOPClassUID = first.SOPClassUID
    deidentifier = Deidentifier(SECRET)
    a, b = deidentifier.dataset(first), deidentifier.dataset(second)
    assert a.StudyInstanceUID == b.StudyInstanceUID != first.StudyInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID and a.StudyInstanceUID.startswith("2.25.")
    assert b.ReferencedImageSequence[0].ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert a.SOPClassUID == first.SOPClassUID  # class UIDs are not identifying
    again = Deidentifier(SECRET).dataset(first)
    assert again.SOPInstanceUID == a.SOPInstanceUID  # same installation secret, same mapping
    assert Deidentifier(b"another clinic").dataset(first).SOPInstanceUID != a.SOPInstanceUID


def test_dates_shift_by_one_interval_per_patient(small_phantom_dir: Path) -> None:
    import datetime as dt

    first = pydicom.dcmread(next((small_phantom_dir / "dicom").iterdir()))
    later = pydicom.dcmread(next((small_phantom_dir / "dicom").iterdir()))
    later.StudyDate = (dt.datetime.strptime(first.StudyDate, "%Y%m%d") + dt.timedelta(days=100)).strftime("%Y%m%d")
    a, b = Deidentifier(SECRET).dataset(first), Deidentifier(SECRET).dataset(later)
    days = (dt.datetime.strptime(b.StudyDate, "%Y%m%d") - dt.datetime.strptime(a.StudyDate, "%Y%m%d")).days
    assert days == 100 and a.StudyDate != first.StudyDate and a.PatientBirthDate == ""
    plain = Deidentifier(SECRET, DeidOptions(modified_dates=False, retain_patient_characteristics=False))
    removed = plain.dataset(first)
    assert removed.get("StudyDate", "") == "" and "PatientAge" not in removed


def test_descriptors_are_removed_or_cleaned_with_the_option(small_phantom_dir: Path) -> None:
    dataset = pydicom.dcmread(next((small_phantom_dir / "dicom").iterdir()))
    dataset.PatientName = "Okafor^Chidi"
    dataset.SeriesDescription = "Chest Okafor 2.5 mm"
    assert "SeriesDescription" not in Deidentifier(SECRET).dataset(dataset)  # the Basic Profile: X
    result = Deidentifier(SECRET, TEACHING_OPTIONS).dataset(dataset)
    assert result.SeriesDescription == "Chest 2.5 mm"
    assert "00081030" in DESCRIPTORS


@pytest.mark.parametrize("mark", ["burned", "capture"])
def test_burned_in_text_is_refused_unless_overridden(small_phantom_dir: Path, tmp_path: Path, mark: str) -> None:
    folder = tmp_path / "in"
    shutil.copytree(small_phantom_dir / "dicom", folder)
    path = sorted(folder.iterdir())[0]
    dataset = pydicom.dcmread(path)
    if mark == "burned":
        dataset.BurnedInAnnotation = "YES"
    else:
        dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    dataset.save_as(path)
    with pytest.raises(DeidentificationError, match="Refused"):
        run_job(deidentify_job([folder], tmp_path / "out", SECRET))
    summary = run_job(deidentify_job([folder], tmp_path / "out2", SECRET, DeidOptions(allow_burned_in=True)))
    assert summary.overridden == [path.name]
