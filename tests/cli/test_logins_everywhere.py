"""Once an account exists, every command that reads or writes patient data, the record or the
settings needs --as USER and a password, and checks the role in the core (#20, item 5)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from workstation.cli import main
from workstation.library import StudyLibrary
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import LOCKOUT_AFTER, AuthError, add_user, login

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run

PASSWORD = "correct horse battery"


@pytest.fixture
def station(home: Path, small_phantom_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A study in the library, then an admin, a radiologist and a trainee."""
    assert main(["import", str(small_phantom_dir / "dicom")]) == 0  # no account yet: the OS account
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "boss", PASSWORD, "admin")
    reader = add_user(store, admin, "drlee", PASSWORD, "radiologist")
    add_user(store, admin, "ana", PASSWORD, "trainee")
    ReviewSession(store, reader, StudyLibrary(home).studies()[0]["study_uid"])  # the study is being read
    store.close()
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    return small_phantom_dir


def _commands(tmp_path: Path, source: Path) -> dict[str, tuple[list[str], set[str]]]:
    """command -> (arguments before --as, the roles allowed)."""
    everyone, readers, admins = {"boss", "drlee", "ana"}, {"boss", "drlee"}, {"boss"}
    return {
        "list": (["list"], everyone),
        "info": (["info", "1"], everyone),
        "import": (["import", str(source / "dicom")], everyone),
        "settings": (["settings"], everyone),
        "settings change": (["settings", "institution", "Clinic"], admins),
        "audit export": (["audit", "{as}", "export", "--csv"], admins),
        "backup": (["backup", str(tmp_path / "backups" / "{user}")], admins),
        "deidentify": (["deidentify", str(source / "dicom"), str(tmp_path / "deid" / "{user}")], readers),
        "report": (["report", "1", "--out", str(tmp_path / "{user}-report.pdf")], readers),
        "export": (["export", "1", "--json", "--out", str(tmp_path / "{user}.json")], readers),
        "analyze --report": (["analyze", str(source / "dicom"), "--report", str(tmp_path / "{user}.pdf")], readers),
    }


def _run(arguments: list[str], user: str | None) -> int:
    args = [a.replace("{user}", user or "nobody") for a in arguments]
    if "{as}" in args:
        args[args.index("{as}"):args.index("{as}") + 1] = ["--as", user] if user else []
    elif user:
        args += ["--as", user]
    return main(args)


@pytest.mark.parametrize("command", ["list", "info", "import", "settings", "settings change", "audit export",
                                     "backup", "deidentify", "report", "export",
                                     "analyze --report"])
def test_every_path_needs_a_login_and_the_right_role(station: Path, tmp_path: Path, command: str, capsys) -> None:
    arguments, allowed = _commands(tmp_path, station)[command]
    assert _run(arguments, None) == 2, f"{command} ran without a login"
    assert "--as USER" in capsys.readouterr().err
    for user in ("ana", "drlee", "boss"):
        if command == "analyze --report" and user == "drlee":
            continue  # the model run costs seconds; boss shows the allowed path
        code = _run(arguments, user)
        err = capsys.readouterr().err
        if user in allowed:
            assert code == 0, (command, user, err)
        else:
            assert code == 2 and "may not" in err, (command, user, err)


def test_reads_are_audited_under_the_reader(station: Path, home: Path) -> None:
    assert main(["list", "--as", "ana"]) == 0
    assert main(["info", "1", "--as", "ana"]) == 0
    store = ReviewStore.in_home(home)
    rows = store.connection.execute("SELECT user, action FROM audit WHERE user = 'ana' AND action != 'login'"
                                    ).fetchall()
    store.close()
    assert rows == [("ana", "library_listed"), ("ana", "study_viewed")]


def test_an_unknown_user_name_is_not_audited_in_clear(home: Path) -> None:
    store = ReviewStore.in_home(home)
    add_user(store, None, "boss", PASSWORD, "admin")
    with pytest.raises(AuthError):
        login(store, "Tr0ub4dor&3-typed-as-a-name", "whatever")
    dump = "\n".join(str(row) for row in store.connection.execute("SELECT * FROM audit"))
    store.close()
    assert "failed_login" in dump and "Tr0ub4dor" not in dump


def _guess(home: str, password: str) -> str:
    store = ReviewStore.in_home(Path(home))
    try:
        login(store, "boss", password)
        return "in"
    except AuthError as exc:
        return str(exc)
    finally:
        store.close()


def test_parallel_guesses_are_each_counted_and_held_back(home: Path) -> None:
    """30 parallel logins, 29 wrong: each checked password is counted (no two counted as one), and
    the back-off refuses the rest unchecked, so a parallel attack checks no more passwords than
    a serial one (before: all 30 were checked and none counted twice, without a lock-out)."""
    store = ReviewStore.in_home(home)
    add_user(store, None, "boss", PASSWORD, "admin")
    store.close()
    guesses = ["wrong password"] * 29 + [PASSWORD]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        outcomes = pool.starmap(_guess, [(str(home), guess) for guess in guesses])
    store = ReviewStore.in_home(home)
    attempts = [row[0] for row in store.connection.execute(
        "SELECT json_extract(details, '$.attempt') FROM audit WHERE action = 'failed_login' ORDER BY seq")]
    store.close()
    assert attempts == list(range(1, len(attempts) + 1)), "two guesses were counted as one"
    assert 1 <= len(attempts) <= LOCKOUT_AFTER
    refused = [o for o in outcomes if o.startswith("Too many failed attempts")]
    assert len(refused) == len(guesses) - len(attempts) - outcomes.count("in")
