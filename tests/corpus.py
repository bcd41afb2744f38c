"""Access to ../shared/corpus, read in place (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("HVCHECK_CORPUS", PROJECT.parent / "shared" / "corpus"))


def corpus_available() -> bool:
    return (CORPUS / "MANIFEST.tsv").is_file()


def require_corpus() -> None:
    """Skip when ../shared is absent (a newcomer's fresh clone); fail in CI, where it must exist."""
    if corpus_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"corpus not found at {CORPUS}: CI must have ../shared/corpus")
    pytest.skip(f"corpus not found at {CORPUS} (fresh clone without ../shared)")


def manifest(kind: str) -> list[tuple[str, dict[str, str], str]]:
    """Rows of MANIFEST.tsv for one kind: (file, machine-readable facts, free text)."""
    if not corpus_available():
        return []
    rows: list[tuple[str, dict[str, str], str]] = []
    lines = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    for line in lines[1:]:
        cols = line.split("\t")
        if len(cols) < 7 or cols[1] != kind:
            continue
        tokens, _, text = cols[6].partition(" ; ")
        facts = dict(t.split("=", 1) for t in tokens.split() if "=" in t)
        rows.append((cols[0], facts, text))
    return rows
