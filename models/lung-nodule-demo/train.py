"""Train the demo lung-nodule model on synthetic phantoms (seeded, reproducible, resumable).

    python models/lung-nodule-demo/train.py --steps 2500 [--resume] [--device auto|cpu|cuda]

Every phantom goes through the runner's own preprocessing (lung crop, resampling to the
model spacing, HU window), so training sees exactly what inference sees. Checkpoints are
safetensors files (model and Adam state as plain tensors plus a JSON sidecar): no pickle.
Training phantom seeds are 1000-1999; evaluation uses 10000 and up (disjoint by design).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from workstation.imaging.phantom import PhantomSpec, generate_phantom  # noqa: E402
from workstation.inference.preprocess import (  # noqa: E402
    CROP_MARGIN_MM, LungCrop, lung_crop, model_grid_image, model_grid_index, patch_at)

SPACING_MM = (1.5, 1.5, 1.5)  # to step 46,000; --spacing 1.0 after (see MODEL_CARD.md)
HU_WINDOW = (-1000.0, 400.0)
PATCH = (64, 64, 64)
TRAIN_SEED_START = 1000  # training seeds 1000-1999; validation 5000-5019; evaluation 10000 and up
ARCHITECTURE = {"class": "monai.networks.nets.UNet",
                "args": {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "channels": [8, 16, 32, 64],
                         "strides": [2, 2, 2], "num_res_units": 1, "norm": "batch"}}
# Batch norm, not MONAI's default instance norm: instance norm re-normalises every window
# (and the 1-channel layer before the output), which capped probabilities near 0.75 and made
# them depend on what else a window held. Measured on the first training run.
CHECKPOINT = HERE / "checkpoint.safetensors"  # its JSON sidecar: checkpoint.json


def build_network():
    from monai.networks.nets import UNet

    return UNet(**ARCHITECTURE["args"])


def prepare_case(seed: int, matrix: int = 256, nodule_count: int | None = None,
                 spacing_mm: tuple[float, float, float] = SPACING_MM,
                 ) -> tuple[np.ndarray, np.ndarray, list[dict], LungCrop, object]:
    """(image 0..1 as float16, nodule mask as uint8, nodules, lung crop, phantom volume) on the
    model grid, made the way the runner makes it. Half precision keeps 300 cases in about 1.5 GB
    at 1.5 mm (5 GB at 1.0 mm)."""
    phantom = generate_phantom(PhantomSpec.from_seed(seed, matrix=matrix, nodule_count=nodule_count))
    volume = phantom.volume
    crop = lung_crop(volume)
    image = model_grid_image(volume, crop, spacing_mm, HU_WINDOW)[0, 0].numpy()
    mask = torch.from_numpy((phantom.nodule_mask[crop.box] > 0).astype(np.float32))[None, None]
    mask = torch.nn.functional.interpolate(mask, size=image.shape, mode="trilinear", align_corners=False)[0, 0].numpy()
    return image.astype(np.float16), (mask > 0.5).astype(np.uint8), phantom.nodules, crop, volume


def mine_hard_negatives(network, cases: list, device: str) -> list[np.ndarray]:
    """Per case, the centres of the model's own false positives (probability > 0.5 away from any
    nodule): vessels mostly. Training on them is what teaches vessel from nodule."""
    from monai.inferers import sliding_window_inference
    from scipy import ndimage

    network.eval()
    mined = []
    with torch.inference_mode():
        for image, mask, *_ in cases:
            x = torch.from_numpy(image.astype(np.float32))[None, None].to(device)
            heat = torch.sigmoid(sliding_window_inference(x, PATCH, 4, network, overlap=0.25))[0, 0].cpu().numpy()
            labels, count = ndimage.label((heat > 0.5) & (ndimage.binary_dilation(mask > 0, iterations=3) == 0))
            centres = ndimage.center_of_mass(heat > 0.5, labels, range(1, count + 1)) if count else []
            mined.append(np.array([np.rint(c).astype(int) for c in centres]).reshape(-1, 3))
    network.train()
    return mined


def nodule_voxels(mask: np.ndarray) -> list[np.ndarray]:
    """The voxels of each nodule separately, so patches can pick a nodule first, then a voxel."""
    from scipy import ndimage

    labels, count = ndimage.label(mask > 0)
    return [np.argwhere(labels == index) for index in range(1, count + 1)]


def nodule_weights(nodules: list[np.ndarray], hard: list[bool] | None = None) -> np.ndarray:
    """Chance of drawing each nodule, inversely to its diameter, so a
    6 mm nodule comes up four times as often as a 24 mm one. Large nodules were already found
    (0.93-1.0); the misses were 6-10 mm ones the model gave exactly 0. `hard` nodules (small
    sub-solid or attached ones, the misses of the 35,000-step model) count three times."""
    weights = np.array([len(v) ** (-1 / 3) for v in nodules], dtype=float)
    if hard is not None:
        weights *= np.where(hard, 3.0, 1.0)
    return weights / weights.sum() if len(weights) else weights


def hard_nodules(components: list[np.ndarray], nodules: list[dict], crop, volume, shape) -> list[bool]:
    """Per mask component: is the nearest true nodule under 10 mm and sub-solid or attached to a
    vessel or the pleura?"""
    centres = np.array([model_grid_index(volume.patient_to_voxel(n["centre_mm"])[::-1], crop, shape) for n in nodules])
    flags = []
    for voxels in components:
        nodule = nodules[int(np.argmin(np.linalg.norm(centres - voxels.mean(axis=0), axis=1)))]
        flags.append(nodule["diameter_mm"] < 10 and (nodule["kind"] != "solid" or nodule["attached_to"] != "none"))
    return flags


def sample_patch(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, hard: np.ndarray | None = None,
                 nodules: list[np.ndarray] | None = None, weights: np.ndarray | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Half the patches hold a nodule (anywhere in the patch); a quarter are random, a quarter
    centre on dense tissue (vessels, heart, chest wall): the hard negatives. The nodule is drawn
    among the case's nodules with `weights` (given `nodules`), not by voxel: by voxel a 20 mm nodule is
    drawn 37 times as often as a 6 mm one, which starved the small ones (6-10 mm sensitivity 0.28)."""
    if nodules:  # integers() for the uniform draw keeps the 10,000-15,000 run reproducible
        positives = nodules[rng.choice(len(nodules), p=weights) if weights is not None else rng.integers(len(nodules))]
    else:
        positives = np.argwhere(mask > 0)
    draw = rng.random()
    if len(positives) and draw < 0.5:
        centre = positives[rng.integers(len(positives))] + rng.integers(-20, 21, 3)
    elif hard is not None and len(hard) and draw < 0.8:
        centre = hard[rng.integers(len(hard))] + rng.integers(-8, 9, 3)
    elif draw < 0.75:
        dense = image[::4, ::4, ::4] > 0.5  # above about -300 HU
        candidates = np.argwhere(dense) * 4
        centre = candidates[rng.integers(len(candidates))] if len(candidates) else np.zeros(3, int)
    else:
        centre = np.array([rng.integers(n) for n in image.shape])
    centre = np.clip(centre, 0, np.array(image.shape) - 1)
    patch_image = patch_at(image, centre, PATCH).astype(np.float32)
    patch_mask = patch_at(mask, centre, PATCH).astype(np.float32)
    for axis in (0, 1, 2):  # flips: left/right, anterior/posterior and head/feet are all plausible
        if rng.random() < 0.5:
            patch_image, patch_mask = np.flip(patch_image, axis), np.flip(patch_mask, axis)
    patch_image = patch_image * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
    patch_image = patch_image + rng.normal(0, rng.uniform(0, 0.03), patch_image.shape)
    return np.ascontiguousarray(patch_image, dtype=np.float32), np.ascontiguousarray(patch_mask)


