"""The GPU check script (tests/benchmarks/gpu_check.py) must run as is on the first machine with
a GPU: here its checks run with the CPU against itself, on a small phantom."""

from __future__ import annotations

from tests.benchmarks.gpu_check import _unmatched, check
from workstation.imaging.phantom import PhantomSpec
from workstation.inference.findings import Finding


def test_the_check_agrees_with_itself_and_reports_the_network_stage() -> None:
    result = check("cpu", PhantomSpec.from_seed(20001, matrix=192), repeats=1)
    assert result.agrees and result.heatmap_difference == 0.0 and not result.unmatched
    assert set(result.stage_seconds) == {"preparing", "resampling", "network", "findings"}
    assert 0 < result.stage_seconds["network"] < result.end_to_end_s
    text = "\n".join(result.lines())
    assert "inference (network stage, all passes)" in text and "AGREES" in text
    assert "out of GPU memory: not checked" in text  # that check caps CUDA memory: CUDA only


def _finding(probability: float, x_mm: float, diameter_mm: float = 8.0) -> Finding:
    return Finding(1, (x_mm, 0.0, 0.0), (0.0, 0.0, 0.0), diameter_mm, 100.0, 20.0, probability, "solid", "m", "1")


def test_a_clear_finding_on_one_device_only_is_named_and_a_borderline_one_is_not() -> None:
    cpu = [_finding(0.9, 0.0), _finding(0.32, 50.0)]  # threshold 0.3: the second is borderline
    assert _unmatched(cpu, [_finding(0.88, 1.5)], 0.3, "CPU") == []  # same lesion, 1.5 mm off
    missing = _unmatched(cpu, [_finding(0.9, 50.0)], 0.3, "CPU")
    assert len(missing) == 1 and missing[0].startswith("CPU only: 0.90")
    assert len(_unmatched(cpu, [_finding(0.9, 4.5)], 0.3, "CPU")) == 1  # beyond its 4 mm radius
