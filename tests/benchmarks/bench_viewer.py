"""Viewer frame times and responsiveness under Xvfb on this CPU, at 512x512 viewports.

- axial and oblique scrolling with the heatmap on, around the demo case's largest nodule
  (so the overlay is really resliced); every step includes the follower views' work;
- 3D interaction: camera rotation at interactive sampling;
- the longest stall of the GUI event loop while the demo case loads on the worker;
- start of a fresh process to the first image of the demo case.
Targets (issue #3): axial >= 60 fps, oblique >= 30 fps, 3D >= 10 fps, stalls < 50 ms,
first image <= 3 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = 120


def _window(home: Path):
    from PySide6.QtWidgets import QDockWidget, QToolBar

    from ui.app import create_app
    from ui.main_window import MainWindow

    app = create_app()
    window = MainWindow(home)
    for widget in window.findChildren(QDockWidget) + window.findChildren(QToolBar):
        widget.hide()
    window.menuBar().hide()
    window.statusBar().hide()
    for view in window.views.values():
        view.setFixedSize(512, 512)
    window.show()
    app.processEvents()
    return app, window


def _per_step_ms(app, step, count: int = STEPS) -> float:
    app.processEvents()
    start = time.perf_counter()
    for index in range(count):
        step(index)
        app.processEvents()
    return (time.perf_counter() - start) / count * 1000


def interaction_rows(home: Path) -> list[tuple[str, float, float, str]]:
    from ui.controllers.study_opening import demo_job
    from workstation.jobs import CancelToken, run_job

    app, window = _window(home)
    window.opening.on_loaded(run_job(demo_job(home, CancelToken())))
    app.processEvents()
    axial = window.views["axial"]
    axial_ms = _per_step_ms(app, lambda i: axial.scroll(1 if i % 2 else -1))
    axial.tilt(20.0)
    oblique_ms = _per_step_ms(app, lambda i: axial.scroll(1 if i % 2 else -1))
    volume_view = window.views["3d"]
    camera = volume_view.renderer.GetActiveCamera()

    def rotate(_index: int) -> None:
        camera.Azimuth(5)
        volume_view._render(interactive=True)

    three_d_ms = _per_step_ms(app, rotate, 30)
    mapper_rows = _mapper_comparison(app, volume_view)
    stall_ms, show_ms = _loading_stall_ms(app, window)
    window.close()
    return mapper_rows + [
        ("axial scroll with heatmap: frames per second", 1000 / axial_ms, 60, f"{axial_ms:.1f} ms a step"),
        ("oblique (20 deg) scroll with heatmap: frames per second", 1000 / oblique_ms, 30, f"{oblique_ms:.1f} ms a step"),
        (f"3D rotation ({volume_view.mapper_name}): frames per second", 1000 / three_d_ms, 10,
         f"{three_d_ms:.1f} ms a frame"),
        ("longest event-loop stall while the demo case loads (ms)", stall_ms, -50, "timer every 5 ms"),
        ("longest stall while the loaded study is first shown (ms)", show_ms, float("nan"),
         "VTK uploads and first renders on the GUI thread"),
    ]


def _mapper_comparison(app, volume_view) -> list[tuple[str, float, float, str]]:
    """Interactive 3D frame time with each mapper on this machine: the evidence for the choice."""
    from ui.render.vtk_shim import vtkFixedPointVolumeRayCastMapper, vtkOpenGLGPUVolumeRayCastMapper

    camera = volume_view.renderer.GetActiveCamera()
    chosen = volume_view.mapper
    times = {}
    for name, mapper_class in (("CPU fixed-point", vtkFixedPointVolumeRayCastMapper),
                               ("GPU ray cast", vtkOpenGLGPUVolumeRayCastMapper)):
        mapper = mapper_class()
        mapper.SetAutoAdjustSampleDistances(1)
        mapper.SetInputData(volume_view._rendered)
        volume_view.volume_actor.SetMapper(mapper)

        def rotate(_index: int) -> None:
            camera.Azimuth(5)
            volume_view._render(interactive=True)

        rotate(0)
        times[name] = _per_step_ms(app, rotate, 15)
    volume_view.volume_actor.SetMapper(chosen)
    ratio = times["GPU ray cast"] / times["CPU fixed-point"]
    return [("3D frame time GPU mapper / CPU mapper (this GL)", ratio, float("nan"),
             f"CPU {times['CPU fixed-point']:.0f} ms, GPU {times['GPU ray cast']:.0f} ms; chosen: "
             f"{volume_view.mapper_name}")]


def _loading_stall_ms(app, window) -> tuple[float, float]:
    """(longest gap of a 5 ms GUI timer while the job runs, longest gap while the loaded study
    is handed to the views and first rendered)."""
    from PySide6.QtCore import QElapsedTimer, QTimer

    clock = QElapsedTimer()
    clock.start()
    phase = {"name": "job", "last": clock.elapsed(), "job": 0, "show": 0}

    def tick() -> None:
        now = clock.elapsed()
        phase[phase["name"]] = max(phase[phase["name"]], now - phase["last"])
        phase["last"] = now

    def loaded(_result) -> None:
        tick()
        phase["name"] = "show"

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    window.runner.succeeded.disconnect(window.jobs._deliver)  # switch phase before the window shows it
    window.runner.succeeded.connect(loaded)
    window.runner.succeeded.connect(window.jobs._deliver)
    timer.start()
    done = [False]
    window.runner.finished.connect(lambda: done.__setitem__(0, True))
    window.opening.open_demo()
    while not done[0]:
        app.processEvents()
        time.sleep(0.001)
    for _ in range(100):  # the views' first renders of the new volume
        app.processEvents()
        time.sleep(0.005)
    timer.stop()
    return phase["job"], phase["show"]


def first_image_row(home: Path) -> tuple[str, float, float, str]:
    env = {**os.environ, "WORKSTATION_HOME": str(home), "WORKSTATION_T0": repr(time.time())}
    output = subprocess.run([sys.executable, "-m", "tests.benchmarks.first_image"], env=env, capture_output=True,
                            text=True, timeout=120, cwd=Path(__file__).parents[2]).stdout
    seconds = float(output.split("first_image_s")[1].split()[0])
    return ("start to first image of the demo case (s)", seconds, -3, "fresh process, demo already generated")


def main() -> list[tuple[str, float, float, str]]:
    """Rows (name, value, target, note); a negative target means 'at most', positive 'at least'."""
    with tempfile.TemporaryDirectory() as temporary:
        home = Path(temporary)
        rows = interaction_rows(home)
        rows.append(first_image_row(home))
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
