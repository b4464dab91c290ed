"""The report's "Comparison" section (issue #24 item 5): the prior's date, description and accession,
the registration's quality said plainly (a poor alignment is a warning, never hidden), which of
the prior's findings were matched against, a table of the matched nodules with their growth and
doubling times, the Lung-RADS suggestion with comparison and its rule, and key images of both
time points for each nodule found on both scans.

Only the current read's accepted findings are matched here (the AI never decides what is
reported); the comparison itself comes from the review store (review/comparison_record.py).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass

from workstation.imaging.volume import Volume
from workstation.reporting.key_images import KeyImage, axial_images
from workstation.reporting.lungrads import LungRadsSuggestion
from workstation.reporting.lungrads_comparison import EDITION as COMPARISON_EDITION
from workstation.reporting.lungrads_comparison import suggest_with_comparison
from workstation.review.comparison import NodulePair, mean_diameter, volume_of
from workstation.review.comparison_record import Comparison, recorded_comparison

TABLE_WIDTHS = [11, 12, 30, 24, 24, 27, 17, 33]  # mm, 178 in all
MM = 72 / 25.4  # points per millimetre (reportlab's unit), so that the content side needs no reportlab


@dataclass(frozen=True)
class ComparisonReport:
    """A recorded comparison applied to the report's findings."""

    comparison: Comparison
    pairs: tuple[NodulePair, ...]
    suggestion: LungRadsSuggestion
    edits_not_applied: tuple[str, ...] = ()

    @property
    def matched(self) -> tuple[NodulePair, ...]:
        """Pairs seen on both scans (they get key images of both time points)."""
        return tuple(p for p in self.pairs if p.current is not None and p.prior is not None)


def comparison_report(store, study_uid: str, findings, *, as_signed: bool) -> ComparisonReport | None:
    """The study's recorded comparison (as signed, for a signed read) matched with `findings`
    (the report's accepted ones); None when no prior was chosen."""
    comparison = recorded_comparison(store, study_uid, as_signed=as_signed)
    if comparison is None:
        return None
    pairs, not_applied = comparison.matched(list(findings))
    return ComparisonReport(comparison, tuple(pairs), suggest_with_comparison(pairs, comparison.days),
                            tuple(not_applied))


def comparison_key_images(report: ComparisonReport, volume: Volume, prior_volume: Volume | None
                          ) -> dict[tuple[str, int], list[KeyImage]]:
    """Per nodule seen on both scans: the prior's own axial slice at the prior nodule's centre, and
    the current one at the current centre (whole slice and close-up, the same scale)."""
    if prior_volume is None:
        return {}
    images = {}
    for pair in report.matched:
        now, then = pair.current, pair.prior
        images[("pair", now.finding_id)] = (
            axial_images(prior_volume, then.center_mm, then.diameter_mm, f"P{then.number}", "Prior")
            + axial_images(volume, now.center_mm, now.diameter_mm, str(now.number), "Now")[::-1])
    return images


def comparison_story(story, report: ComparisonReport | None, images: Mapping[tuple[str, int], list[KeyImage]],
                     prior_images_missing: bool) -> list:
    """The section's flowables; `story` is the PDF's _Story (its paragraph and table helpers)."""
    from reportlab.platypus import CondPageBreak, Spacer

    if report is None:
        return []
    c = report.comparison
    registration = c.registration
    out = [CondPageBreak(50 * MM), story.p("Comparison", "h2")]
    prior_line = f"{display_date(c.prior.date)}, {c.days} days earlier (about {c.days / 30.44:.0f} months)"
    recorded = f"by {c.recorded_by}, {_when(c.recorded_at)}"
    rows = [["Prior study", f"{prior_line}; {c.prior.description or 'no description'}; accession "
                           f"{c.prior.accession or '-'}"],
            ["Alignment", story.p(_alignment_sentence(c), "warning" if registration.quality == "poor" else "cell",
                                  bold=registration.quality == "poor")],
            ["Matched against", c.prior_source_text],
            ["Comparison recorded", recorded]]
    if c.edits:
        rows.append(["Reader's corrections", "; ".join(e.describe() for e in c.edits)])
    out.append(story.table(rows, [35, 143], header=False))
    for warning in (*c.warnings, *report.edits_not_applied):
        out.append(story.p(warning, "warning"))
    out.append(Spacer(1, 2 * MM))
    out.append(story.table(_pair_rows(report), TABLE_WIDTHS))
    out.append(story.p("Long axis: the longest diameter across one slice; mean diameter: that of a sphere of the "
                       "nodule's volume. Growing or shrinking: a change in long axis of more than 1.5 mm, else "
                       "stable. Volume doubling time range: from each volume's measurement error (half a voxel "
                       "in diameter, at least 0.5 mm); ∞: the growth is within that error, not told from stable. "
                       "Volumes: the model's for AI findings (from its heatmap, not a segmentation; on phantoms "
                       "they misstate growth by a median 28 %), a sphere of the long axis for findings a reader "
                       "added or measured again. * pairing or status set by the reader.", "small"))
    s = report.suggestion
    out.append(Spacer(1, 2 * MM))
    out.append(story.p(f"Lung-RADS with comparison: suggested category {s.category} — rule applied: {s.rule}. "
                       f"{COMPARISON_EDITION}.", bold=True))
    if prior_images_missing and report.matched:
        out.append(story.p("The prior's images are not available here: no key images of the prior.", "warning"))
    out.append(Spacer(1, 3 * MM))
    for pair in report.matched:
        pictures = images.get(("pair", pair.current.finding_id), [])
        if pictures:
            out.append(_pair_images(story, pair, pictures, display_date(c.prior.date)))
    return out


