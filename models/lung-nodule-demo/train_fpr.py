"""Train the second stage (false-positive reduction) of the demo model on synthetic phantoms.

    python models/lung-nodule-demo/train_fpr.py --steps 1500 [--resume] [--cases 150]

The detector (weights.safetensors, as the bundle ships it) runs on the training phantoms the
way the runner runs it, in one pass (no test-time flips); every candidate becomes a sample,
labelled nodule when its centre lies within a nodule's radius (as the evaluation counts it), and
every true nodule centre is added as a positive too. A MONAI Classifier learns from 32^3
patches (32 mm at the detector's 1.0 mm) around them, with flips and a voxel or two of jitter.
Balanced batches; seeded; resumable from fpr-checkpoint.safetensors; writes fpr.safetensors and
its sha256 into metadata.json.

Fine-tuning for real CT (issue #19): --bundle takes the detector from a candidate bundle folder,
--anatomy-cases and --real-draws add candidates from lung-anatomy phantoms and from the training
patients' real scans (as they are, and with inserted nodules; candidates on labelled tumours are
left out), --init-weights starts from the shipped fpr.safetensors, --export-to writes into the
candidate folder, not the shipped bundle.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from evaluate import match  # noqa: E402
from train import (ANATOMY_SEED_START, TRAIN_SEED_START, load_checkpoint, optimise, prepare_case,  # noqa: E402
                   prepare_volume, save_checkpoint)

from workstation.files import sha256_file  # noqa: E402
from workstation.inference.bundle import FalsePositiveReduction, ModelBundle  # noqa: E402
from workstation.inference.fp_reduction import candidate_patches  # noqa: E402
from workstation.inference.preprocess import model_grid_index, patch_at  # noqa: E402
from workstation.inference.runner import run_inference_job  # noqa: E402
from workstation.jobs import run_job  # noqa: E402

PATCH = (32, 32, 32)
STORED_PATCH = (40, 40, 40)  # room for the training jitter
CANDIDATE_THRESHOLD = 0.05
ARCHITECTURE = {"class": "monai.networks.nets.Classifier",
                "args": {"in_shape": [1, *PATCH], "classes": 1, "channels": [16, 32, 64], "strides": [2, 2, 2],
                         "num_res_units": 1, "norm": "batch"}}
CHECKPOINT = HERE / "fpr-checkpoint.safetensors"
STAGE = {"architecture": ARCHITECTURE, "weights": {"file": "fpr.safetensors", "sha256": ""},
         "patch_size": list(PATCH), "candidate_threshold": CANDIDATE_THRESHOLD}


def build_network():
    from monai.networks.nets import Classifier

    return Classifier(**ARCHITECTURE["args"])


def collect_samples(cases: int, matrix: int, nodules_per_case: int | None, bundle: Path = HERE,
                    anatomy_cases: int = 0, real_draws: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(patches (n, 1, 40, 40, 40) float16 with room for jitter, labels (n,)) from the detector's
    candidates on training phantoms plus the true nodule centres (and on lung-anatomy phantoms
    and real training scans when asked)."""
    # One pass, without the bundle's test-time flips: the flips remove most false positives,
    # which left the classifier a few hundred negatives to learn from; the single pass's
    # candidates hold those the flips keep and harder ones besides.
    detector = dataclasses.replace(ModelBundle.from_folder(bundle), fp_reduction=None, test_time_flips=((),),
                                   large_lesion_pass=None)
    stage = FalsePositiveReduction(ARCHITECTURE["class"], ARCHITECTURE["args"], "", "", STORED_PATCH,
                                   CANDIDATE_THRESHOLD)  # only its patch size is used here
    patches, labels = [], []
    started = time.time()
    sources = [(TRAIN_SEED_START + index, nodules_per_case if index >= 48 else None, "simple")
                for index in range(cases)]
    sources += [(ANATOMY_SEED_START + index, 6, "lung") for index in range(anatomy_cases)]
    for index, (seed, count, anatomy) in enumerate(sources):
        image, _mask, nodules, crop, volume = prepare_case(seed, matrix, count, detector.spacing_mm, anatomy)
        analysis = run_job(run_inference_job(volume, detector, threshold=CANDIDATE_THRESHOLD))
        hits = match([f.to_dict() for f in analysis.findings], nodules)
        by_probability = sorted(analysis.findings, key=lambda f: -f.probability)
        if by_probability:
            patches.append(candidate_patches(image.astype(np.float32), crop, by_probability, stage))
            labels += [0.0 if hit is None else 1.0 for _p, hit in hits]
        for nodule in nodules:
            centre = model_grid_index(volume.patient_to_voxel(nodule["centre_mm"])[::-1], crop, image.shape)
            patches.append(patch_at(image.astype(np.float32), centre, STORED_PATCH)[None, None])
            labels.append(1.0)
        if index % 10 == 0:
            print(f"case {index}: {len(labels)} samples, {int(sum(labels))} positive ({time.time() - started:.0f}s)",
                  flush=True)
    if real_draws:
        real_patches, real_labels = _real_samples(detector, stage, real_draws)
        patches += real_patches
        labels += real_labels
        print(f"real: {len(real_labels)} samples, {int(sum(real_labels))} positive ({time.time() - started:.0f}s)",
              flush=True)
    return np.concatenate(patches).astype(np.float16), np.array(labels, dtype=np.float32)


