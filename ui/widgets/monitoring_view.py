"""Model monitoring (#25 item 3): how the AI fares with the readers, per model version and month,
optionally split by a subgroup (sex, age band, manufacturer, slice thickness, kernel). Every
figure says what it was computed on; drift alerts are shown first, in words. The numbers are the
core's (workstation.review.monitoring); this window only draws them."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSplitter, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from workstation.review.monitoring import MIN_DECISIONS, MonitoringReport, acceptance_evidence, wilson_interval

SUBGROUP_CHOICES = (("All studies", None), ("Sex", "sex"), ("Age band", "age"), ("Manufacturer", "manufacturer"),
                    ("Slice thickness", "slice thickness"), ("Kernel", "kernel"))
ALL_MODELS = "All model versions"
PALETTE = ((102, 170, 255), (255, 170, 60), (120, 210, 120), (230, 100, 120), (190, 140, 255), (90, 210, 210),
           (230, 220, 100), (200, 200, 200))
TABLE_COLUMNS = (("model", "Model"), ("month", "Month"), ("group", "Group"), ("studies", "Studies"),
                 ("decided", "Decided"), ("accept_rate", "Accepted"), ("reject_rate", "Rejected"),
                 ("findings_per_scan", "Findings/scan"), ("missed_added_per_scan", "Missed/scan"),
                 ("reading_minutes_per_scan", "Min/scan"), ("reasons", "Rejection reasons"))
ALERT_STYLE = "QLabel { background: #4a2020; border: 1px solid #c05050; padding: 6px; color: #ffd8d0; }"
CALM_STYLE = "QLabel { background: #1f2a22; border: 1px solid #3f6a48; padding: 6px; color: #cfe8d0; }"


class MonitoringView(QDialog):
    """Non-modal. `refresh_requested(by)` asks the controller to compute (off the GUI thread);
    `export_requested(fmt)` to export what is shown; `show_report` draws an answer."""

    refresh_requested = Signal(object)  # the subgroup key, or None
    export_requested = Signal(str)  # "csv" | "json"

    def __init__(self, parent: QWidget | None = None, *, can_export: bool = True,
                 export_refusal: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Model monitoring")
        self.setModal(False)
        self.report: MonitoringReport | None = None
        self.subgroup = QComboBox()
        for text, key in SUBGROUP_CHOICES:
            self.subgroup.addItem(text, key)
        self.model = QComboBox()
        self.model.addItem(ALL_MODELS)
        self.model.setMinimumContentsLength(22)
        self.refresh_button = QPushButton("Refresh")
        self.csv_button, self.json_button = QPushButton("Export CSV..."), QPushButton("Export JSON...")
        self._can_export = False
        self.set_export_allowed(can_export, export_refusal)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Subgroup"))
        controls.addWidget(self.subgroup)
        controls.addWidget(QLabel("Model"))
        controls.addWidget(self.model)
        controls.addWidget(self.refresh_button)
        controls.addStretch(1)
        controls.addWidget(self.csv_button)
        controls.addWidget(self.json_button)

        self.scope_label = _wrapping("Computing...")
        self.scope_label.setObjectName("monitoring-scope")
        self.alerts_label = _wrapping("")
        self.alerts_label.setObjectName("monitoring-alerts")
        self.alerts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.accept_plot = _plot("Accepted share of the decided AI findings (95% interval)", "accepted", "%")
        self.accept_plot.setYRange(0, 100, padding=0.02)
        self.findings_plot = _plot("Per scan: AI findings (solid), missed nodules readers added (dashed)",
                                   "per scan")
        self.reading_plot = _plot("Reading time per scan", "minutes")
        self.reasons_plot = _plot("Why readers rejected AI findings", "rejections")
        self.captions = {name: _caption() for name in ("accept", "findings", "reading", "reasons")}
        self.legend_label = _wrapping("")
        self.legend_label.setObjectName("monitoring-legend")
        self.legend_entries: list[str] = []  # one line per model version (and group), with its studies
        figures = QWidget()
        grid = QGridLayout(figures)
        grid.setContentsMargins(0, 0, 0, 0)
        for index, (name, plot) in enumerate((("accept", self.accept_plot), ("findings", self.findings_plot),
                                              ("reading", self.reading_plot), ("reasons", self.reasons_plot))):
            cell = QVBoxLayout()
            cell.setSpacing(2)
            cell.addWidget(plot, 1)
            cell.addWidget(self.captions[name])
            grid.addLayout(cell, index // 2, index % 2)

        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels([title for _key, title in TABLE_COLUMNS])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table_caption = _caption()
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table_caption)
        table_layout.addWidget(self.table, 1)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(figures)
        splitter.addWidget(table_box)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([560, 230])
        self.table.setMinimumHeight(120)

        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.scope_label)
        layout.addWidget(self.alerts_label)
        layout.addWidget(self.legend_label)
        layout.addWidget(splitter, 1)
        self.resize(1280, 900)

        self.refresh_button.clicked.connect(self.request_refresh)
        self.subgroup.currentIndexChanged.connect(self.request_refresh)
        self.model.currentIndexChanged.connect(self._draw)
        self.csv_button.clicked.connect(lambda: self.export_requested.emit("csv"))
        self.json_button.clicked.connect(lambda: self.export_requested.emit("json"))

    def set_export_allowed(self, allowed: bool, refusal: str = "") -> None:
        """Exports are a radiologist's or an admin's (the user may change at an unlock)."""
        self._can_export = allowed
        for button, fmt in ((self.csv_button, "CSV"), (self.json_button, "JSON")):
            button.setEnabled(allowed and self.report is not None and bool(self.report.rows))
            button.setToolTip(f"The rows and alerts shown, as {fmt}; recorded in the audit trail" if allowed
                              else refusal)

    # -- asking ---------------------------------------------------------------------------------
    @property
    def by(self) -> str | None:
        return self.subgroup.currentData()

    def request_refresh(self) -> None:
        self.set_busy("Computing from the review store...")
        self.refresh_requested.emit(self.by)

    def set_busy(self, text: str) -> None:
        self.refresh_button.setEnabled(False)
        self.scope_label.setText(text)

    def show_failure(self, text: str) -> None:
        self.refresh_button.setEnabled(True)
        self.scope_label.setText(text)

    # -- drawing --------------------------------------------------------------------------------
    def show_report(self, report: MonitoringReport, generated_by: str) -> None:
        self.report = report
        self.refresh_button.setEnabled(True)
        for button in (self.csv_button, self.json_button):
            button.setEnabled(self._can_export and bool(report.rows))
        models = sorted({row["model"] for row in report.rows})
        chosen = self.model.currentText()
        self.model.blockSignals(True)
        self.model.clear()
        self.model.addItems([ALL_MODELS, *models])
        self.model.setCurrentText(chosen if chosen in models else ALL_MODELS)
        self.model.blockSignals(False)
        whole = report.scope()
        split = f", split by {dict((k, t) for t, k in SUBGROUP_CHOICES)[report.by].lower()}" if report.by else ""
        self.scope_label.setText(f"{whole.sentence()}{split}. From the review store at "
                                 f"{report.generated_at.replace('T', ' ')[:16]} UTC, for {generated_by}.")
        if report.alerts:
            self.alerts_label.setStyleSheet(ALERT_STYLE)
            self.alerts_label.setText("<b>Drift alerts</b><br>" + "<br>".join(f"&#9888; {_html(a)}"
                                                                               for a in report.alerts))
        else:
            self.alerts_label.setStyleSheet(CALM_STYLE)
            self.alerts_label.setText("No drift alert. " + _evidence_sentence(report.uses))
        self._draw()

    def selected_model(self) -> str | None:
        text = self.model.currentText()
        return None if text in ("", ALL_MODELS) else text

    def _draw(self) -> None:
        report = self.report
        if report is None:
            return
        model = self.selected_model()
        rows = [row for row in report.rows if model is None or row["model"] == model]
        months = sorted({row["month"] for row in rows})
        column = {month: index for index, month in enumerate(months)}
        for plot in (self.accept_plot, self.findings_plot, self.reading_plot, self.reasons_plot):
            plot.clear()
            plot.getAxis("left").setTicks(None)  # an empty figure's blank axis gives way to the data's
        for plot in (self.accept_plot, self.findings_plot, self.reading_plot):
            plot.getAxis("bottom").setTicks([[(i, m) for m, i in column.items()]])
            plot.setXRange(-0.5, max(len(months) - 0.5, 0.5), padding=0.02)
        lines: dict[tuple[str, str], list[dict]] = {}
        for row in rows:
            lines.setdefault((row["model"], row["group"]), []).append(row)
        several_models = len({m for m, _g in lines}) > 1
        self.legend_entries, swatches = [], []
        for index, ((line_model, group), points) in enumerate(sorted(lines.items())):
            colour = PALETTE[index % len(PALETTE)]
            # lines side by side within a month, so equal values never hide one another
            dodge = (index - (len(lines) - 1) / 2) * min(0.08, 0.5 / max(len(lines), 1))
            studies, decided = sum(p["studies"] for p in points), sum(p["decided"] for p in points)
            name = " / ".join(part for part in (line_model if several_models or not report.by else "",
                                                group if report.by else "") if part) or line_model
            label = (f"{name} ({studies} {'study' if studies == 1 else 'studies'}, "
                     f"{decided or 'no'} decision{'' if decided == 1 else 's'})")
            self.legend_entries.append(label)
            swatches.append(f"<span style='color: rgb{colour}; font-size: 13pt;'>&#9679;</span>&nbsp;{_html(label)}")
            self._accept_line(points, column, colour, dodge)
            x = [column[p["month"]] + dodge for p in points]
            pen = pg.mkPen(colour, width=2)
            self.findings_plot.plot(x, [p["findings_per_scan"] for p in points], pen=pen, symbol="o",
                                    symbolBrush=colour, symbolSize=7)
            self.findings_plot.plot(x, [p["missed_added_per_scan"] for p in points],
                                    pen=pg.mkPen(colour, width=2, style=Qt.PenStyle.DashLine), symbol="t",
                                    symbolBrush=colour, symbolSize=7)
            self.reading_plot.plot(x, [p["reading_minutes_per_scan"] for p in points], pen=pen, symbol="o",
                                   symbolBrush=colour, symbolSize=7)
        self.legend_label.setText("Lines: " + "&nbsp;&nbsp;&nbsp; ".join(swatches) if swatches else
                                  "No AI run recorded for this selection yet.")
        for plot, values in ((self.findings_plot, [max(r["findings_per_scan"], r["missed_added_per_scan"])
                                                   for r in rows]),
                             (self.reading_plot, [r["reading_minutes_per_scan"] for r in rows])):
            plot.setYRange(0, max(values + [0.1]) * 1.15, padding=0)  # from zero: no small wobble looks large
        if not rows:
            for plot in (self.accept_plot, self.findings_plot, self.reading_plot):
                _say(plot, "no AI run recorded yet")
        self._reasons(rows)
        scope = report.scope(model)
        short = scope.short()
        for name in ("accept", "findings", "reading"):
            self.captions[name].setText(f"Computed on {short}; a point per month"
                                        f"{', a line per model and group' if report.by else ', a line per model'}.")
        self.captions["reasons"].setText(f"Computed on {short}; all months together.")
        self.table_caption.setText(f"Per model, month and {'group' if report.by else 'all studies'}; computed on "
                                   f"{short}.")
        self._fill_table(rows)

    def _accept_line(self, points: list[dict], column: dict[str, int], colour: tuple, dodge: float) -> None:
        decided = [p for p in points if p["decided"]]
        if not decided:
            return
        x = [column[p["month"]] + dodge for p in decided]
        share = [100 * p["accept_rate"] for p in decided]
        intervals = [wilson_interval(round(p["accept_rate"] * p["decided"]), p["decided"]) for p in decided]
        top = np.array([100 * high for _low, high in intervals]) - np.array(share)
        bottom = np.array(share) - np.array([100 * low for low, _high in intervals])
        self.accept_plot.addItem(pg.ErrorBarItem(x=np.array(x, float), y=np.array(share), top=top, bottom=bottom,
                                                 beam=0.06, pen=pg.mkPen(colour, width=1)))
        self.accept_plot.plot(x, share, pen=pg.mkPen(colour, width=2), symbol="o", symbolBrush=colour,
                              symbolSize=8)
        self.accept_plot.setYRange(0, 100, padding=0.02)

    def _reasons(self, rows: list[dict]) -> None:
        counts: dict[str, int] = {}
        for row in rows:
            for reason, n in row["reasons"].items():
                counts[reason] = counts.get(reason, 0) + n
        axis = self.reasons_plot.getAxis("bottom")
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        axis.setTicks([[(i, reason) for i, (reason, _n) in enumerate(ordered)]])
        if not ordered:
            _say(self.reasons_plot, "no AI finding rejected yet")
            return
        self.reasons_plot.addItem(pg.BarGraphItem(x=list(range(len(ordered))), height=[n for _r, n in ordered],
                                                  width=0.6, brush=(200, 120, 90), pen=(230, 150, 120)))
        self.reasons_plot.setXRange(-0.6, len(ordered) - 0.4, padding=0.02)
        self.reasons_plot.setYRange(0, max(n for _r, n in ordered) * 1.15)

    def _fill_table(self, rows: list[dict]) -> None:
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (key, _title) in enumerate(TABLE_COLUMNS):
                value = row[key]
                if key in ("accept_rate", "reject_rate"):
                    text = "-" if value is None else f"{value:.0%}"
                elif key == "reasons":
                    text = ", ".join(f"{reason} {n}" for reason, n in value.items()) or "-"
                else:
                    text = str(value)
                item = QTableWidgetItem(text)
                if key not in ("model", "month", "group", "reasons"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)


def _plot(title: str, unit: str, suffix: str = "") -> pg.PlotWidget:
    plot = pg.PlotWidget(background=(20, 20, 24))
    plot.setTitle(title, color=(216, 216, 212), size="10pt")
    plot.setLabel("left", unit, units=None)
    if suffix:
        plot.getAxis("left").setLabel(f"{unit} ({suffix})")
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.showGrid(x=False, y=True, alpha=0.2)
    plot.setMinimumHeight(200)
    for side in ("left", "bottom"):
        plot.getAxis(side).enableAutoSIPrefix(False)  # '800 (x0.001) minutes' said 0.8 minutes
    return plot


def _evidence_sentence(uses: list) -> str:
    """What the absence of an alert rests on: acceptance is only compared with enough decisions."""
    if not uses:
        return ("Nothing to test yet: no AI run is recorded (Run AI on a study in the viewer, or "
                "'workstation analyze', 'batch', 'receive --analyze').")
    parts = []
    for model, (latest, now, before) in acceptance_evidence(uses).items():
        tested = now >= MIN_DECISIONS and before >= MIN_DECISIONS
        parts.append(f"{model}: {now} decisions in {latest}, {before} before"
                     + (" (tested: within chance)" if tested else " (too few to test acceptance)"))
    return (f"Acceptance is compared once the latest month and the months before each have {MIN_DECISIONS} "
            f"decisions; input mix and validated scope are checked every month. " + "; ".join(parts) + ".")


def _say(plot: pg.PlotWidget, text: str) -> None:
    """An empty figure says why it is empty, in its middle."""
    plot.setXRange(-0.5, 0.5, padding=0)
    plot.setYRange(0, 1, padding=0)
    plot.getAxis("bottom").setTicks([[]])
    plot.getAxis("left").setTicks([[]])
    item = pg.TextItem(text, color=(180, 180, 176), anchor=(0.5, 0.5))
    plot.addItem(item)
    item.setPos(0, 0.5)


def _caption() -> QLabel:
    label = _wrapping("")
    label.setStyleSheet("color: #a8a8a2; font-size: 9pt;")
    return label


def _wrapping(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    return label


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

