"""The ``hvcheck.checks`` entry points come from importlib.metadata: the built-in checks, and a
plugin distribution put on ``sys.path``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from hvcheck.engine import GROUP, _entry_points, load_checks


def _dist(site: Path, dirname: str, name: str, eps: str) -> None:
    d = site / dirname
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (d / "entry_points.txt").write_text(textwrap.dedent(eps))


def test_the_builtin_checks_are_an_entry_point_of_this_distribution() -> None:
    found = [(e.name, e.value, e.group) for e in _entry_points()]
    assert ("builtin", "hvcheck.checks:BUILTIN", GROUP) in found
    assert len(found) == len(set(found))


def test_load_checks_finds_a_plugin_on_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "tiny_plugin.py").write_text(
        "from hvcheck.check import Check\nfrom hvcheck.model import Status\n"
        "class Tiny(Check):\n    id = 'tiny.one'\n    title = 'tiny'\n"
        "    def run(self, ctx):\n        return self.result(Status.OK, 'fine')\n"
    )
    _dist(
        site,
        "tiny_plugin-0.1.dist-info",
        "tiny-plugin",
        """
        # a comment
        [console_scripts]
        tiny = tiny_plugin:main

        [hvcheck.checks]
        t = tiny_plugin:Tiny
        """,
    )
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    loaded = {lc.id: lc for lc in load_checks()}
    assert loaded["tiny.one"].source == "t = tiny_plugin:Tiny" and loaded["tiny.one"].error is None
    assert "kvm.device" in loaded
    assert [e.name for e in _entry_points() if e.value.startswith("tiny_plugin")] == ["t"]
