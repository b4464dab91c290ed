"""The runner on CPU: deterministic, finds unseen phantoms' nodules, cancels fast, keeps
geometry on a tilted grid, and the CLI writes the promised JSON."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from workstation.cli import main
from workstation.errors import CancelledError
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.imaging.volume import Volume
from workstation.inference.preprocess import distance_to_lung_mm, lung_crop, search_voxel_mm
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import CancelToken, run_job

UNSEEN_SEEDS = range(20000, 20006)  # neither training (1000+) nor the evaluation set (10000+)


@pytest.fixture(scope="module")
def bundle():
    return find_model("lung-nodule-demo")


@pytest.fixture(scope="module")
def unseen():
    return [generate_phantom(PhantomSpec.from_seed(seed, matrix=256)) for seed in UNSEEN_SEEDS]


@pytest.fixture(scope="module")
def analyses(bundle, unseen):
    return [run_job(run_inference_job(phantom.volume, bundle)) for phantom in unseen]


def _hit(finding, nodule) -> bool:
    return np.linalg.norm(np.array(finding.center_mm) - np.array(nodule["centre_mm"])) <= nodule["diameter_mm"] / 2


def test_findings_on_unseen_phantoms_match_what_the_model_card_states(bundle, unseen, analyses) -> None:
    """A regression check of runner + model against the card's operating point (measured on
    50 phantoms by evaluate.py); six phantoms are noisier, hence the margins."""
    point = min(bundle.operating_points, key=lambda p: abs(p.threshold - bundle.default_threshold))
    detected = total = false_positives = large = large_found = 0
    for phantom, analysis in zip(unseen, analyses):
        big = [n for n in phantom.nodules if n["diameter_mm"] >= 6]
        total += len(big)
        detected += sum(any(_hit(f, n) for f in analysis.findings) for n in big)
        false_positives += sum(not any(_hit(f, n) for n in phantom.nodules) for f in analysis.findings)
        for nodule in (n for n in phantom.nodules if n["diameter_mm"] >= 15):
            large += 1
            large_found += any(_hit(f, nodule) for f in analysis.findings)
        for finding in analysis.findings:
            assert finding.model_name == bundle.name and finding.model_version == bundle.version
    assert total >= 10 and large >= 3
    assert detected / total >= point.sensitivity - 0.25, (detected, total, point)
    assert false_positives / len(unseen) <= point.false_positives_per_scan + 3, (false_positives, point)
    assert large_found / large >= 0.6  # large nodules light up


def test_findings_measure_the_nodules_they_hit(unseen, analyses) -> None:
    """Size and type come from the lesion (where the heatmap reaches half its peak), not from the
    candidate blob's halo: on the validation phantoms the longest diameter is 1.1-1.2x the
    generator's nominal one (lobulation and one voxel of extent add to it), volume about 1x;
    the blob's halo gave 1.25-1.35x, 1.3-1.6x and the wrong type for a quarter of them."""
    diameter_ratios, volume_ratios, same_type = [], [], []
    for phantom, analysis in zip(unseen, analyses):
        for finding in analysis.findings:
            nodule = next((n for n in phantom.nodules if _hit(finding, n) and n["diameter_mm"] >= 6), None)
            if nodule:
                diameter_ratios.append(finding.diameter_mm / nodule["diameter_mm"])
                volume_ratios.append(finding.volume_mm3 / nodule["volume_mm3"])
                same_type.append(finding.type == nodule["kind"])
    assert len(diameter_ratios) >= 10
    assert 0.9 <= np.median(diameter_ratios) <= 1.2, sorted(diameter_ratios)
    assert 0.7 <= np.median(volume_ratios) <= 1.3, sorted(volume_ratios)
    assert np.mean(same_type) >= 0.85, same_type


@pytest.mark.slow  # a whole second run of the model on a phantom (50 s): `pytest -m slow` runs it
def test_same_findings_on_a_second_run(bundle, unseen) -> None:
    first = run_job(run_inference_job(unseen[0].volume, bundle))
    second = run_job(run_inference_job(unseen[0].volume, bundle))
    assert [f.to_dict() for f in first.findings] == [f.to_dict() for f in second.findings]
    np.testing.assert_array_equal(first.heatmap, second.heatmap)


