"""The `workstation` command. Errors reach the user as one sentence; tracebacks go to the log."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from workstation import __version__
from workstation.config import data_home
from workstation.demo import DEMO_SEED, demo_folder, ensure_demo_case
from workstation.errors import WorkstationError
from workstation.jobs import Job, Progress, run_job

log = logging.getLogger("workstation")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    log_file = setup_logging()
    command: Callable[[argparse.Namespace], int] = getattr(args, "run", cmd_default)
    try:
        return command(args)
    except WorkstationError as exc:
        log.error("command failed: %s", exc, exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except Exception:  # the last line of defence: the user gets a sentence, the log gets the traceback
        log.exception("unexpected error")
        print(f"error: an unexpected internal error happened; details are in {log_file}", file=sys.stderr)
        return 3


class _PrintDataFolder(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(data_home())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workstation", description="Offline CT review station with local AI.")
    parser.add_argument("--version", action="version", version=f"workstation {__version__}")
    parser.add_argument("--data-folder", action=_PrintDataFolder, nargs=0,
                        help="print the data folder (studies, reads, audit trail, logs) and exit")
    commands = parser.add_subparsers(metavar="COMMAND")

    gui = commands.add_parser("gui", help="open the desktop viewer (the default when a display is present)")
    gui.set_defaults(run=cmd_gui)
    opener = commands.add_parser("open", help="open the desktop viewer on a path or library study")
    opener.add_argument("target")
    opener.set_defaults(run=cmd_gui)

    demo = commands.add_parser("demo", help="generate (once), import and load the bundled demo case headlessly")
    demo.add_argument("--out", type=Path, help="folder for the outputs (default: DATA/demo-output)")
    demo.set_defaults(run=cmd_demo)

    imp = commands.add_parser("import", help="copy studies into the local library")
    imp.add_argument("paths", nargs="+", type=Path)
    imp.set_defaults(run=cmd_import)

    lst = commands.add_parser("list", help="list the studies in the local library")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(run=cmd_list)

    info = commands.add_parser("info", help="describe the CT series in a path or a library study")
    info.add_argument("target", help="a file, folder, .zip or DICOMDIR, or a study from 'workstation list'")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=cmd_info)

    analyze = commands.add_parser("analyze", help="run a model on a path or library study and list its findings")
    analyze.add_argument("target", help="a file, folder, .zip or DICOMDIR, or a study from 'workstation list'")
    analyze.add_argument("--model", default="lung-nodule-demo")
    analyze.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    analyze.add_argument("--threshold", type=float, help="heatmap threshold (default: the model's)")
    analyze.add_argument("--json", type=Path, metavar="OUT", help="write the analysis as JSON")
    analyze.add_argument("--report", type=Path, metavar="FILE.pdf", help="also write a draft PDF report")
    analyze.add_argument("--as", dest="actor", help="who makes the report (default: the OS account)")
    analyze.set_defaults(run=cmd_analyze)

    models = commands.add_parser("models", help="list model bundles and whether they can run here")
    models.set_defaults(run=cmd_models)

    audit_parser = commands.add_parser("audit", help="verify or export the tamper-evident audit trail")
    audit_commands = audit_parser.add_subparsers(metavar="ACTION", required=True)
    verify = audit_commands.add_parser("verify", help="check the hash chain; exit 1 naming the first bad row")
    verify.set_defaults(run=cmd_audit_verify)
    export = audit_commands.add_parser("export", help="print every audit row as CSV or JSON")
    export_format = export.add_mutually_exclusive_group(required=True)
    export_format.add_argument("--csv", dest="format", action="store_const", const="csv")
    export_format.add_argument("--json", dest="format", action="store_const", const="json")
    export.set_defaults(run=cmd_audit_export)

    users = commands.add_parser("users", help="manage local accounts (admins; the first account is the admin)")
    users.add_argument("--as", dest="actor", help="the admin doing this (asked for a password)")
    user_commands = users.add_subparsers(metavar="ACTION", required=True)
    add = user_commands.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", choices=["admin", "radiologist", "trainee"], required=True)
    add.set_defaults(run=cmd_users_add)
    user_commands.add_parser("list").set_defaults(run=cmd_users_list)
    disable = user_commands.add_parser("disable")
    disable.add_argument("username")
    disable.set_defaults(run=cmd_users_disable)
    passwd = user_commands.add_parser("passwd")
    passwd.add_argument("username")
    passwd.set_defaults(run=cmd_users_passwd)

    from workstation import cli_admin, cli_reports, cli_teaching

    cli_reports.register(commands)
    cli_admin.register(commands)
    cli_teaching.register(commands)

    case = commands.add_parser("demo-case", help="write a synthetic chest CT phantom series and its ground truth")
    case.add_argument("out", type=Path)
    case.add_argument("--seed", type=int, default=DEMO_SEED)
    case.add_argument("--matrix", type=int, default=512, help="rows and columns (default 512)")
    case.add_argument("--slice-thickness", type=float, help="mm (default: drawn from the seed, 1-2.5)")
    case.add_argument("--syntax", choices=["explicit", "rle", "jpegls", "j2k"], default="explicit")
    case.set_defaults(run=cmd_demo_case)
    return parser


def setup_logging() -> Path:
    folder = data_home() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(folder / "workstation.log", encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return folder / "workstation.log"


def _run_with_progress(job: Job) -> object:
    interactive = sys.stderr.isatty()

    def show(progress: Progress) -> None:
        if interactive:
            print(f"\r{progress.fraction:5.0%} {progress.message[:70]:<70}", end="", file=sys.stderr, flush=True)

    try:
        return run_job(job, show)
    finally:
        if interactive:
            print(file=sys.stderr)


def cmd_default(args: argparse.Namespace) -> int:
    # The launcher (ui/launcher.py) opens the desktop viewer when a display is present.
    return cmd_demo(argparse.Namespace(out=None))


def cmd_gui(args: argparse.Namespace) -> int:
    raise WorkstationError("The desktop viewer needs a display and the GUI extras (pip install -e '.[gui]'); "
                           "headless commands: demo, import, list, info")


def cmd_demo(args: argparse.Namespace) -> int:
    """The headless pipeline on the demo case: generate (once), import, load, run the AI, write outputs."""
    from workstation.imaging.snapshot import save_overview_png
    from workstation.inference.registry import find_model
    from workstation.inference.runner import run_inference_job
    from workstation.library import StudyLibrary

    home = data_home()
    if not (demo_folder(home) / "truth.json").is_file():
        print(f"Generating the demo case (seed {DEMO_SEED}) in {demo_folder(home)} ...", file=sys.stderr)
    series_folder = ensure_demo_case(home)
    library = StudyLibrary(home)
    report = _run_with_progress(library.import_job([series_folder]))
    study = library.find_study(report.studies[0])
    volume = _load_library_series(library, library.series(study["key"])[0])
    bundle = find_model()
    analysis = _run_with_progress(run_inference_job(volume, bundle))
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
    from workstation.cli_reports import write_draft_report

    write_draft_report(_review_store(), analysis, volume, out / "report-draft.pdf")
    return 0


def cmd_demo_case(args: argparse.Namespace) -> int:
    from workstation.imaging.phantom import write_demo_case

    series, truth = write_demo_case(args.out, seed=args.seed, matrix=args.matrix, syntax=args.syntax,
                                    slice_thickness_mm=args.slice_thickness)
    count = len(json.loads(truth.read_text(encoding="utf-8"))["nodules"])
    print(f"Wrote the phantom series to {series} and its ground truth ({count} nodules) to {truth}")
    return 0


def _load_target(target: str):
    """A Volume from a path, or from a library study's largest series."""
    from workstation.dicom.load import load_largest_series_job
    from workstation.library import StudyLibrary

    if Path(target).exists():
        return _run_with_progress(load_largest_series_job([Path(target)]))
    library = StudyLibrary(data_home())
    study = library.find_study(target)
    series = max(library.series(study["key"]), key=lambda row: row["slices"])
    return _load_library_series(library, series)


