"""What a bundle may name: the networks with the arguments each may be given, and config values
read as literals only. One list that the bundle loader, the MONAI importer and the detector builder
all check against (a module of its own, so that those three do not import each other)."""

from __future__ import annotations

from typing import Any

from workstation.errors import ModelBundleError

# Networks a bundle may name, with the arguments they may be given.
ALLOWED_ARCHITECTURES: dict[str, set[str]] = {
    "monai.networks.nets.BasicUNet": {"spatial_dims", "in_channels", "out_channels", "features", "act", "norm",
                                      "bias", "dropout", "upsample"},
    "monai.networks.nets.UNet": {"spatial_dims", "in_channels", "out_channels", "channels", "strides",
                                 "kernel_size", "up_kernel_size", "num_res_units", "act", "norm", "dropout"},
    "monai.networks.nets.SegResNet": {"spatial_dims", "init_filters", "in_channels", "out_channels", "dropout_prob",
                                      "blocks_down", "blocks_up", "upsample_mode"},
    "monai.networks.nets.Classifier": {"in_shape", "classes", "channels", "strides", "kernel_size", "num_res_units",
                                       "act", "norm", "dropout", "bias"},
    # MONAI's RetinaNet detector (boxes, not a heatmap), built by workstation.inference.detection
    # from a description of allow-listed parts, each checked there
    "monai.apps.detection.networks.retinanet_detector.RetinaNetDetector": {
        "backbone", "returned_layers", "network", "anchor_generator", "box_selector", "sliding_window",
        "box_coder_weights", "orientation"},
}
DETECTOR_ARCHITECTURE = "monai.apps.detection.networks.retinanet_detector.RetinaNetDetector"


def literal_value(value: Any, where: str) -> Any:
    """`value` if it holds only literals; refuses anything MONAI's config parser would evaluate."""
    if isinstance(value, str):
        if value.startswith(("$", "@", "%")):
            raise ModelBundleError(f"The bundle's {where} is an expression ({value[:40]!r}); only literal values "
                                   "are read, nothing is evaluated")
        return value
    if isinstance(value, list):
        return [literal_value(item, where) for item in value]
    if isinstance(value, dict):
        return {key: literal_value(item, f"{where}.{key}") for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise ModelBundleError(f"The bundle's {where} holds a value of an unknown kind")
