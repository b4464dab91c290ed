"""What may reach the log file: no patient-derived text.

Names, IDs, descriptions, comments, and the names of files and folders on patient media all
stay out of `logs/workstation.log`; the log names a study or series by an opaque key, and an
error by its kind and where it happened. The message of an error may name the user's file:
it goes to the user's screen, not to the log.
"""

from __future__ import annotations

import errno
import hashlib
import traceback
from pathlib import PurePath

KEY_LENGTH = 12


def opaque_key(uid: str) -> str:
    """A short key for a study or series UID in the log: the first characters of the SHA-256 the
    library names the study's and series' folders by, so support can find them, and nothing of
    the UID (or of a patient) can be read back from it."""
    return hashlib.sha256(str(uid).encode()).hexdigest()[:KEY_LENGTH]


def loggable_error(exc: BaseException) -> str:
    """An exception for the log without its message: its kind (and errno name), then its cause's,
    each with the frames it passed through (our source lines, never values)."""
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current).__name__
        if isinstance(current, OSError) and current.errno in errno.errorcode:
            kind += f"[{errno.errorcode[current.errno]}]"
        frames = "; ".join(f"{'/'.join(PurePath(frame.filename).parts[-2:])}:{frame.lineno} in {frame.name}"
                           for frame in traceback.extract_tb(current.__traceback__))
        parts.append(f"{kind} at {frames or '(no frames)'}")
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return " <- caused by ".join(parts)
