"""Is a study inside the model's validated scope? Outside it still runs, with reasons shown."""

from __future__ import annotations

from workstation.imaging.volume import Volume
from workstation.inference.bundle import ModelBundle


def scope_warnings(volume: Volume, bundle: ModelBundle, lung_ml: float) -> list[str]:
    """Reasons the study is outside the bundle's valid inputs (empty when inside). `lung_ml`, the
    aerated lung found in the image, catches what the tags cannot: a head or abdomen scan whose
    BodyPartExamined is missing or wrong, or a scan that covers only the lung bases."""
    valid, meta, reasons = bundle.valid_inputs, volume.metadata, []
    modality = valid.get("modality")
    if modality and meta.modality and meta.modality.upper() != modality:
        reasons.append(f"modality {meta.modality}, validated for {modality}")
    thickness = meta.slice_thickness or volume.spacing_mm[2]
    low, high = valid.get("slice_thickness_mm", (0, 1e9))
    if not low <= thickness <= high:
        reasons.append(f"slice thickness {thickness:g} mm, validated for {low:g}-{high:g} mm")
    age = _age_years(meta.patient_age)
    if age is not None and age < valid.get("min_age_years", 0):
        reasons.append(f"patient age {age} years, validated for adults")
    parts = [p.upper() for p in valid.get("body_parts", [])]
    if parts and meta.body_part and meta.body_part.upper() not in parts:
        reasons.append(f"body part {meta.body_part}, validated for {', '.join(p for p in parts if p)}")
    least = float(valid.get("min_lung_volume_ml", 0))
    if lung_ml < least:
        reasons.append("no aerated lung found in the image" if lung_ml < 1 else
                       f"only {lung_ml:.0f} ml of aerated lung in the image, validated for scans of both lungs "
                       f"(at least {least:g} ml)")
    return reasons


def _age_years(text: str) -> int | None:
    """DICOM age strings: '065Y', '018M', '003W', '010D'."""
    if len(text) != 4 or not text[:3].isdigit():
        return None
    value, unit = int(text[:3]), text[3].upper()
    return {"Y": value, "M": value // 12, "W": value // 52, "D": value // 365}.get(unit)
