"""Every Lung-RADS v2022 comparison rule of lungrads_comparison (#24 item 5), each with the rule
text it states; tests/review/test_comparison.py has the first few on a mixed read."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workstation.reporting.lungrads_comparison import compared_category, suggest_with_comparison
from workstation.review.comparison import NodulePair


def nodule(diameter: float, kind: str = "solid", number: int = 1) -> SimpleNamespace:
    return SimpleNamespace(number=number, center_mm=(0, 0, 0), diameter_mm=diameter, volume_mm3=None, type=kind)


@pytest.mark.parametrize(("status", "now", "then", "days", "category", "rule"), [
    ("new", 3.5, None, 365, "2", "new solid nodule < 4 mm"),
    ("new", 5.0, None, 365, "3", "new solid nodule 4 to < 6 mm"),
    ("new", 7.0, None, 365, "4A", "new solid nodule 6 to < 8 mm"),
    ("new", 8.0, None, 365, "4B", "new solid nodule >= 8 mm"),
    ("growing", 7.9, 6.0, 365, "4A", "growing solid nodule < 8 mm"),
    ("growing", 12.0, 9.0, 365, "4B", "growing solid nodule >= 8 mm"),
    ("stable", 7.0, 7.0, 183, "2", "category 3 solid nodule stable or smaller at 6 months"),
    ("shrinking", 5.0, 7.0, 200, "2", "category 3 solid nodule stable or smaller at 7 months"),
    ("stable", 7.0, 7.0, 150, "3", "solid nodule 6 to < 8 mm, stable since the prior"),
    ("stable", 10.0, 10.0, 92, "3", "category 4A solid nodule stable or smaller at 3 months"),
    ("stable", 10.0, 10.0, 60, "4A", "solid nodule 8 to < 15 mm, stable since the prior"),
    ("stable", 20.0, 20.0, 365, "4B", "solid nodule >= 15 mm, stable since the prior"),
    ("stable", 4.0, 4.0, 365, "2", "solid nodule < 6 mm, stable since the prior"),
])
def test_each_comparison_rule(status: str, now: float, then: float | None, days: int, category: str,
                              rule: str) -> None:
    pair = NodulePair(status, nodule(now), None if then is None else nodule(then))
    assert compared_category(pair, days) == (category, rule)


@pytest.mark.parametrize("kind", ["part-solid", "ground-glass"])
def test_sub_solid_nodules_keep_the_baseline_rules_and_say_so(kind: str) -> None:
    category, rule = compared_category(NodulePair("growing", nodule(12.0, kind), nodule(9.0, kind)), 365)
    assert category in ("2", "3") and rule.endswith("(comparison rules for sub-solid nodules not applied here)")


def test_the_suggestion_is_the_highest_over_the_current_nodules() -> None:
    resolved_only = suggest_with_comparison([NodulePair("resolved", None, nodule(20.0))], 365)
    assert (resolved_only.category, resolved_only.driver) == ("1", None)  # a resolved nodule no longer counts
    assert suggest_with_comparison([], 365).category == "1"
    mixed = suggest_with_comparison([NodulePair("new", nodule(5.0, number=4), None),
                                     NodulePair("stable", nodule(10.0, number=2), nodule(10.0, number=1))], 100)
    assert mixed.category == "3" and mixed.driver == 4 and mixed.rule.startswith("finding 4: new solid nodule")
