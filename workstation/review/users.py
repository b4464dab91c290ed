"""Local accounts: argon2id password hashes, roles, permissions checked in the core, back-off
and lock-out after repeated failed logins. Every change is audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from workstation.errors import WorkstationError
from workstation.review import audit
from workstation.review.store import ReviewStore

# OWASP's minimum for argon2id: 19 MiB, 2 iterations, 1 lane.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
ROLES = ("admin", "radiologist", "trainee")
# In a small clinic the admin is usually also the radiologist, so admins may read and sign too.
# "administer": backups (they hold password hashes and the de-identification secret), the
# audit trail's export and the clinic's settings.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"view", "run_ai", "review", "sign", "export", "manage_users", "administer"}),
    "radiologist": frozenset({"view", "run_ai", "review", "sign", "export"}),
    "trainee": frozenset({"view", "run_ai", "review"}),
}
ACTIONS = sorted(set().union(*PERMISSIONS.values()))
LOCKOUT_AFTER = 5  # failed attempts
LOCKOUT_SECONDS = 15 * 60
MIN_PASSWORD_LENGTH = 8


class AuthError(WorkstationError):
    """Login refused (wrong password, locked, disabled)."""


class PermissionDenied(WorkstationError):
    """The user's role does not allow the action."""


_SESSIONS: set[str] = set()  # tokens handed out by login (and add_user) in this process


@dataclass(frozen=True)
class User:
    """Someone who may act. Only `login` (and `add_user`, whose caller chose the password) hand
    out a user that can act: a User built any other way, e.g. User("ghost", "admin"), holds no
    session token and every `require` refuses it."""

    username: str
    role: str
    session: str = field(default="", repr=False, compare=False)

    def can(self, action: str) -> bool:
        return action in PERMISSIONS.get(self.role, frozenset())

    def require(self, action: str) -> None:
        if self.session not in _SESSIONS:
            raise PermissionDenied(f"{self.username} is not logged in")
        if not self.can(action):
            raise PermissionDenied(f"A {self.role} may not {action.replace('_', ' ')}")


def _session_for(username: str, role: str) -> User:
    token = secrets.token_hex(16)
    _SESSIONS.add(token)
    return User(username, role, token)


def installation_owner(store: ReviewStore, name: str) -> User:
    """The one person of an installation without accounts (the operating-system account `name`),
    with every permission; refused once any account exists."""
    if has_users(store):
        raise PermissionDenied("Accounts exist: log in")
    return _session_for(name, "admin")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def has_users(store: ReviewStore) -> bool:
    return store.connection.execute("SELECT count(*) FROM users").fetchone()[0] > 0


