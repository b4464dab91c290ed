"""Detection bundles (issue #25 item 1): MONAI's RetinaNet detector, as in the Apache-2.0
`lung_nodule_ct_detection` bundle, read from its configs/inference.json as data and run on a
Volume, its boxes and scores becoming Findings and a heatmap.

Reading the config. That bundle states its backbone and feature extractor as `$` expressions
(`$monai.networks.nets.resnet.resnet50(spatial_dims=3, ...)`), points to them with `@` references
and configures the detector with `$@detector.set_...(...)` calls. None of it is evaluated: each
such string is parsed (Python's `ast`) and accepted only when it is exactly one call of an
allow-listed MONAI function or detector method with literal arguments or `@name` references to
other entries of the config; anything else (attribute access, arithmetic, imports, lambdas, an
unknown name) is refused with the text it found. What is read becomes a plain JSON description
(DETECTOR_ARGUMENTS) stored in the installed bundle's metadata.json; `build_detector` builds the
network from that description alone.

Running. The lung box is resampled to the bundle's spacing and HU window (as the segmentation
runner does), laid out in the axis order the bundle's Orientationd states (RAS for MONAI's
detection bundles), and given to MONAI's RetinaNetDetector with its own sliding-window inferer
and box selector, in float32 (on this CPU bf16 ran 75 times slower). Boxes come back in that
grid's voxel coordinates (centres at integer positions, as the bundle's own
AffineBoxToWorldCoordinated reads them) and are mapped to the study's voxels and patient LPS mm.

torchvision is not installed here (its wheels do not import beside our pinned torch), and MONAI's
resnet_fpn_feature_extractor needs it only for torchvision's IntermediateLayerGetter:
`_LayerGetter` does the same (same module names, so a bundle's weights load strictly), and the
feature pyramid itself is MONAI's.
"""

from __future__ import annotations

import ast
import math
import re
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from workstation.errors import CancelledError, ModelBundleError
from workstation.imaging.volume import Volume
from workstation.inference.architectures import ALLOWED_ARCHITECTURES, DETECTOR_ARCHITECTURE, literal_value
from workstation.inference.findings import Finding, nodule_type, numbered
from workstation.inference.preprocess import LungCrop, model_grid_image
from workstation.jobs import CancelToken, Job, Progress

DETECTOR = DETECTOR_ARCHITECTURE
DETECTOR_ARGUMENTS = ALLOWED_ARCHITECTURES[DETECTOR_ARCHITECTURE]
FPN_CHANNELS = 256  # what MONAI's resnet_fpn_feature_extractor builds

# Names a config may use, short (as MONAI resolves them) or in full, for each part.
_NETWORKS = {"RetinaNet", "monai.apps.detection.networks.retinanet_network.RetinaNet"}
_DETECTORS = {"RetinaNetDetector", DETECTOR}
_EXTRACTORS = {"resnet_fpn_feature_extractor",
               "monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor"}
_ANCHORS = {"AnchorGeneratorWithAnchorShape", "monai.apps.detection.utils.anchor_utils.AnchorGeneratorWithAnchorShape"}
BACKBONE_DEPTHS = (10, 18, 34, 50, 101, 152, 200)
_BACKBONES = {f"{prefix}resnet{depth}": depth for depth in BACKBONE_DEPTHS
              for prefix in ("", "monai.networks.nets.", "monai.networks.nets.resnet.")}
DETECTION_NAMES = _NETWORKS | _DETECTORS