def _alignment_sentence(comparison: Comparison) -> str:
    registration = comparison.registration
    text = (f"{registration.quality}: the lungs overlap {registration.lung_overlap:.0%} after registration "
            f"({registration.lung_overlap_before:.0%} before; {registration.stages})")
    if registration.quality == "poor":
        text += (". The alignment is poor: nodules may be paired wrongly and their growth misstated; compare the "
                 "images by eye")
    elif registration.quality == "fair":
        text += ". Check the pairings by eye"
    return text + "."


def _pair_rows(report: ComparisonReport) -> list[list[str]]:
    rows = [["Now #", "Prior #", "Status (long axis change)", "Long axis (mm) then → now",
             "Mean diam. (mm) then → now", "Volume (mm³) then → now", "Volume change", "Doubling time (range)"]]
    for pair in report.pairs:
        now, then = pair.current, pair.prior

        def both(value) -> str:
            return " → ".join("-" if f is None else value(f) for f in (then, now))

        status = pair.status + (" *" if pair.by_reader else "")
        if pair.diameter_change_mm is not None:
            status += f" ({pair.diameter_change_mm:+.1f} mm)"
        rows.append([str(now.number) if now else "-", f"P{then.number}" if then else "-", status,
                     both(lambda f: f"{f.diameter_mm:.1f}"), both(lambda f: f"{mean_diameter(f):.1f}"),
                     both(lambda f: f"{volume_of(f):.0f}"),
                     "-" if pair.volume_change is None else f"{pair.volume_change - 1:+.0%}", _doubling(pair)])
    return rows


def _doubling(pair: NodulePair) -> str:
    if pair.status == "new":
        return "new"
    if pair.status == "resolved":
        return "not seen now"
    if pair.doubling_days is None:
        return "no volume growth"
    fast, slow = pair.doubling_range_days or (pair.doubling_days, pair.doubling_days)
    return f"{pair.doubling_days:.0f} days ({fast:.0f} to {'∞' if math.isinf(slow) else f'{slow:.0f}'})"


def _flowable(image, width: float):
    from reportlab.platypus import Image

    data = io.BytesIO()
    image.save(data, format="JPEG", quality=90)
    data.seek(0)
    return Image(data, width=width, height=width * image.height / image.width)


def _pair_images(story, pair: NodulePair, pictures: list[KeyImage], prior_date: str):
    from reportlab.platypus import KeepTogether, Spacer, Table, TableStyle

    width = 43 * MM
    cells = [[_flowable(p.image, width) for p in pictures], [story.p(p.caption, "small") for p in pictures]]
    grid = Table(cells, colWidths=[width + 1.5 * MM] * len(pictures), hAlign="LEFT")
    grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 1),
                              ("RIGHTPADDING", (0, 0), (-1, -1), 1)]))
    now, then = pair.current, pair.prior
    by_reader = " (set by the reader)" if pair.by_reader else ""
    heading = (f"Finding {now.number} now and prior finding P{then.number} ({prior_date}): {pair.status}{by_reader}, "
               f"{then.diameter_mm:.1f} → {now.diameter_mm:.1f} mm")
    return KeepTogether([story.p(heading, "body", bold=True), grid, Spacer(1, 2 * MM)])


def display_date(value: str) -> str:
    value = (value or "").strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value or "-"


def _when(value: str | None) -> str:
    return (value or "-")[:16].replace("T", " ") + (" UTC" if value and "+00:00" in value else "")