def add_user(store: ReviewStore, actor: User | None, username: str, password: str, role: str) -> User:
    """Create an account; without any account yet (first run) the first one must be an admin."""
    if actor is None:
        if has_users(store) or role != "admin":
            raise PermissionDenied("Only an admin can add users (the first user created must be the admin)")
    else:
        actor.require("manage_users")
    if role not in ROLES:
        raise WorkstationError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not username or not username.replace(".", "").replace("_", "").replace("-", "").isalnum():
        raise WorkstationError("A username needs letters and digits only (and . _ -)")
    _check_password(password)
    with store.transaction() as connection:
        if connection.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
            raise WorkstationError(f"User {username!r} already exists")
        connection.execute("INSERT INTO users (username, role, password_hash, created_at) VALUES (?,?,?,?)",
                           (username, role, HASHER.hash(password), _now()))
        audit.append(connection, actor.username if actor else username, "user_added", object_id=username,
                     new_value={"role": role})
    return _session_for(username, role)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WorkstationError(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")


def login(store: ReviewStore, username: str, password: str, now: float | None = None) -> User:
    """The user, or AuthError; failures count, back off, then lock the account for a while.

    The check and the count share one write transaction, so parallel guesses queue behind each
    other and every one of them is counted (the password check takes ~0.1 s under the lock).
    A name that is no account is audited only as a short hash: it may be a password typed into
    the wrong field.
    """
    now = time.time() if now is None else now
    with store.transaction() as connection:
        refusal, user = _check_login(connection, username, password, now)
    if refusal:
        raise AuthError(refusal)
    return user  # type: ignore[return-value]


def confirm_password(store: ReviewStore, user: User, password: str) -> None:
    """An electronic signature re-asks the signer's password (21 CFR 11.200): AuthError if wrong,
    counted and locked out like a failed login."""
    with store.transaction() as connection:
        refusal, _user = _check_login(connection, user.username, password, time.time(), "password_confirmed")
    if refusal:
        raise AuthError(refusal)


def _check_login(connection, username: str, password: str, now: float,
                 success: str = "login") -> tuple[str, User | None]:
    """(refusal, None) or ("", user); the audit rows and counters are written either way."""
    row = connection.execute(
        "SELECT role, password_hash, disabled, failed_attempts, locked_until FROM users WHERE username = ?",
        (username,)).fetchone()
    if row is None:
        digest = hashlib.sha256(username.encode("utf-8", "replace")).hexdigest()[:8]
        audit.append(connection, "?", "failed_login", details={"reason": "unknown user", "name_sha256_prefix": digest})
        return "Wrong user name or password", None
    role, password_hash, disabled, failures, locked_until = row
    if disabled:
        return "This account is disabled; ask an admin", None
    if locked_until > now:
        return f"Too many failed attempts; try again in {int(locked_until - now) + 1} s", None
    try:
        HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        failures += 1
        wait = LOCKOUT_SECONDS if failures >= LOCKOUT_AFTER else (2 ** (failures - 2) if failures >= 2 else 0)
        connection.execute("UPDATE users SET failed_attempts = ?, locked_until = ? WHERE username = ?",
                           (failures, now + wait, username))
        audit.append(connection, username, "failed_login", details={"attempt": failures})
        if failures >= LOCKOUT_AFTER:
            audit.append(connection, username, "lock", object_id=username, details={"seconds": wait})
        return "Wrong user name or password" + (f"; the account is locked for {wait // 60} minutes"
                                                if failures >= LOCKOUT_AFTER else ""), None
    connection.execute("UPDATE users SET failed_attempts = 0, locked_until = 0 WHERE username = ?", (username,))
    audit.append(connection, username, success)
    return "", _session_for(username, role)


def record_lock(store: ReviewStore, user: User) -> None:
    """The screen locked (idle) while `user` was logged in."""
    with store.transaction() as connection:
        audit.append(connection, user.username, "lock")


def unlock(store: ReviewStore, locked_for: User, user: User) -> None:
    """Only the user whose screen locked, or an admin, may unlock it."""
    if user.username != locked_for.username and user.role != "admin":
        raise PermissionDenied(f"Only {locked_for.username} or an admin can unlock this screen")
    with store.transaction() as connection:
        audit.append(connection, user.username, "unlock", details={"locked_for": locked_for.username})


def logout(store: ReviewStore, user: User) -> None:
    with store.transaction() as connection:
        audit.append(connection, user.username, "logout")
    _SESSIONS.discard(user.session)


def disable_user(store: ReviewStore, actor: User, username: str) -> None:
    actor.require("manage_users")
    with store.transaction() as connection:
        if connection.execute("UPDATE users SET disabled = 1 WHERE username = ?", (username,)).rowcount == 0:
            raise WorkstationError(f"No user {username!r}")
        audit.append(connection, actor.username, "user_disabled", object_id=username)


def change_password(store: ReviewStore, actor: User, username: str, password: str) -> None:
    """Users change their own password; admins anyone's (which also lifts a lock-out)."""
    if actor.username != username:
        actor.require("manage_users")
    _check_password(password)
    with store.transaction() as connection:
        changed = connection.execute(
            "UPDATE users SET password_hash = ?, failed_attempts = 0, locked_until = 0 WHERE username = ?",
            (HASHER.hash(password), username)).rowcount
        if not changed:
            raise WorkstationError(f"No user {username!r}")
        audit.append(connection, actor.username, "password_changed", object_id=username)


def list_users(store: ReviewStore, actor: User) -> list[dict]:
    actor.require("manage_users")
    rows = store.connection.execute("SELECT username, role, disabled, created_at FROM users ORDER BY username")
    return [{"username": u, "role": r, "disabled": bool(d), "created_at": c} for u, r, d, c in rows]
