"""Opening studies: a path (imported into the library first, so it can be read, reported and
exported like any library study), a library study or the demo case is loaded on the worker and
shown; a folder can be imported into the library."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QWidget

from ui.controllers.jobs import JobDispatch
from ui.state import ViewerState, volume_summaries
from ui.widgets.findings_panel import FindingsPanel
from ui.widgets.study_browser import StudyBrowser
from workstation.demo import demo_truth_for, ensure_demo_case, truth_overlay
from workstation.dicom.load import load_largest_series_job
from workstation.errors import WorkstationError
from workstation.imaging.snapshot import save_thumbnail
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job, Progress
from workstation.library import ImportReport, StudyLibrary, thumbnail_path
from workstation.privacy import opaque_key
from workstation.review.analyses import StoredAnalysis, latest_analysis, stored_heatmap
from workstation.review.store import ReviewStore

log = logging.getLogger("workstation.ui")


def viewer_load_job(paths: list[Path], home: Path, study_key: str | None, cancel: CancelToken) -> Job[dict]:
    """Load the largest series at `paths` with the newest recorded AI run on it (its heatmap), else
    for the demo case its ground-truth overlay."""
    volume = yield from load_largest_series_job(paths, cancel)
    stored, heatmap = _recorded_run(home, volume)
    markers: list = []
    if stored is not None:
        source = f"{stored.model_name} {stored.model_version} heatmap, recorded run by {stored.created_by}"
    elif truth := demo_truth_for(volume, home):
        heatmap, markers = truth_overlay(volume, truth)
        source = "ground truth of the synthetic demo case (not AI)"
    else:
        source = ""
    return {"volume": volume, "heatmap": heatmap, "markers": markers, "study_key": study_key,
            "summaries": volume_summaries(volume, heatmap), "overlay_source": source, "analysis": stored}


def _recorded_run(home: Path, volume: Volume) -> tuple[StoredAnalysis | None, np.ndarray | None]:
    """The study's newest model run, if it ran on this series and its heatmap is still there."""
    store = ReviewStore.in_home(home)  # its own connection: this runs on the worker thread
    try:
        stored = latest_analysis(store, volume.metadata.study_uid)
        if stored is None or stored.series_uid != volume.metadata.series_uid:
            return None, None
        heatmap = stored_heatmap(store, stored.id)
        return (stored, heatmap) if heatmap is not None and heatmap.shape == volume.shape else (None, None)
    finally:
        store.close()


def import_and_load_job(path: Path, home: Path, cancel: CancelToken) -> Job[dict]:
    """`workstation open PATH`: import PATH into the library (with progress), then load the
    library's copy of the study with the most slices among those imported."""
    library = StudyLibrary(home)
    report = yield from library.import_job([path], cancel)
    if not report.studies:
        raise WorkstationError("No CT series found there to import; choose a folder with DICOM files")
    study_key, series = max(((key, row) for key in report.studies for row in library.series(key)),
                            key=lambda pair: pair[1]["slices"])
    result = yield from viewer_load_job([library.series_folder(series)], home, study_key, cancel)
    return {**result, "imported": report}


def demo_job(home: Path, cancel: CancelToken) -> Job[dict]:
    """Generate the demo case if needed, import it into the library and load it."""
    yield Progress(0, 1, "Preparing the demo case")
    folder = ensure_demo_case(home)
    library = StudyLibrary(home)
    report = yield from library.import_job([folder], cancel)
    study_key = report.studies[0]
    series = library.series(study_key)
    return (yield from viewer_load_job([library.series_folder(series[0])], home, study_key, cancel))


class StudyOpeningController(QObject):
    """Owns which library study is open (`current_study_key`); the volume itself is the state's."""

    loaded = Signal()  # a study is shown: the window retitles, the review session opens
    recorded_run_shown = Signal(object)  # StoredAnalysis: the AI ran on it before; its result is on screen

    def __init__(self, home: Path, settings: QSettings, state: ViewerState, jobs: JobDispatch,
                 browser: StudyBrowser, findings_panel: FindingsPanel, overlay_label: QLabel,
                 status: Callable[[str], None], fail: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home, self.settings, self.state, self.jobs = Path(home), settings, state, jobs
        self.browser, self.findings_panel, self.overlay_label = browser, findings_panel, overlay_label
        self._status, self._fail = status, fail
        self.current_study_key: str | None = None

    def open_target(self, target: str) -> None:
        """A path on disk (imported into the library, then opened from there), or a study
        reference from the library."""
        if Path(target).exists():
            self.jobs.start(lambda cancel: import_and_load_job(Path(target), self.home, cancel),
                            "Importing into the library, then opening", self.on_loaded)
            return
        try:
            study = StudyLibrary(self.home).find_study(target)
        except WorkstationError as exc:
            self._fail(str(exc))
            return
        self.open_study(study["key"])

    def open_study(self, study_key: str) -> None:
        try:
            library = StudyLibrary(self.home)
            series = max(library.series(study_key), key=lambda s: s["slices"])
            folder = library.series_folder(series)
        except (WorkstationError, ValueError) as exc:
            self._fail(f"The study cannot be opened: {exc}")
            return
        self.jobs.start(lambda cancel: viewer_load_job([folder], self.home, study_key, cancel), "Opening study",
                        self.on_loaded)

    def open_demo(self) -> None:
        self.jobs.start(lambda cancel: demo_job(self.home, cancel), "Opening the demo case", self.on_loaded)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent(), "Open a folder with a CT series")
        if folder:
            self.open_target(folder)

    def import_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.parent(), "Import a folder into the library")
        if folder:
            self.jobs.start(lambda cancel: StudyLibrary(self.home).import_job([Path(folder)], cancel),
                            f"Importing {folder}", self._on_imported)

    def on_loaded(self, result: dict) -> None:
        """Show a load job's result: volume, overlay, the study remembered for the next start."""
        volume = result["volume"]
        self.findings_panel.clear()
        self.current_study_key = result["study_key"]
        self.state.set_volume(volume, result["heatmap"], result["markers"], result.get("summaries"))
        if result["markers"]:  # start on the largest finding rather than an empty mid-slice
            centre, _radius = max(result["markers"], key=lambda marker: marker[1])
            self.state.set_crosshair(centre)
        source = result["overlay_source"]
        self.overlay_label.setText(f"Overlay: {source}" if source else "Overlay: none")
        if self.current_study_key:
            self.settings.setValue("last_study", self.current_study_key)
            thumbnail = thumbnail_path(self.home, self.current_study_key)
            if not thumbnail.is_file():
                save_thumbnail(volume, thumbnail)
            self.browser.reload()
        self.loaded.emit()
        if result.get("analysis") is not None:
            self.recorded_run_shown.emit(result["analysis"])
        log.info("loaded %s slices of series %s", volume.shape[0], opaque_key(volume.metadata.series_uid))
        warnings = "; ".join(volume.warnings)
        imported = result.get("imported")
        into = (f" (imported into the library: {imported.files_copied} file(s) copied, "
                f"{imported.files_already_present} already there)") if imported is not None else ""
        self._status(f"Loaded {volume.shape[0]} slices{into}" + (f" - warning: {warnings}" if warnings else ""))

    def _on_imported(self, report: ImportReport) -> None:
        self.browser.reload()
        self._status(f"Imported {len(report.studies)} study(ies): {report.files_copied} file(s) copied, "
                     f"{report.files_already_present} already in the library")
