"""Every cpuinfo in ../shared/corpus/cpuinfo against the facts MANIFEST.tsv records for it."""

from __future__ import annotations

import pytest

from corpus import CORPUS, manifest, require_corpus
from hvcheck.parsers.cpuinfo import arch_family, parse_cpuinfo

ROWS = manifest("cpuinfo") or [("(corpus absent)", {}, "")]


@pytest.mark.parametrize(("name", "facts", "text"), ROWS, ids=[r[0] for r in ROWS])
def test_cpuinfo_facts_match_manifest(name: str, facts: dict[str, str], text: str) -> None:
    require_corpus()
    info = parse_cpuinfo((CORPUS / name).read_text(encoding="utf-8", errors="replace"))
    want_arch = facts["arch"]
    assert info.arch_family == arch_family(want_arch), name
    if info.arch_family == "ppc":
        # cpuinfo does not carry POWER endianness; ppc64 and ppc64le read the same
        assert info.arch == "ppc64"
    else:
        assert info.arch == want_arch
    for flag in ("vmx", "svm", "hypervisor", "sie"):
        if flag in facts:
            assert getattr(info, flag) is (facts[flag] == "yes"), f"{name}: {flag}"
    if "PowerNV" in text or "platform=PowerNV" in text:
        assert info.platform == "PowerNV"
    if "platform pSeries" in text or "platform=pSeries" in text:
        assert info.platform == "pSeries"


def test_garbage_and_truncated_cpuinfo_never_raise() -> None:
    for text in ("", "\0\0\0", "flags : vmx", "processor : 0\nvendor_id : Genu", "x" * 10000):
        info = parse_cpuinfo(text)
        assert isinstance(info.flags, frozenset)