class RecallLoss(torch.nn.Module):
    """Dice over the batch plus cross entropy in which nodule voxels weigh `positive_weight` times."""

    def __init__(self, positive_weight: float):
        from monai.losses import DiceLoss

        super().__init__()
        self.dice = DiceLoss(sigmoid=True, smooth_nr=1e-3, smooth_dr=1e-3, batch=True)
        self.cross_entropy = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(positive_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.cross_entropy(logits, target)


def optimise(optimizer, loss, base_lr: float, step: int, total_steps: int) -> None:
    """One optimiser step at a cosine-decayed rate (from base_lr to a tenth of it over total_steps)."""
    for group in optimizer.param_groups:
        group["lr"] = base_lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / total_steps)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def save_checkpoint(network, optimizer, step: int, path: Path = CHECKPOINT) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.contiguous() for k, v in network.state_dict().items()}
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"optimizer.{index}.{key}"] = torch.as_tensor(value).contiguous()
    save_file(tensors, str(path) + ".tmp")
    Path(str(path) + ".tmp").replace(path)
    path.with_suffix(".json").write_text(json.dumps({"step": step, "param_groups": state["param_groups"]}))


def load_checkpoint(network, optimizer, path: Path = CHECKPOINT) -> int:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    meta = json.loads(path.with_suffix(".json").read_text())
    state: dict = {"state": {}, "param_groups": meta["param_groups"]}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(state)
    return int(meta["step"])


