"""Host-side parsers: real samples, and property tests that no input makes them raise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import CORPUS, manifest, require_corpus
from hvcheck.host import SnapshotError, SnapshotHost
from hvcheck.parsers.accounts import parse_accounts
from hvcheck.parsers.cpuinfo import parse_cpuinfo
from hvcheck.parsers.kernel import (
    CPU_LACKS,
    classify_kernel_log,
    firmware_messages,
    kmsg_text,
    param_enabled,
    parse_kernel_cmdline_param,
    parse_modprobe_options,
    parse_modules_builtin,
    parse_proc_modules,
)
from hvcheck.report.escape import inert

MODULE_ROWS = [r for r in manifest("modules") if "format" in r[1]] or [("(corpus absent)", {}, "")]
PARAM_ROWS = [r for r in manifest("modules") if "file" in r[1]] or [("(corpus absent)", {}, "")]


@pytest.mark.parametrize(("name", "facts", "text"), MODULE_ROWS, ids=[r[0] for r in MODULE_ROWS])
def test_module_lists_match_manifest(name: str, facts: dict[str, str], text: str) -> None:
    require_corpus()
    mods = parse_proc_modules((CORPUS / name).read_text(errors="replace"))
    for m in ("kvm", "kvm_intel", "kvm_amd"):
        assert (m in mods) is (facts[m] == "loaded"), f"{name}: {m}"


@pytest.mark.parametrize(("name", "facts", "text"), PARAM_ROWS, ids=[r[0] for r in PARAM_ROWS])
def test_nested_parameter_values_match_manifest(
    name: str, facts: dict[str, str], text: str
) -> None:
    require_corpus()
    value = (CORPUS / name).read_text().strip()
    assert value == facts["value"]
    assert param_enabled(value) is (facts["nested"] == "yes")


def test_modprobe_options_with_dash_comments_and_continuation() -> None:
    text = (
        "# nested for the CI lab\noptions kvm-intel nested=1 \\\n  enable_apicv=0\n"
        "options kvm_intel nested=0  # later line wins\noptions kvm_amd nested=1\n"
    )
    assert parse_modprobe_options(text, "kvm_intel", "nested") == [("1", 2), ("0", 4)]
    assert parse_modprobe_options(text, "kvm_amd", "nested") == [("1", 5)]


def test_kernel_cmdline_param_stops_at_init_args() -> None:
    assert (
        parse_kernel_cmdline_param("ro kvm_amd.nested=0 kvm-amd.nested=1", "kvm_amd", "nested")
        == "1"
    )
    assert parse_kernel_cmdline_param("ro -- kvm_intel.nested=1", "kvm_intel", "nested") is None


def test_firmware_messages_real_texts() -> None:
    lines = [
        "3,400,1000,-;x86/cpu: VMX (outside TXT) disabled by BIOS",
        "[    2.1] kvm: disabled by bios",
        "6,401,1000,-;SVM disabled (by BIOS) in MSR_VM_CR on CPU 0",
        "4,500,1,-;kvm: no hardware support",
        "6,1,1,-;kvm-clock: Using msrs 4b564d01 and 4b564d00",
    ]
    codes = [m.code for m in firmware_messages(lines)]
    assert codes == ["vmx-disabled-by-bios", "disabled-by-bios", "svm-disabled-by-bios"]
    # "no hardware support" is the CPU (or the other vendor's module), never the firmware
    assert [(m.code, m.meaning) for m in classify_kernel_log(lines[3:])] == [
        ("no-hardware-support", CPU_LACKS)
    ]
    assert kmsg_text("6,1,2,-;hello") == "hello" and kmsg_text("[ 0.1] hi") == "hi"


def test_modules_builtin() -> None:
    assert parse_modules_builtin("kernel/arch/x86/kvm/kvm.ko\nkernel/drivers/net/tun.ko\n") == {
        "kvm",
        "tun",
    }


def test_inert_neutralises_terminal_escapes() -> None:
    assert "\x1b" not in inert("\x1b[2J\x1b]0;pwned\x07")
    assert inert("plain name-01") == "plain name-01"
    assert inert("a\u202eb") == "a\\u202eb"


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_text_parsers_never_raise(text: str) -> None:
    info = parse_cpuinfo(text)
    assert isinstance(info.flags, frozenset) and info.processors >= 0
    assert isinstance(parse_proc_modules(text), set)
    assert isinstance(parse_modules_builtin(text), set)
    for v, n in parse_modprobe_options(text, "kvm_intel", "nested"):
        assert isinstance(v, str) and n >= 1
    r = parse_kernel_cmdline_param(text, "kvm_intel", "nested")
    assert r is None or isinstance(r, str)
    assert param_enabled(text) in (True, False, None)
    assert all(isinstance(m.text, str) for m in firmware_messages(text.splitlines()))
    acc = parse_accounts(text, text)
    assert all(isinstance(u.uid, int) for u in acc.users)
    out = inert(text)
    assert all(c.isprintable() or c == " " for c in out)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.dictionaries(st.text(max_size=10), st.integers())))
def test_snapshot_marker_garbage_is_refused_cleanly(
    tmp_path_factory: pytest.TempPathFactory, marker: object
) -> None:
    root = tmp_path_factory.mktemp("m")
    raw = marker if isinstance(marker, bytes) else json.dumps(marker).encode()
    (Path(root) / "hvcheck-snapshot.json").write_bytes(raw)
    try:
        SnapshotHost(str(root))
    except SnapshotError as e:
        assert str(e)
