"""A Lung-RADS v2022 category suggestion from the accepted nodules (baseline screening rules).

The suggestion is printed with the rule that produced it; the reader may override it at
signing. Sizes are the long axis (the longest diameter across one slice) as measured or
edited, which is never smaller than the mean diameter Lung-RADS specifies, so the suggestion
errs towards the higher category.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CATEGORIES = ("0", "1", "2", "3", "4A", "4B", "4X")
EDITION = "Lung-RADS v2022 (ACR), baseline screening, no prior study for comparison"


@dataclass(frozen=True)
class NoduleInput:
    number: int
    type: str  # solid, part-solid or ground-glass
    diameter_mm: float


@dataclass(frozen=True)
class LungRadsSuggestion:
    category: str
    rule: str  # the rule that decided the category, in words
    driver: int | None  # the finding number that set the category

    def to_dict(self) -> dict:
        return {"category": self.category, "rule": self.rule, "driver": self.driver, "edition": EDITION}


def nodule_category(nodule: NoduleInput) -> tuple[str, str]:
    """(category, rule) for one nodule."""
    size = nodule.diameter_mm
    if nodule.type == "ground-glass":
        return ("2", "non-solid nodule < 30 mm") if size < 30 else ("3", "non-solid nodule >= 30 mm")
    if nodule.type == "part-solid":
        if size < 6:
            return "2", "part-solid nodule < 6 mm total diameter"
        return "3", ("part-solid nodule >= 6 mm total diameter; solid component not measured here: "
                     "4A if it is 6 to < 8 mm, 4B if >= 8 mm")
    if size < 6:
        return "2", "solid nodule < 6 mm"
    if size < 8:
        return "3", "solid nodule 6 to < 8 mm"
    if size < 15:
        return "4A", "solid nodule 8 to < 15 mm"
    return "4B", "solid nodule >= 15 mm"


def suggest_category(nodules: Iterable[NoduleInput]) -> LungRadsSuggestion:
    """The highest category over the nodules; category 1 when there is none."""
    best: LungRadsSuggestion | None = None
    for nodule in nodules:
        category, rule = nodule_category(nodule)
        if best is None or CATEGORIES.index(category) > CATEGORIES.index(best.category):
            best = LungRadsSuggestion(category, f"finding {nodule.number}: {rule} ({nodule.diameter_mm:.1f} mm)",
                                      nodule.number)
    return best or LungRadsSuggestion("1", "no lung nodules accepted", None)


def suggest_for_read(states: Iterable) -> LungRadsSuggestion:
    """The suggestion for a read in progress: its accepted findings by their study numbers (the
    viewer's and the report's), with their sizes and types as last edited."""
    return suggest_category(NoduleInput(s.number, s.type, s.diameter_mm) for s in states if s.reportable)
