"""The patient's earlier CT studies on a PACS (#24 item 1): what the library does not hold yet,
found by C-FIND (or QIDO-RS) on the same Patient ID, so the reader can retrieve the right prior."""

from __future__ import annotations

from workstation.network.nodes import RemoteNode


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
    earlier = [{**match, "in_library": match["StudyInstanceUID"] in held_uids} for match in matches
               if match.get("PatientID") == patient_id and match["StudyInstanceUID"] != study["study_uid"]
               and (not date or (match.get("StudyDate") or "") < date)]
    warnings = [f"The prior of {match['StudyDate'] or 'unknown date'} on {node.name} has the same Patient ID but "
                "another name: check it is the same patient" for match in earlier
                if _name(match.get("PatientName")) != _name(study.get("patient_name"))]
    return sorted(earlier, key=lambda m: m.get("StudyDate") or "", reverse=True), warnings


def _name(value: str | None) -> str:
    """PN as compared: case and trailing empty components ignored (PACSs differ in both)."""
    return (value or "").upper().rstrip("^ ")
