"""The PDF report (reportlab): what a referring doctor, an auditor and a court can all read.

Every page has the institution, patient and study in its header and the page number, audit
anchor and status in its footer; an unsigned read is watermarked DRAFT on every page. Written
to a temporary file and renamed, so a failed export never leaves half a report behind.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak, Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle,
)

from workstation.files import write_atomically
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job, Progress
from workstation.reporting.comparison_section import comparison_key_images, comparison_story
from workstation.reporting.content import ReportContent, ReportError, ReportFinding
from workstation.reporting.fonts import FontSet, markup, report_fonts
from workstation.reporting.key_images import KeyImage, finding_key_images
from workstation.review.anchors import report_anchor_keywords

PAGE = A4
MARGIN = 16 * mm
HEADER_HEIGHT = 22 * mm
FOOTER_HEIGHT = 14 * mm
DRAFT_MARK = "DRAFT — not reviewed"


def export_report_job(content: ReportContent, volume: Volume, heatmaps: Mapping[int | None, np.ndarray],
                      path: Path, cancel: CancelToken | None = None, prior_volume: Volume | None = None) -> Job[Path]:
    """Key images, then the PDF; yields Progress and returns the written path. `prior_volume`: the
    compared prior's images, for the key images of both time points (left out when None)."""
    cancel = cancel or CancelToken()
    path = Path(path)
    shown = list(content.findings) + (list(content.proposals) if content.draft else [])
    threshold_of = {run.analysis_id: run.threshold for run in content.model_runs}
    latest = content.model_runs[-1] if content.model_runs else None
    images: dict[tuple[str, int], list[KeyImage]] = {}
    for index, finding in enumerate(shown):
        cancel.check()
        yield Progress(index, len(shown) + 1, f"Key images {index + 1} of {len(shown)}")
        analysis_id = finding.analysis_id if finding.analysis_id in heatmaps else (latest and latest.analysis_id)
        heatmap = heatmaps.get(analysis_id)
        threshold = threshold_of.get(analysis_id, latest.threshold if latest else 0.5)
        images[_key(finding)] = finding_key_images(volume, heatmap, finding.center_mm, finding.diameter_mm,
                                                   _label(finding), threshold)
    cancel.check()
    if content.comparison is not None:
        yield Progress(len(shown), len(shown) + 1, "Key images of the prior")
        images.update(comparison_key_images(content.comparison, volume, prior_volume))
    yield Progress(len(shown), len(shown) + 1, "Writing the PDF")
    write_report_pdf(content, images, path, prior_images=prior_volume is not None)
    return path


def write_report_pdf(content: ReportContent, images: Mapping[tuple[str, int], list[KeyImage]], path: Path,
                     fonts: FontSet | None = None, prior_images: bool = True) -> Path:
    """Build the whole PDF in memory, then write it atomically next to its final name."""
    fonts = fonts or report_fonts()
    buffer = io.BytesIO()
    story = _Story(content, images, fonts, prior_images).build()
    page = _PageDecor(content, fonts)
    document = SimpleDocTemplate(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                                 topMargin=MARGIN + HEADER_HEIGHT, bottomMargin=MARGIN + FOOTER_HEIGHT,
                                 title=f"CT report {'(draft) ' if content.draft else ''}{content.metadata.study_uid}",
                                 author=content.signer or "", creator="Workstation",
                                 keywords=report_anchor_keywords(*content.audit_head))
    document.build(story, onFirstPage=page.draw, onLaterPages=page.draw, canvasmaker=_NumberedCanvas)
    try:
        write_atomically(path, buffer.getvalue())
    except OSError as exc:
        raise ReportError(f"Cannot write the report to {path}: {exc.strerror or exc}; choose another folder") from exc
    return path


def _key(finding: ReportFinding) -> tuple[str, int]:
    return ("finding", finding.finding_id)


def _label(finding: ReportFinding) -> str:
    """The finding's study number: the one the viewer's list, views and dialogs show."""
    return str(finding.number)