def test_cancel_stops_within_a_second(bundle, unseen) -> None:
    cancel = CancelToken()
    outcome = {}

    def work() -> None:
        try:
            run_job(run_inference_job(unseen[1].volume, bundle, cancel=cancel),
                    lambda p: outcome.setdefault("running", time.perf_counter()) if "windows" in p.message else None)
        except CancelledError:
            outcome["cancelled"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    while "running" not in outcome and thread.is_alive():
        time.sleep(0.01)
    asked = time.perf_counter()
    cancel.cancel()
    thread.join(10)
    assert "cancelled" in outcome and outcome["cancelled"] - asked < 1.0


@pytest.mark.xfail(strict=True, reason="since the millimetre lung finder (#19), lungs that meet the -1000 HU padding "
                   "of a grid rotated 20 degrees merge with it into one air region whose median is room air's, so no "
                   "lung is found (0.03 ml); real tilted stacks keep the padding outside the body. Open: split such "
                   "regions before the median test")
def test_heatmap_lands_on_the_nodule_in_a_tilted_study(bundle, unseen) -> None:
    phantom = unseen[2]
    volume = phantom.volume
    nodule = max(phantom.nodules, key=lambda n: n["diameter_mm"])
    angle = np.radians(20)  # rotate the grid about the patient's left-right axis, like a gantry tilt
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = volume.affine.copy()
    affine[:3, :3] = rotation @ volume.affine[:3, :3]
    centre = volume.voxel_to_patient((np.array(volume.shape[::-1]) - 1) / 2)
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(volume.shape[::-1]) - 1) / 2)
    tilted = Volume(np.zeros_like(volume.voxels), affine, metadata=volume.metadata)
    k, j, i = np.indices(volume.shape, dtype=np.float32)
    source = volume.patient_to_voxel(tilted.voxel_to_patient(np.stack([i, j, k], axis=-1).reshape(-1, 3)))
    sampled = ndimage.map_coordinates(volume.voxels, source[:, ::-1].T, order=1, cval=-1000)
    tilted = Volume(sampled.reshape(volume.shape).astype(np.int16), affine, metadata=volume.metadata)
    analysis = run_job(run_inference_job(tilted, bundle))
    ijk = np.rint(tilted.patient_to_voxel(nodule["centre_mm"])).astype(int)
    assert analysis.heatmap[ijk[2], ijk[1], ijk[0]] >= bundle.default_threshold
    assert any(_hit(f, nodule) for f in analysis.findings)


