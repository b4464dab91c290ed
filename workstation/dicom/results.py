"""A signed read as DICOM objects a PACS viewer shows (highdicom): a Comprehensive 3D SR following
TID 1500 with one measurement group per accepted finding, a SEG with the accepted nodules' masks
on the source series' frame of reference, and the PDF report encapsulated. Each is a new series
in the study. Only what a person accepted goes out as a finding: rejected and undecided AI
candidates never do.

Codes: SNOMED CT and UCUM where DICOM names the concept (nodule, long axis, volume, mm); the AI
probability, the nodule's type and who accepted it use this workstation's own coding scheme
(99WKSTN: a private designator as PS3.16 allows), because no standard code says exactly that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workstation import __version__
from workstation.errors import WorkstationError

MANUFACTURER = "Workstation"
LOCAL_SCHEME = "99WKSTN"
SERIES_NUMBERS = {"sr": 9001, "seg": 9002, "pdf": 9003}


class ResultsError(WorkstationError):
    """The read cannot go out as DICOM (not signed, no source images, inconsistent geometry)."""


@dataclass(frozen=True)
class DicomResults:
    sr: object  # pydicom Dataset (highdicom Comprehensive3DSR)
    seg: object | None  # None when the read accepted no finding
    pdf: object


def _uid(*parts: object) -> str:
    """A UID derived from the read (the same read exported twice gives the same objects)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _person(username: str | None) -> str:
    """A workstation account as a DICOM person name: one component, marked as such by its caret."""
    return f"{(username or 'unknown').replace('^', ' ')}^"


def _local(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value, LOCAL_SCHEME, meaning)


def sorted_sources(files: list[Path]) -> list:
    """The source CT slices as datasets, ordered along the slice normal."""
    import pydicom

    datasets = [pydicom.dcmread(path) for path in files]
    if not datasets:
        raise ResultsError("The study's source images are not in the library")

    def along_normal(ds) -> float:
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient]))

    return sorted(datasets, key=along_normal)


def nodule_masks(sources: list, findings) -> np.ndarray:
    """(frames, rows, columns, segments) booleans: a ball of each finding's diameter at its centre,
    in the voxels of the source slices."""
    first = sources[0]
    rows, columns = int(first.Rows), int(first.Columns)
    masks = np.zeros((len(sources), rows, columns, len(findings)), dtype=bool)
    row_index, column_index = np.mgrid[0:rows, 0:columns]
    for k, ds in enumerate(sources):
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        along_row, along_column = orientation[:3], orientation[3:]
        normal = np.cross(along_row, along_column)
        origin = np.array([float(v) for v in ds.ImagePositionPatient])
        spacing_row, spacing_column = (float(v) for v in ds.PixelSpacing)
        for s, finding in enumerate(findings):
            offset = np.array(finding.center_mm) - origin
            radius = finding.diameter_mm / 2
            distance = float(np.dot(offset, normal))
            if abs(distance) > radius:
                continue
            in_plane = np.sqrt(radius ** 2 - distance ** 2)
            centre_column = float(np.dot(offset, along_row)) / spacing_column
            centre_row = float(np.dot(offset, along_column)) / spacing_row
            masks[k, :, :, s] = (((column_index - centre_column) * spacing_column) ** 2
                                 + ((row_index - centre_row) * spacing_row) ** 2) <= in_plane ** 2
    return masks