def export_weights(network, spacing_mm: tuple[float, float, float]) -> Path:
    """weights.safetensors, its sha256 and the spacing it was trained at into metadata.json (the
    bundle checks the hash on load; the runner resamples to the spacing)."""
    from safetensors.torch import save_file

    from workstation.files import sha256_file

    path = HERE / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    meta_path = HERE / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["weights"]["sha256"] = sha256_file(path)
    meta["input"]["spacing_mm"] = list(spacing_mm)
    meta["input"]["preprocessing"] = (  # the card's words, kept true to the spacing
        f"lung bounding box (air inside the body, {CROP_MARGIN_MM:g} mm margin), trilinear resampling "
        f"to {spacing_mm[0]:.1f} mm, HU clipped to the window and scaled to 0..1")
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def main() -> None:
    from monai.losses import DiceCELoss

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--until", type=int, default=None, metavar="STEP",
                        help="stop at this step (the learning-rate schedule still runs to --steps): one run in parts")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--matrix", type=int, default=256, help="phantom matrix (resampled to --spacing anyway)")
    parser.add_argument("--spacing", type=float, default=SPACING_MM[0], metavar="MM",
                        help="isotropic model grid spacing (1.5 mm to step 46,000; 1.0 mm after)")
    parser.add_argument("--mine-cases", type=int, default=48,
                        help="cases the false positives are mined from (each costs a whole-case inference)")
    parser.add_argument("--cases", type=int, default=48, help="training phantoms (seeds from 1000)")
    parser.add_argument("--nodules-per-case", type=int, default=None,
                        help="nodules in each training phantom from case 48 on (default: the generator's 2-6)")
    parser.add_argument("--hard-negatives-from", type=int, default=0, metavar="STEP",
                        help="from this step on, a third of the patches centre on the model's own false positives")
    parser.add_argument("--per-nodule-from", type=int, default=0, metavar="STEP",
                        help="from this step on, positive patches draw a nodule uniformly (not by voxel)")
    parser.add_argument("--small-first-from", type=int, default=0, metavar="STEP",
                        help="from this step on, a nodule is drawn inversely to its diameter")
    parser.add_argument("--hard-nodules-from", type=int, default=0, metavar="STEP",
                        help="from this step on, small sub-solid or attached nodules are drawn three times as often")
    parser.add_argument("--batch-dice-from", type=int, default=0, metavar="STEP",
                        help="from this step on, Dice is taken over the whole batch, not per patch")
    parser.add_argument("--positive-weight-from", type=int, default=0, metavar="STEP",
                        help="from this step on, nodule voxels weigh --positive-weight times in the cross entropy")
    parser.add_argument("--positive-weight", type=float, default=4.0)
    args = parser.parse_args()
    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    started = time.time()
    # the first 48 cases are the original training set, unchanged whatever the options
    spacing = (args.spacing,) * 3
    cases = [prepare_case(TRAIN_SEED_START + index, args.matrix, args.nodules_per_case if index >= 48 else None,
                          spacing) for index in range(args.cases)]
    per_nodule = [nodule_voxels(mask) for _, mask, *_ in cases]
    hard_flags = [hard_nodules(per_nodule[i], case[2], case[3], case[4], case[0].shape) if case[2] else []
                  for i, case in enumerate(cases)] if args.hard_nodules_from else None
    print(f"prepared {len(cases)} phantoms in {time.time() - started:.0f}s", flush=True)
    network = build_network().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    step = load_checkpoint(network, optimizer) if args.resume and CHECKPOINT.exists() else 0
    # Per-patch Dice on a patch without a nodule is ~1 for any output at all: it taught the model
    # to answer exactly 0 wherever it was unsure, which is where the missed small nodules were.
    per_patch_loss = DiceCELoss(sigmoid=True, smooth_nr=1e-3, smooth_dr=1e-3)
    batch_loss = DiceCELoss(sigmoid=True, smooth_nr=1e-3, smooth_dr=1e-3, batch=True)
    # The detector only proposes candidates now (the second stage judges them), so from
    # --positive-weight-from on it is pushed towards recall: a missed nodule costs more than a vessel.
    recall_loss = RecallLoss(args.positive_weight).to(device)
    rng = np.random.default_rng([7, step])  # resuming continues a reproducible stream
    network.train()
    hard: list[np.ndarray] | None = None
    last_step = min(args.steps, args.until or args.steps)
    while step < last_step:
        if args.hard_negatives_from and step >= args.hard_negatives_from and (hard is None or step % 1000 == 0):
            hard = mine_hard_negatives(network, cases[:args.mine_cases], device)  # mining all cases costs minutes
            print(f"step {step}: mined {sum(len(h) for h in hard)} false positives", flush=True)
        picks = rng.integers(len(cases), size=args.batch)
        uniform = bool(args.per_nodule_from) and step >= args.per_nodule_from
        small_first = bool(args.small_first_from) and step >= args.small_first_from
        hard_focus = hard_flags is not None and step >= args.hard_nodules_from
        images, masks = zip(*(sample_patch(*cases[i][:2], rng, hard[i] if hard and i < len(hard) else None,
                                           per_nodule[i] if uniform or small_first else None,
                                           nodule_weights(per_nodule[i], hard_flags[i] if hard_focus else None)
                                           if small_first else None) for i in picks))
        x = torch.from_numpy(np.stack(images))[:, None].to(device)
        y = torch.from_numpy(np.stack(masks))[:, None].to(device)
        loss_function = batch_loss if args.batch_dice_from and step >= args.batch_dice_from else per_patch_loss
        if args.positive_weight_from and step >= args.positive_weight_from:
            loss_function = recall_loss
        loss = loss_function(network(x), y)
        optimise(optimizer, loss, 2e-3, step, args.steps)
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f}s)", flush=True)
        if step % 250 == 0 or step == last_step:
            save_checkpoint(network, optimizer, step)
        if step % 1000 == 0:
            keep_snapshot(network, step)
    network.eval()
    print(f"exported {export_weights(network.cpu(), spacing)}")


def keep_snapshot(network, step: int) -> None:
    """weights-STEP.safetensors beside the checkpoint (git-ignored): a later step is not always
    better (step 20,000 was worse than 15,000), so validation picks among these."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()},
              str(HERE / f"snapshot-{step}.safetensors"))


if __name__ == "__main__":
    main()
