"""`workstation pacs` against a real Orthanc: nodes, echo, find by each key, retrieve by C-GET and
C-MOVE into the library (resumable, de-duplicated), send back; faults give named errors (#23)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pydicom
import pytest

from tests.network.conftest import WORKSTATION_AE, OrthancServer, free_port
from workstation.cli import main
from workstation.errors import CancelledError
from workstation.imaging.phantom import write_demo_case
from workstation.jobs import CancelToken, Progress
from workstation.library import StudyLibrary
from workstation.network import dimse
from workstation.network.nodes import NetworkError, load_nodes


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two phantom patients' studies (56 and 28 slices)."""
    out = {}
    for seed, thickness in ((11, 5.0), (12, 10.0)):
        folder = tmp_path_factory.mktemp(f"study-{seed}")
        write_demo_case(folder, seed=seed, matrix=128, slice_thickness_mm=thickness)
        out[str(seed)] = sorted((folder / "dicom").iterdir())
    return out


@pytest.fixture
def pacs(orthanc: OrthancServer, studies, home: Path, capsys) -> OrthancServer:
    """Orthanc holding both studies, configured as node 'pacs' of a fresh workstation (WSTEST)."""
    orthanc.clear()
    for files in studies.values():
        orthanc.upload(files)
    assert main(["pacs", "nodes", "local", "--aet", WORKSTATION_AE, "--port", str(orthanc.move_port)]) == 0
    assert main(["pacs", "nodes", "add", "pacs", "--aet", orthanc.ae_title, "--host", "127.0.0.1",
                 "--port", str(orthanc.dicom_port)]) == 0
    capsys.readouterr()
    return orthanc