def _real_samples(detector, stage, draws: int) -> tuple[list[np.ndarray], list[float]]:
    """Candidates on the training side of real_split.json (each scan as it is and `draws` copies
    with inserted nodules, the detector's seeds), none on or near a labelled tumour, plus the
    inserted nodules' centres as positives."""
    from real_data import insert_nodules, lesion_boxes, load_split
    from train import REAL_TRAIN_SEED

    from workstation.dicom.load import load_volume
    from workstation.imaging.insertion_sites import LungMap, inside_box_mm

    patches, labels = [], []
    for number, entry in enumerate(load_split()["train"]):
        if not entry.available:
            continue
        volume = load_volume(entry.path)
        boxes = lesion_boxes(entry, volume)
        lungs = LungMap.from_volume(volume)
        variants = [(volume, [])] + [insert_nodules(volume, lungs, boxes, REAL_TRAIN_SEED + 100 * number + draw, 6)[:2]
                                     for draw in range(draws)]
        for with_nodules, nodules in variants:
            image, _mask, crop = prepare_volume(with_nodules, np.zeros(with_nodules.shape, np.uint8),
                                                detector.spacing_mm)
            analysis = run_job(run_inference_job(with_nodules, detector, threshold=CANDIDATE_THRESHOLD))
            kept = [f for f in sorted(analysis.findings, key=lambda f: -f.probability)
                    if not inside_box_mm(np.array(f.center_mm), boxes, 10.0)]
            if kept:
                patches.append(candidate_patches(image.astype(np.float32), crop, kept, stage))
                labels += [0.0 if hit is None else 1.0 for _p, hit in match([f.to_dict() for f in kept], nodules)]
            for nodule in nodules:
                centre = model_grid_index(with_nodules.patient_to_voxel(nodule["centre_mm"])[::-1], crop, image.shape)
                patches.append(patch_at(image.astype(np.float32), centre, STORED_PATCH)[None, None])
                labels.append(1.0)
    return patches, labels


def augmented_batch(patches: np.ndarray, labels: np.ndarray, rng: np.random.Generator, size: int):
    """Balanced: half positives, half negatives; random 32^3 crop of the 40^3 store (jitter of up
    to 4 voxels), random flips, intensity and noise like the detector's training."""
    positives, negatives = np.nonzero(labels > 0.5)[0], np.nonzero(labels < 0.5)[0]
    picks = np.concatenate([rng.choice(positives, size // 2), rng.choice(negatives, size - size // 2)])
    out = np.empty((size, 1, *PATCH), dtype=np.float32)
    for row, index in enumerate(picks):
        offset = rng.integers(2, 7, 3)  # centre jitter of -2..+2 voxels
        block = patches[index, 0, offset[0]:offset[0] + 32, offset[1]:offset[1] + 32, offset[2]:offset[2] + 32]
        block = block.astype(np.float32)
        for axis in (0, 1, 2):
            if rng.random() < 0.5:
                block = np.flip(block, axis)
        block = block * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05)
        out[row, 0] = block + rng.normal(0, rng.uniform(0, 0.03), block.shape)
    return torch.from_numpy(out), torch.from_numpy(labels[picks][:, None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--nodules-per-case", type=int, default=6)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bundle", type=Path, default=HERE, help="bundle folder whose detector makes the candidates")
    parser.add_argument("--anatomy-cases", type=int, default=0, help="lung-anatomy phantoms (seeds from 2000)")
    parser.add_argument("--real-draws", type=int, default=0, help="real training scans, plus this many inserted copies")
    parser.add_argument("--init-weights", type=Path, default=None, help="start from these classifier weights")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    parser.add_argument("--export-to", type=Path, default=HERE, help="bundle folder fpr.safetensors goes to")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    patches, labels = collect_samples(args.cases, args.matrix, args.nodules_per_case, args.bundle,
                                      args.anatomy_cases, args.real_draws)
    print(f"{len(labels)} samples, {int(labels.sum())} positive", flush=True)
    network = build_network()
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr)
    step = load_checkpoint(network, optimizer, args.checkpoint) if args.resume and args.checkpoint.exists() else 0
    if step == 0 and args.init_weights:
        from safetensors.torch import load_file

        network.load_state_dict(load_file(str(args.init_weights)))
    rng = np.random.default_rng([11, step])
    loss_function = torch.nn.BCEWithLogitsLoss()
    started = time.time()
    network.train()
    while step < args.steps:
        x, y = augmented_batch(patches, labels, rng, args.batch)
        loss = loss_function(network(x), y)
        optimise(optimizer, loss, args.lr, step, args.steps)
        step += 1
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.4f} ({time.time() - started:.0f}s)", flush=True)
        if step % 250 == 0 or step == args.steps:
            save_checkpoint(network, optimizer, step, args.checkpoint)
    network.eval()
    export(network, args.export_to)


def export(network, folder: Path = HERE) -> None:
    """fpr.safetensors, and the stage with its sha256 into the folder's metadata.json."""
    from safetensors.torch import save_file

    path = Path(folder) / "fpr.safetensors"
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(path))
    meta_path = Path(folder) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["false_positive_reduction"] = {**STAGE, "weights": {"file": path.name, "sha256": sha256_file(path)}}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"exported {path}")


if __name__ == "__main__":
    main()
