"""Quiz mode: a trainee marks suspected nodules on a teaching case with the AI and the answer
hidden, submits, and is scored against the answer key; the AI is scored the same way beside
them. Scores are stored per trainee and exported for the trainer.

A mark hits an answer when it lies within the nodule's radius plus a 5 mm allowance (a click
near a small nodule's edge counts); each answer is hit at most once, nearest mark first.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workstation.errors import WorkstationError
from workstation.review import audit
from workstation.review.store import ReviewStore
from workstation.review.users import User
from workstation.teaching.pack import PackCase

ALLOWANCE_MM = 5.0


class QuizError(WorkstationError):
    """A quiz action that cannot be done (not a teaching case, nothing marked)."""


@dataclass(frozen=True)
class Match:
    hits: list[tuple[int, int]]  # (mark index, answer index)
    misses: list[int]  # answer indices nobody marked
    false_marks: list[int]  # mark indices that hit no answer

    @property
    def sensitivity(self) -> float | None:
        total = len(self.hits) + len(self.misses)
        return len(self.hits) / total if total else None


def match_marks(marks: Sequence[Sequence[float]], answers: Sequence[dict]) -> Match:
    """Greedy nearest-first matching of marks to answers within radius + allowance."""
    pairs = []
    for m, mark in enumerate(marks):
        for a, answer in enumerate(answers):
            distance = float(np.linalg.norm(np.asarray(mark, float) - np.asarray(answer["center_mm"], float)))
            if distance <= answer["diameter_mm"] / 2 + ALLOWANCE_MM:
                pairs.append((distance, m, a))
    used_marks, used_answers, hits = set(), set(), []
    for _, m, a in sorted(pairs):
        if m not in used_marks and a not in used_answers:
            used_marks.add(m)
            used_answers.add(a)
            hits.append((m, a))
    return Match(sorted(hits, key=lambda h: h[1]), [a for a in range(len(answers)) if a not in used_answers],
                 [m for m in range(len(marks)) if m not in used_marks])


@dataclass(frozen=True)
class QuizResult:
    case: PackCase
    marks: list[tuple[float, float, float]]
    trainee: Match
    ai: Match | None  # None when no AI result was available to compare

    def summary(self) -> str:
        sensitivity = self.trainee.sensitivity
        found = f"{len(self.trainee.hits)} of {len(self.case.answers)} nodules found"
        rate = f" (sensitivity {sensitivity:.0%})" if sensitivity is not None else ""
        ai = (f"; the AI found {len(self.ai.hits)} with {len(self.ai.false_marks)} false mark(s)" if self.ai
              else "")
        return f"{found}{rate}, {len(self.trainee.false_marks)} false mark(s){ai}"


def submit_quiz(store: ReviewStore, trainee: User, case: PackCase, marks: Sequence[Sequence[float]],
                ai_centres: Sequence[Sequence[float]] | None = None) -> QuizResult:
    """Score and store one attempt (with its audit row, in one transaction)."""
    trainee.require("view")
    marks = [tuple(float(v) for v in mark) for mark in marks]
    result = QuizResult(case, marks, match_marks(marks, case.answers),
                        match_marks(ai_centres, case.answers) if ai_centres is not None else None)
    with store.transaction() as connection:
        connection.execute(
            "INSERT INTO quiz_attempts (trainee, study_uid, case_name, marks, hits, misses, false_marks, sensitivity, "
            "ai_hits, ai_false, submitted_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (trainee.username, case.study_uid, case.name, json.dumps(marks), len(result.trainee.hits),
             len(result.trainee.misses), len(result.trainee.false_marks), result.trainee.sensitivity,
             len(result.ai.hits) if result.ai else None, len(result.ai.false_marks) if result.ai else None,
             dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))
        audit.append(connection, trainee.username, "quiz_submitted", study_uid=case.study_uid,
                     new_value={"case": case.name, "hits": len(result.trainee.hits),
                                "misses": len(result.trainee.misses), "false_marks": len(result.trainee.false_marks)})
    return result


QUIZ_COLUMNS = ("trainee", "case_name", "study_uid", "hits", "misses", "false_marks", "sensitivity", "ai_hits",
                "ai_false", "submitted_at")


def quiz_scores_csv(store: ReviewStore, trainer: User) -> str:
    """Every attempt, one row each, for the trainer (needs the export right)."""
    trainer.require("export")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(QUIZ_COLUMNS)
    writer.writerows(store.connection.execute(f"SELECT {', '.join(QUIZ_COLUMNS)} FROM quiz_attempts ORDER BY id"))
    return out.getvalue()
