"""The command-line package: no import circle anywhere in the core, and light commands import
neither torch nor scipy.ndimage (issue #26)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import workstation

CORE = Path(workstation.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every core module -> the core modules it imports, at module level or inside functions."""
    modules = {_module_name(path): path for path in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state and (found := visit(child)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_core_has_no_import_circle():
    graph = _import_graph()
    assert "workstation.cli.common" in graph and "workstation.inference.estimate" in graph
    # a package importing its own submodules is not a circle; a submodule importing the package back is
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_shared_helpers_import_no_command_group():
    graph = _import_graph()
    groups = {name for name in graph if name.startswith("workstation.cli.") and name != "workstation.cli.common"}
    assert groups >= {"workstation.cli.library", "workstation.cli.ai", "workstation.cli.reports",
                      "workstation.cli.admin", "workstation.cli.teaching"}
    assert not graph["workstation.cli.common"] & (groups | {"workstation.cli"})


def test_the_cycle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


PROBE = """
import json, sys
from ui.launcher import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split('.')[0] if not m.startswith('scipy.') else 'scipy.ndimage'
                for m in sys.modules if m.split('.')[0] in ('torch', 'monai', 'PySide6', 'vtkmodules', 'pydicom')
                or m.startswith('scipy.ndimage')})
print('\\nPROBE', json.dumps({'code': code, 'heavy': heavy}))
"""


def _heavy_modules(args: list[str], home: Path) -> dict:
    env = {**os.environ, "WORKSTATION_HOME": str(home), "WORKSTATION_HEADLESS": "1"}
    result = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                            timeout=120)
    line = next(line for line in result.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line[len("PROBE "):])


def test_help_imports_nothing_heavy(tmp_path):
    outcome = _heavy_modules(["--help"], tmp_path)
    assert outcome == {"code": 0, "heavy": []}


def test_info_imports_nothing_heavy(tmp_path, real_ct):
    """Not even pydicom: our header walker reads an ordinary series (bench_startup's ratio rests on it)."""
    outcome = _heavy_modules(["info", str(real_ct / "chest-5mm-lesion14mm")], tmp_path)
    assert outcome == {"code": 0, "heavy": []}


def test_info_on_compressed_files_uses_pydicom(tmp_path, real_ct):
    outcome = _heavy_modules(["info", str(real_ct / "abdomen-j2k-empty-uids")], tmp_path)
    assert outcome == {"code": 0, "heavy": ["pydicom"]}


def test_the_probe_sees_a_heavy_import(tmp_path):
    """A command that needs scipy.ndimage (writing a phantom) shows up, so the tests above could fail."""
    outcome = _heavy_modules(["demo-case", str(tmp_path / "case"), "--matrix", "128", "--slice-thickness", "2.5"], tmp_path)
    assert outcome == {"code": 0, "heavy": ["pydicom", "scipy.ndimage"]}
