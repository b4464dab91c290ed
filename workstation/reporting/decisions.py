"""Decisions export: every finding of a study with its decisions, the people and times, and the
identity of the model that proposed it, as JSON or CSV (one row per decision)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore

CSV_COLUMNS = ("decision_id", "time_utc", "user", "role", "action", "reason", "addendum", "undoes", "finding_number",
               "finding_id", "finding_source", "finding_type", "diameter_mm", "center_mm", "probability", "model_name",
               "model_version", "model_sha256", "old_values", "new_values")


def decisions_export(store: ReviewStore, study_uid: str, exported_by: str) -> dict:
    """The whole record of a study's read, for the referring system, a registry or an auditor."""
    connection = store.connection
    roles = dict(connection.execute("SELECT username, role FROM users"))
    analyses = [dict(zip(("id", "model_name", "model_version", "model_sha256", "device", "threshold", "run_by",
                          "run_at", "series_uid"), row)) for row in connection.execute(
        "SELECT id, model_name, model_version, model_sha256, device, threshold, created_by, created_at, series_uid "
        "FROM analyses WHERE study_uid = ? ORDER BY id", (study_uid,))]
    sha_of = {a["id"]: a["model_sha256"] for a in analyses}
    analysis_of = dict(connection.execute("SELECT id, analysis_id FROM findings WHERE study_uid = ?", (study_uid,)))
    decisions: dict[int, list[dict]] = {}
    for row in connection.execute(
            "SELECT id, finding_id, user, action, reason, old_values, new_values, addendum, undoes, created_at "
            "FROM decisions WHERE study_uid = ? ORDER BY id", (study_uid,)):
        decisions.setdefault(row[1], []).append({
            "decision_id": row[0], "time_utc": row[9], "user": row[2], "role": roles.get(row[2], ""),
            "action": row[3], "reason": row[4], "addendum": bool(row[7]), "undoes": row[8],
            "old_values": json.loads(row[5]) if row[5] else None, "new_values": json.loads(row[6]) if row[6] else None})
    findings = []
    for state in ReviewSession.findings_of(store, study_uid):
        findings.append({
            "number": state.number, "finding_id": state.id, "source": state.source, "decision": state.decision, "reason": state.reason,
            "type": state.type, "diameter_mm": state.diameter_mm, "center_mm": list(state.center_mm),
            "volume_mm3": state.volume_mm3, "probability": state.probability,
            "model": {"name": state.model_name, "version": state.model_version,
                      "sha256": sha_of.get(analysis_of.get(state.id))} if state.model_name else None,
            "decisions": decisions.get(state.id, [])})
    readers = [dict(zip(("user", "status", "impression", "started_at", "signed_at", "active_seconds"), row),
                    role=roles.get(row[0], "")) for row in connection.execute(
        "SELECT user, status, impression, started_at, signed_at, active_seconds FROM reading_sessions "
        "WHERE study_uid = ? ORDER BY started_at", (study_uid,))]
    return {"study_uid": study_uid, "exported_by": exported_by,
            "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "analyses": analyses, "readers": readers, "findings": findings}


def decisions_csv(export: dict) -> str:
    """One row per decision, the finding and model repeated on each row (spreadsheet-friendly)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for finding in export["findings"]:
        model = finding["model"] or {}
        for decision in finding["decisions"]:
            writer.writerow({
                **{key: decision[key] for key in ("decision_id", "time_utc", "user", "role", "action", "reason",
                                                   "addendum", "undoes")},
                "finding_number": finding["number"], "finding_id": finding["finding_id"],
                "finding_source": finding["source"],
                "finding_type": finding["type"], "diameter_mm": finding["diameter_mm"],
                "center_mm": " ".join(f"{v:.2f}" for v in finding["center_mm"]),
                "probability": finding["probability"], "model_name": model.get("name"),
                "model_version": model.get("version"), "model_sha256": model.get("sha256"),
                "old_values": json.dumps(decision["old_values"]) if decision["old_values"] else "",
                "new_values": json.dumps(decision["new_values"]) if decision["new_values"] else ""})
    return out.getvalue()