def _uid(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def test_nodes_are_kept_and_validated(home: Path, capsys) -> None:
    assert main(["pacs", "nodes", "add", "main", "--aet", "MAINPACS", "--host", "10.0.0.5", "--port", "104",
                 "--dicomweb", "http://10.0.0.5/dicom-web"]) == 0
    assert main(["pacs", "nodes", "list"]) == 0
    assert "MAINPACS" in capsys.readouterr().out
    assert main(["pacs", "nodes", "add", "bad", "--aet", "A\\B", "--host", "h", "--port", "104"]) == 2
    assert "AE title 'A\\\\B' must be 1-16 printable ASCII" in capsys.readouterr().err
    assert main(["pacs", "nodes", "add", "bad", "--aet", "OK", "--host", "h", "--port", "70000"]) == 2
    assert main(["pacs", "nodes", "remove", "main"]) == 0
    assert load_nodes(home).nodes == {}
    assert main(["pacs", "echo", "main"]) == 2
    assert "No DICOM node called 'main'" in capsys.readouterr().err


def test_echo_and_named_faults(pacs: OrthancServer, capsys) -> None:
    assert main(["pacs", "echo", "pacs"]) == 0
    assert "answered in" in capsys.readouterr().out
    main(["pacs", "nodes", "add", "down", "--aet", "ORTHANC", "--host", "127.0.0.1", "--port", str(free_port())])
    main(["pacs", "nodes", "add", "wrongae", "--aet", "NOTORTHANC", "--host", "127.0.0.1",
          "--port", str(pacs.dicom_port)])
    capsys.readouterr()
    start = time.monotonic()
    assert main(["pacs", "echo", "down"]) == 2
    assert "did not answer at 127.0.0.1" in capsys.readouterr().err and time.monotonic() - start < 15
    assert main(["pacs", "echo", "wrongae"]) == 2
    assert "rejected the association" in capsys.readouterr().err


def test_find_by_each_key(pacs: OrthancServer, studies, tmp_path: Path, capsys) -> None:
    node = load_nodes_node()
    everyone = dimse.find(node, WORKSTATION_AE, "study", {"PatientID": "*"})
    assert len(everyone) == 2
    first = next(m for m in everyone if m["StudyInstanceUID"] == _uid(studies["11"]))
    header = pydicom.dcmread(studies["11"][0], stop_before_pixels=True)
    by_key = {
        "PatientID": str(header.PatientID), "AccessionNumber": str(header.AccessionNumber),
        "PatientName": str(header.PatientName)[:-2] + "*", "StudyDate": f"{header.StudyDate}-{header.StudyDate}",
    }
    for keyword, value in by_key.items():
        matches = dimse.find(node, WORKSTATION_AE, "study", {keyword: value})
        assert [m["StudyInstanceUID"] for m in matches] == [first["StudyInstanceUID"]], keyword
    assert len(dimse.find(node, WORKSTATION_AE, "study", {"ModalitiesInStudy": "CT"})) == 2
    assert dimse.find(node, WORKSTATION_AE, "study", {"ModalitiesInStudy": "MR"}) == []
    series = dimse.find(node, WORKSTATION_AE, "series", {"StudyInstanceUID": first["StudyInstanceUID"]})
    assert len(series) == 1 and series[0]["NumberOfSeriesRelatedInstances"] == str(len(studies["11"]))
    out = tmp_path / "found.json"
    assert main(["pacs", "find", "pacs", "--patient-id", str(header.PatientID), "--json", str(out)]) == 0
    assert [m["PatientID"] for m in json.loads(out.read_text())] == [str(header.PatientID)]
    assert main(["pacs", "find", "pacs", "--date", "2024-01-01"]) == 2
    assert "must be YYYYMMDD or FROM-TO" in capsys.readouterr().err


def load_nodes_node():
    from workstation.config import data_home

    return load_nodes(data_home()).node("pacs")


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_into_the_library(pacs: OrthancServer, studies, home: Path, method: str, capsys) -> None:
    uid = _uid(studies["11"])
    assert main(["pacs", "retrieve", "pacs", "--study", uid, "--method", method]) == 0
    assert f"Retrieved {len(studies['11'])} instance(s)" in capsys.readouterr().out
    library = StudyLibrary(home)
    [study] = library.studies()
    assert study["study_uid"] == uid and library.series(study["key"])[0]["slices"] == len(studies["11"])
    assert main(["pacs", "retrieve", "pacs", "--study", uid, "--method", method]) == 0
    assert f"0 file(s) new, {len(studies['11'])} already there" in capsys.readouterr().out
    assert not (home / "incoming").exists() or not any((home / "incoming").iterdir())
    trail = [row[0] for row in library.db.execute("SELECT 1")]  # the library still opens
    assert trail


def test_an_interrupted_retrieve_shows_nothing_and_resumes(pacs: OrthancServer, studies, home: Path) -> None:
    uid, node = _uid(studies["11"]), load_nodes_node()
    cancel = CancelToken()
    job = dimse.retrieve_job(home, node, WORKSTATION_AE, uid, method="get", cancel=cancel)
    with pytest.raises(CancelledError):
        for progress in job:
            if isinstance(progress, Progress) and progress.done >= 10:
                cancel.cancel()
    assert StudyLibrary(home).studies() == []  # nothing half-received is shown
    kept = list(dimse.staging_folder(home, node, uid).iterdir())
    assert 10 <= len(kept) < len(studies["11"])
    from workstation.jobs import run_job

    result = run_job(dimse.retrieve_job(home, node, WORKSTATION_AE, uid, method="get"))
    assert result.received == len(studies["11"])
    [study] = StudyLibrary(home).studies()
    assert StudyLibrary(home).series(study["key"])[0]["slices"] == len(studies["11"])


def test_retrieving_an_unknown_study_is_a_named_error(pacs: OrthancServer, capsys) -> None:
    assert main(["pacs", "retrieve", "pacs", "--study", "1.2.3.4.5.6.7"]) == 2
    assert "holds no such study" in capsys.readouterr().err


def test_send_a_library_study_back(pacs: OrthancServer, studies, home: Path, capsys) -> None:
    assert main(["import", str(studies["12"][0].parent)]) == 0
    pacs.clear()
    assert main(["pacs", "send", "pacs", "1"]) == 0
    assert f"Sent {len(studies['12'])} of {len(studies['12'])}" in capsys.readouterr().out
    [orthanc_study] = pacs.rest("/studies?expand")
    assert orthanc_study["MainDicomTags"]["StudyInstanceUID"] == _uid(studies["12"])
    assert len(pacs.rest(f"/studies/{orthanc_study['ID']}/instances")) == len(studies["12"])
    from workstation.review.store import ReviewStore

    store = ReviewStore.in_home(home)
    row = store.connection.execute("SELECT new_value FROM audit WHERE action = 'exported'").fetchone()
    assert json.loads(row[0])["kind"] == "dicom-send"
    store.close()


def test_a_trainee_cannot_send(pacs: OrthancServer, home: Path, studies, monkeypatch, capsys) -> None:
    from workstation.review.store import ReviewStore
    from workstation.review.users import add_user

    assert main(["import", str(studies["12"][0].parent)]) == 0
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", "correct horse battery", "admin")
    add_user(store, admin, "trainee", "correct horse battery", "trainee")
    store.close()
    monkeypatch.setenv("WORKSTATION_PASSWORD", "correct horse battery")
    capsys.readouterr()
    assert main(["pacs", "send", "pacs", "1"]) == 2
    assert "--as USER" in capsys.readouterr().err
    assert main(["pacs", "send", "pacs", "1", "--as", "trainee"]) == 2
    assert "export" in capsys.readouterr().err
    with pytest.raises(NetworkError):
        raise NetworkError("named")  # the hierarchy a caller catches


@pytest.fixture
def web_pacs(pacs: OrthancServer, capsys) -> OrthancServer:
    """The same Orthanc, its DICOMweb root added to the node."""
    assert main(["pacs", "nodes", "add", "pacs", "--aet", pacs.ae_title, "--host", "127.0.0.1",
                 "--port", str(pacs.dicom_port), "--dicomweb", pacs.dicomweb_url]) == 0
    capsys.readouterr()
    return pacs


def test_dicomweb_search_retrieve_and_store(web_pacs: OrthancServer, studies, home: Path, tmp_path: Path,
                                            capsys) -> None:
    uid = _uid(studies["11"])
    header = pydicom.dcmread(studies["11"][0], stop_before_pixels=True)
    out = tmp_path / "qido.json"
    assert main(["pacs", "find", "pacs", "--via", "web", "--patient-id", str(header.PatientID),
                 "--json", str(out)]) == 0
    [match] = json.loads(out.read_text())
    assert match["StudyInstanceUID"] == uid and match["PatientID"] == str(header.PatientID)
    assert main(["pacs", "retrieve", "pacs", "--via", "web", "--study", uid]) == 0
    assert f"Retrieved {len(studies['11'])} instance(s) from pacs by WADO-RS" in capsys.readouterr().out
    library = StudyLibrary(home)
    [study] = library.studies()
    assert library.series(study["key"])[0]["slices"] == len(studies["11"])
    web_pacs.clear()
    assert main(["pacs", "send", "pacs", "1", "--via", "web"]) == 0
    assert f"Sent {len(studies['11'])} of {len(studies['11'])}" in capsys.readouterr().out
    assert len(web_pacs.rest("/instances")) == len(studies["11"])


def test_dicomweb_faults_are_named(pacs: OrthancServer, capsys) -> None:
    assert main(["pacs", "find", "pacs", "--via", "web"]) == 2
    assert "has no DICOMweb URL" in capsys.readouterr().err
    main(["pacs", "nodes", "add", "web-down", "--aet", "X", "--host", "127.0.0.1", "--port", "104",
          "--dicomweb", f"http://127.0.0.1:{free_port()}/dicom-web"])
    capsys.readouterr()
    assert main(["pacs", "find", "web-down", "--via", "web"]) == 2
    assert "did not answer at http://127.0.0.1" in capsys.readouterr().err
    main(["pacs", "nodes", "add", "web-wrong", "--aet", "X", "--host", "127.0.0.1", "--port", "104",
          "--dicomweb", f"http://127.0.0.1:{pacs.http_port}/no-such-root"])
    capsys.readouterr()
    assert main(["pacs", "find", "web-wrong", "--via", "web"]) == 2
    assert "refused the search (HTTP 404)" in capsys.readouterr().err


def test_priors_on_the_pacs_are_listed_with_how_to_retrieve_them(orthanc: OrthancServer, home: Path, tmp_path: Path,
                                                                   capsys) -> None:
    """#24 item 1: the follow-up is in the library, its prior only on the PACS (with another
    patient's study beside it): `priors --pacs` offers the prior, then retrieving it puts it in
    the library, where `priors` finds it."""
    from tests.prior_pair import write_pair

    pair = write_pair(tmp_path / "pair")
    orthanc.clear()
    prior_files = sorted(pair["prior"].iterdir())
    orthanc.upload(prior_files)
    other = tmp_path / "other"
    write_demo_case(other, seed=12, matrix=128, slice_thickness_mm=10.0)
    orthanc.upload(sorted((other / "dicom").iterdir()))
    assert main(["pacs", "nodes", "local", "--aet", WORKSTATION_AE, "--port", str(orthanc.move_port)]) == 0
    assert main(["pacs", "nodes", "add", "pacs", "--aet", orthanc.ae_title, "--host", "127.0.0.1",
                 "--port", str(orthanc.dicom_port), "--dicomweb", orthanc.dicomweb_url]) == 0
    assert main(["import", str(pair["follow"])]) == 0
    capsys.readouterr()
    follow = StudyLibrary(home).studies()[0]["key"]
    for via in ("dimse", "web"):
        assert main(["priors", follow, "--pacs", "pacs", "--via", via]) == 0
        out = capsys.readouterr().out
        assert "No earlier study of this patient in the library." in out
        lines = [line for line in out.splitlines() if line.startswith("pacs:")]
        assert len(lines) == 1 and _uid(prior_files) in lines[0], (via, out)
        assert f"retrieve: workstation pacs retrieve pacs --study {_uid(prior_files)}" in lines[0]
    assert main(["pacs", "retrieve", "pacs", "--study", _uid(prior_files)]) == 0
    capsys.readouterr()
    assert main(["priors", follow, "--pacs", "pacs"]) == 0
    out = capsys.readouterr().out
    assert "(offered)" in out and "(in the library)" in out


def _with_issuer(files: list[Path], out: Path, issuer: str, *, new_uids: str = "") -> list[Path]:
    """Copies of `files` naming `issuer` as the Issuer of Patient ID; with `new_uids`, as another study."""
    from pydicom.uid import generate_uid

    out.mkdir(parents=True)
    study, series = (generate_uid(entropy_srcs=[new_uids, part]) for part in ("study", "series"))
    written = []
    for number, path in enumerate(files):
        dataset = pydicom.dcmread(path)
        dataset.IssuerOfPatientID = issuer
        if new_uids:
            dataset.StudyInstanceUID, dataset.SeriesInstanceUID = study, series
            dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = \
                generate_uid(entropy_srcs=[new_uids, str(number)])
        dataset.save_as(out / path.name)
        written.append(out / path.name)
    return written


def test_a_pacs_study_of_the_same_patient_id_from_another_issuer_is_not_offered(
        orthanc: OrthancServer, home: Path, tmp_path: Path, capsys) -> None:
    """#24 item 1 on the PACS: the same Patient ID issued by another hospital is another patient;
    the prior of the same issuer is offered, the other is named and not offered."""
    from tests.prior_pair import write_pair

    pair = write_pair(tmp_path / "pair")
    orthanc.clear()
    prior = _with_issuer(sorted(pair["prior"].iterdir()), tmp_path / "prior-a", "HOSPITAL_A")
    impostor = _with_issuer(sorted(pair["prior"].iterdir()), tmp_path / "prior-b", "HOSPITAL_B", new_uids="b")
    orthanc.upload(prior + impostor)
    follow = _with_issuer(sorted(pair["follow"].iterdir()), tmp_path / "follow-a", "HOSPITAL_A")
    assert main(["pacs", "nodes", "local", "--aet", WORKSTATION_AE, "--port", str(orthanc.move_port)]) == 0
    assert main(["pacs", "nodes", "add", "pacs", "--aet", orthanc.ae_title, "--host", "127.0.0.1",
                 "--port", str(orthanc.dicom_port), "--dicomweb", orthanc.dicomweb_url]) == 0
    assert main(["import", str(follow[0].parent)]) == 0
    capsys.readouterr()
    key = StudyLibrary(home).studies()[0]["key"]
    for via in ("dimse", "web"):
        assert main(["priors", key, "--pacs", "pacs", "--via", via]) == 0
        out = capsys.readouterr().out
        offered = [line for line in out.splitlines() if line.startswith("pacs:")]
        assert len(offered) == 1 and _uid(prior) in offered[0] and _uid(impostor) not in out, (via, out)
        assert "from another issuer (HOSPITAL_B)" in out, (via, out)
