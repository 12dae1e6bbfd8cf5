"""Architecture rules, checked by reading the source (AST), so they cannot silently erode:
the engine never imports Streamlit and never prints; dependencies point app -> pages -> builder."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE_FILES = sorted((ROOT / "builder").rglob("*.py"))
CLI_FILES = {*(ROOT / "builder" / "cli").rglob("*.py"), ROOT / "builder" / "__main__.py"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_files_exist():
    assert len(ENGINE_FILES) >= 8


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_never_imports_streamlit_or_pages(path):
    bad = _imports(path) & {"streamlit", "pages", "app"}
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}: move that code to pages/components/"


@pytest.mark.parametrize("path", sorted(set(ENGINE_FILES) - CLI_FILES), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_never_prints(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "print"]
    assert not calls, f"{path.relative_to(ROOT)} calls print(): emit an event or log instead"


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_engine_module_has_a_docstring(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} has no module docstring"


def test_pages_do_not_import_each_other_and_components_stay_below_pages():
    for path in (ROOT / "pages" / "components").rglob("*.py"):
        assert "pages" not in {n for n in _imports(path)} or all(
            "components" in line for line in path.read_text().splitlines() if line.startswith("from pages")
        ), f"{path} imports a page"


def test_lint_is_clean():
    """Unused imports, undefined names, bugbear patterns and import order (ruff.toml)."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