def _styles(fonts: FontSet) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=fonts.regular, fontSize=9, leading=12)
    return {
        "body": body,
        "small": ParagraphStyle("small", parent=body, fontSize=7.5, leading=9.5),
        "cell": ParagraphStyle("cell", parent=body, fontSize=8, leading=10),
        "head": ParagraphStyle("head", parent=body, fontName=fonts.bold, fontSize=8, leading=10),
        "h1": ParagraphStyle("h1", parent=body, fontName=fonts.bold, fontSize=14, leading=18, spaceAfter=4),
        "h2": ParagraphStyle("h2", parent=body, fontName=fonts.bold, fontSize=11, leading=14, spaceBefore=10,
                             spaceAfter=4, keepWithNext=1),  # a heading never ends a page alone
        "warning": ParagraphStyle("warning", parent=body, textColor=colors.HexColor("#b00020")),
        "right": ParagraphStyle("right", parent=body, fontSize=8, alignment=TA_RIGHT),
    }


# What a signature on a read means (21 CFR 11.50 asks that it be shown with the name and time).
SIGNATURE_MEANING = ("the signer reviewed the images and every finding listed above and approves this report "
                     "as the record of the read.")


class _Story:
    """The flowables of the report, section by section."""

    def __init__(self, content: ReportContent, images: Mapping[tuple[str, int], list[KeyImage]],
                 fonts: FontSet, prior_images: bool = True) -> None:
        self.content, self.images, self.fonts, self.prior_images = content, images, fonts, prior_images
        self.styles = _styles(fonts)

    def p(self, text: object, style: str = "body", bold: bool = False) -> Paragraph:
        bold = bold or style in ("head", "h1", "h2")
        return Paragraph(markup("" if text is None else str(text), self.fonts, bold), self.styles[style])

    def build(self) -> list:
        c = self.content
        status = (f"FINAL — signed by {c.signer} on {_when(c.signed_at)}" if not c.draft
                  else "DRAFT — not reviewed: AI proposals are not findings until a reader accepts them")
        story = [self.p("CT chest — lung nodule review", "h1"),
                 self.p(status, "warning" if c.draft else "body", bold=True)]
        story += self.study_section() + self.ai_section() + self.findings_section()
        story += comparison_story(self, c.comparison, self.images, prior_images_missing=not self.prior_images)
        if c.draft and c.proposals:
            story += self.proposals_section()
        elif c.proposals:
            story += self.unreviewed_section()
        story += self.rejected_section() + self.conclusion_section()
        return story

    def table(self, rows: list[list], widths: list[float], header: bool = True) -> Table:
        cells = [[cell if isinstance(cell, Paragraph) else self.p(cell, "head" if header and r == 0 else "cell")
                  for cell in row] for r, row in enumerate(rows)]
        table = Table(cells, colWidths=[w * mm for w in widths], repeatRows=1 if header else 0, hAlign="LEFT")
        style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#b0b0b0")),
                 ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
                 ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]
        if header:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")))
        table.setStyle(TableStyle(style))
        return table

    def study_section(self) -> list:
        m = self.content.metadata
        thickness = f"{m.slice_thickness:g} mm" if m.slice_thickness else "-"
        rows = [["Patient", _patient_line(m)], ["Study", f"{_date(m.study_date)}  {m.study_description or ''}"],
                ["Accession", m.accession_number or "-"],
                ["Scanner", f"{m.manufacturer or '-'} {m.model}".strip()], ["Kernel", m.kernel or "-"],
                ["Slice thickness", thickness],
                ["Series used", f"{m.series_number or '?'} {m.series_description or ''} (UID {m.series_uid})"]]
        return [self.p("Study", "h2"), self.table(rows, [35, 143], header=False)]

    def ai_section(self) -> list:
        out = [self.p("AI assistance", "h2")]
        if not self.content.model_runs:
            return out + [self.p("No AI model was run on this study.")]
        for run in self.content.model_runs:
            stated = (f"stated sensitivity {run.stated_sensitivity:.0%} at {run.stated_fp_per_scan:g} false "
                      f"positives per scan (model card, nodules ≥ 6 mm; measured on {run.stated_measured_on})"
                      if run.stated_sensitivity is not None
                      else "no stated performance at this threshold in the model card")
            second = f"; second stage {run.second_stage_sha256[:12]}" if run.second_stage_sha256 else ""
            rows = [["Model", f"{run.name} {run.version} (weights sha256 {run.sha256[:12]}{second})"],
                    ["Run", f"on {run.device or '-'}, {_when(run.run_at)} by {run.run_by or '-'}"],
                    ["Operating threshold", f"{run.threshold:g}: {stated}"],
                    ["Intended use", run.intended_use or "-"]]
            out.append(self.table(rows, [35, 143], header=False))
            if run.notice:
                out.append(self.p(run.notice, "warning"))
            for warning in run.scope_warnings:
                out.append(self.p(f"Outside the model's validated scope: {warning}", "warning"))
            out.append(Spacer(1, 3 * mm))
        return out

    def finding_rows(self, findings: tuple[ReportFinding, ...], decided: bool) -> list[list]:
        rows = [["#", "Location", "Centre x, y, z (mm)", "Diameter", "Volume", "Type", "AI prob.",
                 "Accepted by" if decided else "Model"]]
        for f in findings:
            who = (f"{f.decided_by}, {_when(f.decided_at)}" + (" (added by the reader)" if f.source == "clinician"
                                                                 else "")) if decided else f.model
            volume = (f"{f.volume_mm3:.0f} mm³" + (" (from the edited diameter)" if f.volume_estimated else "")
                      if f.volume_mm3 else "-")
            rows.append([_label(f), f.location, ", ".join(f"{v:.1f}" for v in f.center_mm), f"{f.diameter_mm:.1f} mm",
                         volume, f.type,
                         f"{f.probability:.2f}" if f.probability is not None else "-", who])
        return rows

    def findings_section(self) -> list:
        c = self.content
        out = [self.p("Findings (accepted or added by the reader)", "h2")]
        if not c.findings:
            return out + [self.p("No lung nodules were accepted or added by a reader.")]
        out.append(self.table(self.finding_rows(c.findings, True), [8, 22, 27, 17, 18, 21, 14, 51]))
        out.append(Spacer(1, 3 * mm))  # the first key image's heading apart from the table
        for finding in c.findings:
            out += self.key_images(finding, f"Finding {finding.number}")
        return out

    def proposals_section(self) -> list:
        out = [CondPageBreak(60 * mm), self.p("AI proposals awaiting review (not findings)", "h2"),
                self.p("Nobody has accepted or rejected these yet; they are shown so the draft can be checked.",
                       "warning"),
                self.table(self.finding_rows(self.content.proposals, False), [9, 22, 27, 17, 18, 21, 14, 50])]
        out.append(Spacer(1, 3 * mm))
        for proposal in self.content.proposals:
            out += self.key_images(proposal, f"Proposal {_label(proposal)} (not reviewed)")
        return out

    def unreviewed_section(self) -> list:
        """A read signed with AI candidates undecided says so, with how many and why."""
        c = self.content
        numbers = _number_ranges(sorted(f.number for f in c.proposals))
        reason = c.unreviewed_reason or "no reason recorded"
        return [KeepTogether([
            self.p("AI candidates not reviewed", "h2"),
            self.p(f"{len(c.proposals)} AI candidate(s) were not reviewed: the reader signed without accepting or "
                   f"rejecting them (numbers {numbers}). They are not findings of this report.", "warning",
                   bold=True),
            self.p(f"Reason given at signing: {reason}")])]

    def key_images(self, finding: ReportFinding, title: str) -> list:
        pictures = self.images.get(_key(finding), [])
        if not pictures:
            return []
        width = (PAGE[0] - 2 * MARGIN - 4 * mm) / len(pictures)
        cells = [[_flowable(picture.image, width) for picture in pictures],
                 [self.p(picture.caption, "small") for picture in pictures]]
        grid = Table(cells, colWidths=[width + 4 * mm / len(pictures)] * len(pictures), hAlign="LEFT")
        grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 1),
                                  ("RIGHTPADDING", (0, 0), (-1, -1), 1)]))
        heading = f"{title}: {finding.location}, {finding.diameter_mm:.1f} mm {finding.type}"
        return [KeepTogether([self.p(heading, "body", bold=True), grid, Spacer(1, 2 * mm)])]

    def rejected_section(self) -> list:
        heading = self.p("AI findings rejected by the reader", "h2")
        if not self.content.rejected:
            return [KeepTogether([heading, self.p("None.")])]
        rows = [["#", "Location", "Long axis", "AI prob.", "Reason", "Rejected by"]]
        for f in self.content.rejected:
            rows.append([_label(f), f.location, f"{f.diameter_mm:.1f} mm",
                         f"{f.probability:.2f}" if f.probability is not None else "-", f.reason or "-",
                         f"{f.decided_by}, {_when(f.decided_at)}"])
        table = self.table(rows, [8, 32, 20, 16, 52, 50])
        # the heading never stays alone at a page's foot: it goes with the table's first rows
        return [CondPageBreak(30 * mm), heading, table]

    def conclusion_section(self) -> list:
        c = self.content
        out = [self.p("Impression", "h2")]
        out += [self.p(part) for part in (c.impression or "(none entered)").split("\n\n")]
        out.append(self.p("Lung-RADS", "h2"))
        suggestion = (f"Suggested category {c.suggestion.category} — rule applied: {c.suggestion.rule}. "
                      f"{c.lung_rads_edition}.")
        if c.lung_rads_override:
            reason = c.lung_rads_override.get("reason") or "no reason given"
            out.append(self.p(f"Reader's category: {c.lung_rads_override['category']} ({reason}).", bold=True))
            out.append(self.p(f"Overrides the suggestion. {suggestion}"))
        else:
            out.append(self.p(f"Category {c.lung_rads}{' (suggestion, not confirmed)' if c.draft else ''}.",
                              bold=True))
            out.append(self.p(suggestion))
        out.append(self.p("Diameters are long axes: the longest diameter across one slice (never smaller than "
                          "the mean diameter Lung-RADS uses). The reader may override the suggestion at signing.",
                          "small"))
        signature_heading = self.p("Reading and signature", "h2")
        reading = _duration(c.reading_seconds) if c.reading_seconds else "-"
        signature = (f"Electronically signed by {c.signer} on {_when(c.signed_at)}, password confirmed at "
                     f"signing. Meaning: {SIGNATURE_MEANING}" if not c.draft
                     else "Not signed. This draft is not a report of a reviewed study.")
        head_seq, head_hash = c.audit_head
        rows = [["Active reading time", reading], ["Signature", signature],
                ["Audit chain head", f"row {head_seq}, SHA-256 {head_hash}"],
                ["Generated", f"{_when(c.generated_at)} by {c.generated_by or '-'}"]]
        return out + [KeepTogether([signature_heading, self.table(rows, [35, 143], header=False)])] + self.addenda()

    def addenda(self) -> list:
        """Changes after signing, after the signed content, which above stays as it was signed."""
        if not self.content.addenda:
            return []
        rows = [["When", "By", "Change", "Why"]] + [[_when(a.at), a.by, a.what, a.why] for a in self.content.addenda]
        return [CondPageBreak(35 * mm), self.p("Addenda after signing", "h2"),
                self.p("The read above is as it was signed. These changes were made later; each is recorded "
                       "in the audit trail.", "small"),
                self.table(rows, [30, 25, 78, 45])]


