"""Detection bundles (#25 item 1): a MONAI bundle in the layout of `lung_nodule_ct_detection`
(RetinaNet detector, resnet backbone through resnet_fpn_feature_extractor, anchors of given
shapes, `$` calls and `@` references as that bundle writes them) built here with random weights,
small (resnet10 at an eighth of its width, a coarse grid), imported through `workstation models
import`, run end to end on a phantom with `workstation analyze`; its refusals; and the geometry
of boxes -> findings checked against a phantom's known nodules."""

from __future__ import annotations

import copy
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from workstation.cli import main
from workstation.dicom.load import load_volume
from workstation.errors import ModelBundleError
from workstation.inference.detection import (boxes_on_volume_grid, build_detector, findings_from_boxes, grid_layout,
                                             read_detector)
from workstation.inference.monai_import import import_monai_bundle
from workstation.inference.preprocess import lung_crop, model_grid_image, model_grid_index
from workstation.review.store import ReviewStore

SPACING = [2.8125, 2.8125, 5.0]  # four times the real bundle's 0.703125 x 0.703125 x 1.25 mm, to keep the test short
INFERENCE = {
    "whether_raw_luna16": False,
    "whether_resampled_luna16": "$(not @whether_raw_luna16)",
    "imports": ["$import glob", "$import os"],
    "bundle_root": "./",
    "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
    "amp": True,
    "infer_patch_size": [96, 96, 48],
    "anchor_generator": {"_target_": "monai.apps.detection.utils.anchor_utils.AnchorGeneratorWithAnchorShape",
                         "feature_map_scales": [1, 2], "base_anchor_shapes": [[6, 8, 4], [8, 6, 5], [10, 10, 6]]},
    "backbone": "$monai.networks.nets.resnet.resnet10(spatial_dims=3,n_input_channels=1,conv1_t_stride=[2,2,1],"
                "conv1_t_size=[7,7,7],widen_factor=0.125)",
    "feature_extractor": "$monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor(@backbone,3,"
                         "False,[1],None)",
    "network_def": {"_target_": "RetinaNet", "spatial_dims": 3, "num_classes": 1, "num_anchors": 3,
                    "feature_extractor": "@feature_extractor", "size_divisible": [8, 8, 4]},
    "network": "$@network_def.to(@device)",
    "detector": {"_target_": "RetinaNetDetector", "network": "@network", "anchor_generator": "@anchor_generator",
                 "debug": False},
    "detector_ops": [
        "$@detector.set_target_keys(box_key='box', label_key='label')",
        "$@detector.set_box_selector_parameters(score_thresh=0.02,topk_candidates_per_level=1000,nms_thresh=0.22,"
        "detections_per_img=6)",
        "$@detector.set_sliding_window_inferer(roi_size=@infer_patch_size,overlap=0.25,sw_batch_size=1,"
        "mode='constant',device='cpu')"],
    "preprocessing": {"_target_": "Compose", "transforms": [
        {"_target_": "LoadImaged", "keys": "image", "meta_key_postfix": "meta_dict", "_disabled_": "@whether_raw_luna16"},
        {"_target_": "EnsureChannelFirstd", "keys": "image", "meta_key_postfix": "meta_dict"},
        {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
        {"_target_": "Spacingd", "keys": "image", "pixdim": SPACING, "_disabled_": "@whether_resampled_luna16"},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -1024.0, "a_max": 300.0, "b_min": 0.0,
         "b_max": 1.0, "clip": True},
        {"_target_": "EnsureTyped", "keys": "image"}]},
    "inferer": {"_target_": "scripts.detection_inferer.RetinaNetInferer", "detector": "@detector"},
    "handlers": [{"_target_": "CheckpointLoader", "load_path": "$@bundle_root + '/models/model.pt'",
                  "load_dict": {"model": "@network"}}],
    "evaluating": ["$setattr(torch.backends.cudnn, 'benchmark', True)", "$@evaluator.run()"],
}
METADATA = {"version": "0.1.1", "monai_version": "1.4.0", "task": "CT lung nodule detection", "name": "tiny_lung_det",
            "description": "A tiny RetinaNet in the layout of lung_nodule_ct_detection", "license": "Apache-2.0",
            "data_source": "random weights, no data", "intended_use": "Tests only"}