def build_results(content, sources: list, pdf_bytes: bytes) -> DicomResults:
    """The SR, SEG and encapsulated PDF of a signed read's `content` (reporting.ReportContent)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if content.draft:
        raise ResultsError("Only a signed read goes out as DICOM results; sign it first")
    study_uid = content.metadata.study_uid
    if str(sources[0].StudyInstanceUID) != study_uid:
        raise ResultsError("The source images belong to another study than the read")
    findings = list(content.findings)
    key = (study_uid, content.signer, content.signed_at, len(content.addenda))
    seg = None
    if findings:
        descriptions = []
        for number, finding in enumerate(findings, 1):
            algorithm = None
            if finding.source == "ai" and finding.model:
                name, _, version = finding.model.partition(" ")
                algorithm = hd.AlgorithmIdentificationSequence(name=name, version=version or "?",
                                                               family=codes.DCM.ArtificialIntelligence)
            descriptions.append(hd.seg.SegmentDescription(
                segment_number=number, segment_label=f"Finding {finding.number}",
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Nodule,
                algorithm_type="SEMIAUTOMATIC" if algorithm else "MANUAL", algorithm_identification=algorithm,
                tracking_uid=_uid(*key, "finding", finding.finding_id), tracking_id=f"Finding {finding.number}"))
        masks = nodule_masks(sources, findings)
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=masks.astype(np.uint8), segmentation_type="BINARY",
            segment_descriptions=descriptions, series_instance_uid=_uid(*key, "seg-series"),
            series_number=SERIES_NUMBERS["seg"], sop_instance_uid=_uid(*key, "seg"), instance_number=1,
            manufacturer=MANUFACTURER, manufacturer_model_name="Workstation", software_versions=__version__,
            device_serial_number="0", content_description="Accepted lung nodules",
            content_creator_name=_person(content.signer), series_description="Accepted nodules (SEG)")
    sr = _structured_report(content, sources, findings, seg, key)
    pdf = _encapsulated_pdf(sources[0], pdf_bytes, key, content)
    return DicomResults(sr, seg, pdf)


def _structured_report(content, sources: list, findings: list, seg, key: tuple):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    groups = []
    for number, finding in enumerate(findings, 1):
        tracking = hd.sr.TrackingIdentifier(uid=_uid(*key, "finding", finding.finding_id),
                                            identifier=f"Finding {finding.number}")
        algorithm = None
        if finding.source == "ai" and finding.model:
            name, _, version = finding.model.partition(" ")
            algorithm = hd.sr.AlgorithmIdentification(name=name, version=version or "?")
        measurements = [hd.sr.Measurement(name=codes.SCT.LongAxis, value=float(finding.diameter_mm),
                                          unit=codes.UCUM.Millimeter)]
        if finding.volume_mm3:
            measurements.append(hd.sr.Measurement(name=codes.SCT.Volume, value=float(finding.volume_mm3),
                                                  unit=codes.UCUM.CubicMillimeter))
        if finding.probability is not None:
            measurements.append(hd.sr.Measurement(
                name=_local("AIPROB", "AI nodule probability"), value=float(finding.probability),
                unit=hd.sr.CodedConcept("1", "UCUM", "no units"), algorithm_id=algorithm))
        evaluations = [hd.sr.QualitativeEvaluation(name=_local("NODTYPE", "Nodule type"),
                                                   value=_local(finding.type.upper()[:16] or "UNKNOWN",
                                                                finding.type or "unknown"))]
        referenced = hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(str(sources[0].SeriesInstanceUID)))
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_segment=referenced, finding_type=codes.SCT.Nodule,
            finding_category=codes.SCT.MorphologicallyAbnormalStructure, algorithm_id=algorithm,
            finding_sites=[hd.sr.FindingSite(codes.SCT.Lung)], measurements=measurements,
            qualitative_evaluations=evaluations)
        accepted_by = hd.sr.TextContentItem(name=_local("ACCEPTEDBY", "Accepted by"),
                                            value=str(finding.decided_by or content.signer),
                                            relationship_type="CONTAINS")
        group[0].ContentSequence.append(accepted_by)
        groups.append(group)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person(content.signer)))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups or None)
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *sources] if seg is not None else sources, content=report[0],
        series_instance_uid=_uid(*key, "sr-series"), series_number=SERIES_NUMBERS["sr"],
        sop_instance_uid=_uid(*key, "sr"), instance_number=1, manufacturer=MANUFACTURER,
        is_complete=True, is_final=True, is_verified=True, verifying_observer_name=_person(content.signer),
        verifying_organization=content.institution or "Not recorded", institution_name=content.institution or None,
        series_description="Lung nodule measurements (SR)")


def _encapsulated_pdf(source, pdf_bytes: bytes, key: tuple, content):
    """Encapsulated PDF IOD (PS3.3 A.45.1): the report as it was exported, in its own series."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    sop_class = "1.2.840.10008.5.1.4.1.1.104.1"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = _uid(*key, "pdf")
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                    "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        setattr(ds, keyword, source.get(keyword, ""))
    now = dt.datetime.now(dt.timezone.utc)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "DOC", _uid(*key, "pdf-series"), SERIES_NUMBERS["pdf"]
    ds.SeriesDescription, ds.InstanceNumber = "Report (PDF)", 1
    ds.Manufacturer, ds.ConversionType = MANUFACTURER, "WSD"
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the PDF names the patient
    ds.DocumentTitle = "CT lung nodule report"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf_bytes + (b"\0" if len(pdf_bytes) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    return ds