class _PageDecor:
    """Header, footer and the draft watermark, drawn on every page."""

    def __init__(self, content: ReportContent, fonts: FontSet) -> None:
        self.content, self.fonts = content, fonts
        styles = _styles(fonts)
        m = content.metadata
        # an unset institution is left out rather than printed as "not set" on every page
        institution = [Paragraph(markup(content.institution, fonts, True), styles["body"])] \
            if content.institution.strip() else []
        self.header_left = institution + [Paragraph(markup(_patient_line(m), fonts), styles["body"]),
                            Paragraph(markup(f"Study {_date(m.study_date)} {m.study_description}", fonts),
                                      styles["small"])]
        missing = f" Fonts missing ({', '.join(fonts.missing)}): some characters shown as code points." \
            if fonts.missing else ""
        self.footer = Paragraph(markup(
            f"{'DRAFT, not reviewed' if content.draft else 'Signed report'} · audit head "
            f"{content.audit_head[1][:16]} · AI findings are shown only when a reader accepted them.{missing}",
            fonts), styles["small"])

    def draw(self, canvas: Canvas, document) -> None:
        width, height = PAGE
        canvas.saveState()
        if self.content.draft:
            canvas.setFillColor(colors.Color(0.85, 0.1, 0.1, alpha=0.13))
            canvas.setFont(self.fonts.bold, 54)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(50)
            canvas.drawCentredString(0, 0, DRAFT_MARK)
            canvas.rotate(-50)
            canvas.translate(-width / 2, -height / 2)
        y = height - MARGIN
        for paragraph in self.header_left:
            _, used = paragraph.wrap(width - 2 * MARGIN, HEADER_HEIGHT)
            y -= used
            paragraph.drawOn(canvas, MARGIN, y)
        canvas.setStrokeColor(colors.HexColor("#7a8a9a"))
        canvas.line(MARGIN, height - MARGIN - HEADER_HEIGHT + 3 * mm, width - MARGIN, height - MARGIN - HEADER_HEIGHT
                    + 3 * mm)
        canvas.line(MARGIN, MARGIN + FOOTER_HEIGHT - 3 * mm, width - MARGIN, MARGIN + FOOTER_HEIGHT - 3 * mm)
        _, used = self.footer.wrap(width - 2 * MARGIN - 30 * mm, FOOTER_HEIGHT)
        self.footer.drawOn(canvas, MARGIN, MARGIN + FOOTER_HEIGHT - 4 * mm - used)
        canvas.restoreState()


