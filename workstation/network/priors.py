"""The patient's earlier CT studies on a PACS (#24 item 1): what the library does not hold yet,
found by C-FIND (or QIDO-RS) on the same Patient ID, so the reader can retrieve the right prior.
Whether a study found is the same patient's is review/same_patient.py's rule, as for the library."""

from __future__ import annotations

from workstation.network.nodes import RemoteNode
from workstation.review.same_patient import PatientIdentity, check_same_patient


def pacs_priors(node: RemoteNode, local_ae: str, study: dict, held_uids: set[str],
                via: str = "dimse") -> tuple[list[dict], list[str]]:
    """(the node's CT studies of this Patient ID dated before `study`, newest first, each with
    `in_library`; warnings where the PACS's name disagrees with the study's). A study without a
    Patient ID has no safe priors: none are searched for."""
    patient_id, date = study.get("patient_id") or "", study.get("study_date") or ""
    if not patient_id:
        return [], ["This study has no Patient ID: its priors cannot be found safely"]
    query = {"PatientID": patient_id, "ModalitiesInStudy": "CT", "StudyDate": f"-{date}" if date else ""}
    if via == "web":
        from workstation.network.dicomweb import web_find

        matches = web_find(node, "study", query)
    else:
        from workstation.network.dimse import find

        matches = find(node, local_ae, "study", query)
    current = PatientIdentity(patient_id, study.get("issuer_of_patient_id") or "", _name(study.get("patient_name")))
    earlier, warnings = [], []
    for match in matches:
        if match["StudyInstanceUID"] == study["study_uid"] or (date and (match.get("StudyDate") or "") >= date):
            continue
        which = f"The prior of {match.get('StudyDate') or 'unknown date'} on {node.name}"
        check = check_same_patient(current, PatientIdentity(match.get("PatientID") or "",
                                                            match.get("IssuerOfPatientID") or "",
                                                            _name(match.get("PatientName"))), which)
        if check.same:
            earlier.append({**match, "in_library": match["StudyInstanceUID"] in held_uids})
            warnings += check.warnings
        elif match.get("PatientID") == patient_id:  # the same ID from another issuer: another patient's
            warnings.append(f"{which} has the same Patient ID from another issuer "
                            f"({match.get('IssuerOfPatientID')}): another patient's, not offered")
    return sorted(earlier, key=lambda m: m.get("StudyDate") or "", reverse=True), warnings


def _name(value: str | None) -> str:
    """PN as compared: case and trailing empty components ignored (PACSs differ in both)."""
    return (value or "").upper().rstrip("^ ")
