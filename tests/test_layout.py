"""The house rules of the pipeline, read from the source: checks never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "hvcheck"


def _imports(path: Path) -> set[str]:
    """Every module a file imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_checks_never_import_other_check_modules() -> None:
    modules = sorted(p for p in (PKG / "checks").glob("*.py") if p.name != "__init__.py")
    assert len(modules) >= 2
    names = {f"hvcheck.checks.{p.stem}" for p in modules}
    for p in modules:
        others = (_imports(p) & names) - {f"hvcheck.checks.{p.stem}"}
        assert not others, f"{p.name} imports {sorted(others)}: share it through hvcheck.facts"
