"""Train the demo lung-nodule model on synthetic phantoms (seeded, reproducible, resumable).

    python models/lung-nodule-demo/train.py --steps 2500 [--resume] [--device auto|cpu|cuda]

Fine-tuning on real lung anatomy (issue #19): --init-weights starts from the shipped detector,
--anatomy-cases adds phantoms with real lung anatomy (seeds 2000 on), --real-draws adds the
training patients' real scans of real_split.json, as they are (hard negatives mined in their
lungs; labelled tumours kept out of every patch) and with synthetic nodules inserted;
--checkpoint and --export-to keep it all apart from the shipped model. See MODEL_CARD.md.

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
ANATOMY_SEED_START = 2000  # lung-anatomy phantoms for fine-tuning (validation and evaluation seeds are apart)
REAL_TRAIN_SEED = 70000  # insertion seeds on the training patients (evaluation uses 90000 on)


def build_network():
    from monai.networks.nets import UNet

    return UNet(**ARCHITECTURE["args"])


def prepare_case(seed: int, matrix: int = 256, nodule_count: int | None = None,
                 spacing_mm: tuple[float, float, float] = SPACING_MM, anatomy: str = "simple",
                 ) -> tuple[np.ndarray, np.ndarray, list[dict], LungCrop, object]:
    """(image 0..1 as float16, nodule mask as uint8, nodules, lung crop, phantom volume) on the
    model grid, made the way the runner makes it. Half precision keeps 300 cases in about 1.5 GB
    at 1.5 mm (5 GB at 1.0 mm)."""
    phantom = generate_phantom(PhantomSpec.from_seed(seed, matrix=matrix, nodule_count=nodule_count,
                                                     anatomy=anatomy))
    image, mask, crop = prepare_volume(phantom.volume, phantom.nodule_mask, spacing_mm)
    return image, mask, phantom.nodules, crop, phantom.volume


def prepare_volume(volume, nodule_mask: np.ndarray, spacing_mm: tuple[float, float, float]
                   ) -> tuple[np.ndarray, np.ndarray, LungCrop]:
    """(image as float16, nodule mask as uint8, lung crop) on the model grid, as the runner makes it."""
    crop = lung_crop(volume)
    image = model_grid_image(volume, crop, spacing_mm, HU_WINDOW)[0, 0].numpy()
    mask = torch.from_numpy((nodule_mask[crop.box] > 0).astype(np.float32))[None, None]
    mask = torch.nn.functional.interpolate(mask, size=image.shape, mode="trilinear", align_corners=False)[0, 0].numpy()
    return image.astype(np.float16), (mask > 0.5).astype(np.uint8), crop


def prepare_real_cases(draws: int, spacing_mm: tuple[float, float, float], nodules_per_draw: int = 6
                       ) -> tuple[list[tuple], list[list[tuple[np.ndarray, np.ndarray]]]]:
    """The training side of real_split.json on the model grid: each series as it is (no nodule:
    what the model finds there is a false positive, away from the labelled lesions) and `draws`
    copies with synthetic nodules inserted. Returns the cases (as prepare_case's, without the
    volume) and, per case, the labelled lesions as (low, high) model-grid boxes no patch may touch."""
    from real_data import insert_nodules, lesion_boxes, load_split

    from workstation.dicom.load import load_volume
    from workstation.imaging.insertion_sites import LungMap

    cases, avoid = [], []
    for number, entry in enumerate(load_split()["train"]):
        if not entry.available:
            print(f"{entry.series}: not here, skipped", flush=True)
            continue
        volume = load_volume(entry.path)
        boxes = lesion_boxes(entry, volume)
        lungs = LungMap.from_volume(volume)
        variants = [(volume, [], np.zeros(volume.shape, dtype=np.uint8))]
        variants += [insert_nodules(volume, lungs, boxes, REAL_TRAIN_SEED + 100 * number + draw, nodules_per_draw)
                     for draw in range(draws)]
        for with_nodules, nodules, mask in variants:
            image, grid_mask, crop = prepare_volume(with_nodules, mask, spacing_mm)
            cases.append((image, grid_mask, nodules, crop, None))
            avoid.append([_grid_box(volume, crop, image.shape, low, high) for low, high in boxes])
        print(f"{entry.series}: {1 + draws} real case(s), {sum(len(v[1]) for v in variants)} inserted nodules",
              flush=True)
    return cases, avoid


def _grid_box(volume, crop, shape, low_mm, high_mm) -> tuple[np.ndarray, np.ndarray]:
    corners = np.array([volume.patient_to_voxel([x, y, z])[::-1] for x in (low_mm[0], high_mm[0])
                        for y in (low_mm[1], high_mm[1]) for z in (low_mm[2], high_mm[2])])
    grid = model_grid_index(corners, crop, shape)
    return np.floor(grid.min(axis=0)).astype(int), np.ceil(grid.max(axis=0)).astype(int)


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
                 avoid: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Half the patches hold a nodule (anywhere in the patch); a quarter are random, a quarter
    centre on dense tissue (vessels, heart, chest wall): the hard negatives. The nodule is drawn
    among the case's nodules with `weights` (given `nodules`), not by voxel: by voxel a 20 mm nodule is
    drawn 37 times as often as a 6 mm one, which starved the small ones (6-10 mm sensitivity 0.28).
    No patch touches an `avoid` box (a real scan's labelled tumour is neither nodule nor negative
    here: its mask is empty); the centre is drawn again up to 20 times."""
    half = np.array(PATCH) // 2
    for _ in range(20 if avoid else 1):
        centre = _patch_centre(image, mask, rng, hard, nodules, weights)
        if not avoid or not any(np.all(centre + half >= low) and np.all(centre - half <= high) for low, high in avoid):
            break
    patch_image = patch_at(image, centre, PATCH).astype(np.float32)
    patch_mask = patch_at(mask, centre, PATCH).astype(np.float32)
    for axis in (0, 1, 2):  # flips: left/right, anterior/posterior and head/feet are all plausible
        if rng.random() < 0.5:
            patch_image, patch_mask = np.flip(patch_image, axis), np.flip(patch_mask, axis)
    patch_image = patch_image * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
    patch_image = patch_image + rng.normal(0, rng.uniform(0, 0.03), patch_image.shape)
    return np.ascontiguousarray(patch_image, dtype=np.float32), np.ascontiguousarray(patch_mask)


