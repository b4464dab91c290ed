"""The viewer's corrections of the matching, without a screen (#24 item 4): the valid partners for
a current finding, by number and size, and the ReaderEdit each choice makes (none when nothing
changes), the same edits `workstation compare --pair/--unpair/--status` makes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from workstation.errors import WorkstationError
from workstation.review.comparison import NodulePair, ReaderEdit
from workstation.review.comparison_record import PriorNodule
from workstation.review.match_corrections import nodule_label, partner_choices, partner_edit, status_edit


def _current(number: int, diameter: float) -> SimpleNamespace:
    return SimpleNamespace(number=number, center_mm=(0.0, 0.0, 10.0 * number), diameter_mm=diameter,
                           volume_mm3=None, type="solid")


P1, P2 = PriorNodule(1, (0.0, 0.0, 10.0), 5.0, None, "solid"), PriorNodule(2, (0.0, 0.0, 50.0), 6.0, None, "part-solid")
NOW1, NOW2 = _current(1, 7.5), _current(2, 4.0)
PAIRS = [NodulePair("growing", NOW1, P1), NodulePair("new", NOW2, None), NodulePair("resolved", None, P2)]
COMPARISON = SimpleNamespace(prior_nodules=(P2, P1))  # the comparison's snapshot, in any order


def test_the_partners_offered_are_none_or_each_prior_finding() -> None:
    assert nodule_label(NOW1) == "#1 · 7.5 mm solid" and nodule_label(P2) == "P2 · 6.0 mm part-solid"
    choices = partner_choices(COMPARISON, PAIRS, 1)
    assert [c.prior for c in choices] == [None, 1, 2]
    assert choices[1].label == "P1 · 5.0 mm solid (this finding's partner now)"
    assert choices[2].label == "P2 · 6.0 mm part-solid"
    assert partner_choices(COMPARISON, PAIRS, 2)[1].label == "P1 · 5.0 mm solid (now paired with #1)"


def test_each_choice_makes_one_edit_or_none() -> None:
    assert partner_edit(PAIRS, 1, 1) is None and partner_edit(PAIRS, 2, None) is None  # already so
    assert partner_edit(PAIRS, 1, None) == ReaderEdit("unpair", 1)
    assert partner_edit(PAIRS, 2, 2) == ReaderEdit("pair", 2, 2)
    assert status_edit(PAIRS, 1, "growing") is None
    assert status_edit(PAIRS, 1, "stable") == ReaderEdit("status", 1, status="stable")
    with pytest.raises(WorkstationError, match="no prior partner"):
        status_edit(PAIRS, 2, "stable")  # a new nodule has no change to call
    with pytest.raises(WorkstationError, match="status is one of"):
        status_edit(PAIRS, 1, "resolved")
    with pytest.raises(WorkstationError, match="not in this comparison"):
        partner_edit(PAIRS, 9, 1)
