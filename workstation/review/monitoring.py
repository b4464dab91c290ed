"""Monitoring a model in use (issue #25 item 3), from the review store: per model version, month
and subgroup (sex, age band, manufacturer, slice thickness, kernel), how its findings fare with
the readers: accepted and rejected shares, rejection reasons, nodules readers had to add (missed),
findings per scan, reading time. Drift alerts say when the latest month's acceptance moves beyond
chance from the months before, or when the input mix (scanners, thicknesses, ages) shifts, or when
inputs fall outside what the model was validated on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from workstation.imaging.volume import SeriesMetadata
from workstation.jobs import CancelToken, Job, Progress
from workstation.subgroups import SUBGROUPS

MIN_DECISIONS = 20  # per side, before a change in acceptance is tested
Z_ALERT = 3.0  # about 1 in 370 by chance under the same rate
MIX_SHIFT = 0.25  # a scanner or thickness band whose share moved this much


@dataclass(frozen=True)
class StudyUse:
    """One AI run on one study and what the readers made of its findings."""

    study_uid: str
    model: str  # "name version"
    month: str  # YYYY-MM of the run
    metadata: SeriesMetadata
    ai_findings: int
    accepted: int
    rejected: int
    reasons: tuple[str, ...] = ()
    added: int = 0  # clinician findings: nodules the AI missed
    reading_seconds: float = 0.0
    run_at: str = ""  # ISO time of the run (UTC): the date range a figure was computed on


@dataclass
class Summary:
    studies: int = 0
    ai_findings: int = 0
    accepted: int = 0
    rejected: int = 0
    added: int = 0
    reading_seconds: float = 0.0
    reasons: Counter = field(default_factory=Counter)

    def add(self, use: StudyUse) -> None:
        self.studies += 1
        self.ai_findings += use.ai_findings
        self.accepted += use.accepted
        self.rejected += use.rejected
        self.added += use.added
        self.reading_seconds += use.reading_seconds
        self.reasons.update(use.reasons)

    def as_dict(self) -> dict:
        decided = self.accepted + self.rejected
        return {"studies": self.studies, "findings_per_scan": round(self.ai_findings / max(self.studies, 1), 2),
                "accept_rate": round(self.accepted / decided, 3) if decided else None,
                "reject_rate": round(self.rejected / decided, 3) if decided else None,
                "decided": decided, "missed_added_per_scan": round(self.added / max(self.studies, 1), 2),
                "reading_minutes_per_scan": round(self.reading_seconds / 60 / max(self.studies, 1), 2),
                "reasons": dict(self.reasons.most_common())}


def collect_use(store, library) -> list[StudyUse]:
    """Every study with a recorded AI run, with its readers' decisions (their current state)."""
    from workstation.jobs import run_job

    return run_job(collect_use_job(store, library))


def collect_use_job(store, library, cancel: CancelToken | None = None) -> Job[list[StudyUse]]:
    """collect_use as a job: one step per study (each reads its first file's header)."""
    from workstation.dicom.headers import read_headers
    from workstation.dicom.sources import DicomSource
    from workstation.errors import WorkstationError
    from workstation.review.session import ReviewSession

    runs = store.connection.execute(
        "SELECT study_uid, series_uid, model_name, model_version, MAX(created_at) FROM analyses GROUP BY study_uid"
    ).fetchall()
    series_folders = {row["series_uid"]: library.series_folder(row) for study in library.studies()
                      for row in library.series(study["key"])}
    uses = []
    for done, (study_uid, series_uid, name, version, created_at) in enumerate(runs):
        if cancel is not None:
            cancel.check()
        yield Progress(done, len(runs), f"Reading the decisions on {done + 1} of {len(runs)} analysed studies")
        metadata = SeriesMetadata()
        folder = series_folders.get(series_uid)
        first = next(iter(sorted(Path(folder).glob("*.dcm"))), None) if folder else None
        if first is not None:
            try:
                metadata = SeriesMetadata.from_dict(read_headers(DicomSource(first))[0].metadata)
            except WorkstationError:
                pass  # a damaged copy: its subgroup is 'unknown', its decisions still count
        states = ReviewSession.findings_of(store, study_uid)
        ai = [s for s in states if s.source == "ai"]
        seconds = store.connection.execute("SELECT COALESCE(SUM(active_seconds), 0) FROM reading_sessions "
                                           "WHERE study_uid = ?", (study_uid,)).fetchone()[0]
        uses.append(StudyUse(study_uid, f"{name} {version}", str(created_at)[:7], metadata, len(ai),
                             sum(s.decision == "accepted" for s in ai), sum(s.decision == "rejected" for s in ai),
                             tuple(s.reason for s in ai if s.decision == "rejected" and s.reason),
                             sum(s.source == "clinician" for s in states), float(seconds), str(created_at)))
    yield Progress(len(runs), len(runs), f"Read {len(runs)} analysed studies")
    return uses


