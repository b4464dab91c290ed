"""One registry of user actions: it feeds the menus, the toolbar, the shortcuts and the
Help -> Keyboard shortcuts sheet, so they can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QHeaderView, QMainWindow, QTableWidget, QTableWidgetItem, QVBoxLayout


@dataclass(frozen=True)
class ActionSpec:
    key: str
    text: str
    shortcut: str
    menu: str
    handler: str  # a method of the window or of one of its controllers ("review.accept_finding"),
    # optionally with an argument ("viewing.apply_preset:lung")
    toolbar: bool = False
    short: str = ""  # the toolbar's label, so the whole toolbar fits a 1366-pixel-wide screen


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_folder", "Open folder...", "Ctrl+O", "File", "opening.open_folder_dialog", True, "Open"),
    ActionSpec("import_folder", "Import into library...", "Ctrl+I", "File", "opening.import_folder_dialog"),
    ActionSpec("receive", "Receive from scanners...", "", "File", "receiving.show_receiving"),
    ActionSpec("dicom_nodes", "DICOM nodes...", "", "File", "nodes.show_nodes"),
    ActionSpec("open_demo", "Open demo case", "Ctrl+D", "File", "opening.open_demo", True, "Demo"),
    ActionSpec("cancel_job", "Back to the crosshair / cancel the running job", "Esc", "File", "cancel_job"),
    ActionSpec("lock", "Lock the screen now", "Ctrl+L", "File", "screen_lock.lock_now"),
    ActionSpec("institution", "Institution name on reports...", "", "File", "reports.set_institution"),
    ActionSpec("quit", "Quit", "Ctrl+Q", "File", "close"),
    ActionSpec("run_ai", "Run AI on this study", "Ctrl+R", "AI", "ai.run_ai", True, "Run AI"),
    ActionSpec("next_finding", "Next finding", "N", "AI", "review.next_finding"),
    ActionSpec("previous_finding", "Previous finding", "P", "AI", "review.previous_finding"),
    ActionSpec("monitoring", "Model monitoring...", "", "AI", "monitoring.show_monitoring"),
    ActionSpec("accept", "Accept finding", "A", "Review", "review.accept_finding", True, "Accept"),
    ActionSpec("reject", "Reject finding...", "R", "Review", "review.reject_finding", True, "Reject"),
    ActionSpec("edit", "Edit finding...", "E", "Review", "review.edit_finding"),
    ActionSpec("add_missed", "Add a missed finding (click it)", "M", "Review", "review.add_missed"),
    ActionSpec("move_finding", "Move the finding (click its new centre)", "Shift+M", "Review", "review.move_finding"),
    ActionSpec("undo", "Undo last decision", "Ctrl+Z", "Review", "review.undo_decision"),
    ActionSpec("sign", "Sign the read...", "Ctrl+S", "Review", "review.sign_study", True, "Sign"),
    ActionSpec("addendum", "Addendum to the signed read...", "Ctrl+Shift+A", "Review", "review.begin_addendum"),
    ActionSpec("export_report", "Export report (PDF)...", "Ctrl+Shift+E", "Review", "reports.export_report", True,
               "Report"),
    ActionSpec("start_quiz", "Quiz on this teaching case", "Ctrl+Shift+Q", "Teaching", "teaching.start_quiz"),
    ActionSpec("import_pack", "Import a teaching pack...", "", "Teaching", "teaching.import_pack"),
    ActionSpec("export_pack", "Export this study as a teaching pack...", "", "Teaching", "teaching.export_pack"),
    ActionSpec("submit_quiz", "Submit quiz answers", "Ctrl+Return", "Teaching", "teaching.submit_quiz"),
    ActionSpec("preset_lung", "Window: lung", "1", "View", "viewing.apply_preset:lung", True, "Lung"),
    ActionSpec("preset_mediastinum", "Window: mediastinum", "2", "View", "viewing.apply_preset:mediastinum", True,
               "Mediast."),
    ActionSpec("preset_bone", "Window: bone", "3", "View", "viewing.apply_preset:bone", True, "Bone"),
    ActionSpec("preset_brain", "Window: brain", "4", "View", "viewing.apply_preset:brain"),
    ActionSpec("preset_abdomen", "Window: abdomen", "5", "View", "viewing.apply_preset:abdomen"),
    ActionSpec("toggle_overlay", "Heatmap overlay on/off", "H", "View", "viewing.toggle_overlay", True, "Heatmap"),
    ActionSpec("overlay_outline", "Heatmap as outline / filled", "Shift+H", "View", "viewing.toggle_overlay_outline"),
    ActionSpec("toggle_crosshair", "Crosshair lines on/off", "C", "View", "viewing.toggle_crosshair"),
    ActionSpec("reset_views", "Reset the views (zoom, pan, tilt, window)", "Home", "View", "viewing.reset_views"),
    ActionSpec("toggle_text", "Patient text on/off", "T", "View", "viewing.toggle_patient_text"),
    ActionSpec("toggle_layout", "Single view / 2x2", "F", "View", "viewing.toggle_layout", True, "1 / 2x2"),
    ActionSpec("compare_prior", "Compare with prior...", "Ctrl+Shift+P", "View", "prior.choose_prior"),
    ActionSpec("toggle_prior", "Prior beside the current scan on/off", "Shift+P", "View", "prior.toggle_prior"),
    ActionSpec("use_prior_in_report", "Use the prior shown in the report...", "", "Review", "prior.use_in_report"),
    ActionSpec("nodule_matches", "Nodule matches with the prior (correct them)...", "Ctrl+Shift+M", "Review",
               "prior.show_matches"),
    ActionSpec("render_lung", "3D preset: lung", "Shift+1", "View", "viewing.apply_3d_preset:lung"),
    ActionSpec("render_bone", "3D preset: bone", "Shift+2", "View", "viewing.apply_3d_preset:bone"),
    ActionSpec("render_soft", "3D preset: soft tissue", "Shift+3", "View", "viewing.apply_3d_preset:soft tissue"),
    ActionSpec("ruler", "Distance ruler", "D", "Tools", "viewing.set_tool:ruler", True, "Ruler"),
    ActionSpec("roi", "ROI mean/SD HU", "O", "Tools", "viewing.set_tool:roi", True, "ROI"),
    ActionSpec("presentation", "Presentation mode (hide patient identifiers)", "F12", "View",
               "viewing.toggle_presentation", True, "Present"),
    ActionSpec("shortcuts", "Keyboard shortcuts", "F1", "Help", "show_shortcuts"),
    ActionSpec("tour", "Guided tour of the review keys", "", "Help", "show_tour"),
)

CHECKABLE = ("ruler", "roi")

# Keys and gestures handled inside the views (listed on the shortcuts sheet, not menu actions).
VIEW_GESTURES: tuple[tuple[str, str], ...] = (
    ("Wheel, Up/Down", "next/previous slice"), ("PgUp/PgDn", "10 slices"),
    ("Left click", "move the crosshair (all views follow)"), ("Ctrl + left drag", "drag the crosshair"),
    ("Left drag", "window (horizontal) and level (vertical)"), ("Right drag", "zoom"),
    ("Middle drag", "pan"), ("[ / ]", "tilt the plane (oblique)"), ("\\", "back to the acquired plane"),
    ("3D: left drag / wheel", "rotate / zoom"),
)


def build_actions(window: QMainWindow) -> dict[str, QAction]:
    """Create the QActions on `window`, wire them to its or its controllers' methods, fill menus and toolbar."""
    actions: dict[str, QAction] = {}
    menus = {}
    toolbar = window.addToolBar("Main")
    toolbar.setObjectName("main-toolbar")
    for spec in ACTIONS:
        action = QAction(spec.text, window)
        action.setShortcut(QKeySequence(spec.shortcut))
        action.setToolTip(f"{spec.text} ({spec.shortcut})" if spec.shortcut else spec.text)
        name, _, argument = spec.handler.partition(":")
        method = attrgetter(name)(window)
        action.triggered.connect((lambda _=False, m=method, a=argument: m(a)) if argument else
                                 (lambda _=False, m=method: m()))
        if spec.menu not in menus:
            menus[spec.menu] = window.menuBar().addMenu(spec.menu)
        menus[spec.menu].addAction(action)
        window.addAction(action)  # shortcuts work even with the menu bar hidden
        if spec.key in CHECKABLE:
            action.setCheckable(True)  # the tool in force shows pressed in the toolbar
        if spec.toolbar:
            action.setIconText(spec.short or spec.text)
            toolbar.addAction(action)
        actions[spec.key] = action
    return actions


def shortcuts_dialog(parent: QMainWindow) -> QDialog:
    """The Help -> Keyboard shortcuts sheet, generated from the registry."""
    rows = [(spec.shortcut, spec.text) for spec in ACTIONS] + list(VIEW_GESTURES)
    dialog = QDialog(parent)
    dialog.setWindowTitle("Keyboard shortcuts")
    table = QTableWidget(len(rows), 2, dialog)
    table.setHorizontalHeaderLabels(["Key", "Action"])
    for row, (key, text) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(key))
        table.setItem(row, 1, QTableWidgetItem(text))
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.verticalHeader().hide()
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    dialog.resize(520, 620)
    return dialog