def _weights(inference: dict) -> dict:
    """The RetinaNet's state dict, random but seeded; the classification bias at 0 instead of
    RetinaNet's focal-loss prior (scores near 0.01), so that boxes score above 0.5."""
    torch.manual_seed(0)
    _, description = read_detector(inference)
    state = build_detector(description).network.state_dict()
    state["classification_head.cls_logits.bias"] = torch.zeros_like(state["classification_head.cls_logits.bias"])
    return state


def _bundle(folder: Path, inference: dict | None = None, weights: object | None = None) -> Path:
    inference = inference or INFERENCE
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "metadata.json").write_text(json.dumps(METADATA))
    (folder / "configs" / "inference.json").write_text(json.dumps(inference))
    torch.save({"model": _weights(INFERENCE)} if weights is None else weights, folder / "models" / "model.pt")
    return folder


def test_a_detection_bundle_runs_end_to_end(tmp_path: Path, home: Path, small_phantom_dir: Path, capsys) -> None:
    source = _bundle(tmp_path / "bundle")
    archive = tmp_path / "lung_nodule_ct_detection.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in source.rglob("*"):
            out.write(path, f"tiny_lung_det/{path.relative_to(source)}")
    assert main(["models", "import", str(archive)]) == 0
    assert "(RetinaNetDetector)" in capsys.readouterr().out
    meta = json.loads((home / "models" / "monai-tiny_lung_det" / "metadata.json").read_text())
    assert meta["input"]["spacing_mm"] == SPACING and meta["input"]["hu_window"] == [-1024.0, 300.0]
    assert meta["operating_points"] == [] and meta["evaluation"] == {}
    arguments = meta["architecture"]["args"]
    assert arguments["backbone"] == {"depth": 10, "args": {"spatial_dims": 3, "n_input_channels": 1,
                                                           "conv1_t_stride": [2, 2, 1], "conv1_t_size": [7, 7, 7],
                                                           "widen_factor": 0.125}}
    assert arguments["box_selector"]["nms_thresh"] == 0.22 and arguments["sliding_window"]["roi_size"] == [96, 96, 48]
    card = (home / "models" / "monai-tiny_lung_det" / "MODEL_CARD.md").read_text()
    assert "No figure on this card was measured here" in card and "not a measured operating point" in card

    out = tmp_path / "analysis.json"
    assert main(["analyze", str(small_phantom_dir / "dicom"), "--import", "--model", "monai-tiny_lung_det",
                 "--device", "cpu", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "monai-tiny_lung_det 0.1.1" in printed and "not validated here" in printed
    analysis = json.loads(out.read_text())
    findings = analysis["findings"]
    assert findings and analysis["threshold"] == 0.5
    volume = load_volume(small_phantom_dir / "dicom")
    for finding in findings:
        assert (finding["model_name"], finding["model_version"]) == ("monai-tiny_lung_det", "0.1.1")
        assert 0.5 <= finding["probability"] <= 1 and finding["diameter_mm"] > 0
        assert all(-0.5 <= v <= n - 0.5 for v, n in zip(finding["center_voxel"], volume.shape[::-1]))
        assert np.allclose(volume.voxel_to_patient(finding["center_voxel"]), finding["center_mm"], atol=0.05)
    store = ReviewStore.in_home(home)
    [(analysis_id, name, version, count)] = store.connection.execute(
        "SELECT a.id, a.model_name, a.model_version, COUNT(f.id) FROM analyses a JOIN findings f "
        "ON f.analysis_id = a.id GROUP BY a.id").fetchall()
    from workstation.review.analyses import stored_heatmap

    heat = stored_heatmap(store, analysis_id)
    store.close()
    assert (name, version, count) == ("monai-tiny_lung_det", "0.1.1", len(findings))
    assert heat is not None and heat.shape == volume.shape
    for finding in findings:  # each finding lies on its own blob, peaking near its score
        i, j, k = (int(round(v)) for v in finding["center_voxel"])
        assert heat[k, j, i] >= 0.9 * finding["probability"]

    from workstation.reporting.content import ModelRun, _with_model_card

    run = _with_model_card(ModelRun(name, version, analysis["model"]["sha256"], "cpu", 0.5, "", "", ""))
    assert run.stated_sensitivity is None and run.stated_fp_per_scan is None  # the report claims no figure


class _Payload:
    def __reduce__(self):
        return (print, ("this ran",))


def _changed(**entries) -> dict:
    inference = copy.deepcopy(INFERENCE)
    for key, value in entries.items():
        if "." in key:
            outer, inner = key.split(".")
            inference[outer][inner] = value
        else:
            inference[key] = value
    return inference


@pytest.mark.parametrize(("case", "inference", "weights", "message"), [
    ("pickled code", None, {"model": {"layer": _Payload()}}, "holds more than plain tensors"),
    ("unknown backbone", _changed(backbone="$torch.nn.Linear(1, 1)"), None, "'torch.nn.Linear' is not on the allow-list"),
    ("unknown anchors", _changed(anchor_generator={"_target_": "scripts.anchors.Mine", "sizes": [1]}), None,
     "not on the allow-list"),
    ("code as backbone", _changed(backbone="$__import__('os').system('touch /tmp/owned')"), None, "is an expression"),
    ("code in an argument", _changed(backbone="$monai.networks.nets.resnet.resnet10(spatial_dims=__import__('os')"
                                              ".system('touch /tmp/owned'))"), None, "is an expression"),
    ("code in the ops", _changed(detector_ops=["$import os", *INFERENCE["detector_ops"]]), None, "is an expression"),
    ("other object's method", _changed(detector_ops=["$@network.cuda()", *INFERENCE["detector_ops"]]), None,
     "only the detector's own settings"),
    ("expression as a value", _changed(**{"network_def.num_anchors": "$1 + 2"}), None, "is an expression"),
    ("circular reference", _changed(feature_extractor="@feature_extractor"), None, "in a circle"),
    ("two classes", _changed(**{"network_def.num_classes": 2}), None, "one class"),
    ("wrong weights", None, {"model": {"conv.weight": torch.zeros(3, 3)}}, "do not fit the network"),
])
def test_detection_refusals(tmp_path: Path, case: str, inference, weights, message: str, capsys) -> None:
    source = _bundle(tmp_path / "bundle", inference, weights)
    with pytest.raises(ModelBundleError, match=message):
        import_monai_bundle(source, tmp_path / "models", imported_by="admin")
    assert "this ran" not in capsys.readouterr().out
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
    assert not Path("/tmp/owned").exists()


def test_refused_on_the_command_line_in_a_sentence(tmp_path: Path, home: Path, capsys) -> None:
    source = _bundle(tmp_path / "bundle", _changed(backbone="$__import__('os').getcwd()"), None)
    assert main(["models", "import", str(source)]) == 2
    err = capsys.readouterr().err
    assert "is an expression" in err and "Traceback" not in err


def test_the_real_bundles_inference_json_is_read() -> None:
    """The published lung_nodule_ct_detection config's own entries (resnet50, two returned layers,
    512x512x192 windows) read as data: the description it gives, no network built."""
    real = _changed(
        infer_patch_size=[512, 512, 192],
        backbone="$monai.networks.nets.resnet.resnet50(spatial_dims=3,n_input_channels=1,conv1_t_stride=[2,2,1],"
                 "conv1_t_size=[7,7,7])",
        feature_extractor="$monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor(@backbone,"
                          "3,False,[1,2],None)",
        anchor_generator={**INFERENCE["anchor_generator"], "feature_map_scales": [1, 2, 4]},
        detector_ops=["$@detector.set_target_keys(box_key='box', label_key='label')",
                      "$@detector.set_box_selector_parameters(score_thresh=0.02,topk_candidates_per_level=1000,"
                      "nms_thresh=0.22,detections_per_img=300)",
                      "$@detector.set_sliding_window_inferer(roi_size=@infer_patch_size,overlap=0.25,sw_batch_size=1,"
                      "mode='constant',device='cpu')"])
    real["network_def"]["size_divisible"] = [16, 16, 8]
    _, description = read_detector(real)
    assert description["backbone"]["depth"] == 50 and description["returned_layers"] == [1, 2]
    assert description["sliding_window"] == {"roi_size": [512, 512, 192], "overlap": 0.25, "sw_batch_size": 1,
                                             "mode": "constant"}
    assert description["box_selector"]["detections_per_img"] == 300 and description["orientation"] == "RAS"


def test_boxes_become_findings_where_the_nodules_are(small_phantom_dir: Path) -> None:
    """Boxes drawn by hand around the phantom's known nodules on the detector's grid (RAS, the
    bundle's spacing) come back as findings at the nodules' centres with their diameters."""
    volume = load_volume(small_phantom_dir / "dicom")
    truth = json.loads((small_phantom_dir / "truth.json").read_text())["nodules"]
    crop = lung_crop(volume)
    model_shape = model_grid_image(volume, crop, tuple(SPACING), (-1024, 300)).shape[2:]  # (k, j, i)
    order, flips = grid_layout(volume, "RAS")
    assert order == [0, 1, 2] and flips == [True, True, False]  # LPS columns and rows run against R and A
    grid_shape = [model_shape[2 - axis] for axis in order]
    scale_kji = np.array(model_shape) / np.array(crop.shape)
    boxes = []
    for nodule in truth:
        ijk = volume.patient_to_voxel(nodule["centre_mm"])
        model_kji = model_grid_index(np.array(ijk[::-1]), crop, model_shape)
        half_kji = nodule["diameter_mm"] / 2 / np.array(volume.spacing_mm[::-1]) * scale_kji
        centre = [model_kji[2 - axis] for axis in order]
        half = [half_kji[2 - axis] for axis in order]
        centre = [grid_shape[a] - 1 - c if flip else c for a, (c, flip) in enumerate(zip(centre, flips))]
        boxes.append([c - h for c, h in zip(centre, half)] + [c + h for c, h in zip(centre, half)])
    scores = np.linspace(0.9, 0.6, len(boxes))
    on_volume = boxes_on_volume_grid(np.array(boxes), grid_shape, order, flips, crop, model_shape)
    findings, heat = findings_from_boxes(volume, crop, on_volume, scores, 0.5, "m", "1")
    assert len(findings) == len(truth)
    for finding, nodule, score in zip(findings, truth, scores):
        assert finding.probability == pytest.approx(score, abs=1e-4)
        assert np.linalg.norm(np.subtract(finding.center_mm, nodule["centre_mm"])) < 0.05
        assert finding.diameter_mm == pytest.approx(nodule["diameter_mm"], abs=0.1)
        i, j, k = (int(round(v)) for v in finding.center_voxel)
        start = [s.start for s in crop.box]
        assert heat[k - start[0], j - start[1], i - start[2]] > 0.1 * score  # on its blob (voxels of 2.7 mm)
    assert 0.5 * scores.max() < float(heat.max()) <= scores.max() + 1e-6  # peaks fall between voxel centres
    assert findings_from_boxes(volume, crop, on_volume, scores, 0.95, "m", "1")[0] == []  # all below the threshold


def test_the_feature_extractor_matches_monais() -> None:
    """Where torchvision is installed, MONAI's own resnet_fpn_feature_extractor builds the same
    modules under the same names (so the bundle's weights fit either)."""
    pytest.importorskip("torchvision")
    from monai.apps.detection.networks.retinanet_network import resnet_fpn_feature_extractor
    from monai.networks.nets import resnet

    _, description = read_detector(INFERENCE)
    ours = build_detector(description).network.feature_extractor.state_dict()
    backbone = resnet.resnet10(spatial_dims=3, n_input_channels=1, conv1_t_stride=[2, 2, 1], conv1_t_size=[7, 7, 7],
                               widen_factor=0.125)
    theirs = resnet_fpn_feature_extractor(backbone, 3, False, [1], None).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_a_pickle_is_refused_before_any_network(tmp_path: Path) -> None:
    source = _bundle(tmp_path / "bundle", weights={"model": {"layer": _Payload()}})
    with pytest.raises(pickle.UnpicklingError):
        torch.load(source / "models" / "model.pt", weights_only=True)


def test_a_config_nested_hundreds_deep_is_refused_in_a_sentence(tmp_path: Path) -> None:
    source = _bundle(tmp_path / "bundle")
    text = json.dumps(INFERENCE).replace('"size_divisible": [8, 8, 4]', '"size_divisible": ' + "[" * 900 + "]" * 900)
    (source / "configs" / "inference.json").write_text(text)
    with pytest.raises(ModelBundleError, match="nested too deeply"):
        import_monai_bundle(source, tmp_path / "models", imported_by="admin")
