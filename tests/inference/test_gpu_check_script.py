"""The GPU check script (tests/benchmarks/gpu_check.py) must run as is on the first machine with
a GPU: here its checks run with the CPU against itself, on a small phantom."""

from __future__ import annotations

import numpy as np
import torch

from tests.benchmarks.gpu_check import HEATMAP_TOLERANCE, _unmatched, check
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.findings import Finding
from workstation.inference.preprocess import lung_crop, model_grid_image
from workstation.inference.registry import find_model
from workstation.inference.runner import flip_averaged


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


def test_float16_moves_the_network_output_by_well_under_the_tolerance() -> None:
    """The GPU runs the network under float16 autocast; the CPU's own float16 autocast stands in
    for it here, on the windows around a phantom's nodules (where the heat is). A model that is
    unstable in float16 would fail the GPU check: this says so without a GPU."""
    bundle = find_model()
    network = bundle.load_network().eval()
    phantom = generate_phantom(PhantomSpec.from_seed(20001, matrix=256))
    crop = lung_crop(phantom.volume)
    image = model_grid_image(phantom.volume, crop, bundle.spacing_mm, bundle.hu_window)
    size = np.array(bundle.patch_size)
    scale = np.array(image.shape[2:]) / np.array(crop.shape)
    for nodule in phantom.nodules[:2]:
        kji = (phantom.volume.patient_to_voxel(nodule["centre_mm"])[::-1] - [s.start for s in crop.box]) * scale
        low = np.clip(kji.astype(int) - size // 2, 0, np.array(image.shape[2:]) - size)
        window = image[(slice(None), slice(None), *(slice(a, a + n) for a, n in zip(low, size)))]
        with torch.inference_mode():
            full = torch.sigmoid(flip_averaged(network, window, bundle.test_time_flips))
            with torch.autocast("cpu", dtype=torch.float16):
                half = torch.sigmoid(flip_averaged(network, window, bundle.test_time_flips).float())
        assert float(full.max()) > 0.9  # the nodule is in the window
        assert float((full - half).abs().max()) < HEATMAP_TOLERANCE / 2
