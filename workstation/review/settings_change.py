"""Changing the clinic's settings (e.g. the institution printed on every report): an admin's
action, audited with the old and the new value, for the viewer and the command line alike."""

from __future__ import annotations

from pathlib import Path

from workstation.config import read_settings, write_setting
from workstation.review import audit
from workstation.review.store import ReviewStore
from workstation.review.users import User


def change_setting(store: ReviewStore, home: Path, user: User, name: str, value: str) -> None:
    user.require("administer")
    old = read_settings(home).get(name)
    with store.transaction() as connection:  # the audit row commits only if the file was written
        audit.append(connection, user.username, "settings_changed", object_id=name, old_value=old, new_value=value)
        write_setting(home, name, value)
