"""Entry points of one group, found the way ``importlib.metadata.entry_points`` finds them.

Why not ``importlib.metadata`` itself: on Python 3.9–3.11 importing it pulls in ``email``,
``zipfile``, ``pathlib``, ``csv`` and ``inspect`` — about 20 ms on a small VM, a fifth of a
whole monitoring run (bench/RESULTS.md) — to read a few small text files. This reads the same
files by the same rules (the PyPA entry points specification):

- every ``*.dist-info`` / ``*.egg-info`` directory directly in a ``sys.path`` directory, in
  ``sys.path`` order; the first distribution of a (normalised) name wins, as
  ``importlib.metadata`` de-duplicates them;
- ``entry_points.txt``: INI-style ``[group]`` sections of ``name = module:attr [extras]``
  lines; ``#`` comments and blank lines ignored (as importlib.metadata's parser does).

Distributions only ``importlib.metadata`` can see (zipped eggs, custom ``sys.meta_path``
finders) are not found here; ``tests/test_entrypoints.py`` checks that both agree on the
environment the tests run in, for this group and for ``console_scripts``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple, Optional

_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
_MAX = 1024 * 1024


class EntryPoint(NamedTuple):
    name: str
    value: str
    group: str

    def load(self) -> Any:
        """The object the entry point names (``module:attr.attr``), imported."""
        m = _VALUE.match(self.value)
        if m is None:
            raise ValueError(f"malformed entry point value {self.value!r}")
        obj: Any = importlib.import_module(m.group("module"))
        for a in filter(None, (m.group("attr") or "").split(".")):
            obj = getattr(obj, a)
        return obj


def _normalize(name: str) -> str:
    # importlib.metadata's Prepared.normalize (PEP 503, with "_" as separator)
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


def parse_entry_points(text: str, group: str) -> list[tuple[str, str]]:
    """``(name, value)`` of ``group`` in the text of an ``entry_points.txt``."""
    out: list[tuple[str, str]] = []
    section: Optional[str] = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        if section != group:
            continue
        name, sep, value = line.partition("=")
        if sep and name.strip():
            out.append((name.strip(), value.strip()))
    return out


def _dist_dirs(path: Iterable[str]) -> Iterable[tuple[str, str]]:
    for entry in path:
        d = entry or "."
        try:
            names = os.listdir(d)
        except OSError:
            continue  # missing, a file (zip), unreadable
        # within one directory importlib.metadata lists .dist-info before .egg-info
        for want in (".dist-info", ".egg-info"):
            for n in names:
                stem, ext = os.path.splitext(n)
                if ext.lower() == want:
                    yield os.path.join(d, n), stem.partition("-")[0]


def entry_points(group: str, path: Optional[Iterable[str]] = None) -> list[EntryPoint]:
    """Entry points of ``group`` from the distributions on ``path`` (default ``sys.path``)."""
    seen: set[str] = set()
    out: list[EntryPoint] = []
    for dist_dir, name in _dist_dirs(sys.path if path is None else path):
        key = _normalize(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            with open(os.path.join(dist_dir, "entry_points.txt"), encoding="utf-8") as f:
                text = f.read(_MAX)
        except (OSError, UnicodeDecodeError):
            continue
        out.extend(EntryPoint(n, v, group) for n, v in parse_entry_points(text, group))
    return out
