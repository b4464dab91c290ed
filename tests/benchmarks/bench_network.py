"""DICOM networking against a local Orthanc (issue #23), ratios measured in the same run:

- retrieve of a 300-slice study by our C-GET (into the library) against dcmtk's getscu;
- retrieve by our WADO-RS (into the library) against a plain DICOMweb download of the same study
  into files by dicomweb-client's own command line (`dicomweb_client retrieve studies --save`:
  the like-for-like baseline, as getscu is for C-GET), and - for scale - against reading the
  multipart response's bytes into memory (nothing parsed or written);
- our Storage SCP's receive rate from storescu against Orthanc receiving the same files.

Needs Debian's orthanc, orthanc-dicomweb and dcmtk (installer/dev-setup.sh test).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.network.conftest import OrthancServer, free_port
from workstation.dicom.write import write_ct_series
from workstation.imaging.phantom import PhantomSpec, generate_phantom
from workstation.jobs import run_job
from workstation.network.dicomweb import web_retrieve_job
from workstation.network.dimse import retrieve_job
from workstation.network.nodes import RemoteNode
from workstation.network.receiver import StorageReceiver

SLICES = 300


def _start_orthanc(folder: Path) -> tuple[OrthancServer, subprocess.Popen]:
    import json

    server = OrthancServer(free_port(), free_port(), free_port())
    config = {"Name": "bench", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "DicomAet": server.ae_title, "DicomPort": server.dicom_port, "HttpPort": server.http_port,
              "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
              "DicomModalities": {"ws": ["WSTEST", "127.0.0.1", server.move_port],
                                  "getscu": ["GETSCU", "127.0.0.1", free_port()]},
              "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen(["Orthanc", str(folder / "config.json")], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    for _ in range(150):
        try:
            server.rest("/system")
            return server, process
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("Orthanc did not start")


def _seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> list[tuple[str, float, float, str]]:
    if not (shutil.which("Orthanc") and shutil.which("getscu") and shutil.which("storescu")):
        print("(network benchmarks skipped: Orthanc or dcmtk missing)")
        return []
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        spec = PhantomSpec(seed=4, matrix=512, pixel_spacing_mm=0.78, slice_thickness_mm=1.0,
                           z_extent_mm=float(SLICES))
        phantom = generate_phantom(spec)
        files = sorted(write_ct_series(phantom.volume, root / "series", phantom.tags))
        server, process = _start_orthanc(root / "orthanc")
        try:
            server.upload(files)
            study_uid = phantom.tags.get("StudyInstanceUID") or __import__("pydicom").dcmread(
                files[0], stop_before_pixels=True).StudyInstanceUID
            node = RemoteNode("bench", server.ae_title, "127.0.0.1", server.dicom_port,
                              f"http://127.0.0.1:{server.http_port}/dicom-web")
            ours_get = _seconds(lambda: run_job(retrieve_job(root / "home-get", node, "WSTEST", str(study_uid))))
            (root / "getscu").mkdir()
            getscu = _seconds(lambda: subprocess.run(
                ["getscu", "-aet", "GETSCU", "-aec", server.ae_title, "-S", "-k", "QueryRetrieveLevel=STUDY",
                 "-k", f"StudyInstanceUID={study_uid}", "-od", str(root / "getscu"), "127.0.0.1",
                 str(server.dicom_port)], check=True, capture_output=True))
            rows.append((f"retrieve {len(files)} slices: our C-GET into the library / getscu", ours_get / getscu,
                         -1.2, f"ours {ours_get:.1f} s, getscu {getscu:.1f} s (files only)"))
            ours_web = _seconds(lambda: run_job(web_retrieve_job(root / "home-web", node, str(study_uid))))
            request = urllib.request.Request(f"{node.dicomweb_url}/studies/{study_uid}",
                                             headers={"Accept": 'multipart/related; type="application/dicom"'})
            (root / "plain").mkdir()
            plain = _seconds(lambda: subprocess.run(
                [str(Path(sys.executable).with_name("dicomweb_client")), "--url", node.dicomweb_url, "retrieve",
                 "studies", "--study", str(study_uid), "full", "--save", "--output-dir", str(root / "plain")],
                check=True, capture_output=True))
            rows.append((f"retrieve {len(files)} slices: our WADO-RS into the library / plain DICOMweb download",
                         ours_web / plain, -1.2, f"ours {ours_web:.1f} s, dicomweb_client --save {plain:.1f} s "
                         "(files only)"))
            in_memory = _seconds(lambda: urllib.request.urlopen(request, timeout=300).read())
            rows.append((f"retrieve {len(files)} slices: our WADO-RS into the library / the response's bytes",
                         ours_web / in_memory, float("nan"), f"bytes into memory {in_memory:.1f} s, nothing "
                         "parsed or written"))
            done = threading.Event()
            receiver = StorageReceiver(root / "home-scp", "WORKSTATION", free_port(), host="127.0.0.1",
                                       on_imported=lambda _batch: done.set())
            receiver.start()
            ours_scp = _seconds(lambda: (subprocess.run(
                ["storescu", "-aec", "WORKSTATION", "127.0.0.1", str(receiver.port), *map(str, files)],
                check=True, capture_output=True), done.wait(600)))
            receiver.stop()
            server.clear()
            orthanc_scp = _seconds(lambda: subprocess.run(
                ["storescu", "-aec", server.ae_title, "127.0.0.1", str(server.dicom_port), *map(str, files)],
                check=True, capture_output=True))
            rows.append(("storescu into our SCP (instances/s, imported) / into Orthanc",
                         (len(files) / ours_scp) / (len(files) / orthanc_scp), float("nan"),
                         f"ours {len(files) / ours_scp:.0f}/s, Orthanc {len(files) / orthanc_scp:.0f}/s"))
        finally:
            process.terminate()
            process.wait(10)
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
