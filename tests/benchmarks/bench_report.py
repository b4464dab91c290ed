"""Report speed (issue #6): a signed read with 10 accepted findings on a 512x512 chest phantom,
report with key images (3 per finding) written to PDF. Target: <= 1 s. Baseline measured in
the same run: the same 30 key images saved as PNG files with Pillow (the pictures alone)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from workstation.imaging.heatmap import blob_heatmap
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.inference.findings import Finding
from workstation.inference.runner import Analysis
from workstation.jobs import run_job
from workstation.reporting.key_images import finding_key_images
from workstation.reporting.study import study_report_job
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user

PASSWORD = "benchmark pass 1"


def main() -> list[tuple[str, float, float, str]]:
    phantom = generate_phantom(PhantomSpec.from_seed(5, matrix=512))
    volume = dataclasses.replace(phantom.volume, metadata=dataclasses.replace(phantom.volume.metadata,
                                                                             study_uid="1.2.826.0.1.3680043.8.498.7"))
    rng = np.random.default_rng(0)
    centres = [tuple(volume.voxel_to_patient((int(rng.integers(150, 360)), int(rng.integers(150, 360)),
                                               int(rng.integers(5, volume.shape[0] - 5))))) for _ in range(10)]
    heatmap = blob_heatmap(volume, centres, [8.0] * 10)
    findings = [Finding(n + 1, c, (0, 0, 0), 8.0, 268.0, 20.0, 0.9, "solid", "bench", "1")
                for n, c in enumerate(centres)]
    with tempfile.TemporaryDirectory() as folder:
        store = ReviewStore(Path(folder) / "review.db")
        admin = add_user(store, None, "admin", PASSWORD, "admin")
        session = ReviewSession(store, admin, volume.metadata.study_uid)
        analysis = Analysis("bench", "1", "0" * 64, "CPU", 0.3, 0.0, heatmap, findings, [], "benchmark")
        for finding_id in session.record_analysis(analysis):
            session.accept(finding_id)
        session.sign("benchmark", password=PASSWORD)
        start = time.perf_counter()
        result = run_job(study_report_job(store, volume, Path(folder) / "r.pdf", generated_by=admin.username))
        ours = time.perf_counter() - start
        size_kib = result.path.stat().st_size // 1024
        start = time.perf_counter()
        for n, centre in enumerate(centres):
            for m, picture in enumerate(finding_key_images(volume, heatmap, centre, 8.0, str(n), 0.3)):
                picture.image.save(Path(folder) / f"{n}-{m}.png")
        baseline = time.perf_counter() - start
    return [("Report, 10 findings with key images, signed (s)", ours, -1.0,
             f"{len(result.content.findings)} findings, {size_kib} KiB PDF"),
            ("Report / the same 30 key images saved as PNG (Pillow)", ours / baseline, float("nan"),
             f"PNG baseline {baseline:.2f} s")]


if __name__ == "__main__":
    for row in main():
        print(row)
