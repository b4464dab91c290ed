"""A real Orthanc (Debian's package) as the PACS: started once per session as a plain process with
its own JSON configuration, free loopback ports and a temporary storage folder, stopped at the
end. It knows this workstation as WSTEST at a port the C-MOVE tests listen on."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ORTHANC = shutil.which("Orthanc")
WORKSTATION_AE = "WSTEST"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class OrthancServer:
    dicom_port: int
    http_port: int
    move_port: int  # where it sends C-MOVE results for WSTEST
    ae_title: str = "ORTHANC"

    @property
    def dicomweb_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def rest(self, path: str, data: bytes | None = None, method: str | None = None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def upload(self, files: list[Path]) -> None:
        for path in files:
            self.rest("/instances", path.read_bytes(), "POST")

    def clear(self) -> None:
        for patient in self.rest("/patients"):
            self.rest(f"/patients/{patient}", method="DELETE")


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory):
    if ORTHANC is None:
        pytest.skip("Orthanc is not installed (installer/dev-setup.sh test installs Debian's orthanc)")
    folder = tmp_path_factory.mktemp("orthanc")
    plugin = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")  # Debian's orthanc-dicomweb
    server = OrthancServer(free_port(), free_port(), free_port())
    config = {
        "Name": "test-pacs", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "DicomAet": server.ae_title, "DicomPort": server.dicom_port, "HttpPort": server.http_port,
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": True,
        "DicomModalities": {"ws": [WORKSTATION_AE, "127.0.0.1", server.move_port]},
        "Plugins": [str(plugin)] if plugin.is_file() else [], "StableAge": 1,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpServerEnabled": True, "DicomScpTimeout": 10,
    }
    (folder / "config.json").write_text(json.dumps(config))
    process = subprocess.Popen([ORTHANC, str(folder / "config.json")], stdout=subprocess.DEVNULL,
                               stderr=open(folder / "orthanc.log", "wb"))
    deadline = time.monotonic() + 30
    while True:
        try:
            server.rest("/system")
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield server
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