# Parameters in the order the functions take them positionally, and those we keep.
_POSITIONAL = {
    "backbone": ("pretrained", "progress"),
    "extractor": ("backbone", "spatial_dims", "pretrained_backbone", "returned_layers", "trainable_backbone_layers"),
    "network": ("spatial_dims", "num_classes", "num_anchors", "feature_extractor", "size_divisible", "use_list_output"),
    "anchors": ("feature_map_scales", "base_anchor_shapes", "indexing"),
    "detector": ("network", "anchor_generator"),
    "set_box_selector_parameters": ("score_thresh", "topk_candidates_per_level", "nms_thresh", "detections_per_img",
                                    "apply_sigmoid"),
    "set_sliding_window_inferer": ("roi_size", "sw_batch_size", "overlap", "mode", "sigma_scale", "padding_mode",
                                   "cval", "sw_device", "device", "progress", "cache_roi_weight_map"),
    "set_box_coder_weights": ("weights",),
    "set_target_keys": ("box_key", "label_key"),
}
BACKBONE_ARGUMENTS = {"spatial_dims", "n_input_channels", "conv1_t_size", "conv1_t_stride", "no_max_pool",
                      "shortcut_type", "widen_factor", "bias_downsample", "feed_forward", "num_classes"}
NETWORK_ARGUMENTS = {"spatial_dims", "num_classes", "num_anchors", "size_divisible"}
ANCHOR_ARGUMENTS = {"feature_map_scales", "base_anchor_shapes", "indexing"}
BOX_SELECTOR_ARGUMENTS = {"score_thresh", "topk_candidates_per_level", "nms_thresh", "detections_per_img",
                          "apply_sigmoid"}
SLIDING_WINDOW_ARGUMENTS = {"roi_size", "sw_batch_size", "overlap", "mode", "sigma_scale", "padding_mode", "cval"}
# Chosen here, not by the bundle: where the windows run, and no console progress bar.
_IGNORED_WINDOW_ARGUMENTS = {"sw_device", "device", "progress", "cache_roi_weight_map"}
# Training-only settings: they change nothing at inference, so a config that has them is read.
_TRAINING_OPS = {"set_cls_loss", "set_box_regression_loss", "set_regular_matcher", "set_atss_matcher",
                 "set_hard_negative_sampler", "set_balanced_sampler"}
