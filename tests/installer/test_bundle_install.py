"""The offline bundle, built and installed for real with networking disabled for the install
(slow: about 1-2 minutes; outside the default suite):

    .venv/bin/python -m pytest -q -m slow tests/installer

and the install script's refusals, the self-check, backup and restore (default suite)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from workstation.cli import main as cli
from workstation.maintenance import MaintenanceError, backup, check_job, restore
from workstation.jobs import run_job
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, list_users

REPO = Path(__file__).resolve().parents[2]


def _network_off() -> list[str]:
    """A prefix that runs a command in a network namespace with no interfaces up."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        return ["unshare", "-n"]
    pytest.skip("unshare -n is not permitted here; cannot prove the install needs no network")


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "WORKSTATION_", "XDG_"))}
    return {**env, "HOME": str(home), "WORKSTATION_HEADLESS": "1", "PYTHON": shutil.which("python3") or sys.executable}


@pytest.mark.slow
def test_bundle_installs_offline_checks_updates_and_uninstalls_keeping_data(tmp_path: Path) -> None:
    bundle, home = tmp_path / "bundle", tmp_path / "home"
    home.mkdir()
    subprocess.run([str(REPO / "installer" / "build_bundle.sh"), str(bundle)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    env = _env(home)
    offline = _network_off()
    subprocess.run(offline + [str(bundle / "install.sh")], check=True, env=env)
    prefix = home / ".local" / "opt" / "workstation"
    entry = home / ".local" / "share" / "applications" / "workstation.desktop"
    assert f"Exec={prefix}/bin/workstation" in entry.read_text()
    check = subprocess.run(offline + [str(prefix / "check.sh")], env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "demo case to PDF" in check.stdout and "weights sha256" in check.stdout and "per chest CT" in check.stdout

    # the clinic works: an admin account and a study in the data folder
    workstation = str(prefix / "bin" / "workstation")
    subprocess.run([workstation, "users", "add", "admin", "--role", "admin"], check=True,
                   env={**env, "WORKSTATION_PASSWORD": "clinic admin 1"})
    subprocess.run([workstation, "demo", "--as", "admin"], check=True, stdout=subprocess.DEVNULL,
                   env={**env, "WORKSTATION_PASSWORD": "clinic admin 1"})  # accounts exist: who runs it
    data = Path(subprocess.run([workstation, "--data-folder"], env=env, capture_output=True, text=True,
                               check=True).stdout.strip())
    before = sorted(p.relative_to(data) for p in (data / "studies").rglob("*"))

    first = (prefix / "current").resolve()
    subprocess.run(offline + [str(bundle / "install.sh")], check=True, env=env)  # update over the old one
    assert (prefix / "current").resolve() != first and not first.exists()
    assert sorted(p.relative_to(data) for p in (data / "studies").rglob("*")) == before
    assert "admin" in subprocess.run([workstation, "users", "--as", "admin", "list"], env={
        **env, "WORKSTATION_ADMIN_PASSWORD": "clinic admin 1"}, capture_output=True, text=True).stdout

    out = subprocess.run([str(prefix / "uninstall.sh")], env=env, capture_output=True, text=True, check=True)
    assert not prefix.exists() and not entry.exists()
    assert str(data) in out.stdout and (data / "review.db").is_file()
    assert sorted(p.relative_to(data) for p in (data / "studies").rglob("*")) == before


def _fake_bundle(tmp_path: Path, python: str) -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(REPO / "installer" / "bundle" / "install.sh", bundle)
    (bundle / "BUNDLE.json").write_text(json.dumps({"version": "0.0.1", "python": python}))
    (bundle / "wheels").mkdir()
    (bundle / "wheels" / "x.whl").write_text("wheel")
    subprocess.run("sha256sum BUNDLE.json wheels/x.whl > SHA256SUMS", shell=True, cwd=bundle, check=True)
    return bundle


def test_install_refuses_a_bundle_for_another_python(tmp_path: Path) -> None:
    bundle = _fake_bundle(tmp_path, "2.7")
    result = subprocess.run([str(bundle / "install.sh")], env=_env(tmp_path), capture_output=True, text=True)
    assert result.returncode == 1 and "built for Python 2.7" in result.stderr
    assert not (tmp_path / ".local").exists()


def test_install_refuses_a_damaged_bundle(tmp_path: Path) -> None:
    env = _env(tmp_path)
    minor = subprocess.run([env["PYTHON"], "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                           capture_output=True, text=True, check=True).stdout.strip()
    bundle = _fake_bundle(tmp_path, minor)
    (bundle / "wheels" / "x.whl").write_text("truncated")
    result = subprocess.run([str(bundle / "install.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "the bundle is damaged" in result.stderr
    assert not (tmp_path / ".local" / "opt").exists()


def test_self_check_runs_the_demo_to_a_pdf(tmp_path: Path) -> None:
    checks = run_job(check_job(tmp_path / "data", tmp_path / "out"))
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    names = {c.name for c in checks}
    assert {"version", "device", "report fonts", "data folder", "demo case to PDF"} <= names
    assert (tmp_path / "out" / "check-report.pdf").read_bytes().startswith(b"%PDF")
    assert not (tmp_path / "data" / "studies").exists()  # the demo ran in the scratch folder only


def test_self_check_reports_a_broken_audit_chain(tmp_path: Path) -> None:
    from workstation.maintenance import verify_data_folder

    store = ReviewStore.in_home(tmp_path)
    add_user(store, None, "admin", "clinic admin 1", "admin")
    store.close()
    connection = sqlite3.connect(tmp_path / "review.db")
    connection.execute("DROP TRIGGER IF EXISTS audit_no_update")
    for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        connection.execute(f"DROP TRIGGER {name}")
    connection.execute("UPDATE audit SET user = 'mallory'")
    connection.commit()
    connection.close()
    audit = next(c for c in verify_data_folder(tmp_path) if c.name == "audit trail")
    assert not audit.ok and "BROKEN at row 1" in audit.detail


def test_backup_while_open_and_restore_into_an_empty_folder(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "data"
    monkeypatch.setenv("WORKSTATION_HOME", str(home))
    assert cli(["demo-case", str(tmp_path / "case"), "--matrix", "128"]) == 0
    assert cli(["import", str(tmp_path / "case" / "dicom")]) == 0
    store = ReviewStore.in_home(home)  # the app is running: its connection stays open during the backup
    admin = add_user(store, None, "admin", "clinic admin 1", "admin")
    target = backup(home, tmp_path / "usb")
    add_user(store, admin, "late", "clinic admin 1", "radiologist")  # after the backup: not in it
    store.close()
    with pytest.raises(MaintenanceError, match="already holds data"):
        restore(target, home)
    restored = tmp_path / "restored"
    count = restore(target, restored)
    assert count >= 3 and (restored / "library.db").is_file()
    store = ReviewStore.in_home(restored)
    assert [u["username"] for u in list_users(store, admin)] == ["admin"]
    assert store.integrity_ok()
    store.close()
    monkeypatch.setenv("WORKSTATION_HOME", str(restored))
    monkeypatch.setenv("WORKSTATION_PASSWORD", "clinic admin 1")
    assert cli(["list", "--as", "admin"]) == 0
    victim = next(p for p in (target / "studies").rglob("*") if p.is_file())
    victim.write_bytes(victim.read_bytes()[:-1])
    with pytest.raises(MaintenanceError, match="damaged"):
        restore(target, tmp_path / "again")