def summarise(uses: list[StudyUse], by: str | None = None) -> list[dict]:
    """One row per model, month and (with `by`) subgroup."""
    key = SUBGROUPS[by] if by else (lambda _m: "all")
    table: dict[tuple[str, str, str], Summary] = {}
    for use in uses:
        table.setdefault((use.model, use.month, key(use.metadata)), Summary()).add(use)
    return [{"model": model, "month": month, "group": group, **summary.as_dict()}
            for (model, month, group), summary in sorted(table.items())]


def _z(accepted_a: int, n_a: int, accepted_b: int, n_b: int) -> float:
    pooled = (accepted_a + accepted_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    return (accepted_a / n_a - accepted_b / n_b) / spread if spread else 0.0


def drift_alerts(uses: list[StudyUse], valid_inputs: dict[str, dict] | None = None) -> list[str]:
    """Sentences for the reader: acceptance or input mix moved in the latest month, or inputs
    outside the model's validated scope (valid_inputs: model -> the bundle's valid_inputs)."""
    alerts = []
    for model in sorted({u.model for u in uses}):
        mine = [u for u in uses if u.model == model]
        latest = max(u.month for u in mine)
        now, before = [u for u in mine if u.month == latest], [u for u in mine if u.month < latest]
        a, b = Summary(), Summary()
        for use in now:
            a.add(use)
        for use in before:
            b.add(use)
        n_a, n_b = a.accepted + a.rejected, b.accepted + b.rejected
        if n_a >= MIN_DECISIONS and n_b >= MIN_DECISIONS:
            z = _z(a.accepted, n_a, b.accepted, n_b)
            if abs(z) >= Z_ALERT:
                alerts.append(f"{model}: readers accepted {a.accepted / n_a:.0%} of its findings in {latest}, "
                              f"against {b.accepted / n_b:.0%} before ({n_a} and {n_b} decisions): "
                              f"{'more' if z > 0 else 'fewer'} than chance explains; check the inputs and the model")
        for name in ("manufacturer", "slice thickness", "age"):
            if not before:
                break
            shares_now = Counter(SUBGROUPS[name](u.metadata) for u in now)
            shares_before = Counter(SUBGROUPS[name](u.metadata) for u in before)
            for value in set(shares_now) | set(shares_before):
                moved = shares_now[value] / len(now) - shares_before[value] / len(before)
                if abs(moved) >= MIX_SHIFT and len(now) >= 5:
                    alerts.append(f"{model}: {name} '{value}' made {shares_now[value] / len(now):.0%} of the "
                                  f"studies in {latest}, against {shares_before[value] / len(before):.0%} before")
        scope = (valid_inputs or {}).get(model) or {}
        low, high = (scope.get("slice_thickness_mm") or [0, math.inf])[:2]
        outside = [u for u in now if u.metadata.slice_thickness is not None
                   and not low <= u.metadata.slice_thickness <= high]
        if outside:
            alerts.append(f"{model}: {len(outside)} of {len(now)} studies in {latest} had slices outside the "
                          f"{low:g}-{high:g} mm it was validated on")
    return alerts


@dataclass(frozen=True)
class DataScope:
    """What a figure was computed on: how many studies, the dates of their AI runs, which models."""

    studies: int
    first: str  # YYYY-MM-DD of the earliest run ('' when none)
    last: str
    models: tuple[str, ...]

    @classmethod
    def of(cls, uses: list[StudyUse]) -> "DataScope":
        dates = sorted(u.run_at[:10] or u.month for u in uses)
        return cls(len(uses), dates[0] if dates else "", dates[-1] if dates else "",
                   tuple(sorted({u.model for u in uses})))

    def sentence(self) -> str:
        if not self.studies:
            return "Computed on no studies (no AI run recorded for this selection)"
        when = self.first if self.first == self.last else f"{self.first} to {self.last}"
        models = ", ".join(self.models)
        return (f"Computed on {self.studies} {'study' if self.studies == 1 else 'studies'} with AI runs {when}; "
                f"model{'s' if len(self.models) > 1 else ''} {models}")

    def short(self) -> str:
        """The same in a figure's caption: '36 studies, runs 2026-09-01 to 2026-11-27, demo 0.7.0'."""
        if not self.studies:
            return "no studies"
        when = self.first if self.first == self.last else f"{self.first} to {self.last}"
        return (f"{self.studies} {'study' if self.studies == 1 else 'studies'}, runs {when}, "
                f"{', '.join(self.models)}")

    def as_dict(self) -> dict:
        return {"studies": self.studies, "first_run": self.first, "last_run": self.last, "models": list(self.models)}


@dataclass(frozen=True)
class MonitoringReport:
    """The monitor's whole answer: the rows per model, month and group, the alerts, and what they
    were computed on; `uses` for the narrower scopes of single figures."""

    by: str | None
    rows: list[dict]
    alerts: list[str]
    uses: list[StudyUse]
    generated_at: str

    def scope(self, model: str | None = None, group: str | None = None) -> DataScope:
        key = SUBGROUPS[self.by] if self.by else (lambda _m: "all")
        return DataScope.of([u for u in self.uses if (model is None or u.model == model)
                             and (group is None or key(u.metadata) == group)])

    def as_dict(self) -> dict:
        return {"by": self.by or "all", "generated_at": self.generated_at, "computed_on": self.scope().as_dict(),
                "rows": self.rows, "alerts": self.alerts}

    def csv_text(self) -> str:
        import csv
        import io
        import json

        stream = io.StringIO()
        fields = ([k for k in self.rows[0] if k != "reasons"] + ["reasons"]) if self.rows else ["model"]
        writer = csv.DictWriter(stream, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**row, "reasons": json.dumps(row["reasons"])})
        return stream.getvalue()


