"""Child process for the crash test: storm decisions and print ACK lines only after each commit.

    python -m tests.review.storm DB SEED
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, has_users, login


def main() -> None:
    store = ReviewStore(Path(sys.argv[1]))
    rng = random.Random(int(sys.argv[2]))
    if not has_users(store):
        admin = add_user(store, None, "admin", "admin-password", "admin")
        add_user(store, admin, "reader", "reader-password", "radiologist")
    reader = login(store, "reader", "reader-password")
    session = ReviewSession(store, reader, "1.2.3.storm")
    while True:
        finding = session.add((rng.uniform(-100, 100), rng.uniform(-100, 100), rng.uniform(-100, 100)),
                              rng.uniform(4, 30))
        print(f"ACK add {finding}", flush=True)
        session.reject(finding, "vessel") if rng.random() < 0.5 else session.edit(finding, type="part-solid")
        last = store.connection.execute("SELECT max(id) FROM decisions").fetchone()[0]
        print(f"ACK decision {last}", flush=True)


def kill_during_storm(path: Path, seed: int) -> list[str]:
    """Start a storm, SIGKILL it at a random point once it runs; return every problem found."""
    from workstation.review import audit

    child = subprocess.Popen([sys.executable, "-m", "tests.review.storm", str(path), str(seed)],
                             cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    first = child.stdout.readline()  # the storm is running: now kill it at a random point
    time.sleep(random.Random(seed).random() * 0.5)
    os.kill(child.pid, signal.SIGKILL)
    output, _ = child.communicate()
    acknowledged = [line.split() for line in (first + output).splitlines() if line.startswith("ACK")]
    problems = [] if acknowledged else ["nothing was acknowledged before the kill"]
    store = ReviewStore(path)
    if not store.integrity_ok():
        problems.append("integrity check failed")
    if not audit.verify(store.connection).ok:
        problems.append("audit chain broken")
    findings = {row[0] for row in store.connection.execute("SELECT id FROM findings")}
    decisions = {row[0] for row in store.connection.execute("SELECT id FROM decisions")}
    for _ack, kind, number in acknowledged:
        if int(number) not in (findings if kind == "add" else decisions):
            problems.append(f"acknowledged {kind} {number} is missing")
    store.close()
    return problems


if __name__ == "__main__":
    main()
