"""A task for the batch engine's workers that kills its own worker process (as the kernel's
out-of-memory killer or an operator would), by the name of the folder it is given: 'always' on
every attempt, 'once' on its first only; any other folder returns how many attempts it took.
Each attempt is counted in a file in that folder, so the test sees how often it was tried."""

from __future__ import annotations

import os
import signal
from pathlib import Path


def dying_task(paths: list[str], _bundle_folder: str, _device: str, _threshold) -> int:
    folder = Path(paths[0])
    with open(folder / "attempts", "a", encoding="utf-8") as out:
        out.write(f"{os.getpid()}\n")
    attempts = len((folder / "attempts").read_text(encoding="utf-8").split())
    if folder.name == "always" or (folder.name == "once" and attempts == 1):
        os.kill(os.getpid(), signal.SIGKILL)
    return attempts