def model_scopes() -> dict[str, dict]:
    """Each installed model's validated inputs ("name version" -> the bundle's valid_inputs)."""
    from workstation.inference.registry import list_models

    return {f"{e.bundle.name} {e.bundle.version}": e.bundle.valid_inputs for e in list_models() if e.bundle}


def monitoring_job(home: Path, who: str, by: str | None = None, cancel: CancelToken | None = None,
                   scopes: dict[str, dict] | None = None) -> Job[MonitoringReport]:
    """The monitor from the data folder `home`, on its own store connection (it runs on a worker
    thread in the viewer); the look is audited as the command's is."""
    import datetime as dt

    from workstation.library import StudyLibrary
    from workstation.review import audit
    from workstation.review.store import ReviewStore

    if by is not None and by not in SUBGROUPS:
        raise ValueError(f"unknown subgroup {by!r}")
    store = ReviewStore.in_home(home)
    try:
        uses = yield from collect_use_job(store, StudyLibrary(home), cancel)
        yield Progress(len(uses), len(uses), "Checking for drift against the models' validated inputs")
        alerts = drift_alerts(uses, model_scopes() if scopes is None else scopes)
        with store.transaction() as connection:
            audit.append(connection, who, "library_listed", details={"monitored": len(uses)})
    finally:
        store.close()
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return MonitoringReport(by, summarise(uses, by), alerts, uses, now)


def export_monitoring(store, user, report: MonitoringReport, path: Path, fmt: str) -> str:
    """The monitor's rows and alerts as CSV or JSON at `path`: staged, recorded in the audit trail
    as an export (radiologists and admins), then put in place; returns its SHA-256."""
    import json

    from workstation.review.exports import record_export, staging_path

    if fmt not in ("csv", "json"):
        raise ValueError(f"unknown export format {fmt!r}")
    user.require("export")
    path = Path(path)
    staging = staging_path(path)
    text = report.csv_text() if fmt == "csv" else json.dumps(report.as_dict(), indent=1)
    try:
        staging.write_text(text, encoding="utf-8")
    except OSError as exc:
        from workstation.errors import WorkstationError

        staging.unlink(missing_ok=True)
        raise WorkstationError(f"Cannot write {path}: {exc.strerror or exc}; choose another folder") from exc
    return record_export(store, user.username, None, staging, path, kind=f"monitoring {fmt}",
                         by=report.by or "all", rows=len(report.rows), studies=len(report.uses))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of a share (Wilson score): honest at the small counts a month of one subgroup has."""
    if n <= 0:
        return 0.0, 1.0
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def acceptance_evidence(uses: list[StudyUse]) -> dict[str, tuple[str, int, int]]:
    """Per model: its latest month and the decisions in it and before it, i.e. whether the drift
    test of acceptance (MIN_DECISIONS a side) could run at all, so 'no alert' is never mistaken for 'tested'."""
    evidence = {}
    for model in sorted({u.model for u in uses}):
        mine = [u for u in uses if u.model == model]
        latest = max(u.month for u in mine)
        evidence[model] = (latest, sum(u.accepted + u.rejected for u in mine if u.month == latest),
                           sum(u.accepted + u.rejected for u in mine if u.month < latest))
    return evidence
