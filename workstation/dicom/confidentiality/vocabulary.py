"""The Clean Descriptors Option's cleaning: a descriptor keeps only words known to carry no
identity (vocabulary.txt), numbers with units and scanner kernel names; every other token is
dropped. An allow-list, not a block-list: a name, a place or a record number that nobody
thought of is dropped too ("CT CHEST Canary for" -> "CT CHEST for").

A vocabulary word is still dropped when the same data set uses it as an identifying value (a
patient whose name is a body part). Between two kept words the original punctuation stays when
nothing was dropped between them, so "W/O" and "C+" keep their meaning.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

# Letters and digits, with decimals inside numbers ("1.25mm", "0,625"); "_" separates.
TOKEN = re.compile(r"[^\W_]+(?:[.,][0-9]+[^\W_]*)*")
# Small numbers with an optional unit: slice thickness, kV, mAs, a series number. At most three
# digits before the decimal point, so dates, years and record numbers never pass.
NUMBER = re.compile(r"\d{1,3}(?:[.,]\d{1,3})?(?:x\d{1,3}(?:[.,]\d{1,3})?)?"
                    r"(?:mm|cm|ml|mg|mgy|kv|kvp|ma|mas|s|sec|hu|kev|x)?", re.IGNORECASE)
# Reconstruction kernels as scanners name them: Siemens B30f, Br40d, I26f; Canon FC08. Case
# matters: an upper-case letter, at most one lower-case, two digits.
KERNEL = re.compile(r"[A-Z][a-z]?\d{2}[a-z]?\d?|FC\d{2}")
# Punctuation that may stand between two kept words; anything else becomes one space.
SEPARATORS = set(" /+-&,;:()_^.=")


@lru_cache(maxsize=1)
def vocabulary() -> frozenset[str]:
    text = Path(__file__).with_name("vocabulary.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def allowed(token: str) -> bool:
    """Whether a token may stay in a cleaned descriptor."""
    return (token.lower() in vocabulary() or NUMBER.fullmatch(token) is not None
            or KERNEL.fullmatch(token) is not None)


def clean_descriptor(text: str, identifying: frozenset[str] = frozenset()) -> str:
    """`text` with every token outside the vocabulary (or in `identifying`, lower case) dropped."""
    pieces: list[str] = []
    last_end, dropped = 0, False
    for match in TOKEN.finditer(text):
        token = match.group()
        if not allowed(token) or token.lower() in identifying:
            dropped = True
            continue
        if pieces:
            between = re.sub(r"\s+", " ", text[last_end:match.start()])
            pieces.append(between if not dropped and len(between) <= 3 and set(between) <= SEPARATORS else " ")
        suffix = text[match.end():match.end() + 2]
        if suffix[:1] in ("+", "-") and suffix[1:].strip() == "":  # "C+", "C-": contrast, kept with its sign
            token += suffix[:1]
        pieces.append(token)
        last_end, dropped = match.end() + len(token) - len(match.group()), False
    return "".join(pieces)
