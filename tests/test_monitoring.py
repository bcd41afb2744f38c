"""Monitoring integrations: the Nagios line per the Monitoring Plugins guidelines, thresholds,
Prometheus textfile output (parsed by prometheus_client), Zabbix discovery/values, the fleet
report, and the JSON Schema on a live run."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import jsonschema
import pytest

from hvcheck.cli import schema_text
from hvcheck.nagrange import Range
from snap import PROJECT, healthy_host, run_hvcheck, run_json

FALLBACK = PROJECT / "fixtures" / "live-qemu-kvm-tcg-fallback"
PERF = re.compile(r"'([^'=]+)'=(-?[0-9.]+)([a-zA-Z%]*);([^;]*);([^;]*);([^;]*);([^;]*)")
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def _check_nagios(out: str, rc: int) -> str:
    first = out.splitlines()[0]
    m = re.fullmatch(r"HVCHECK (OK|WARNING|CRITICAL|UNKNOWN) - (.+?)(?: \| (.*))?", first)
    assert m, first
    assert EXIT[m.group(1)] == rc
    assert "|" not in m.group(2)
    assert len(m.group(2)) <= 200 and len(first) < 1024
    if m.group(3):
        items = m.group(3).split(" ")
        labels = []
        for it in items:
            pm = PERF.fullmatch(it)
            assert pm, f"bad perfdata item {it!r}"
            labels.append(pm.group(1))
        assert len({lab[:19] for lab in labels}) == len(labels), "labels not unique in 19 chars"
        assert {"instances", "kvm_instances", "tcg_instances"} <= set(labels)
    return m.group(1)


@pytest.fixture()
def states(tmp_path: Path) -> dict[str, Path]:
    ok = healthy_host(tmp_path / "ok")
    warn = healthy_host(tmp_path / "warn")
    (warn / "sys/module/kvm_intel/parameters/nested").write_text("N\n")
    (warn / "etc/modprobe.d").mkdir(parents=True)
    (warn / "etc/modprobe.d/kvm.conf").write_text("options kvm_intel nested=1\n")
    crit = healthy_host(
        tmp_path / "crit",
        devices={},
        probes={"kvm": {"ok": False, "stage": "open", "errno": "ENOENT"}},
    )
    unk = healthy_host(
        tmp_path / "unk",
        taken_as_uid=1000,
        probes={"kvm": {"ok": False, "stage": "open", "errno": "EACCES", "uid": 1000}},
    )
    return {"OK": ok, "WARNING": warn, "CRITICAL": crit, "UNKNOWN": unk}


def test_nagios_line_for_every_state(states: dict[str, Path]) -> None:
    for want, root in states.items():
        for verbose in ([], ["-v"]):
            p = run_hvcheck("--root", str(root), "--format", "nagios", *verbose)
            assert _check_nagios(p.stdout, p.returncode) == want, p.stdout
            if verbose and want != "OK":
                assert len(p.stdout.splitlines()) > 1


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "nagios", "-w", "x"],
        ["--format", "nagios", "--bogus"],
        ["--format", "nagios", "-c", "5:1"],
        ["--format", "nagios", "--root", "/nonexistent"],
    ],
)
def test_nagios_usage_errors_are_unknown(args: list[str]) -> None:
    p = run_hvcheck(*args)
    assert p.returncode == 3 and p.stdout.startswith("HVCHECK UNKNOWN - ")
    assert "Traceback" not in p.stdout + p.stderr


def test_nagios_timeout_is_unknown(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "slow_check.py").write_text(
        textwrap.dedent("""
        import time
        from hvcheck.check import Check
        class Slow(Check):
            id = "slow.sleep"
            title = "sleeps"
            def run(self, ctx):
                time.sleep(60)
    """)
    )
    dist = site / "slow_check-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-check\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hvcheck.checks]\nslow = slow_check:Slow\n")
    p = run_hvcheck(
        "--root",
        str(healthy_host(tmp_path / "s")),
        "--format",
        "nagios",
        "-t",
        "1",
        env={"PYTHONPATH": str(site)},
    )
    assert _check_nagios(p.stdout, p.returncode) == "UNKNOWN"


def test_version_and_help_for_plugins() -> None:
    v = run_hvcheck("-V")
    assert v.returncode == 0 and re.match(r"hvcheck, version \d+\.\d+\.\d+", v.stdout)
    h = run_hvcheck("-h")
    assert h.returncode == 0 and "--warning" in h.stdout and "--critical" in h.stdout


@pytest.mark.parametrize(
    ("text", "alerting", "quiet"),
    [
        ("10", [-1, 11], [0, 10]),
        ("10:", [9], [10, 1000]),
        ("~:10", [11], [-100, 10]),
        ("10:20", [9, 21], [10, 20]),
        ("@10:20", [10, 15, 20], [9, 21]),
    ],
)
def test_ranges(text: str, alerting: list[int], quiet: list[int]) -> None:
    r = Range.parse(text)
    assert all(r.alerts(v) for v in alerting) and not any(r.alerts(v) for v in quiet)


def test_thresholds_on_tcg_instances() -> None:
    one_tcg = PROJECT / "fixtures" / "nova-kvm-tcg-instance"  # virt_type=kvm, 1 TCG domain
    base = ["--root", str(one_tcg), "--format", "nagios"]
    p = run_hvcheck(*base)
    assert p.returncode == 2  # default: any TCG instance with virt_type=kvm
    first = p.stdout.splitlines()[0]
    assert "'tcg_instances'=1;;0;0;" in first
    # the instances check is the worst and gives the counts: the summary says them once
    assert first.count("instance(s)") == 1 and "CRITICAL: instances.accel (2 instance(s)" in first
    p = run_hvcheck(*base, "-w", "0", "-c", "5")  # 1 TCG: outside 0:0 → WARNING
    assert "'tcg_instances'=1;0;5;0;" in p.stdout

    def acc(*args: str) -> str:
        _, doc = run_json("--root", str(one_tcg), *args)
        return next(c for c in doc["checks"] if c["id"] == "instances.accel")["status"]

    assert acc("-w", "0", "-c", "5") == "WARNING"
    assert acc("-c", "1") == "OK"
    assert acc("-c", "@1:") == "CRITICAL"
    assert acc("-w", "~:0") == "WARNING"
    # a silent fallback stays CRITICAL whatever the thresholds
    _, doc = run_json("--root", str(FALLBACK), "-w", "5", "-c", "10")
    fb = next(c for c in doc["checks"] if c["id"] == "instances.accel")
    assert fb["status"] == "CRITICAL" and fb["code"] == "silent-fallback"


def test_prometheus_textfile_parses() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    p = run_hvcheck("--root", str(FALLBACK), "--format", "prometheus")
    fams = {f.name: f for f in text_string_to_metric_families(p.stdout)}
    assert {
        "hvcheck_status",
        "hvcheck_check_status",
        "hvcheck_kvm_usable",
        "hvcheck_instance_accel",
        "hvcheck_last_run_timestamp_seconds",
    } <= fams.keys()
    assert fams["hvcheck_status"].samples[0].value == 2
    accel = {s.labels["name"]: s.labels["accel"] for s in fams["hvcheck_instance_accel"].samples}
    assert accel == {
        "instance-0000000a": "kvm",
        "instance-0000000b": "tcg",
        "instance-0000000c": "tcg",
    }
    checks = {s.labels["check"]: s.value for s in fams["hvcheck_check_status"].samples}
    assert checks["instances.accel"] == 2 and checks["kvm.device"] == 0


def test_zabbix_discovery_and_values() -> None:
    p = run_hvcheck("--root", str(FALLBACK), "--format", "zabbix-discovery")
    data = json.loads(p.stdout)["data"]
    assert {d["{#INSTANCE}"] for d in data} == {
        "instance-0000000a",
        "instance-0000000b",
        "instance-0000000c",
    }
    assert all({"{#UUID}", "{#NOVA_UUID}"} <= d.keys() for d in data)
    v = run_hvcheck("--root", str(FALLBACK), "value", "instance_accel", "instance-0000000c")
    assert v.stdout.strip() == "tcg" and v.returncode == 0
    assert run_hvcheck("--root", str(FALLBACK), "value", "status").stdout.strip() == "2"
    assert run_hvcheck("--root", str(FALLBACK), "value", "tcg_instances").stdout.strip() == "2"
    assert (
        run_hvcheck("--root", str(FALLBACK), "value", "instance_accel", "nope").stdout.strip()
        == "absent"
    )
    assert run_hvcheck("--root", str(FALLBACK), "value", "bogus").returncode == 3


def test_fleet_report_lists_problem_hosts_first(tmp_path: Path, states: dict[str, Path]) -> None:
    files = []
    for name, root in [("ok", states["OK"]), ("fallback", FALLBACK), ("crit", states["CRITICAL"])]:
        out = tmp_path / f"{name}.json"
        doc = json.loads(run_hvcheck("--root", str(root), "--json").stdout)
        # three hosts (two snapshots share the name compute-1: a host named in two files is
        # flagged as a duplicate, tested in test_monitoring_details.py)
        doc["host"]["hostname"] += f"-{name}"
        out.write_text(json.dumps(doc))
        files.append(str(out))
    bad = tmp_path / "garbage.json"
    bad.write_text("{not json")
    # the fixtures' evidence is days old: --max-age 0 judges them as they are (the age limit
    # has tests of its own in test_monitoring_details.py)
    p = run_hvcheck("--json", "report", "--max-age", "0", *files, str(bad))
    doc = json.loads(p.stdout)
    assert doc["hosts_total"] == 4 and p.returncode == 2
    hosts = doc["hosts"]
    assert all(h["attention"] for h in hosts[:3]) and not hosts[3]["attention"]
    assert hosts[-1]["status"] == "OK"
    assert doc["counts"]["kvm_usable"] == {"yes": 2, "no": 1, "cannot_tell": 1}
    assert doc["counts"]["tcg_instances"] == 2
    assert any(h["error"] and "garbage.json" in h["file"] for h in hosts)
    t = run_hvcheck("report", "--max-age", "0", *files)
    assert t.returncode == 2 and "Fleet: 3 host(s)" in t.stdout


def test_live_run_validates_against_the_schema() -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    _, doc = run_json()
    jsonschema.validate(doc, schema)
    p = run_hvcheck("schema")
    assert json.loads(p.stdout) == schema
    _, err = run_json("--root", "/nonexistent")
    jsonschema.validate(err, schema)
