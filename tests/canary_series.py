"""A phantom series whose patient, physician and free text carry canary names, in the places a
clinic's data really puts them (descriptions, comments, protocol names, coded procedure
meanings, nested sequences, private tags) and in its folder and file names. Whatever leaves
the workstation, or reaches its log, must hold no "canary" in any case."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

CANARY = b"canary"  # searched case-insensitively in bytes: Canarywoman, Canaryman, CANARY-4711
PATIENT_ID = "CANARY-4711"
KEPT_DESCRIPTION = "CT CHEST W CONTRAST"  # what a trainer wants to keep


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "99LOCAL", meaning
    return item


def write_canary_series(source: Path, target: Path) -> Path:
    """The phantom slices in `source`, rewritten under target/<canary folder>/<canary file names>."""
    folder = target / "Canarywoman_Mrs_CT"
    folder.mkdir(parents=True)
    for index, path in enumerate(sorted(source.iterdir())):
        dataset = pydicom.dcmread(path)
        dataset.PatientName = "Canarywoman^Mrs"
        dataset.PatientID = PATIENT_ID
        dataset.ReferringPhysicianName = "Canaryman^Dr"
        dataset.StudyDescription = f"{KEPT_DESCRIPTION} Canarywoman for"
        dataset.SeriesDescription = "Canarywoman Mrs Name"
        dataset.ImageComments = "nodule seen by Dr Canaryman"
        dataset.ProtocolName = "CHEST Canaryman 1.25mm B30f"
        dataset.RequestedProcedureDescription = "CT CHEST for Dr Canaryman"
        dataset.PerformedProcedureStepDescription = "CT Canarywoman chest"
        dataset.AdditionalPatientHistory = "Mrs Canarywoman, smoker"
        dataset.ProcedureCodeSequence = Sequence([_code("CTCHEST", "CT CHEST Dr Canaryman")])
        dataset.AnatomicRegionSequence = Sequence([_code("T-D3000", "Chest Canaryman")])
        request = Dataset()
        request.ScheduledProcedureStepDescription = "Chest for Canarywoman"
        request.RequestedProcedureCodeSequence = Sequence([_code("CTC", "Canaryman protocol")])
        dataset.RequestAttributesSequence = Sequence([request])
        block = dataset.private_block(0x0029, "CANARY PRIVATE", create=True)
        block.add_new(0x10, "LO", "Canarywoman private note")
        dataset.save_as(folder / f"Canaryman_{index:04d}.dcm")
    return folder


def leaks(root: Path) -> list[str]:
    """Every path under root whose name or bytes hold the canary."""
    found = []
    for path in [root, *root.rglob("*")]:
        if CANARY in path.name.lower().encode():
            found.append(f"name {path}")
        if path.is_file() and CANARY in path.read_bytes().lower():
            found.append(f"bytes of {path}")
    return found
