"""A candidate bundle from a training snapshot, to evaluate before anything ships:

    python models/lung-nodule-demo/candidate_bundle.py SNAPSHOT FOLDER [--fpr FPR.safetensors]
    python models/lung-nodule-demo/evaluate.py --real --bundle FOLDER
    python models/lung-nodule-demo/evaluate.py --cases 50 --bundle FOLDER

FOLDER gets this bundle's metadata.json and second stage (or --fpr's), the snapshot as its
weights.safetensors and their sha256s; the shipped bundle is not touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))


def make_candidate(snapshot: Path, folder: Path, fpr: Path | None = None) -> Path:
    from workstation.files import sha256_file

    folder.mkdir(parents=True, exist_ok=True)
    for name in ("metadata.json", "MODEL_CARD.md"):
        shutil.copy2(HERE / name, folder / name)
    shutil.copy2(fpr or HERE / "fpr.safetensors", folder / "fpr.safetensors")
    shutil.copy2(snapshot, folder / "weights.safetensors")
    meta = json.loads((folder / "metadata.json").read_text())
    meta["version"] = f"{meta['version']}+{snapshot.stem}"  # its reports must not pass for the shipped version's
    meta["weights"]["sha256"] = sha256_file(folder / "weights.safetensors")
    meta["false_positive_reduction"]["weights"]["sha256"] = sha256_file(folder / "fpr.safetensors")
    (folder / "metadata.json").write_text(json.dumps(meta, indent=1) + "\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("snapshot", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--fpr", type=Path, default=None)
    args = parser.parse_args()
    print(make_candidate(args.snapshot, args.folder, args.fpr))


if __name__ == "__main__":
    main()
