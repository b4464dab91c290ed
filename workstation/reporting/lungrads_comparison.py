"""Lung-RADS v2022 with a prior for comparison (issue #24 item 5), for solid nodules: a new
nodule is categorised by its size as new, a growing one (mean diameter up > 1.5 mm) as growing,
and an unchanged one by the stepped management (a category 3 nodule stable at 6 months or more
becomes 2, a 4A stable at 3 months or more becomes 3). Part-solid and non-solid nodules keep the
baseline rules, and the rule says so. Each result names the rule that decided it.
"""

from __future__ import annotations

from workstation.reporting.lungrads import (CATEGORIES, LungRadsSuggestion, NoduleInput, nodule_category,
                                            suggest_category)

EDITION = "Lung-RADS v2022 (ACR), with a prior study for comparison"


def _new_solid(size: float) -> tuple[str, str]:
    if size < 4:
        return "2", "new solid nodule < 4 mm"
    if size < 6:
        return "3", "new solid nodule 4 to < 6 mm"
    if size < 8:
        return "4A", "new solid nodule 6 to < 8 mm"
    return "4B", "new solid nodule >= 8 mm"


def compared_category(pair, days: int) -> tuple[str, str]:
    """(category, rule) for one matched pair of review.comparison (status, current, prior)."""
    current = pair.current
    size = current.diameter_mm
    baseline, rule = nodule_category(NoduleInput(current.number, current.type, size))
    if current.type != "solid":
        return baseline, f"{rule} (comparison rules for sub-solid nodules not applied here)"
    if pair.status == "new":
        return _new_solid(size)
    if pair.status == "growing":
        return ("4A", "growing solid nodule < 8 mm") if size < 8 else ("4B", "growing solid nodule >= 8 mm")
    prior_category, _ = nodule_category(NoduleInput(pair.prior.number, pair.prior.type, pair.prior.diameter_mm))
    months = days / 30.44
    if prior_category == "3" and months >= 6:
        return "2", f"category 3 solid nodule stable or smaller at {months:.0f} months"
    if prior_category == "4A" and months >= 3:
        return "3", f"category 4A solid nodule stable or smaller at {months:.0f} months"
    return baseline, f"{rule}, stable since the prior"


def suggest_with_comparison(pairs, days: int) -> LungRadsSuggestion:
    """The highest category over the current nodules (resolved ones no longer count)."""
    best: LungRadsSuggestion | None = None
    for pair in pairs:
        if pair.current is None:
            continue
        category, rule = compared_category(pair, days)
        if best is None or CATEGORIES.index(category) > CATEGORIES.index(best.category):
            best = LungRadsSuggestion(category, f"finding {pair.current.number}: {rule} "
                                                f"({pair.current.diameter_mm:.1f} mm)", pair.current.number)
    return best or suggest_category([])