def cmd_analyze(args: argparse.Namespace) -> int:
    from workstation.inference.registry import find_model
    from workstation.inference.runner import run_inference_job

    bundle = find_model(args.model)
    volume = _load_target(args.target)
    analysis = _run_with_progress(run_inference_job(volume, bundle, args.device, args.threshold))
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
    if args.json:
        payload = {"study_uid": volume.metadata.study_uid, "series_uid": volume.metadata.series_uid,
                   **analysis.to_dict()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"Wrote {args.json}")
    if args.report:
        from workstation.cli_reports import write_draft_report

        write_draft_report(_review_store(), analysis, volume, args.report, args.actor)
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


def _review_store():
    from workstation.review.store import ReviewStore

    return ReviewStore.in_home(data_home())


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from workstation.review.audit import verify

    result = verify(_review_store().connection)
    if result.ok:
        print(f"audit trail ok: {result.rows} rows, chain head {result.head}")
        return 0
    print(f"audit trail BROKEN at row {result.first_bad_seq}: {result.reason}")
    return 1


def cmd_audit_export(args: argparse.Namespace) -> int:
    from workstation.review.audit import export_rows

    print(export_rows(_review_store().connection, args.format), end="")
    return 0


def _password(prompt: str) -> str:
    """From WORKSTATION_PASSWORD (scripts, tests) or asked without echo."""
    import getpass
    import os

    return os.environ.get("WORKSTATION_PASSWORD") or getpass.getpass(prompt)


def _actor(store, args: argparse.Namespace):
    from workstation.review.users import has_users, login

    if not has_users(store):
        return None
    if not args.actor:
        raise WorkstationError("Say which admin is acting: workstation users --as ADMIN ...")
    import os

    password = os.environ.get("WORKSTATION_ADMIN_PASSWORD") or _password(f"Password for {args.actor}: ")
    return login(store, args.actor, password)