def test_cli_analyze_writes_the_promised_json(small_phantom_dir: Path, tmp_path: Path, home: Path, capsys) -> None:
    out = tmp_path / "analysis.json"
    assert main(["analyze", str(small_phantom_dir / "dicom"), "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not for diagnosis" in printed
    payload = json.loads(out.read_text())
    assert payload["model"]["name"] == "lung-nodule-demo" and len(payload["model"]["sha256"]) == 64
    assert payload["model"]["second_stage_sha256"] == find_model().fp_reduction.weights_sha256
    assert payload["device"].startswith("CPU")
    for finding in payload["findings"]:
        assert {"center_mm", "center_voxel", "diameter_mm", "volume_mm3", "mean_hu", "probability", "type"} <= set(finding)


def test_thick_real_chest_ct_is_flagged_outside_scope_and_its_lesion_measured_across_a_slice(bundle,
                                                                                               real_ct: Path) -> None:
    """The 14 mm lesion (14.8 mm across its largest slice, on 3 of the 5 mm slices): its heat runs
    beyond it through the thick slices, so in 3D it reaches further (about 31 mm under 0.7.0, 21 mm
    under the tighter heat of 0.8.0); the reported diameter is taken across one slice, as a reader
    measures it."""
    from workstation.dicom.load import load_volume

    volume = load_volume(real_ct / "chest-5mm-lesion14mm")
    analysis = run_job(run_inference_job(volume, bundle))
    assert any("slice thickness 5 mm" in reason for reason in analysis.scope_warnings)
    truth = json.loads((real_ct / "chest-5mm-lesion14mm.truth.json").read_text())["lesions"][0]
    (lesion,) = [f for f in analysis.findings if np.linalg.norm(np.array(f.center_mm) - truth["center_mm"]) <= 7]
    assert 0.8 <= lesion.diameter_mm / truth["max_inplane_extent_mm"] <= 1.25, lesion
    assert lesion.extent_mm > 1.2 * lesion.diameter_mm


@pytest.fixture(scope="module")
def real_mass(bundle, real_ct: Path):
    """(the real 45 mm mass series, the demo model's analysis of it)"""
    from workstation.dicom.load import load_volume

    volume = load_volume(real_ct / "chest-5mm-mass45mm")
    return volume, run_job(run_inference_job(volume, bundle))


def test_real_mass_larger_than_any_training_nodule_lights_up_as_one_finding(bundle, real_ct: Path,
                                                                             real_mass) -> None:
    """The issue's development check kept as a regression test: a 45 mm mass on a real chest CT
    (training nodules end at 30 mm) is found by the large-lesion pass with confidence, as one
    finding rather than pieces of its rim, and the heatmap covers its centre."""
    truth = json.loads((real_ct / "chest-5mm-mass45mm.truth.json").read_text())["lesions"][0]
    volume, analysis = real_mass
    centre = np.array(truth["center_mm"])
    on_mass = [f for f in analysis.findings
               if np.linalg.norm(np.array(f.center_mm) - centre) <= truth["max_inplane_extent_mm"] / 2]
    # since the lung crop covers all of these lungs (#19), a 2.5 mm speck at p 0.41 shows on the
    # mass's edge, 26 mm from its labelled centre: pieces of the rim are allowed, not rim findings
    # of a nodule's size
    assert sum(f.diameter_mm >= 5 for f in on_mass) == 1, on_mass
    on_mass = sorted(on_mass, key=lambda f: -f.probability)
    assert on_mass[0].probability >= 0.9 and on_mass[0].diameter_mm >= 30, on_mass
    assert on_mass[0].extent_mm >= bundle.large_lesion_pass.min_diameter_mm
    i, j, k = np.rint(volume.patient_to_voxel(centre)).astype(int)
    assert analysis.heatmap[k, j, i] >= 0.5


def test_large_lesion_pass_finds_synthetic_masses_and_not_the_heart(bundle) -> None:
    """Masses of 35-60 mm (beyond the 30 mm training range) with known truth: each is one finding
    of about its size. Training phantom 1046 has nodules under 30 mm only, and its heart's border
    was once taken for a 59 mm mass by the 2.0 mm pass: no finding of 40 mm or more there."""
    masses = generate_phantom(PhantomSpec.from_seed(30000, matrix=256, nodule_count=2, nodule_diameter_mm=(35, 60)))
    analysis = run_job(run_inference_job(masses.volume, bundle))
    for mass in masses.nodules:
        on_mass = [f for f in analysis.findings if _hit(f, mass)]
        assert len(on_mass) == 1 and on_mass[0].probability >= 0.9, (mass, on_mass)
        assert 0.8 <= on_mass[0].diameter_mm / mass["diameter_mm"] <= 1.3, (mass, on_mass)
        i, j, k = np.rint(masses.volume.patient_to_voxel(mass["centre_mm"])).astype(int)
        assert analysis.heatmap[k, j, i] >= 0.5
    heart = generate_phantom(PhantomSpec.from_seed(1046, matrix=256))
    assert max(n["diameter_mm"] for n in heart.nodules) < 30
    analysis = run_job(run_inference_job(heart.volume, bundle))
    assert all(f.diameter_mm < 40 for f in analysis.findings)
    # where the large-lesion pass keeps nothing, it paints nothing: the overlay is the fine pass's
    fine_only = run_job(run_inference_job(heart.volume, dataclasses.replace(bundle, large_lesion_pass=None)))
    np.testing.assert_array_equal(analysis.heatmap, fine_only.heatmap)


def test_findings_away_from_the_lungs_are_left_out_with_their_heat(bundle, real_mass) -> None:
    """On the real mass series, the model without the rule also 'finds' folds of clothing above the
    chest, bowel gas and the trachea in the neck; with it, every finding's edge lies within the
    bundle's distance of aerated lung (plus half a search voxel: 10 mm through these 5 mm slices),
    nothing else changes, and the heat of the dropped ones is gone."""
    volume, analysis = real_mass
    unruled = run_job(run_inference_job(volume, dataclasses.replace(bundle, max_distance_from_lung_mm=None)))
    crop = lung_crop(volume)
    limit = bundle.max_distance_from_lung_mm + search_voxel_mm(crop, volume.spacing_mm) / 2

    def excess(findings) -> np.ndarray:
        centres = np.array([f.center_voxel[::-1] for f in findings])
        return distance_to_lung_mm(crop, volume.spacing_mm, centres) - [f.reach_mm / 2 for f in findings]

    assert (excess(analysis.findings) <= limit).all()
    away = [f for f, e in zip(unruled.findings, excess(unruled.findings)) if e > limit]
    # 0.7.0 put three or more findings there at its 0.3; 0.8.0, at its 0.8, one (p 1.0, 16 mm)
    assert len(away) >= 1 and len(analysis.findings) == len(unruled.findings) - len(away)
    kept = {f.center_mm for f in analysis.findings}
    assert kept == {f.center_mm for f in unruled.findings} - {f.center_mm for f in away}
    for finding in away:
        i, j, k = np.rint(finding.center_voxel).astype(int)
        assert unruled.heatmap[k, j, i] > 0.05 and analysis.heatmap[k, j, i] == 0


def test_no_finding_on_the_real_mass_series_lies_outside_the_lungs(bundle, real_mass) -> None:
    """Issue #19 item 4: a finding outside the lungs must not reach the list. Checked against the
    lungs traced on the full grid (insertion_sites.LungMap, vessels and lesions in the lung
    included), not the runner's own coarse ones: every finding's edge is within the bundle's
    distance of them. (Through the crop's earlier 20 mm search voxels, findings in the soft
    tissue above the lung apices were allowed 25 mm.)"""
    from workstation.imaging.insertion_sites import LungMap

    volume, analysis = real_mass
    lungs = LungMap.from_volume(volume)
    distance = ndimage.distance_transform_edt(~lungs.lung, sampling=np.array(volume.spacing_mm[::-1]))
    for finding in analysis.findings:
        i, j, k = np.rint(finding.center_voxel).astype(int)
        assert distance[k, j, i] - finding.reach_mm / 2 <= bundle.max_distance_from_lung_mm, finding
