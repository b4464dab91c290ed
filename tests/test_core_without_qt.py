"""The headless core never imports Qt or VTK rendering (checked with both made unimportable)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import workstation

SCRIPT = """
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PySide6', 'shiboken6', 'vtk', 'vtkmodules', 'pyqtgraph', 'PyQt5', 'PyQt6'}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
for name in %r:
    importlib.import_module(name)
bad = [m for m in sys.modules if m.split('.')[0] in {'PySide6', 'vtk', 'vtkmodules', 'pyqtgraph'}]
assert not bad, bad
print('ok', len(%r))
"""


def test_every_core_module_imports_without_qt() -> None:
    names = [m.name for m in pkgutil.walk_packages(workstation.__path__, "workstation.")]
    assert "workstation.dicom.load" in names and "workstation.cli" in names
    result = subprocess.run([sys.executable, "-c", SCRIPT % (names, names)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
