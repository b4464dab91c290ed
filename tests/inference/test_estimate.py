"""The first-run estimate counts what a run does: every pass's windows, once per test-time flip."""

from __future__ import annotations

import dataclasses

from workstation.inference import estimate
from workstation.inference.registry import find_model
from workstation.inference.runner import window_count


def test_the_large_lesion_pass_adds_its_windows() -> None:
    bundle = find_model()
    assert bundle.large_lesion_pass is not None
    first_only = dataclasses.replace(bundle, large_lesion_pass=None)
    coarse = [round(mm / step) for mm, step in zip(estimate.TYPICAL_LUNG_BOX_MM[::-1],
                                                    bundle.large_lesion_pass.spacing_mm[::-1])]
    assert estimate.typical_window_count(bundle) == (estimate.typical_window_count(first_only)
                                                     + window_count(coarse, bundle.patch_size))


def test_each_flip_is_a_pass_through_the_network(monkeypatch) -> None:
    bundle = dataclasses.replace(find_model(), large_lesion_pass=None)
    times = iter([0.0, 0.5] * 4)  # one window takes 0.5 s on this pretend clock
    monkeypatch.setattr(estimate.time, "perf_counter", lambda: next(times))
    plain = estimate.estimate_inference_seconds(dataclasses.replace(bundle, test_time_flips=((),)), "cpu")
    flipped = estimate.estimate_inference_seconds(dataclasses.replace(bundle, test_time_flips=((), (0,))), "cpu")
    assert flipped - 2.0 == 2 * (plain - 2.0) > 0