def cmd_users_add(args: argparse.Namespace) -> int:
    from workstation.review.users import add_user

    store = _review_store()
    user = add_user(store, _actor(store, args), args.username, _password(f"New password for {args.username}: "),
                    args.role)
    print(f"Added {user.username} ({user.role})")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from workstation.review.users import list_users

    store = _review_store()
    actor = _actor(store, args)
    if actor is None:
        print("No accounts yet; the first one must be the admin: workstation users add NAME --role admin")
        return 0
    for user in list_users(store, actor):
        print(f"{user['username']:<20} {user['role']:<12} {'disabled' if user['disabled'] else 'active'}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from workstation.review.users import disable_user

    store = _review_store()
    disable_user(store, _actor(store, args), args.username)
    print(f"Disabled {args.username}")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    from workstation.review.users import change_password

    store = _review_store()
    change_password(store, _actor(store, args), args.username, _password(f"New password for {args.username}: "))
    print(f"Changed the password of {args.username}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary

    library = StudyLibrary(data_home())
    report = _run_with_progress(library.import_job(args.paths))
    print(f"Imported {len(report.studies)} study(ies), {len(report.series)} series: "
          f"{report.files_copied} file(s) copied, {report.files_already_present} already in the library.")
    for label, reason in report.skipped[:10]:
        print(f"  skipped {reason}")
    if len(report.skipped) > 10:
        print(f"  ... and {len(report.skipped) - 10} more skipped files")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary

    library = StudyLibrary(data_home())
    studies = library.studies()
    if args.json:
        for study in studies:
            study["series"] = library.series(study["key"])
        print(json.dumps(studies, indent=1))
        return 0
    if not studies:
        print("The library is empty; add studies with 'workstation import PATH'.")
    for number, study in enumerate(studies, 1):
        print(f"{number:3d}  {study['key'][:24]:<24}  {study['patient_name'] or '-':<24} {study['study_date'] or '-':<9}"
              f" {study['study_description'] or '-'}  ({study['series_count']} series)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from workstation.dicom.load import load_series_job, scan
    from workstation.library import StudyLibrary

    target = Path(args.target)
    summaries: list[dict] = []
    skipped: list[tuple[str, str]] = []
    if target.exists():
        result = scan([target])
        skipped = result.skipped
        for series in result.series:
            summaries.append(_summary_or_error(lambda s=series: _run_with_progress(load_series_job(s))))
        if not summaries:
            reason = f": {skipped[0][1]}" if skipped else ""
            raise WorkstationError(f"No CT series found in {target} ({len(skipped)} file(s) skipped{reason})")
    else:
        library = StudyLibrary(data_home())
        study = library.find_study(args.target)
        for row in library.series(study["key"]):
            summaries.append(_summary_or_error(lambda r=row: _load_library_series(library, r)))
    if args.json:
        print(json.dumps({"series": summaries, "skipped": [{"file": f, "reason": r} for f, r in skipped]}, indent=1))
    else:
        for summary in summaries:
            _print_summary(summary)
        if skipped:
            print(f"{len(skipped)} file(s) skipped, e.g. {skipped[0][1]}")
    return 0


def _summary_or_error(load: Callable[[], object]) -> dict:
    try:
        return load().summary()  # type: ignore[attr-defined]
    except WorkstationError as exc:
        return {"error": str(exc)}


def _load_library_series(library: object, row: dict):
    from workstation.dicom.load import load_series_job, scan

    result = scan([library.series_folder(row)])  # type: ignore[attr-defined]
    if not result.series:
        raise WorkstationError(f"Series '{row['series_description']}' has no readable files left in the library")
    largest = max(result.series, key=lambda s: len(s.slices))
    return _run_with_progress(load_series_job(largest))


def _print_summary(summary: dict) -> None:
    if "error" in summary:
        print(f"series could not be loaded: {summary['error']}\n")
        return
    ids, meta = summary["identifiers"], summary["metadata"]
    print(f"Series {meta['series_number'] or '?'} '{meta['series_description']}'  UID {ids['series_uid']}"
          f"{' (derived: file UIDs empty)' if ids['uids_derived'] else ''}")
    print(f"  patient      {ids['patient_name'] or '-'} ({ids['patient_id'] or '-'}), study {ids['study_uid']}")
    print(f"  shape        {summary['shape']} (slices, rows, columns)")
    print(f"  spacing_mm   {summary['spacing_mm']} (column, row, slice)")
    print(f"  orientation  {summary['orientation']}")
    print(f"  hu_range     {summary['hu_range']}")
    print("  affine       " + "\n               ".join(str([round(v, 3) for v in row]) for row in summary["affine"]))
    print(f"  scanner      {meta['manufacturer'] or '-'} {meta['model']}, kernel {meta['kernel'] or '-'}, "
          f"{meta['slice_thickness'] or '-'} mm, {meta['kvp'] or '-'} kVp")
    for warning in summary["warnings"]:
        print(f"  warning      {warning}")
    print()


if __name__ == "__main__":
    sys.exit(main())
