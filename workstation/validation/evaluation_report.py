"""The site evaluation written out: JSON (everything), CSV (one row per group and rate), a PNG of
the FROC curves with their intervals, and a PDF that says which model, which data, and which
subgroups were too small to say anything."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from workstation.validation.froc import FP_RATES


def _groups(report: dict):
    yield "overall", "all scans", report["overall"]
    for name, values in report["subgroups"].items():
        for value, result in values.items():
            yield name, value, result


def write_evaluation(report: dict, out: Path) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "csv": out / "evaluation.csv", "png": out / "froc.png",
             "pdf": out / "evaluation.pdf"}
    paths["json"].write_text(json.dumps(report, indent=1), encoding="utf-8")
    with open(paths["csv"], "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["group", "value", "scans", "nodules", "fp_per_scan", "sensitivity", "ci_low", "ci_high",
                         "note"])
        for group, value, result in _groups(report):
            if result.get("too_small"):
                writer.writerow([group, value, result["scans"], result["nodules"], "", "", "", "", result["why"]])
                continue
            for rate in [*map(str, FP_RATES), "cpm"]:
                sensitivity = result["cpm"] if rate == "cpm" else result["sensitivity"][rate]
                low, high = (result.get("interval_95") or {}).get(rate, ["", ""])
                writer.writerow([group, value, result["scans"], result["nodules"], rate, sensitivity, low, high, ""])
    _plot(report, paths["png"])
    _pdf(report, paths["png"], paths["pdf"])
    return paths


def _plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6.5, 4.2), dpi=120)
    rates = list(FP_RATES)
    for group, value, result in _groups(report):
        if result.get("too_small"):
            continue
        values = [result["sensitivity"][str(r)] for r in rates]
        line = axes.plot(rates, values, marker="o", linewidth=2 if group == "overall" else 1,
                         label=f"{value} (n={result['scans']})")[0]
        interval = result.get("interval_95")
        if interval and group == "overall":
            axes.fill_between(rates, [interval[str(r)][0] for r in rates], [interval[str(r)][1] for r in rates],
                              color=line.get_color(), alpha=0.2, label="95% interval (bootstrap)")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("false positives per scan")
    axes.set_ylabel("sensitivity")
    axes.set_ylim(0, 1.02)
    axes.set_title(f"{report['model']['name']} {report['model']['version']} on {report['measured_on']}", fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)


def _pdf(report: dict, png: Path, path: Path) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    model = report["model"]
    story = [Paragraph(f"Site evaluation of {model['name']} {model['version']}", styles["Title"]),
             Paragraph(f"Measured on {report['measured_on']} (readers agreeing: at least {report['min_agreement']}); "
                       f"95% intervals by bootstrap over scans ({report['bootstrap_repeats']} samples). "
                       f"Weights sha256 {model['sha256'][:16]}...", styles["Normal"]),
             Spacer(1, 4 * mm), Image(str(png), width=160 * mm, height=103 * mm), Spacer(1, 4 * mm)]
    rows = [["group", "value", "scans", "nodules", "sens. @1 FP/scan", "95% interval", "CPM"]]
    for group, value, result in _groups(report):
        if result.get("too_small"):
            rows.append([group, value, result["scans"], result["nodules"], "too small to say", "", ""])
            continue
        interval = (result.get("interval_95") or {}).get("1.0") or ["", ""]
        rows.append([group, value, result["scans"], result["nodules"], f"{result['sensitivity']['1.0']:.2f}",
                     f"{interval[0]:.2f}-{interval[1]:.2f}" if interval[0] != "" else "", f"{result['cpm']:.2f}"])
    table = Table(rows, repeatRows=1)
    table.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 8), ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)]))
    story.append(table)
    SimpleDocTemplate(str(path), pagesize=A4, title=f"Site evaluation {model['name']}").build(story)