_DIRECTIONS = {"R": (-1, 0, 0), "L": (1, 0, 0), "A": (0, -1, 0), "P": (0, 1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
_REFERENCE = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")


class _Reference(str):
    """`@name` in a config: the entry `name` of the same config."""


# --- reading inference.json ---------------------------------------------------------------


def is_detection_network(target: str) -> bool:
    return target in DETECTION_NAMES


def read_detector(inference: dict) -> tuple[str, dict[str, Any]]:
    """(DETECTOR, the literal description of the detector) from a detection bundle's inference.json."""
    reader = _ConfigReader(inference)
    name, network = reader.object(inference.get("network_def"), "network_def")
    if name not in _NETWORKS:
        raise ModelBundleError(f"The bundle's network_def builds {name!r}, not MONAI's RetinaNet")
    network = reader.arguments(network, "network", "network_def", objects=("feature_extractor",))
    extractor_name, extractor = reader.object(network.pop("feature_extractor", None), "network_def.feature_extractor")
    if extractor_name not in _EXTRACTORS:
        raise ModelBundleError(f"The RetinaNet's feature extractor {extractor_name!r} is not on the allow-list "
                               "(resnet_fpn_feature_extractor)")
    extractor = reader.arguments(extractor, "extractor", "feature_extractor", objects=("backbone",))
    _only({k: v for k, v in extractor.items() if k != "backbone"},
          {"spatial_dims", "pretrained_backbone", "returned_layers", "trainable_backbone_layers"},
          "resnet_fpn_feature_extractor")  # which layers train changes nothing at inference: read, not used
    backbone_name, backbone = reader.object(extractor.pop("backbone", None), "feature_extractor.backbone")
    if backbone_name not in _BACKBONES:
        raise ModelBundleError(f"Backbone {backbone_name!r} is not on the allow-list "
                               f"(MONAI's resnet{', resnet'.join(str(d) for d in BACKBONE_DEPTHS)})")
    backbone = reader.arguments(backbone, "backbone", "backbone")
    # MONAI would download published weights for these; the bundle's own models/model.pt is what is loaded
    backbone.pop("pretrained", None)
    backbone.pop("progress", None)
    network.pop("use_list_output", None)  # how the network hands back its maps; the detector copes with both
    description: dict[str, Any] = {
        "backbone": {"depth": _BACKBONES[backbone_name], "args": _only(backbone, BACKBONE_ARGUMENTS, "backbone")},
        "returned_layers": extractor.get("returned_layers", [1, 2, 3]),
        "network": _only(network, NETWORK_ARGUMENTS, "RetinaNet"),
        "orientation": _orientation_codes(inference),
    }
    if int(extractor.get("spatial_dims", 3)) != 3 or int(network.get("spatial_dims", 3)) != 3:
        raise ModelBundleError("Only 3D detection networks (spatial_dims 3) fit this workstation")
    detector_name, detector = reader.object(inference.get("detector"), "detector")
    if detector_name not in _DETECTORS:
        raise ModelBundleError(f"The bundle's detector is {detector_name!r}, not MONAI's RetinaNetDetector")
    # its network is network_def (the real bundle passes @network, network_def moved to a device)
    detector = reader.arguments(detector, "detector", "detector", objects=("network", "anchor_generator"))
    unknown = set(detector) - {"network", "anchor_generator", "debug"}
    if unknown:
        raise ModelBundleError(f"RetinaNetDetector arguments not allowed: {', '.join(sorted(unknown))}")
    anchors_name, anchors = reader.object(detector.get("anchor_generator"), "detector.anchor_generator")
    if anchors_name not in _ANCHORS:
        raise ModelBundleError(f"Anchor generator {anchors_name!r} is not on the allow-list "
                               "(AnchorGeneratorWithAnchorShape)")
    description["anchor_generator"] = _only(reader.arguments(anchors, "anchors", "anchor_generator"),
                                            ANCHOR_ARGUMENTS, "AnchorGeneratorWithAnchorShape")
    description.update(reader.detector_operations(inference.get("detector_ops", [])))
    check_description(description)
    return DETECTOR, description


class _ConfigReader:
    """Reads entries of one config, following `@name` references, evaluating nothing."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.following: list[str] = []

    def resolve(self, reference: str, where: str) -> Any:
        name = str(reference)
        if name not in self.config:
            raise ModelBundleError(f"The bundle's {where} refers to @{name}, which its inference.json does not have")
        if name in self.following:
            raise ModelBundleError(f"The bundle's config refers to @{name} in a circle")
        return self.config[name]

    def object(self, node: Any, where: str) -> tuple[str, dict[str, Any]]:
        """(class or function name, its raw arguments) of a node that builds something: a dict
        with _target_, a `$` call expression, or an `@name` reference to either."""
        if isinstance(node, str) and node.startswith("@"):
            node = _Reference(_reference_name(node, where))
        if isinstance(node, _Reference):
            value = self.resolve(node, where)
            self.following.append(str(node))
            try:
                return self.object(value, f"@{node}")
            finally:
                self.following.pop()
        if isinstance(node, dict) and "_target_" in node:
            target = node["_target_"]
            if not isinstance(target, str) or target.startswith(("$", "@", "%")):
                raise ModelBundleError(f"The bundle's {where}._target_ is not a class name")
            return target, {key: value for key, value in node.items() if key not in ("_target_", "_disabled_",
                                                                                     "_desc_", "_requires_")}
        if isinstance(node, str) and node.startswith("$"):
            function, positional, keywords = _parse_call(node, where)
            return function, {"__positional__": positional, **keywords}
        raise ModelBundleError(f"The bundle's {where} does not say what it builds (a _target_ or a call of an "
                               "allow-listed MONAI function)")

    def arguments(self, raw: dict[str, Any], kind: str, where: str, objects: tuple[str, ...] = ()) -> dict:
        """Keyword arguments with positional ones named, literal values checked and `@name`
        references to literal entries replaced by their values; the arguments named in
        `objects` (parts built from their own entries) are left as they are, for `object`."""
        raw = dict(raw)
        positional = raw.pop("__positional__", [])
        names = _POSITIONAL[kind]
        if len(positional) > len(names):
            raise ModelBundleError(f"The bundle's {where} is given {len(positional)} positional arguments")
        out = dict(zip(names, positional))
        for key, value in raw.items():
            if key in out:
                raise ModelBundleError(f"The bundle's {where} is given {key} twice")
            out[key] = value
        for key, value in list(out.items()):
            if key in objects:
                continue
            if isinstance(value, str) and value.startswith("@"):
                value = _Reference(_reference_name(value, f"{where}.{key}"))
            if isinstance(value, _Reference):
                value = self.resolve(value, f"{where}.{key}")
            out[key] = _literal(value, f"{where}.{key}")
        return out

    def detector_operations(self, operations: Any) -> dict[str, Any]:
        """The detector's settings from `$@detector.set_...(...)` calls."""
        if not isinstance(operations, list):
            raise ModelBundleError("The bundle's detector_ops is not a list")
        settings: dict[str, Any] = {}
        for text in operations:
            function, positional, keywords = _parse_call(text, "detector_ops", methods=True)
            owner, _, method = function.rpartition(".")
            if owner != "detector":
                raise ModelBundleError(f"The bundle's detector_ops calls {function!r}; only the detector's own "
                                       "settings are read")
            if method in _TRAINING_OPS or method == "set_target_keys":
                continue  # they change nothing in what the detector finds
            if method not in _POSITIONAL:
                raise ModelBundleError(f"The bundle's detector_ops calls {method!r}, which this workstation does "
                                       "not read")
            values = self.arguments({"__positional__": positional, **keywords}, method, f"detector_ops {method}")
            if method == "set_box_selector_parameters":
                settings["box_selector"] = _only(values, BOX_SELECTOR_ARGUMENTS, method)
            elif method == "set_sliding_window_inferer":
                kept = {k: v for k, v in values.items() if k not in _IGNORED_WINDOW_ARGUMENTS}
                settings["sliding_window"] = _only(kept, SLIDING_WINDOW_ARGUMENTS, method)
            else:
                settings["box_coder_weights"] = values.get("weights")
        if "sliding_window" not in settings:
            raise ModelBundleError("The bundle's detector_ops does not set its sliding-window inferer "
                                   "(set_sliding_window_inferer with a roi_size)")
        return settings


def _parse_call(text: Any, where: str, methods: bool = False) -> tuple[str, list, dict]:
    """(dotted function name, positional, keyword arguments) of a `$` string that is exactly one
    call with literal or `@name` arguments; parsed, never run."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise ModelBundleError(f"The bundle's {where} holds {str(text)[:60]!r}, not a call this workstation reads")
    source = _REFERENCE.sub(r"__ref__\1", text[1:].strip())
    refused = ModelBundleError(f"The bundle's {where} is an expression ({text[:60]!r}) that is not a plain call of "
                               "an allow-listed MONAI function with literal arguments; it is not evaluated")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise refused from exc
    call = tree.body
    if not isinstance(call, ast.Call):
        raise refused
    function = _dotted(call.func)
    if function is None or (function.startswith("__ref__") and not methods):
        raise refused
    function = function.replace("__ref__", "", 1) if methods else function
    if "__ref__" in function:
        raise refused
    try:
        positional = [_argument(node) for node in call.args]
        keywords = {}
        for keyword in call.keywords:
            if keyword.arg is None:  # **kwargs
                raise ValueError("unpacked arguments")
            keywords[keyword.arg] = _argument(keyword.value)
    except ValueError as exc:
        raise refused from exc
    return function, positional, keywords


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return f"{owner}.{node.attr}" if owner else None
    return None


def _argument(node: ast.AST) -> Any:
    if isinstance(node, ast.Name) and node.id.startswith("__ref__"):
        return _Reference(node.id[len("__ref__"):])
    return _lists(ast.literal_eval(node))  # ValueError for anything but literals


def _lists(value: Any) -> Any:
    """Tuples as lists, as JSON has them."""
    if isinstance(value, (tuple, list)):
        return [_lists(item) for item in value]
    if isinstance(value, (set, dict, bytes, complex)):
        raise ValueError("only numbers, strings, booleans, None and lists are read")
    return value


def _reference_name(text: str, where: str) -> str:
    name = text[1:]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ModelBundleError(f"The bundle's {where} is a reference ({text[:40]!r}) this workstation does not follow "
                               "(only @name of a top-level entry)")
    return name


_literal = literal_value


def _only(values: dict[str, Any], allowed: set[str], where: str) -> dict[str, Any]:
    unknown = set(values) - allowed
    if unknown:
        raise ModelBundleError(f"{where} arguments not allowed: {', '.join(sorted(unknown))}")
    return dict(values)


def _orientation_codes(inference: dict) -> str:
    """The axis codes of the bundle's Orientationd (RAS when it states none: the layout MONAI's
    detection bundles are trained in)."""
    transforms = (inference.get("preprocessing") or {}).get("transforms") or []
    for transform in transforms if isinstance(transforms, list) else []:
        if isinstance(transform, dict) and str(transform.get("_target_", "")).rsplit(".", 1)[-1] in (
                "Orientationd", "Orientation"):
            codes = _literal(transform.get("axcodes"), "Orientationd.axcodes")
            return str(codes)
    return "RAS"


def check_description(description: dict[str, Any]) -> None:
    """Every part of a detector description is one this workstation builds (also on every load:
    an installed metadata.json may have been edited)."""
    unknown = set(description) - DETECTOR_ARGUMENTS
    missing = {"backbone", "returned_layers", "network", "anchor_generator", "sliding_window"} - set(description)
    if unknown or missing:
        raise ModelBundleError(f"Detector description: unknown {sorted(unknown)}, missing {sorted(missing)}")
    backbone = description["backbone"]
    if not isinstance(backbone, dict) or backbone.get("depth") not in BACKBONE_DEPTHS:
        raise ModelBundleError("Detector description: the backbone is not one of MONAI's ResNets")
    _only(dict(backbone.get("args", {})), BACKBONE_ARGUMENTS, "backbone")
    _only(dict(description["network"]), NETWORK_ARGUMENTS, "RetinaNet")
    _only(dict(description["anchor_generator"]), ANCHOR_ARGUMENTS, "AnchorGeneratorWithAnchorShape")
    _only(dict(description.get("box_selector", {})), BOX_SELECTOR_ARGUMENTS, "box selector")
    _only(dict(description["sliding_window"]), SLIDING_WINDOW_ARGUMENTS, "sliding window")
    layers = description["returned_layers"]
    if not isinstance(layers, list) or not layers or any(not isinstance(v, int) or not 1 <= v <= 4 for v in layers):
        raise ModelBundleError(f"Detector description: returned_layers {layers!r} must be layers 1-4")
    if int(description["network"].get("num_classes", 1)) != 1:
        raise ModelBundleError("Only detectors of one class (a nodule) fit this workstation; this one has "
                               f"{description['network'].get('num_classes')}")
    if description.get("box_selector", {}).get("apply_sigmoid", True) is not True:
        raise ModelBundleError("The detector's box selector must turn its scores into probabilities "
                               "(apply_sigmoid true)")
    roi = description["sliding_window"].get("roi_size")
    if not isinstance(roi, list) or len(roi) != 3 or any(not isinstance(v, int) or not 8 <= v <= 512 for v in roi):
        raise ModelBundleError(f"The detector's sliding-window roi_size {roi!r} must be three sizes of 8-512 voxels")
    _axes(description["orientation"])


# --- building -------------------------------------------------------------------------------


def build_detector(description: dict[str, Any]):
    """MONAI's RetinaNetDetector from a checked description, untrained, in eval mode."""
    from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
    from monai.apps.detection.networks.retinanet_network import RetinaNet
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
    from monai.networks.nets import resnet

    check_description(description)
    try:
        backbone = getattr(resnet, f"resnet{description['backbone']['depth']}")(
            pretrained=False, progress=False, **description["backbone"].get("args", {}))
        extractor = _feature_extractor_classes()[1](backbone, list(description["returned_layers"]))
        network = RetinaNet(feature_extractor=extractor, **description["network"])
        anchors = AnchorGeneratorWithAnchorShape(**description["anchor_generator"])
        detector = RetinaNetDetector(network=network, anchor_generator=anchors, debug=False)
        if description.get("box_selector"):
            detector.set_box_selector_parameters(**description["box_selector"])
        if description.get("box_coder_weights"):
            detector.set_box_coder_weights(tuple(float(w) for w in description["box_coder_weights"]))
        detector.set_sliding_window_inferer(**description["sliding_window"], sw_device="cpu", device="cpu")
    except (TypeError, ValueError, AssertionError, KeyError, AttributeError, RuntimeError) as exc:
        raise ModelBundleError(f"The RetinaNet detector cannot be built with these settings: {exc}") from exc
    return detector.eval()


def _feature_extractor_classes():
    """(layer getter, feature extractor) module classes, made on first use so that importing this
    module imports no torch."""
    from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
    from torch import nn

    class LayerGetter(nn.ModuleDict):
        """torchvision's IntermediateLayerGetter: the backbone's children up to the last layer
        returned, run in order; returns the named layers' outputs."""

        def __init__(self, backbone, return_layers: dict[str, str]) -> None:
            wanted, children = dict(return_layers), OrderedDict()
            for name, module in backbone.named_children():
                children[name] = module
                wanted.pop(name, None)
                if not wanted:
                    break
            super().__init__(children)
            self.return_layers = dict(return_layers)

        def forward(self, x):
            out = OrderedDict()
            for name, module in self.items():
                x = module(x)
                if name in self.return_layers:
                    out[self.return_layers[name]] = x
            return out

    class FeatureExtractor(nn.Module):
        """What resnet_fpn_feature_extractor(backbone, 3, False, returned_layers) builds (MONAI's
        BackboneWithFPN): the same modules under the same names."""

        def __init__(self, backbone, returned_layers: list[int]) -> None:
            super().__init__()
            stage2 = backbone.in_planes // 8
            self.body = LayerGetter(backbone, {f"layer{k}": str(v) for v, k in enumerate(returned_layers)})
            self.fpn = FeaturePyramidNetwork(spatial_dims=3, in_channels_list=[stage2 * 2 ** (i - 1)
                                                                               for i in returned_layers],
                                             out_channels=FPN_CHANNELS, extra_blocks=LastLevelMaxPool(3))
            self.out_channels = FPN_CHANNELS

        def forward(self, x):
            return self.fpn(self.body(x))

    return LayerGetter, FeatureExtractor


# --- running --------------------------------------------------------------------------------


def _axes(codes: str) -> list[np.ndarray]:
    if not isinstance(codes, str) or len(codes) != 3 or set(codes) - set(_DIRECTIONS) or \
            len({int(np.flatnonzero(_DIRECTIONS[c])[0]) for c in codes}) != 3:
        raise ModelBundleError(f"Orientation {codes!r} is not three axis codes such as RAS or LPS")
    return [np.array(_DIRECTIONS[c], dtype=float) for c in codes]


def grid_layout(volume: Volume, codes: str) -> tuple[list[int], list[bool]]:
    """For each axis of the detector's grid (in `codes` order, e.g. RAS: towards the patient's
    right, anterior, superior): which axis of the volume (0 = i, 1 = j, 2 = k) it runs along, and
    whether it runs against it. The nearest match of the volume's direction cosines, as MONAI's
    Orientationd picks it."""
    targets = _axes(codes)
    directions = [volume.affine[:3, axis] / np.linalg.norm(volume.affine[:3, axis]) for axis in range(3)]
    match = np.array([[float(np.dot(d, t)) for d in directions] for t in targets])  # (grid axis, volume axis)
    order, flips = [0, 0, 0], [False, False, False]
    remaining = np.abs(match)
    for _ in range(3):
        grid_axis, axis = (int(v) for v in np.unravel_index(int(np.argmax(remaining)), remaining.shape))
        order[grid_axis], flips[grid_axis] = axis, bool(match[grid_axis, axis] < 0)
        remaining[grid_axis, :] = -1
        remaining[:, axis] = -1
    return order, flips


def run_detector(volume: Volume, crop: LungCrop, bundle, network, device: str, threshold: float,
                 cancel: CancelToken, span: tuple[int, int] = (5, 95)) -> Job:
    """(findings, heatmap over the crop, device used): the detector on the lung box at the
    bundle's grid. Yields Progress per window; CancelledError between windows."""
    import torch

    description = bundle.architecture_args
    image = model_grid_image(volume, crop, bundle.spacing_mm, bundle.hu_window)  # (1, 1, k, j, i)
    order, flips = grid_layout(volume, description["orientation"])
    tensor_dims = [4 - axis for axis in order]  # volume axis i, j, k -> tensor dims 4, 3, 2
    oriented = image.permute(0, 1, *tensor_dims)
    flipped = [2 + index for index, flip in enumerate(flips) if flip]
    if flipped:
        oriented = torch.flip(oriented, flipped)
    oriented = oriented.contiguous()
    windows = _window_count(oriented.shape[2:], description["sliding_window"])
    done = {"windows": 0}

    def before_window(_module, _inputs) -> None:
        if cancel.cancelled:
            raise CancelledError()
        done["windows"] += 1

    network.set_sliding_window_inferer(**description["sliding_window"], sw_device=device, device=device)
    network.to(device)
    hook = network.network.register_forward_pre_hook(before_window)
    outcome: dict = {}

    def work() -> None:
        try:
            with torch.inference_mode():
                outcome["result"] = network(oriented.to(device), use_inferer=True)[0]
        except BaseException as exc:  # handed to the generator's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="detector", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
            finished = min(done["windows"], windows)
            yield Progress(span[0] + int((span[1] - span[0]) * finished / windows), 100,
                           f"Running the detector ({finished}/{windows} windows)")
    finally:
        hook.remove()
    if "error" in outcome:
        raise outcome["error"]
    result = outcome["result"]
    boxes = result[network.target_box_key].detach().float().cpu().numpy().reshape(-1, 6)
    scores = result[network.pred_score_key].detach().float().cpu().numpy().reshape(-1)
    boxes_kji = boxes_on_volume_grid(boxes, oriented.shape[2:], order, flips, crop, image.shape[2:])
    findings, heat = findings_from_boxes(volume, crop, boxes_kji, scores, threshold, bundle.name, bundle.version)
    return findings, heat, device


def _window_count(shape, sliding_window: dict) -> int:
    overlap = float(sliding_window.get("overlap", 0.25))
    count = 1
    for size, window in zip(shape, sliding_window["roi_size"]):
        step = max(1, int(window * (1 - overlap)))
        count *= max(1, math.ceil((max(int(size), window) - window) / step) + 1)
    return count


def boxes_on_volume_grid(boxes: np.ndarray, grid_shape, order: list[int], flips: list[bool], crop: LungCrop,
                         model_shape) -> np.ndarray:
    """Boxes (N, 6: low then high corner, on the detector's grid axes) as (N, 2, 3): low and high
    corner in (k, j, i) voxels of the volume's own grid. The detector's grid is the model grid
    (`model_shape`, (k, j, i)) reordered and flipped; the model grid is the crop resampled with
    align_corners=False, so a model voxel m sits at (m + 0.5) / scale - 0.5 of the crop."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 6)
    out = np.zeros((len(boxes), 2, 3))
    scale = np.array(model_shape, dtype=float) / np.array(crop.shape, dtype=float)  # (k, j, i)
    start = np.array([s.start for s in crop.box], dtype=float)
    for grid_axis, (axis, flip) in enumerate(zip(order, flips)):
        low, high = boxes[:, grid_axis], boxes[:, grid_axis + 3]
        if flip:
            last = float(grid_shape[grid_axis]) - 1
            low, high = last - high, last - low
        kji = 2 - axis  # volume axis i, j, k -> k, j, i index
        out[:, 0, kji] = (low + 0.5) / scale[kji] - 0.5 + start[kji]
        out[:, 1, kji] = (high + 0.5) / scale[kji] - 0.5 + start[kji]
    return out


def findings_from_boxes(volume: Volume, crop: LungCrop, boxes_kji: np.ndarray, scores: np.ndarray, threshold: float,
                        model_name: str, model_version: str) -> tuple[list[Finding], np.ndarray]:
    """Findings from boxes on the volume's grid (those scoring at least `threshold`), and the
    heatmap over the crop: a Gaussian per box (every box the detector kept), half its score at
    the box's faces, the boxes' maximum where they overlap."""
    spacing_kji = np.array(volume.spacing_mm[::-1], dtype=float)
    start = np.array([s.start for s in crop.box], dtype=float)
    heat = np.zeros(crop.shape, dtype=np.float32)
    findings = []
    for (low, high), score in zip(boxes_kji, scores):
        size_vox = np.maximum(high - low, 0.0)
        if not np.all(size_vox > 0) or not np.isfinite(score):
            continue  # an empty box (the bundle's ClipBoxToImaged removes these too)
        centre_kji = (low + high) / 2
        _add_blob(heat, centre_kji - start, size_vox / 2, float(score))
        if score < threshold:
            continue
        sides_mm = size_vox * spacing_kji  # (k, j, i)
        hu = _inside_ellipsoid(volume.voxels, centre_kji, size_vox / 2)
        centre_ijk = centre_kji[::-1]
        findings.append(Finding(
            id=0, center_mm=tuple(float(v) for v in volume.voxel_to_patient(centre_ijk).round(2)),
            center_voxel=tuple(float(v) for v in centre_ijk.round(2)),
            diameter_mm=round(float(max(sides_mm[1], sides_mm[2])), 1),  # the box's longer in-plane side
            volume_mm3=round(float(math.pi / 6 * np.prod(sides_mm)), 1),  # the ellipsoid in the box
            mean_hu=round(float(hu.mean()), 1), probability=round(float(score), 4), type=nodule_type(hu),
            model_name=model_name, model_version=model_version, extent_mm=round(float(sides_mm.max()), 1)))
    return numbered(findings), heat


def _add_blob(heat: np.ndarray, centre: np.ndarray, half: np.ndarray, score: float) -> None:
    sigma = np.maximum(half, 0.5) / math.sqrt(2 * math.log(2))  # half the peak at the box's faces
    low = np.maximum(np.floor(centre - 3 * sigma).astype(int), 0)
    high = np.minimum(np.ceil(centre + 3 * sigma).astype(int) + 1, heat.shape)
    if np.any(high <= low):
        return
    axes = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high))]
    exponent = sum(((axis - c) / s) ** 2 for axis, c, s in zip(axes, centre, sigma))
    region = tuple(slice(a, b) for a, b in zip(low, high))
    np.maximum(heat[region], (score * np.exp(-0.5 * exponent)).astype(np.float32), out=heat[region])


def _inside_ellipsoid(voxels: np.ndarray, centre_kji: np.ndarray, half_kji: np.ndarray) -> np.ndarray:
    """HU of the voxels inside the ellipsoid the box holds (the nearest voxel when none is)."""
    low = np.maximum(np.floor(centre_kji - half_kji).astype(int), 0)
    high = np.minimum(np.ceil(centre_kji + half_kji).astype(int) + 1, voxels.shape)
    nearest = np.clip(np.rint(centre_kji).astype(int), 0, np.array(voxels.shape) - 1)
    if np.any(high <= low):
        return voxels[tuple(nearest)].reshape(1).astype(float)
    axes = np.ogrid[tuple(slice(a, b) for a, b in zip(low, high))]
    inside = sum(((axis - c) / max(h, 0.5)) ** 2 for axis, c, h in zip(axes, centre_kji, half_kji)) <= 1.0
    values = voxels[tuple(slice(a, b) for a, b in zip(low, high))][inside]
    return values.astype(float) if values.size else voxels[tuple(nearest)].reshape(1).astype(float)
