"""Start the real app (the `workstation` launcher) under the test display on the demo case,
wait for the first study to load, and save a screenshot of the whole screen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.mark.skipif(shutil.which("import") is None, reason="needs imagemagick's import")
def test_app_starts_on_the_demo_case_and_shows_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "WORKSTATION_HOME": str(home), "WORKSTATION_USER": "admin",
           "WORKSTATION_PASSWORD": "demo-admin-password"}
    app = subprocess.Popen([sys.executable, "-m", "ui.launcher"], env=env, cwd=Path(__file__).parents[2],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = home / "logs" / "workstation.log"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and app.poll() is None:
            if log.is_file() and "loaded " in log.read_text():
                break
            time.sleep(0.5)
        assert app.poll() is None, app.stdout.read().decode()[-2000:]
        assert "loaded " in log.read_text(), "the demo case did not load in time"
        while time.monotonic() < deadline and "device check:" not in log.read_text():
            time.sleep(0.5)  # first run: the welcome tour measures the AI device
        assert "per chest CT" in log.read_text().split("device check:")[1].splitlines()[0]
        time.sleep(2.0)  # the follower views and the 3D view finish their renders
        screenshot = tmp_path / "app.png"
        subprocess.run(["import", "-window", "root", str(screenshot)], check=True, env=env, timeout=30)
        target = os.environ.get("WORKSTATION_SCREENSHOT_DIR")
        if target:
            shutil.copy(screenshot, Path(target) / "end_to_end.png")
        pixels = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
        assert pixels.std() > 20  # a real picture, not a blank screen
        # the demo opens on its largest nodule: its orange-red marker and overlay are on screen
        # (the yellow crosshair, green above 200, does not count)
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        assert ((red > 200) & (green > 40) & (green < 180) & (blue < 120)).sum() > 30
        assert "Traceback" not in log.read_text()
    finally:
        app.terminate()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
