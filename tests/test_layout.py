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


def _strings(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def test_engine_and_report_never_name_a_check() -> None:
    """What the engine and the renderers need from a result is data on it, not its id."""
    from hvcheck.checks import BUILTIN

    ids = {c.id for c in BUILTIN}
    assert "instances.accel" in ids
    for p in [PKG / "engine.py", PKG / "model.py", *sorted((PKG / "report").glob("*.py"))]:
        named = sorted(s for s in _strings(p) if s in ids or any(f"'{i}'" in s for i in ids))
        assert not named, f"{p.name} names check ids {named}"


def test_only_the_renderers_escape() -> None:
    """Checks and facts carry hostile strings raw; report/ escapes them, once, at output."""
    escapers = sorted(
        p.relative_to(PKG).as_posix()
        for p in PKG.rglob("*.py")
        if {"hvcheck.report.escape", "hvcheck.report.escape.inert"} & _imports(p)
    )
    assert escapers and all(e.startswith("report/") for e in escapers), escapers


def test_devaccess_sits_below_facts() -> None:
    """The device-access judgement is a facts-level module: facts imports it, it never imports
    facts or a check (no cycle), and checks reach it only through facts."""
    own = _imports(PKG / "devaccess.py")
    assert not {m for m in own if m == "hvcheck.facts" or m.startswith("hvcheck.checks")}, own
    assert "hvcheck.devaccess" in _imports(PKG / "facts.py")
    for p in sorted((PKG / "checks").glob("*.py")):
        assert "hvcheck.devaccess" not in _imports(p), p.name
