"""hvcheck.entrypoints finds what importlib.metadata finds (it replaces it to save ~20 ms of
imports per run): same entry points, same precedence, on this environment and on made-up
sys.path layouts."""

from __future__ import annotations

import importlib.metadata as md
import sys
import textwrap
from pathlib import Path

import pytest

from hvcheck import entrypoints
from hvcheck.engine import GROUP, load_checks


def _stdlib(group: str, path: list[str]) -> list[tuple[str, str]]:
    dists = md.distributions(path=path)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for d in dists:
        key = entrypoints._normalize(d.metadata["Name"] or "")
        if key in seen:
            continue
        seen.add(key)
        out.extend((e.name, e.value) for e in d.entry_points if e.group == group)
    return out


@pytest.mark.parametrize("group", [GROUP, "console_scripts", "pytest11"])
def test_same_as_importlib_metadata_on_this_environment(group: str) -> None:
    mine = [(e.name, e.value) for e in entrypoints.entry_points(group)]
    theirs = [(e.name, e.value) for e in md.entry_points(group=group)]
    assert sorted(mine) == sorted(theirs)
    if group == GROUP:
        assert ("builtin", "hvcheck.checks:BUILTIN") in mine


def _dist(site: Path, dirname: str, name: str, eps: str) -> None:
    d = site / dirname
    d.mkdir(parents=True)
    (d / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (d / "entry_points.txt").write_text(textwrap.dedent(eps))


def test_precedence_format_and_loading(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    _dist(
        a,
        "Acme_Checks-2.0.dist-info",
        "acme-checks",
        """
        # a comment
        [console_scripts]
        acme = acme:main

        [hvcheck.checks]
        first = acme_first:Check
        # another comment
        extras = acme_first:Check [fancy]
        """,
    )
    # the same distribution again later on the path: shadowed, as importlib.metadata does
    _dist(b, "acme.checks-1.0.dist-info", "acme.checks", "[hvcheck.checks]\nold = acme_old:C\n")
    _dist(b, "other-1.0.egg-info", "other", "[hvcheck.checks]\nlegacy = os.path:join\n")
    (b / "broken-1.0.dist-info").mkdir()  # no entry_points.txt
    path = [str(a), str(tmp_path / "missing"), str(b)]
    mine = entrypoints.entry_points(GROUP, path)
    assert [(e.name, e.value) for e in mine] == [
        ("first", "acme_first:Check"),
        ("extras", "acme_first:Check [fancy]"),
        ("legacy", "os.path:join"),
    ]
    assert sorted((e.name, e.value) for e in mine) == sorted(_stdlib(GROUP, path))
    import os.path

    assert mine[2].load() is os.path.join


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
        site, "tiny_plugin-0.1.dist-info", "tiny-plugin", "[hvcheck.checks]\nt = tiny_plugin:Tiny\n"
    )
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    loaded = {lc.id: lc for lc in load_checks()}
    assert loaded["tiny.one"].source == "t = tiny_plugin:Tiny" and loaded["tiny.one"].error is None
    assert "kvm.device" in loaded
