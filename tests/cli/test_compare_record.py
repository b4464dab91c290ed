"""`workstation compare CURRENT PRIOR --record --as USER` with the reader's corrections (#24 items 4
and 5), end to end on a library phantom pair: recorded and audited, a correction reuses the recorded
alignment, bad input is a sentence, and `workstation report` prints the Comparison section with
key images of the prior loaded from the library."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.prior_pair import write_pair
from workstation.cli import main
from workstation.library import StudyLibrary
from workstation.review import audit
from workstation.review.comparison_record import recorded_comparison
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_pair(tmp_path_factory.mktemp("compare-record"))


def test_compare_record_edit_and_report(cases: dict, home: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    truth = cases["truth"]
    assert main(["import", str(cases["prior"]), str(cases["follow"])]) == 0
    store = ReviewStore.in_home(home)
    add_user(store, add_user(store, None, "admin", PASSWORD, "admin"), "dr_lee", PASSWORD, "radiologist")
    follow_uid = truth["study_uid"]
    prior_uid = next(s["study_uid"] for s in StudyLibrary(home).studies() if s["study_uid"] != follow_uid)
    reader = login(store, "dr_lee", PASSWORD)
    for uid, nodules in ((prior_uid, truth["prior_nodules"]), (follow_uid, truth["current_nodules"])):
        session = ReviewSession(store, reader, uid)
        for nodule in nodules:
            session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    capsys.readouterr()

    # corrections are recorded: without --record they are refused in a sentence, as is bad input
    assert main(["compare", follow_uid, prior_uid, "--pair", "1=2", "--as", "dr_lee"]) == 2
    assert "add --record --as USER" in capsys.readouterr().err
    assert main(["compare", follow_uid, prior_uid, "--record", "--pair", "one=2", "--as", "dr_lee"]) == 2
    assert "write CURRENT=PRIOR, e.g. 3=2" in capsys.readouterr().err
    assert main(["compare", follow_uid, prior_uid, "--record", "--status", "1=bigger", "--as", "dr_lee"]) == 2
    assert "stable, growing, shrinking" in capsys.readouterr().err
    assert main(["compare", follow_uid, prior_uid, "--record"]) == 2
    assert "--as USER" in capsys.readouterr().err

    assert main(["compare", follow_uid, prior_uid, "--record", "--as", "dr_lee"]) == 0
    printed = capsys.readouterr().out
    assert "alignment good" in printed and "Recorded for the read by dr_lee" in printed
    assert "Matched against the prior's accepted findings (its read is not signed)" in printed
    first = recorded_comparison(store, follow_uid)
    assert first is not None and first.prior.study_uid == prior_uid and first.edits == ()

    grown = next(m for m in truth["matches"] if m["designed"] == "grown")
    out = tmp_path / "edited.json"
    assert main(["compare", follow_uid, prior_uid, "--record", "--unpair", str(grown["current_id"]),
                 "--json", str(out), "--as", "dr_lee"]) == 0
    printed = capsys.readouterr().out
    assert "The recorded alignment is reused" in printed and "(set by the reader)" in printed
    result = json.loads(out.read_text())
    edited = next(n for n in result["nodules"] if n["current"] and n["current"]["number"] == grown["current_id"])
    assert edited["status"] == "new" and edited["set_by_reader"]
    second = recorded_comparison(store, follow_uid)
    assert second.id > first.id and [e.kind for e in second.edits] == ["unpair"]
    assert (second.registration.prior_to_current == first.registration.prior_to_current).all()
    rows = store.connection.execute("SELECT user, action FROM audit WHERE action = 'comparison_recorded'").fetchall()
    assert rows == [("dr_lee", "comparison_recorded")] * 2 and audit.verify(store.connection).ok
    store.close()

    pdf = tmp_path / "report.pdf"
    assert main(["report", follow_uid, "--out", str(pdf), "--as", "dr_lee"]) == 0
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                                   text=True).stdout.split())
    assert "Comparison" in text and f"finding {grown['current_id']} not the same nodule as any prior finding" in text
    assert "Prior: close-up, 60 mm field" in text  # the prior's images, loaded from the library

    store = ReviewStore.in_home(home)
    ReviewSession(store, login(store, "dr_lee", PASSWORD), follow_uid).sign("Growing nodule.", password=PASSWORD)
    store.close()
    capsys.readouterr()
    assert main(["compare", follow_uid, prior_uid, "--record", "--unpair", "1", "--as", "dr_lee"]) == 2
    assert "addendum; say why with --reason WHY" in capsys.readouterr().err
