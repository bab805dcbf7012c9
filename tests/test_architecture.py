"""The layout's rules (docs/architecture.md): import contracts, no cycles, module size, torch-free tests of
the torch-free layers, helpers imported from tests.support (never from a conftest)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGES = ("camwatch", "db", "worker", "dashboard", "demo")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_LINES = 400


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def _python_files(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py") if ".venv" not in p.parts)


def test_the_import_contracts_hold_on_this_tree() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("camwatch/conventions.py", "import torch", "camwatch is not allowed to import torch"),
    ("camwatch/statistics/grid.py", "import sqlalchemy", "camwatch is not allowed to import sqlalchemy"),
    ("db/codec.py", "from worker.cam import factory", "db is not allowed to import worker"),
    ("worker/service/pipeline.py", "import dashboard.figures", "worker is not allowed to import dashboard"),
    ("worker/logs.py", "import streamlit", "worker is not allowed to import streamlit"),
    ("dashboard/figures.py", "import torch", "dashboard is not allowed to import torch"),
    ("dashboard/widgets.py", "from worker.service import worker", "dashboard is not allowed to import worker"),
    ("camwatch/regions.py", "from camwatch.statistics import heatmap", "No import cycles"),
])
def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path, module: str, line: str, broken: str) -> None:
    """Each contract fails when the import it forbids is added (in a copy of the tree)."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a", encoding="utf-8") as fh:
        fh.write(f"\n{line}  # added by the contract test\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout, result.stdout


def test_no_module_is_over_the_size_limit() -> None:
    too_long = {str(p.relative_to(REPO)): n for p in _python_files(*PACKAGES, "tests", "benchmarks")
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


@pytest.mark.parametrize("tests_of", ["db", "camwatch", "dashboard"])
def test_tests_of_torch_free_layers_import_no_torch(tests_of: str) -> None:
    """Importing every test module of the layer (and the shared conftest) leaves torch unloaded."""
    modules = ["tests.conftest"] + [
        ".".join(p.relative_to(REPO).with_suffix("").parts) for p in _python_files(f"tests/{tests_of}")
        if p.name.startswith("test_") or p.name == "conftest.py"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "loaded = sorted(m for m in ('torch', 'torchvision') if m in sys.modules)\n"
            "print(','.join(loaded))\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"tests/{tests_of} imported {result.stdout.strip()}"


def test_test_helpers_come_from_the_support_package_not_a_conftest() -> None:
    offenders = []
    for path in _python_files("tests"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[-1] == "conftest":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name.split(".")[-1] == "conftest" for a in node.names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"imports from a conftest: {offenders}"


def test_importing_the_worker_package_has_no_side_effects() -> None:
    """No environment variables set and no heavy imports when ``worker`` is imported."""
    code = ("import os, sys\nbefore = dict(os.environ)\nimport worker, worker.cli\n"
            "changed = sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k))\n"
            "print(changed, 'torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] False"
