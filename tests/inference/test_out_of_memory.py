"""Running out of memory on the CPU (a modest laptop) gives a sentence, not an internal error.
A real allocation failure: a child process caps its own address space just above what it holds
once the study and the model's code are loaded (an import under a 1 MiB cap fails in ways the
interpreter itself does not name, e.g. SystemError: error return without exception set)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CAPPED_RUN = """
import resource, sys, torch
from workstation.errors import WorkstationError
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import run_job

torch.set_num_threads(2)
torch.ones(256, 256) @ torch.ones(256, 256)  # the thread pool starts before the cap
volume = generate_phantom(PhantomSpec(seed=3, matrix=256, pixel_spacing_mm=1.4, slice_thickness_mm=2.0,
                                      z_extent_mm=240.0, nodule_count=2)).volume
bundle = find_model()
import importlib, monai.inferers  # what the run imports lazily, so the cap hits allocations, not imports
importlib.import_module(bundle.architecture.rsplit(".", 1)[0])
held = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (held + int(sys.argv[1]) * 2**20, resource.RLIM_INFINITY))
try:
    analysis = run_job(run_inference_job(volume, bundle, "cpu", threads=2))
    print("FINDINGS", len(analysis.findings))
except WorkstationError as exc:
    print("REFUSED", type(exc).__name__, exc)
"""


def _run_capped(headroom_mib: int) -> str:
    done = subprocess.run([sys.executable, "-c", CAPPED_RUN, str(headroom_mib)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("headroom_mib", [1, 24])  # the weights cannot be mapped; the network's buffers fail
def test_running_out_of_memory_is_told_in_a_sentence(headroom_mib: int) -> None:
    out = _run_capped(headroom_mib)
    assert "REFUSED InferenceError This computer ran out of memory while running the model" in out, out


def test_the_same_run_with_enough_memory_finds_the_nodules() -> None:
    """The control: the cap itself is not what fails."""
    out = _run_capped(4096)
    assert "FINDINGS" in out and "FINDINGS 0" not in out, out
