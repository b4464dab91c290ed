"""The subgroups a model is measured and monitored by (sex, age band, manufacturer, slice
thickness, kernel), each a function of a series' metadata: one definition for the site
evaluation and the monitoring, so their figures compare."""

from __future__ import annotations

from collections.abc import Callable

from workstation.imaging.volume import SeriesMetadata


def age_band(age: str) -> str:
    digits = "".join(c for c in age if c.isdigit())
    if not digits:
        return "age unknown"
    years = int(digits) if age.upper().endswith("Y") or age.isdigit() else 0
    return "under 50" if years < 50 else "50-64" if years < 65 else "65-79" if years < 80 else "80 and over"


def thickness_band(thickness: float | None) -> str:
    if thickness is None:
        return "thickness unknown"
    return "thin (<= 2.5 mm)" if thickness <= 2.5 else "thick (> 2.5 mm)"


SUBGROUPS: dict[str, Callable[[SeriesMetadata], str]] = {
    "sex": lambda m: {"F": "female", "M": "male"}.get(m.patient_sex.upper(), "sex unknown"),
    "age": lambda m: age_band(m.patient_age),
    "manufacturer": lambda m: m.manufacturer or "manufacturer unknown",
    "slice thickness": lambda m: thickness_band(m.slice_thickness),
    "kernel": lambda m: m.kernel or "kernel unknown",
}