def _patch_centre(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, hard: np.ndarray | None,
                  nodules: list[np.ndarray] | None, weights: np.ndarray | None) -> np.ndarray:
    """Where sample_patch centres its patch: a nodule, a mined false positive, dense tissue or anywhere."""
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
    return np.clip(centre, 0, np.array(image.shape) - 1)


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


def export_weights(network, spacing_mm: tuple[float, float, float], folder: Path = HERE) -> Path:
    """weights.safetensors, its sha256 and the spacing it was trained at into metadata.json (the
    bundle checks the hash on load; the runner resamples to the spacing). Into another `folder`,
    the bundle's metadata and second stage are copied first: a candidate bundle to evaluate with
    evaluate.py --bundle FOLDER, the shipped one untouched."""
    import shutil

    from safetensors.torch import save_file

    from workstation.files import sha256_file

    folder = Path(folder)
    if folder.resolve() != HERE:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("metadata.json", "MODEL_CARD.md", "fpr.safetensors"):
            if not (folder / name).exists():
                shutil.copy2(HERE / name, folder / name)
    path = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    meta_path = folder / "metadata.json"
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
    parser.add_argument("--lr", type=float, default=2e-3, help="base learning rate (cosine-decayed to a tenth)")
    parser.add_argument("--init-weights", type=Path, default=None, metavar="SAFETENSORS",
                        help="start from these detector weights (e.g. the shipped weights.safetensors) when not resuming")
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT, help="checkpoint file (json sidecar beside it)")
    parser.add_argument("--export-to", type=Path, default=HERE, help="bundle folder the final weights go to")
    parser.add_argument("--snapshot-prefix", default="snapshot", help="snapshot-STEP.safetensors file name prefix")
    parser.add_argument("--anatomy-cases", type=int, default=0,
                        help=f"phantoms with real lung anatomy (seeds from {ANATOMY_SEED_START}, 6 nodules each)")
    parser.add_argument("--real-draws", type=int, default=0,
                        help="real training series (real_split.json) each as it is plus this many copies with "
                             "inserted nodules; 0: no real data")
    parser.add_argument("--mix", type=float, nargs=3, default=None, metavar=("PHANTOM", "ANATOMY", "REAL"),
                        help="share of each batch from the plain phantoms, the anatomy phantoms and the real cases")
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
    groups = [list(range(len(cases)))]  # case indices of the plain phantoms, anatomy phantoms, real cases
    cases += [prepare_case(ANATOMY_SEED_START + index, args.matrix, 6, spacing, anatomy="lung")
              for index in range(args.anatomy_cases)]
    groups.append(list(range(len(groups[0]), len(cases))))
    avoid: list[list] = [[] for _ in cases]
    if args.real_draws:
        sys.path.insert(0, str(HERE))
        real_cases, real_avoid = prepare_real_cases(args.real_draws, spacing)
        cases += real_cases
        avoid += real_avoid
    groups.append(list(range(len(groups[0]) + len(groups[1]), len(cases))))
    per_nodule = [nodule_voxels(mask) for _, mask, *_ in cases]
    hard_flags = [hard_nodules(per_nodule[i], case[2], case[3], case[4], case[0].shape) if case[2] and case[4]
                  else [False] * len(per_nodule[i]) for i, case in enumerate(cases)] if args.hard_nodules_from else None
    print(f"prepared {len(cases)} cases ({', '.join(str(len(g)) for g in groups)}) in {time.time() - started:.0f}s",
          flush=True)
    # mined from the first --mine-cases plain and anatomy phantoms, and every real case
    mine_indices = groups[0][:args.mine_cases] + groups[1][:args.mine_cases] + groups[2]
    network = build_network().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    step = load_checkpoint(network, optimizer, args.checkpoint) if args.resume and args.checkpoint.exists() else 0
    if step == 0 and args.init_weights:
        from safetensors.torch import load_file

        network.load_state_dict(load_file(str(args.init_weights)))
        print(f"started from {args.init_weights}", flush=True)
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
            mined = mine_hard_negatives(network, [cases[i] for i in mine_indices], device)  # all cases: minutes
            hard = [np.zeros((0, 3), int)] * len(cases)
            half = np.array(PATCH) // 2
            for index, centres in zip(mine_indices, mined):  # a labelled tumour is no negative
                hard[index] = np.array([c for c in centres if not any(
                    np.all(c + half >= low) and np.all(c - half <= high) for low, high in avoid[index])]).reshape(-1, 3)
            print(f"step {step}: mined {sum(len(h) for h in mined)} false positives", flush=True)
        if args.mix:  # the plain recipe's stream stays as it was without --mix
            shares = np.array([m if g else 0.0 for m, g in zip(args.mix, groups)])
            chosen = rng.choice(3, size=args.batch, p=shares / shares.sum())
            picks = [groups[g][rng.integers(len(groups[g]))] for g in chosen]
        else:
            picks = rng.integers(len(cases), size=args.batch)
        uniform = bool(args.per_nodule_from) and step >= args.per_nodule_from
        small_first = bool(args.small_first_from) and step >= args.small_first_from
        hard_focus = hard_flags is not None and step >= args.hard_nodules_from
        images, masks = zip(*(sample_patch(*cases[i][:2], rng, hard[i] if hard and i < len(hard) else None,
                                           per_nodule[i] if uniform or small_first else None,
                                           nodule_weights(per_nodule[i], hard_flags[i] if hard_focus else None)
                                           if small_first else None, avoid[i]) for i in picks))
        x = torch.from_numpy(np.stack(images))[:, None].to(device)
        y = torch.from_numpy(np.stack(masks))[:, None].to(device)
        loss_function = batch_loss if args.batch_dice_from and step >= args.batch_dice_from else per_patch_loss
        if args.positive_weight_from and step >= args.positive_weight_from:
            loss_function = recall_loss
        loss = loss_function(network(x), y)
        optimise(optimizer, loss, args.lr, step, args.steps)
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f}s)", flush=True)
        if step % 250 == 0 or step == last_step:
            save_checkpoint(network, optimizer, step, args.checkpoint)
        if step % 1000 == 0:
            keep_snapshot(network, step, args.snapshot_prefix)
    network.eval()
    print(f"exported {export_weights(network.cpu(), spacing, args.export_to)}")


def keep_snapshot(network, step: int, prefix: str = "snapshot") -> None:
    """PREFIX-STEP.safetensors beside the checkpoint (git-ignored): a later step is not always
    better (step 20,000 was worse than 15,000), so validation picks among these."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()},
              str(HERE / f"{prefix}-{step}.safetensors"))


if __name__ == "__main__":
    main()
