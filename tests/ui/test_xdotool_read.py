"""The real app in its own process, driven by real X events (xdotool) on a real chest CT: first-run
login, open PATH (imported into the library), Run AI, decide by keys, sign with a reason for the
undecided candidates and the password, export the report. Screenshots and the PDF are kept in
WORKSTATION_SCREENSHOT_DIR when set.

Slow (the AI on a 512x512 series): run on purpose with WORKSTATION_E2E_XDOTOOL=1, under
xvfb-run -a -s "-screen 0 1920x1080x24"."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("WORKSTATION_E2E_XDOTOOL") or shutil.which("xdotool") is None
    or shutil.which("import") is None, reason="set WORKSTATION_E2E_XDOTOOL=1; needs xdotool and imagemagick")

PASSWORD = "e2e-admin-password"


class Desk:
    """Keys and screenshots on the test display, and the app's log to wait on."""

    def __init__(self, home: Path, shots: Path) -> None:
        self.log, self.shots = home / "logs" / "workstation.log", shots

    def wait_log(self, text: str, timeout: float, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.is_file() and text in self.log.read_text(errors="replace")[after:]:
                return
            time.sleep(0.5)
        raise AssertionError(f"{text!r} not in the log after {timeout} s")

    def log_size(self) -> int:
        return len(self.log.read_text(errors="replace")) if self.log.is_file() else 0

    def focus(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.windows(name)
            if found:
                subprocess.run(["xdotool", "windowfocus", "--sync", found[-1]], check=False, timeout=10)
                time.sleep(0.3)
                focused = subprocess.run(["xdotool", "getwindowfocus", "getwindowname"], capture_output=True,
                                         text=True).stdout.strip()
                print(f"focus {name!r}: {found} -> {focused!r}", flush=True)
                return
            time.sleep(0.3)
        raise AssertionError(f"no window named {name!r}")

    def windows(self, name: str) -> list[str]:
        return subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], capture_output=True,
                              text=True).stdout.split()

    def close(self, name: str, timeout: float = 30) -> None:
        """Escape on a dialog until it is gone (it may still be opening when the first one is sent)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.windows(name):
            self.focus(name)
            self.keys("Escape")
            time.sleep(0.5)
        assert not self.windows(name), f"{name!r} stayed open"

    def gone(self, name: str, timeout: float = 30) -> None:
        """Wait until a dialog has closed (keys sent before then would go to it, or nowhere)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.windows(name):
            time.sleep(0.2)

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["xdotool", "key", "--delay", "80", key], check=True, timeout=10)
            time.sleep(0.25)

    def type(self, text: str) -> None:
        subprocess.run(["xdotool", "type", "--delay", "30", text], check=True, timeout=60)

    def shot(self, name: str) -> Path:
        time.sleep(1.0)
        path = self.shots / f"e2e-{name}.png"
        subprocess.run(["import", "-window", "root", str(path)], check=True, timeout=30)
        return path


def test_a_real_read_by_real_keys(tmp_path: Path, real_ct: Path) -> None:
    home, shots = tmp_path / "home", Path(os.environ.get("WORKSTATION_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WORKSTATION_HOME": str(home), "HOME": str(tmp_path)}
    for name in ("WORKSTATION_USER", "WORKSTATION_PASSWORD"):
        env.pop(name, None)  # the login dialog is typed into, as on a first start
    series = real_ct / "chest-5mm-lesion14mm"
    app = subprocess.Popen([sys.executable, "-m", "ui.launcher", "open", str(series)], env=env,
                           cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    desk = Desk(home, shots)
    try:
        desk.focus("Create the administrator account")
        desk.type("admin")
        desk.keys("Tab")
        desk.type(PASSWORD)
        desk.keys("Tab")
        desk.type(PASSWORD)
        desk.keys("Return")
        desk.wait_log("loaded ", 180)  # open PATH: imported into the library, then loaded from it
        desk.wait_log("device check:", 180)  # the first-run tour has measured the AI device
        desk.close("Welcome to Workstation")
        desk.focus("Workstation - ")
        desk.shot("opened")
        before = desk.log_size()
        desk.keys("ctrl+r")
        desk.wait_log("analysis by", 600, after=before)
        desk.shot("ai-run")
        desk.keys("shift+h")  # the heatmap as an outline
        desk.shot("outline")
        desk.keys("a")  # the most probable finding accepted, the next one rejected (reason: vessel)
        desk.keys("r")
        desk.focus("Reject finding")
        desk.keys("Return")
        desk.gone("Reject finding")
        desk.focus("Workstation - ")
        desk.keys("d")
        desk.shot("ruler-mode")
        desk.keys("Escape", "ctrl+s")
        desk.focus("Sign with undecided candidates")
        desk.type("low-probability candidates left for the second reader")
        desk.keys("Return")
        desk.gone("Sign with undecided candidates")
        desk.focus("Sign")
        desk.type("Solid nodule as listed; other candidates not reviewed.")
        desk.keys("Tab", "Return")
        desk.focus("Lung-RADS")
        desk.keys("Return")
        desk.gone("Lung-RADS")
        desk.focus("Electronic signature")
        desk.type(PASSWORD)
        desk.keys("Return")
        desk.focus("Signed")
        desk.shot("signed")
        before = desk.log_size()
        desk.keys("Return")  # "Export the report now?" Yes: the preview, then Save PDF...
        desk.focus("Report preview", timeout=180)
        desk.shot("preview")
        desk.keys("Return")
        desk.focus("Save report")
        desk.keys("Return")
        deadline = time.monotonic() + 60
        database = home / "review.db"
        exported = None
        while time.monotonic() < deadline and exported is None:
            with sqlite3.connect(database) as connection:
                exported = connection.execute("SELECT new_value FROM audit WHERE action = 'exported'").fetchone()
            time.sleep(0.5)
        assert exported is not None, "the report was not exported"
        pdf = Path(json.loads(exported[0])["path"])
        shutil.copy(pdf, shots / "e2e-report.pdf")
        with sqlite3.connect(database) as connection:
            signed = json.loads(connection.execute("SELECT new_value FROM audit WHERE action = 'signed'").fetchone()[0])
            decisions = [row[0] for row in connection.execute("SELECT action FROM decisions ORDER BY id")]
        assert decisions == ["accept", "reject"]
        assert signed["undecided"] == signed["findings"] - 2 and "second reader" in signed["undecided_reason"]
        from pypdf import PdfReader

        text = "\n".join(page.extract_text() for page in PdfReader(str(pdf)).pages)
        assert "Electronically signed by admin" in text
        if signed["undecided"]:
            assert f"{signed['undecided']} AI candidate(s) were not reviewed" in text
        assert "Traceback" not in desk.log.read_text(errors="replace")
    finally:
        app.terminate()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
