"""The reader's corrections of the nodule matching, as the viewer offers them (issue #24 item 4,
"editable by the reader"), without a screen: the choices that are valid for a current finding
(each prior finding the comparison matched against, by number and size, or none) and the
ReaderEdit each choice makes. What is recorded is the Comparison with these edits, through
record_comparison, exactly as `workstation compare --pair/--unpair/--status --record` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workstation.errors import WorkstationError
from workstation.review.comparison import EDITABLE_STATUSES, NodulePair, ReaderEdit
from workstation.review.comparison_record import Comparison, PriorNodule


@dataclass(frozen=True)
class PartnerChoice:
    """One entry of "same nodule as": a prior finding (`prior` its number) or None, a new nodule."""

    prior: int | None
    label: str


def nodule_label(finding) -> str:
    """'#3 · 7.1 mm solid' for a current finding, 'P3 · 5.0 mm solid' for a prior one (as the report names them)."""
    prefix = "P" if isinstance(finding, PriorNodule) else "#"
    return f"{prefix}{finding.number} · {finding.diameter_mm:.1f} mm {finding.type}"


def partner_choices(comparison: Comparison, pairs: Sequence[NodulePair], current_number: int
                    ) -> list[PartnerChoice]:
    """What current finding `current_number` may be paired with: none (a new nodule), or any of the
    prior's findings matched against, each saying which current finding it is paired with now."""
    partner_of = {p.prior.number: p.current.number for p in pairs if p.prior is not None and p.current is not None}
    choices = [PartnerChoice(None, "none: a new nodule (its prior partner, if any, resolved)")]
    for nodule in sorted(comparison.prior_nodules, key=lambda n: n.number):
        now = partner_of.get(nodule.number)
        taken = "" if now is None else " (this finding's partner now)" if now == current_number else \
            f" (now paired with #{now})"
        choices.append(PartnerChoice(nodule.number, nodule_label(nodule) + taken))
    return choices


def partner_edit(pairs: Sequence[NodulePair], current_number: int, prior_number: int | None) -> ReaderEdit | None:
    """The edit that gives current finding `current_number` the prior partner `prior_number` (None:
    not the same nodule as any prior one); None when that is already so."""
    pair = next((p for p in pairs if p.current is not None and p.current.number == current_number), None)
    if pair is None:
        raise WorkstationError(f"Finding {current_number} is not in this comparison")
    now = pair.prior.number if pair.prior is not None else None
    if now == prior_number:
        return None
    if prior_number is None:
        return ReaderEdit("unpair", current_number)
    return ReaderEdit("pair", current_number, prior_number)


def status_edit(pairs: Sequence[NodulePair], current_number: int, status: str) -> ReaderEdit | None:
    """The edit that calls a paired finding `status` (stable, growing, shrinking); None when it
    already has it. Refuses an unpaired one: a new nodule has no change to call."""
    pair = next((p for p in pairs if p.current is not None and p.current.number == current_number), None)
    if pair is None or pair.prior is None:
        raise WorkstationError(f"Finding {current_number} has no prior partner: pair it first")
    if status not in EDITABLE_STATUSES:
        raise WorkstationError(f"A pair's status is one of {', '.join(EDITABLE_STATUSES)}, not {status!r}")
    return None if pair.status == status else ReaderEdit("status", current_number, status=status)
