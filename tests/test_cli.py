"""The CLI contract: exit codes, formats, selection, timeout, JSON keys (../shared/DESIGN.md)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from snap import healthy_host, make_snapshot, run_hvcheck, run_json

REQUIRED_TOP = {
    "schema_version",
    "tool",
    "status",
    "exit_code",
    "host",
    "verdict",
    "checks",
    "instances",
}


@pytest.fixture()
def healthy(tmp_path: Path) -> Path:
    return healthy_host(tmp_path / "snap")


def test_json_document_has_every_required_key(healthy: Path) -> None:
    rc, doc = run_json("--root", str(healthy))
    assert doc.keys() >= REQUIRED_TOP
    assert doc["schema_version"] == 1
    assert doc["tool"] == {"name": "hvcheck", "version": "0.1.0"}
    assert {"hostname", "arch", "kernel", "os", "virtual"} <= doc["host"].keys()
    assert {"kvm_usable", "acceleration", "virt_type", "summary"} <= doc["verdict"].keys()
    for c in doc["checks"]:
        assert {"id", "status", "summary", "hint", "details"} <= c.keys()
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", c["id"]), c["id"]
    assert doc["status"] == "OK" and rc == 0 and doc["exit_code"] == 0
    assert doc["verdict"]["kvm_usable"] is True
    assert doc["host"]["hostname"] == "compute-1" and doc["host"]["os"].startswith("Ubuntu")


def test_nagios_line_and_exit_code_agree_with_json(healthy: Path) -> None:
    p = run_hvcheck("--root", str(healthy), "--format", "nagios")
    first = p.stdout.splitlines()[0]
    m = re.fullmatch(r"HVCHECK (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+) \| (.+)", first)
    assert m, first
    assert p.returncode == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[m.group(1)]
    perf = dict(re.findall(r"'([a-z_]+)'=(\d+)", m.group(3)))
    assert {"instances", "kvm_instances", "tcg_instances"} <= perf.keys()
    rc, _ = run_json("--root", str(healthy))
    t = run_hvcheck("--root", str(healthy), "--format", "table")
    assert rc == p.returncode == t.returncode
    assert "KVM usable: yes" in t.stdout


@pytest.mark.parametrize("fmt", ["table", "json", "nagios"])
@pytest.mark.parametrize(
    "bad", [["--format", "xml"], ["--no-such-option"], ["--timeout", "x"], ["--only"]]
)
def test_usage_errors_exit_3_in_every_format(fmt: str, bad: list[str]) -> None:
    p = run_hvcheck("--format", fmt, *bad) if bad[0] != "--format" else run_hvcheck(*bad)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr


def test_root_without_marker_or_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    for root in (tmp_path, tmp_path / "nope"):
        p = run_hvcheck("--root", str(root), "--format", "nagios")
        assert p.returncode == 3
        assert p.stdout.startswith("HVCHECK UNKNOWN - ")
    rc, doc = run_json("--root", str(tmp_path))
    assert rc == 3 and doc["status"] == "UNKNOWN" and "marker" in doc["verdict"]["summary"]


def test_version_and_help() -> None:
    v = run_hvcheck("-V")
    assert v.returncode == 0 and "0.1.0" in v.stdout
    h = run_hvcheck("--help")
    assert h.returncode == 0 and "--timeout" in h.stdout and "0 OK, 1 WARNING" in h.stdout


def test_only_and_skip_select_by_id_and_prefix(healthy: Path) -> None:
    _, doc = run_json("--root", str(healthy), "--only", "kvm")
    assert {c["id"] for c in doc["checks"]} == {
        "kvm.device",
        "kvm.modules",
        "kvm.vhost",
        "kvm.kernel_log",
    }
    _, doc = run_json("--root", str(healthy), "--only", "cpu.arch", "--only", "kvm.device")
    assert [c["id"] for c in doc["checks"]] == ["cpu.arch", "kvm.device"]
    _, doc = run_json("--root", str(healthy), "--skip", "kvm", "--skip", "host.os")
    ids = {c["id"] for c in doc["checks"]}
    assert not any(i.startswith("kvm.") for i in ids) and "host.os" not in ids and ids


def test_checks_lists_ids_titles_and_reads() -> None:
    p = run_hvcheck("checks")
    assert p.returncode == 0
    for cid in (
        "cpu.arch",
        "cpu.virt_ext",
        "host.virtual",
        "firmware.virt",
        "kvm.modules",
        "kvm.device",
        "nested.runtime",
        "host.os",
    ):
        assert cid in p.stdout
    assert "reads /proc/cpuinfo" in p.stdout
    j = json.loads(run_hvcheck("--json", "checks").stdout)
    assert all(c["reads"] for c in j if c["id"].startswith("kvm."))


def test_worst_state_orders_critical_above_unknown(tmp_path: Path) -> None:
    # /dev/kvm missing (CRITICAL) and the kernel log unreadable (UNKNOWN): CRITICAL wins.
    root = healthy_host(
        tmp_path / "s",
        devices={},
        probes={"kvm": {"ok": False, "stage": "open", "errno": "ENOENT"}, "kmsg_error": "EPERM"},
    )
    (root / "dev" / "kmsg").unlink()
    # no vendor module loaded: nothing proves the firmware allows VT-x, so that is UNKNOWN
    (root / "proc" / "modules").write_text("kvm 1146880 0 - Live 0x0000000000000000\n")
    shutil.rmtree(root / "sys/module/kvm_intel")
    rc, doc = run_json("--root", str(root))
    states = {c["id"]: c["status"] for c in doc["checks"]}
    assert states["kvm.device"] == "CRITICAL"
    assert states["firmware.virt"] == "UNKNOWN"
    assert rc == 2 and doc["status"] == "CRITICAL"


def test_live_run_is_bounded_by_timeout() -> None:
    t0 = time.monotonic()
    p = run_hvcheck("--format", "nagios", "-t", "2")
    assert time.monotonic() - t0 < 2 + 3  # interpreter start-up on a loaded CI box
    assert p.returncode in (0, 1, 2, 3) and p.stdout.startswith("HVCHECK ")


def test_garbage_snapshot_files_give_no_traceback(tmp_path: Path) -> None:
    root = make_snapshot(
        tmp_path / "g",
        {
            "proc/cpuinfo": b"\xff\xfe\x00garbage\x1b[31m",
            "proc/modules": b"\x00\x00\x00",
            "etc/os-release": b"\xff" * 100,
            "sys/module/kvm_intel/parameters/nested": b"maybe",
            "etc/modprobe.d/x.conf": b"options kvm_intel nested=\xff\n",
            "dev/kmsg": b"\xff\xff;\n",
        },
        {"devices": {"/dev/kvm": {"type": "char", "major": "x"}}, "probes": {"kvm": "bogus"}},
    )
    for fmt in ("json", "nagios", "table"):
        p = run_hvcheck("--root", str(root), "--format", fmt)
        assert "Traceback" not in p.stdout + p.stderr
        assert p.returncode in (0, 1, 2, 3)


def test_ranges_starting_with_a_minus_are_values_not_options() -> None:
    from hvcheck.cli import UsageError, parse_args

    ns = parse_args(["--format", "nagios", "-w", "-10:20", "--critical", "-5:3"])
    assert (ns.warn_range.start, ns.warn_range.end) == (-10, 20)
    assert (ns.crit_range.start, ns.crit_range.end) == (-5, 3)
    assert parse_args(["--warning=-1:2"]).warn_range.start == -1
    with pytest.raises(UsageError):
        parse_args(["-w", "--bogus"])
    with pytest.raises(UsageError):  # no abbreviations: a renamed option must not half-match
        parse_args(["--form", "json"])
