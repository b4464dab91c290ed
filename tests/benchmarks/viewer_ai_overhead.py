"""#22 item 11: the AI's run in the viewer against the same run headless, in one process on the same
volume; the VTK renders during the viewer's run are counted, and each run's CPU time is given.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tests/benchmarks/viewer_ai_overhead.py SERIES_FOLDER
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(series: Path) -> None:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    from ui.controllers.study_opening import viewer_load_job
    from ui.main_window import MainWindow
    from workstation.inference.registry import find_model
    from workstation.inference.runner import run_inference_job
    from workstation.jobs import CancelToken, run_job

    home = Path(tempfile.mkdtemp())
    os.environ["WORKSTATION_HOME"] = str(home)
    window = MainWindow(home)
    window.resize(1600, 1000)
    window.show()
    window.opening.on_loaded(run_job(viewer_load_job([series], home, None, CancelToken())))
    for _ in range(40):
        app.processEvents()
        time.sleep(0.05)
    run_job(run_inference_job(window.state.volume, find_model(), "auto"))  # warm-up: torch's first run costs ~2 s more
    renders = dict.fromkeys(window.views, 0)
    for name, view in window.views.items():
        view.GetRenderWindow().AddObserver("EndEvent", lambda *_, name=name: renders.__setitem__(name, renders[name] + 1))
    done: list[float] = []
    window.runner.succeeded.connect(lambda _: done.append(time.perf_counter()))
    cpu, started = _cpu_seconds(), time.perf_counter()
    window.ai.run_ai()  # nobody logged in: the run is shown, not recorded
    while not done:
        app.processEvents()
        time.sleep(0.01)
    print(f"viewer: {done[0] - started:.1f} s wall, {_cpu_seconds() - cpu:.1f} s CPU, renders during the run {renders}")
    cpu, started = _cpu_seconds(), time.perf_counter()
    run_job(run_inference_job(window.state.volume, find_model(), "auto"))
    print(f"headless, same process and volume: {time.perf_counter() - started:.1f} s wall, "
          f"{_cpu_seconds() - cpu:.1f} s CPU")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
