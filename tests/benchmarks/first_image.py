"""Child process of bench_viewer: time from process start to the first rendered image.

The parent passes its clock reading at launch in WORKSTATION_T0 so interpreter start-up
and imports count too."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> None:
    t0 = float(os.environ["WORKSTATION_T0"])
    from PySide6.QtCore import QTimer

    from ui.app import create_app, open_initial
    from ui.main_window import MainWindow

    app = create_app()
    window = MainWindow(Path(os.environ["WORKSTATION_HOME"]))
    window.show()

    def shown() -> None:
        window.views["axial"].GetRenderWindow().Render()
        print(f"first_image_s {time.time() - t0:.3f}", flush=True)
        QTimer.singleShot(0, app.quit)

    window.state.volume_changed.connect(lambda: QTimer.singleShot(0, shown))
    open_initial(window, None)
    app.exec()


if __name__ == "__main__":
    sys.exit(main())
