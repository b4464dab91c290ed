"""Files that leave the workstation (reports, exports, teaching packs) are written under a hidden
staging name, recorded in the audit trail, and only then renamed into place: a crash leaves
either the file and its audit row, or neither."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from workstation.errors import WorkstationError
from workstation.files import sha256_file
from workstation.review import audit
from workstation.review.anchors import record_anchor
from workstation.review.store import ReviewStore


def staging_path(path: Path) -> Path:
    """Where an export is written before it is recorded: beside its target (same file system, so
    the rename is atomic), hidden, never a name anyone asked for."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")


def record_export(store: ReviewStore, user: str, study_uid: str | None, staging: Path, path: Path, **details: Any) -> str:
    """Audit the export of `staging` (with its SHA-256) as `path`, then rename it to `path`; if
    the audit row cannot be written, the staged file is removed and nothing appears."""
    try:
        digest = sha256_file(Path(staging))
        with store.transaction() as connection:
            audit.append(connection, user, "exported", study_uid=study_uid,
                         new_value={"path": str(Path(path).resolve()), "sha256": digest, **details})
        os.replace(staging, path)
    except OSError as exc:
        raise WorkstationError(f"Cannot write {path}: {exc.strerror or exc}; choose another folder") from exc
    finally:
        Path(staging).unlink(missing_ok=True)
    record_anchor(store.connection, store.path, f"the export of {Path(path).name} by {user}")
    return digest
