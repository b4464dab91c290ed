"""Test-time flips: averaging over a group of flips makes any network mirror-consistent."""

from __future__ import annotations

import torch

from workstation.inference.runner import flip_averaged

ALL_FLIPS = ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))


def _lopsided_network() -> torch.nn.Module:
    torch.manual_seed(3)
    return torch.nn.Conv3d(1, 1, kernel_size=3, padding=1).eval()  # random weights: not symmetric


def test_without_flips_the_output_is_the_network_output() -> None:
    network, windows = _lopsided_network(), torch.randn(2, 1, 8, 9, 10)
    with torch.inference_mode():
        torch.testing.assert_close(flip_averaged(network, windows, ((),)), network(windows))


def test_flipped_input_gives_the_flipped_output() -> None:
    network, windows = _lopsided_network(), torch.randn(2, 1, 8, 9, 10)
    with torch.inference_mode():
        assert not torch.allclose(network(torch.flip(windows, [4])), torch.flip(network(windows), [4]), atol=1e-3)
        for axis in (2, 3, 4):
            torch.testing.assert_close(flip_averaged(network, torch.flip(windows, [axis]), ALL_FLIPS),
                                       torch.flip(flip_averaged(network, windows, ALL_FLIPS), [axis]))


def test_each_flip_is_undone_before_averaging() -> None:
    network, windows = _lopsided_network(), torch.randn(1, 1, 6, 6, 6)
    with torch.inference_mode():
        expected = (network(windows) + torch.flip(network(torch.flip(windows, [3])), [3])) / 2
        torch.testing.assert_close(flip_averaged(network, windows, ((), (1,))), expected)
