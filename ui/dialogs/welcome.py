"""First run: which device the AI will use and how long a study should take, then a short
guided tour of the review keys on the demo case (also under Help later)."""

from __future__ import annotations

import logging
import os
import sys
import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from ui.actions import ACTIONS
from workstation.errors import WorkstationError

log = logging.getLogger("workstation.ui")
TOUR = (
    ("Move between findings", ("next_finding", "previous_finding"),
     "The AI's candidates are listed on the left, most probable first. Each shows its model, version and "
     "probability; selecting one centres every view on it."),
    ("Decide", ("accept", "reject"),
     "Accept what you agree with; reject with a reason (vessel, scar, artefact, ...). Only what you accept "
     "reaches the report."),
    ("Correct and complete", ("edit", "move_finding", "add_missed"),
     "Change type or size, move a centre with a click, or add a nodule the AI missed."),
    ("Change your mind", ("undo",), "Every decision is kept in the audit trail; undo adds a new entry."),
    ("Finish the read", ("sign", "export_report"),
     "Signing locks the read (later changes are addenda); the PDF report lists what you accepted, with key "
     "images."),
)


class _Probe(QObject):
    done = Signal(str)


def device_summary() -> str:
    """'AI runs on CPU (2 threads); about 3 s per chest CT' (measured here, takes a few seconds)."""
    from workstation.inference.device import choose_device, describe_device
    from workstation.inference.estimate import estimate_inference_seconds
    from workstation.inference.registry import find_model

    device = choose_device("auto")
    try:
        seconds = estimate_inference_seconds(find_model(), device)
    except WorkstationError as exc:
        return f"AI would run on {describe_device(device)}, but: {exc}"
    gpu = "" if device != "cpu" else " No GPU was found; the CPU is used, which is slower but gives the same results."
    return f"AI runs on {describe_device(device)}: about {seconds:.0f} s per chest CT.{gpu}"


def _yield_cpu_to_other_work() -> None:
    """The probe runs the network on the first start, when the reader may already have pressed
    Run AI: on a two-core computer the two compete. At the lowest priority (Linux: per thread,
    inherited by the threads torch starts from it) the probe waits for the real run instead."""
    if hasattr(os, "setpriority") and sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:
            pass  # not allowed here: the probe runs at normal priority


class WelcomeTour(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Workstation")
        self.device_label = QLabel("Checking this computer's AI device ...")
        self.device_label.setWordWrap(True)
        shortcuts = {spec.key: spec for spec in ACTIONS}
        self.pages = QStackedWidget()
        intro = QLabel("This short tour shows the review keys on the open study (on a first start without one, the "
                       "demo case: a synthetic chest CT with known nodules); the full list is under Help (F1).")
        intro.setWordWrap(True)
        first = QWidget()
        first_layout = QVBoxLayout(first)
        first_layout.addWidget(self.device_label)
        first_layout.addWidget(intro)
        first_layout.addStretch(1)
        self.pages.addWidget(first)
        for title, keys, text in TOUR:
            rows = "".join(f"<tr><td><b>{shortcuts[k].shortcut}</b>&nbsp;&nbsp;</td><td>{shortcuts[k].text}</td></tr>"
                           for k in keys)
            page = QLabel(f"<h3>{title}</h3><table>{rows}</table><p>{text}</p>")
            page.setWordWrap(True)
            page.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            self.pages.addWidget(page)
        self.back = QPushButton("Back")
        self.next = QPushButton("Next")
        self.back.clicked.connect(lambda: self.go(-1))
        self.next.clicked.connect(lambda: self.go(1))
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.back)
        buttons.addWidget(self.next)
        layout = QVBoxLayout(self)
        layout.addWidget(self.pages, 1)
        layout.addLayout(buttons)
        self.resize(520, 300)
        self.go(0)
        self._probe = _Probe()
        self._probe.done.connect(self.device_label.setText)
        threading.Thread(target=self._measure, name="device-probe", daemon=True).start()

    def _measure(self) -> None:  # on the probe thread; the signal carries the text to the GUI thread
        _yield_cpu_to_other_work()
        summary = device_summary()
        log.info("device check: %s", summary)
        try:
            self._probe.done.emit(summary)
        except RuntimeError:  # the dialog was closed and deleted meanwhile
            pass

    def go(self, step: int) -> None:
        index = self.pages.currentIndex() + step
        if index >= self.pages.count():
            self.accept()
            return
        self.pages.setCurrentIndex(max(0, index))
        self.back.setEnabled(self.pages.currentIndex() > 0)
        self.next.setText("Done" if self.pages.currentIndex() == self.pages.count() - 1 else "Next")