class _NumberedCanvas(Canvas):
    """Holds pages back until the end so each can say 'page X of Y'."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for number, state in enumerate(self._pages, start=1):
            self.__dict__.update(state)
            self.setFont("Helvetica", 8)
            self.drawRightString(PAGE[0] - MARGIN, MARGIN + FOOTER_HEIGHT - 7 * mm, f"page {number} of {total}")
            super().showPage()
        super().save()


def _number_ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9, 11, 12] as '3-5, 9, 11-12': a long list of candidates stays one line."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _flowable(image, width: float) -> Image:
    data = io.BytesIO()
    image.save(data, format="JPEG", quality=90)  # embedded as is (DCT), no re-encoding by reportlab
    data.seek(0)
    return Image(data, width=width, height=width * image.height / image.width)


def _patient_line(m) -> str:
    birth = _date(m.patient_birth_date) if m.patient_birth_date else "-"
    name = person_name(m.patient_name) or "(no name)"
    return f"{name} · ID {m.patient_id or '-'} · born {birth} · sex {m.patient_sex or '-'}"


def person_name(value: str) -> str:
    """DICOM PN 'Family^Given^Middle' as 'Family, Given Middle'; ideographic and phonetic groups
    (after '=') follow in brackets, e.g. 'Wang, XiaoDong (王, 小東)'."""
    def one(group: str) -> str:
        parts = [part.strip() for part in group.split("^")]
        family, rest = parts[0], " ".join(p for p in parts[1:3] if p)
        return f"{family}, {rest}" if family and rest else family or rest

    groups = [one(group) for group in (value or "").split("=")]
    first, others = groups[0], [g for g in groups[1:] if g]
    return f"{first} ({'; '.join(others)})" if first and others else first or "; ".join(others)


def _date(value: str) -> str:
    """DICOM DA (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    value = (value or "").strip()
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _when(value: str | None) -> str:
    """ISO times as 'YYYY-MM-DD HH:MM UTC'."""
    if not value:
        return "-"
    return value[:16].replace("T", " ") + (" UTC" if "+00:00" in value or value.endswith("Z") else "")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
