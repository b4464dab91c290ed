"""The `workstation` commands that run the AI: analyze, models, the headless demo, demo-case."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from workstation.cli.common import (acting_user, exporter, load_library_series, load_library_study, log,
                                    review_store, run_with_progress, write_draft_report)
from workstation.config import data_home
from workstation.demo import DEMO_SEED, demo_folder, ensure_demo_case
from workstation.errors import WorkstationError
from workstation.privacy import opaque_key


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="generate (once), import and analyse the bundled demo case headlessly")
    demo.add_argument("--out", type=Path, help="folder for the outputs (default: DATA/demo-output)")
    demo.add_argument("--as", dest="actor", help="who runs it (needed once accounts exist; the run is recorded)")
    demo.set_defaults(run=cmd_demo)

    analyze = commands.add_parser("analyze", help="run a model on a library study (recorded) or a path (not recorded "
                                  "unless --import) and list its findings")
    analyze.add_argument("target", help="a study from 'workstation list', or a file, folder, .zip or DICOMDIR")
    analyze.add_argument("--import", dest="import_first", action="store_true",
                         help="import a path into the library first, so that the run is recorded")
    analyze.add_argument("--model", default="lung-nodule-demo")
    analyze.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    analyze.add_argument("--threshold", type=float, help="heatmap threshold (default: the model's)")
    analyze.add_argument("--json", type=Path, metavar="OUT", help="write the analysis as JSON")
    analyze.add_argument("--report", type=Path, metavar="FILE.pdf", help="also write a draft PDF report")
    analyze.add_argument("--as", dest="actor", help="who runs it (needed once accounts exist; asked for a password)")
    analyze.set_defaults(run=cmd_analyze)

    models = commands.add_parser("models", help="list model bundles and whether they can run here")
    models.set_defaults(run=cmd_models)
    importing = models.add_subparsers(metavar="ACTION").add_parser(
        "import", help="install a MONAI bundle (folder or zip; admin): its config is read, never run")
    importing.add_argument("source", type=Path)
    importing.add_argument("--as", dest="actor", help="the administrator installing it")
    importing.set_defaults(run=cmd_models_import)

    batch = commands.add_parser("batch", help="run the AI over many library studies on Dask (recorded as Run AI)")
    batch.add_argument("studies", nargs="*", help="studies from 'workstation list' (default: with --unread)")
    batch.add_argument("--unread", action="store_true", help="every study the AI has not run on yet")
    batch.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    batch.add_argument("--scheduler", help="a Dask scheduler address (tcp://HOST:8786) instead of local workers")
    batch.add_argument("--model", default=None)
    batch.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    batch.add_argument("--as", dest="actor", help="who runs it (needed once accounts exist)")
    batch.set_defaults(run=cmd_batch)

    evaluate = commands.add_parser("evaluate", help="measure a model on your own labelled cases: FROC by subgroup")
    evaluate.add_argument("dataset", type=Path, help="a folder of CT series")
    evaluate.add_argument("--labels", type=Path, help="annotations.csv (LUNA16 columns) or a folder of LIDC XML "
                                                      "(default: XML files inside DATASET)")
    evaluate.add_argument("--model", default=None, help="model name (default: the demo model)")
    evaluate.add_argument("--min-agreement", type=int, default=1, help="readers who must have marked a nodule")
    evaluate.add_argument("--bootstrap", type=int, default=1000)
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    evaluate.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    evaluate.add_argument("--scheduler", help="a Dask scheduler address (tcp://HOST:8786) instead of local workers")
    evaluate.add_argument("--out", type=Path, required=True, metavar="DIR")
    evaluate.set_defaults(run=cmd_evaluate)

    case = commands.add_parser("demo-case", help="write a synthetic chest CT phantom series and its ground truth")
    case.add_argument("out", type=Path)
    case.add_argument("--seed", type=int, default=DEMO_SEED)
    case.add_argument("--matrix", type=int, default=512, help="rows and columns (default 512)")
    case.add_argument("--slice-thickness", type=float, help="mm (default: drawn from the seed, 1-2.5)")
    case.add_argument("--syntax", choices=["explicit", "rle", "jpegls", "j2k"], default="explicit")
    case.add_argument("--follow-up-of", type=int, metavar="SEED",
                      help="make a follow-up of the case of this seed (same patient; --seed draws the changes)")
    case.add_argument("--months", type=float, default=12.0, help="follow-up interval (default 12)")
    case.add_argument("--diaphragm", type=float, default=0.0, metavar="MM",
                      help="follow-up only: also move the lung bases up by MM (non-linear breathing change)")
    case.set_defaults(run=cmd_demo_case)


def cmd_demo_default(args: argparse.Namespace) -> int:
    # `workstation` with no command; ui/launcher.py opens the desktop viewer instead when a display is present.
    return cmd_demo(argparse.Namespace(out=None, actor=None))


def cmd_demo(args: argparse.Namespace) -> int:
    """The headless pipeline on the demo case: generate (once), import, load, run the AI and record
    the run, write outputs."""
    from workstation.imaging.snapshot import save_overview_png
    from workstation.inference.registry import find_model
    from workstation.library import StudyLibrary
    from workstation.review.analyses import run_and_record_job

    home = data_home()
    store = review_store()
    user = acting_user(store, args.actor, "run_ai")
    if not (demo_folder(home) / "truth.json").is_file():
        print(f"Generating the demo case (seed {DEMO_SEED}) in {demo_folder(home)} ...", file=sys.stderr)
    series_folder = ensure_demo_case(home)
    library = StudyLibrary(home)
    report = run_with_progress(library.import_job([series_folder]))
    study = library.find_study(report.studies[0])
    volume = load_library_series(library, library.series(study["key"])[0])
    bundle = find_model()
    analysis = run_with_progress(run_and_record_job(store, user, volume, bundle)).analysis  # type: ignore[attr-defined]
    out = args.out or home / "demo-output"
    out.mkdir(parents=True, exist_ok=True)
    truth = json.loads((series_folder.parent / "truth.json").read_text(encoding="utf-8"))
    nodule = max(truth["nodules"], key=lambda n: n["diameter_mm"])
    centre = tuple(int(round(v)) for v in volume.patient_to_voxel(nodule["centre_mm"]))
    picture = save_overview_png(volume, out / "overview.png", centre_ijk=centre,  # type: ignore[arg-type]
                                heatmap=analysis.heatmap, threshold=analysis.threshold)
    (out / "info.json").write_text(json.dumps(volume.summary(), indent=1))
    (out / "analysis.json").write_text(json.dumps(analysis.to_dict(), indent=1))
    print(f"Demo study '{study['patient_name']}' is in the library ({home}).")
    print(f"Volume {volume.shape} voxels, spacing {tuple(round(v, 3) for v in volume.spacing_mm)} mm; "
          f"{len(truth['nodules'])} ground-truth nodules.")
    print(f"AI: {bundle.name} {bundle.version} on {analysis.device} found {len(analysis.findings)} finding(s) in "
          f"{analysis.runtime_s:.1f} s. {bundle.notice}")
    print(f"Outputs: {picture} (axial/coronal/sagittal through nodule {nodule['id']}, {nodule['diameter_mm']} mm "
          f"{nodule['kind']}, AI heatmap in red), {out / 'analysis.json'} and {out / 'info.json'}")
    write_draft_report(store, analysis, volume, out / "report-draft.pdf", user.username)
    return 0


def cmd_demo_case(args: argparse.Namespace) -> int:
    from workstation.imaging.phantom import write_demo_case

    if args.follow_up_of is not None:
        from workstation.imaging.follow_up import write_follow_up_case

        if not 0 < args.months <= 120:
            raise WorkstationError("--months must be between 0 and 120")
        if not 0 <= args.diaphragm <= 40:
            raise WorkstationError("--diaphragm must be between 0 and 40 mm")
        series, truth_path = write_follow_up_case(args.out, args.follow_up_of, args.months, args.seed,
                                                  matrix=args.matrix, slice_thickness_mm=args.slice_thickness,
                                                  diaphragm_mm=args.diaphragm)
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        print(f"Wrote a follow-up of case {args.follow_up_of}, {args.months:g} months later, to {series}: "
              f"{len(truth['matches'])} matched nodule(s) ({sum(m['status'] == 'growing' for m in truth['matches'])} "
              f"growing), {len(truth['new'])} new, {len(truth['resolved'])} resolved; truth in {truth_path}")
        return 0
    series, truth = write_demo_case(args.out, seed=args.seed, matrix=args.matrix, syntax=args.syntax,
                                    slice_thickness_mm=args.slice_thickness)
    count = len(json.loads(truth.read_text(encoding="utf-8"))["nodules"])
    print(f"Wrote the phantom series to {series} and its ground truth ({count} nodules) to {truth}")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """A library study's run is recorded (who, model, findings, heatmap, audit row) as the viewer's
    Run AI records it; a path outside the library is analysed without a record unless --import."""
    from workstation.inference.registry import find_model
    from workstation.review.analyses import run_and_record_job

    bundle = find_model(args.model)
    path = Path(args.target)
    store = review_store()
    analysis_id = None
    if path.exists() and not args.import_first:
        who = exporter(store, args.actor) if args.report else ""
        volume, analysis = _analyse_unrecorded(path, bundle, args)
        _print_analysis(bundle, analysis)
        print(f"NOT RECORDED: {path} is not in the library, so this run is in no study's record "
              "(--import imports it first and records the run)")
    else:
        user = acting_user(store, args.actor, "run_ai")
        if args.report:
            user.require("export")  # refused now rather than after the run
        who = user.username
        volume = load_library_study(_imported_study(path) if path.exists() else args.target)
        run = run_with_progress(run_and_record_job(store, user, volume, bundle, args.device, args.threshold))
        analysis, analysis_id = run.analysis, run.analysis_id  # type: ignore[attr-defined]
        _print_analysis(bundle, analysis)
        _print_recorded(run, who)
    log.info("analyze: series %s, %s %s, %d finding(s)%s", opaque_key(volume.metadata.series_uid), bundle.name,
             bundle.version, len(analysis.findings), "" if analysis_id else " (not recorded)")
    if args.json:
        payload = {"study_uid": volume.metadata.study_uid, "series_uid": volume.metadata.series_uid,
                   "analysis_id": analysis_id, **analysis.to_dict()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"Wrote {args.json}")
    if args.report:
        write_draft_report(store, analysis, volume, args.report, who)
    return 0


def _analyse_unrecorded(path: Path, bundle, args: argparse.Namespace):
    from workstation.dicom.load import load_largest_series_job
    from workstation.inference.runner import run_inference_job

    volume = run_with_progress(load_largest_series_job([path]))
    return volume, run_with_progress(run_inference_job(volume, bundle, args.device, args.threshold))


def _imported_study(path: Path) -> str:
    from workstation.library import StudyLibrary

    studies = run_with_progress(StudyLibrary(data_home()).import_job([path])).studies  # type: ignore[attr-defined]
    if len(studies) != 1:
        raise WorkstationError(f"{path} held {len(studies)} studies, now in the library; analyse each by its "
                               "number from 'workstation list'")
    return studies[0]


def _print_recorded(run, who: str) -> None:
    if run.repeats is not None:
        print(f"Recorded as analysis {run.analysis_id} by {who}; the same model already ran on this series "
              f"(analysis {run.repeats}), whose findings stand for review")
    else:
        print(f"Recorded as analysis {run.analysis_id} by {who}: {len(run.finding_ids)} finding(s) to review")


def _print_analysis(bundle, analysis) -> None:
    print(f"{bundle.name} {bundle.version} (sha256 {bundle.weights_sha256[:12]}) on {analysis.device}, "
          f"threshold {analysis.threshold:g}, {analysis.runtime_s:.1f} s")
    if bundle.notice:
        print(f"NOTE: {bundle.notice}")
    for reason in analysis.scope_warnings:
        print(f"OUTSIDE VALIDATED SCOPE: {reason}")
    for note in analysis.notes:
        print(f"note: {note}")
    if not analysis.findings:
        print("No findings above the threshold.")
    for f in analysis.findings:
        x, y, z = f.center_mm
        print(f"{f.id:3d}  p={f.probability:.2f}  {f.type:<12} {f.diameter_mm:5.1f} mm  {f.volume_mm3:8.0f} mm3  "
              f"{f.mean_hu:6.0f} HU  at ({x:.1f}, {y:.1f}, {z:.1f}) mm")


def cmd_batch(args: argparse.Namespace) -> int:
    from workstation.batch import batch_analyze_job, unread_studies
    from workstation.inference.registry import DEFAULT_MODEL, find_model
    from workstation.library import StudyLibrary

    store = review_store()
    user = acting_user(store, args.actor, "run_ai")
    library = StudyLibrary(data_home())
    if not 1 <= args.workers <= 256:
        raise WorkstationError("--workers must be between 1 and 256")
    studies = [library.find_study(reference) for reference in args.studies]
    if args.unread:
        studies += [s for s in unread_studies(store, library) if s not in studies]
    if not studies:
        raise WorkstationError("No studies to analyse: name them, or pass --unread for every study not analysed yet")
    folders = {}
    for study in studies:
        series = max(library.series(study["key"]), key=lambda row: row["slices"])
        folders[study["study_uid"]] = library.series_folder(series)
    bundle = find_model(args.model or DEFAULT_MODEL)
    report = run_with_progress(batch_analyze_job(store, user, folders, bundle, workers=args.workers,
                                                 scheduler=args.scheduler, device=args.device))
    print(f"Analysed {len(report.recorded)} of {len(folders) - len(report.skipped)} studies with {bundle.name} "
          f"{bundle.version}: {report.findings} candidate finding(s) recorded, waiting for a reader.")
    if report.skipped:
        print(f"  {len(report.skipped)} already analysed with this model (the same weights): skipped, not redone")
    for uid, reason in report.failed.items():
        print(f"  failed: study {uid[:24]}...: {reason}")
    return 0 if not report.failed else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    from workstation.inference.registry import DEFAULT_MODEL, find_model
    from workstation.validation.evaluation_report import write_evaluation
    from workstation.validation.site_evaluation import evaluate_dataset_job

    if not 1 <= args.min_agreement <= 12 or not 10 <= args.bootstrap <= 100_000:
        raise WorkstationError("--min-agreement must be 1-12 and --bootstrap 10-100000")
    bundle = find_model(args.model or DEFAULT_MODEL)
    report = run_with_progress(evaluate_dataset_job(args.dataset, bundle, labels=args.labels,
                                                    min_agreement=args.min_agreement, bootstrap=args.bootstrap,
                                                    device=args.device, workers=args.workers,
                                                    scheduler=args.scheduler))
    paths = write_evaluation(report, args.out)
    overall = report["overall"]
    low, high = overall["interval_95"]["1.0"]
    print(f"{bundle.name} {bundle.version} on {report['measured_on']}: sensitivity {overall['sensitivity']['1.0']:.2f} "
          f"at 1 false positive per scan (95% interval {low:.2f}-{high:.2f}), CPM {overall['cpm']:.2f}; "
          f"{overall['nodules']} nodule(s).")
    small = [f"{group}={value}" for group, values in report["subgroups"].items()
             for value, result in values.items() if result.get("too_small")]
    if small:
        print(f"Too small to say anything: {', '.join(small)}.")
    print("Wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    from workstation.files import sha256_file
    from workstation.inference.monai_import import import_monai_bundle
    from workstation.review import audit

    store = review_store()
    who = acting_user(store, args.actor, "administer").username
    source = args.source
    if not source.exists():
        raise WorkstationError(f"{source} does not exist")
    bundle = import_monai_bundle(source, data_home() / "models", imported_by=who)
    with store.transaction() as connection:
        audit.append(connection, who, "model_imported", object_id=bundle.name, new_value={
            "name": bundle.name, "version": bundle.version, "architecture": bundle.architecture,
            "weights_sha256": bundle.weights_sha256, "source_sha256": sha256_file(source) if source.is_file() else None})
    print(f"Installed {bundle.name} {bundle.version} ({bundle.architecture.rsplit('.', 1)[-1]}) in {bundle.folder}. "
          "No accuracy figure is claimed for it: measure it on your own labelled cases first.")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from workstation.inference.registry import list_models

    entries = list_models()
    if not entries:
        print("No model bundles found.")
    for entry in entries:
        if entry.bundle:
            print(f"{entry.bundle.name} {entry.bundle.version}: available ({entry.folder})")
        else:
            print(f"{entry.folder.name}: NOT usable - {entry.reason}")
    return 0
