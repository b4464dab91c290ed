"""The teaching case being answered: while it is, review actions and the AI stay hidden."""

from __future__ import annotations

from dataclasses import dataclass, field

from workstation.teaching.pack import PackCase


@dataclass
class Quiz:
    case: PackCase | None = None
    marks: list[tuple[float, float, float]] = field(default_factory=list)
    submitting: bool = False  # the AI runs for the side-by-side comparison

    @property
    def active(self) -> bool:
        return self.case is not None
