"""Monitoring details (issue 14): Prometheus series unique per instance, Nagios thresholds in
the Monitoring Plugins guidelines' range grammar, ``hvcheck report`` reading only regular
files and validating each document (one bad file, one UNKNOWN row; duplicate hosts and stale
documents flagged; each row's file shown), and ``generated_at`` in the JSON."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hvcheck.cli import schema_text
from hvcheck.nagrange import Range
from snap import PROJECT, healthy_host, run_hvcheck, run_json

FALLBACK = PROJECT / "fixtures" / "live-qemu-kvm-tcg-fallback"  # pids 20933, 20938, 20942
ONE_TCG = PROJECT / "fixtures" / "nova-kvm-tcg-instance"


def _edit_cmdline(root: Path, pid: str, name: str | None) -> None:
    p = root / "proc" / pid / "cmdline"
    argv = p.read_bytes().split(b"\0")
    i = argv.index(b"-name")
    if name is None:
        del argv[i : i + 2]
    else:
        argv[i + 1] = f"guest={name},debug-threads=on".encode()
    p.write_bytes(b"\0".join(argv))


# ---- Prometheus ----------------------------------------------------------------------------
def test_prometheus_series_are_unique_when_names_repeat_or_are_missing(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    root = tmp_path / "dup"
    shutil.copytree(FALLBACK, root, symlinks=True)
    _edit_cmdline(root, "20933", "same-name")
    _edit_cmdline(root, "20938", "same-name")
    _edit_cmdline(root, "20942", None)
    # the same uuid too: only the pid tells these two apart
    for pid in ("20933", "20938"):
        p = root / "proc" / pid / "cmdline"
        p.write_bytes(re.sub(rb"-uuid\0[^\0]*", b"-uuid\0" + b"1" * 36, p.read_bytes()))
    _, doc = run_json("--root", str(root))
    assert sorted((i["pid"], i["name"]) for i in doc["instances"]) == [
        (20933, "same-name"),
        (20938, "same-name"),
        (20942, None),
    ]
    out = run_hvcheck("--root", str(root), "--format", "prometheus").stdout
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for fam in text_string_to_metric_families(out):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in seen, f"duplicate series {key}"
            seen.add(key)
    inst = {
        s.labels.get("pid"): s.labels
        for f in text_string_to_metric_families(out)
        if f.name == "hvcheck_instance_accel"
        for s in f.samples
    }
    assert set(inst) == {"20933", "20938", "20942"}
    assert inst["20942"]["name"] == ""


def test_prometheus_keeps_unique_names_without_a_pid() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    out = run_hvcheck("--root", str(FALLBACK), "--format", "prometheus").stdout
    fam = next(f for f in text_string_to_metric_families(out) if f.name == "hvcheck_instance_accel")
    assert all("pid" not in s.labels for s in fam.samples) and len(fam.samples) == 3


# ---- Nagios thresholds ---------------------------------------------------------------------
# the guidelines' range: [@][start:]end, start "~" or a number (0 and ":" left out), end a
# number or empty (infinity); numbers in [-0-9.]
GUIDELINES_RANGE = re.compile(r"@?(?:(?:~|-?[0-9]+(?:\.[0-9]+)?):)?(?:-?[0-9]+(?:\.[0-9]+)?)?")
PERF_ITEM = re.compile(
    r"'(?P<label>[^'=]+)'=(?P<value>-?[0-9.]+)(?P<uom>[a-zA-Z%]*)"
    r";(?P<warn>[^;]*);(?P<crit>[^;]*);(?P<min>-?[0-9.]*);(?P<max>-?[0-9.]*)"
)


@pytest.mark.parametrize(
    ("warn", "crit", "want_warn", "want_crit"),
    [
        ("0", "5", "0", "5"),
        (" 1e1 ", "@~:5.50", "10", "@~:5.5"),
        ("0:5", "10:inf", "5", "10:"),
        ("~:", "@0:2", "~:", "@2"),
        ("-1:+3", "@-inf:0", "-1:3", "@~:0"),
        ("2.500:7.0", "1e0:", "2.5:7", "1:"),
    ],
)
def test_perfdata_thresholds_follow_the_guidelines_grammar(
    warn: str, crit: str, want_warn: str, want_crit: str
) -> None:
    p = run_hvcheck("--root", str(ONE_TCG), "--format", "nagios", "-w", warn, "-c", crit)
    assert p.returncode in (0, 1, 2), p.stdout + p.stderr
    perf = p.stdout.splitlines()[0].split(" | ", 1)[1]
    items = {m["label"]: m for m in map(PERF_ITEM.fullmatch, perf.split(" ")) if m}
    assert len(items) == len(perf.split(" ")), perf
    for m in items.values():
        assert GUIDELINES_RANGE.fullmatch(m["warn"]) and GUIDELINES_RANGE.fullmatch(m["crit"])
    tcg = items["tcg_instances"]
    assert (tcg["warn"], tcg["crit"]) == (want_warn, want_crit)
    # the printed range means what the operator's spelling meant
    for given, printed in ((warn, want_warn), (crit, want_crit)):
        a, b = Range.parse(given), Range.parse(printed)
        assert (a.start, a.end, a.inside) == (b.start, b.end, b.inside)
        assert not math.isnan(b.start)


# ---- hvcheck report --------------------------------------------------------------------------
def _doc(root: Path) -> dict[str, Any]:
    return dict(json.loads(run_hvcheck("--root", str(root), "--json").stdout))


def _fresh(doc: dict[str, Any], hostname: str | None = None) -> dict[str, Any]:
    """The document as a run of a minute ago would have written it."""
    d = json.loads(json.dumps(doc))
    d["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    if hostname:
        d["host"]["hostname"] = hostname
    return dict(d)


def _report(*args: str) -> tuple[int, dict[str, Any]]:
    t0 = time.monotonic()
    p = run_hvcheck("--json", "report", *args, timeout=30)
    assert time.monotonic() - t0 < 20 and "Traceback" not in p.stderr, p.stderr
    return p.returncode, dict(json.loads(p.stdout))


def _row(doc: dict[str, Any], file: Path) -> dict[str, Any]:
    rows = [h for h in doc["hosts"] if h["file"] == str(file)]
    assert len(rows) == 1
    return rows[0]


@pytest.fixture()
def good(tmp_path: Path) -> Path:
    ok = healthy_host(tmp_path / "ok")
    f = tmp_path / "good.json"
    f.write_text(json.dumps(_fresh(_doc(ok), "compute-ok")))
    return f


def test_a_fifo_or_a_directory_is_one_unknown_row_and_no_hang(tmp_path: Path, good: Path) -> None:
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # nobody ever writes: opening it for reading would block
    d = tmp_path / "dir.json"
    d.mkdir()
    rc, doc = _report(str(good), str(fifo), str(d), str(tmp_path / "missing.json"))
    assert doc["hosts_total"] == 4 and rc == 3
    for f in (fifo, d, tmp_path / "missing.json"):
        r = _row(doc, f)
        assert r["status"] == "UNKNOWN" and r["error"] and r["attention"], r
    assert "regular file" in _row(doc, fifo)["error"]
    assert _row(doc, good)["status"] == "OK"


BAD_DOCS = {
    "status-green": lambda d: {**d, "status": "GREEN"},
    "exit-mismatch": lambda d: {**d, "exit_code": 2},
    "negative-count": lambda d: {**d, "counts": {**d["counts"], "tcg_instances": -1}},
    "count-string": lambda d: {**d, "counts": {**d["counts"], "instances": "2"}},
    "check-status": lambda d: {**d, "checks": [{**d["checks"][0], "status": "FINE"}]},
    "not-hvcheck": lambda d: {**d, "tool": {"name": "other"}},
    "schema-2": lambda d: {**d, "schema_version": 2},
    "verdict-list": lambda d: {**d, "verdict": []},
    "usable-string": lambda d: {**d, "verdict": {**d["verdict"], "kvm_usable": "yes"}},
    "bad-time": lambda d: {**d, "generated_at": "yesterday"},
    "array": lambda d: [d],
}


@pytest.mark.parametrize("case", sorted(BAD_DOCS))
def test_one_invalid_document_is_one_unknown_row(tmp_path: Path, good: Path, case: str) -> None:
    base = json.loads(good.read_text())
    bad = tmp_path / f"{case}.json"
    bad.write_text(json.dumps(BAD_DOCS[case](base)))
    rc, doc = _report(str(good), str(bad))
    assert doc["hosts_total"] == 2 and rc == 3
    r = _row(doc, bad)
    assert r["status"] == "UNKNOWN" and "not a valid hvcheck document" in r["error"], r
    assert _row(doc, good)["status"] == "OK" and doc["invalid"] == [str(bad)]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"\xff\xfe\x00garbage", b"[" * 200_000 + b"]" * 200_000, b""],
    ids=["not-json", "not-utf8", "deep-nesting", "empty"],
)
def test_unparseable_files_are_one_unknown_row(tmp_path: Path, good: Path, content: bytes) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    rc, doc = _report(str(good), str(bad))
    assert rc == 3 and _row(doc, bad)["status"] == "UNKNOWN" and _row(doc, good)["status"] == "OK"


def test_duplicate_hosts_are_flagged(tmp_path: Path, good: Path) -> None:
    twin = tmp_path / "twin.json"
    twin.write_text(good.read_text())
    rc, doc = _report(str(good), str(twin))
    assert rc == 0  # both OK and fresh: flagged, not failed
    assert doc["duplicates"] == {"compute-ok": sorted([str(good), str(twin)])}
    for f, other in ((good, twin), (twin, good)):
        r = _row(doc, f)
        assert r["attention"] and any(str(other) in fl for fl in r["flags"]), r
    t = run_hvcheck("report", str(good), str(twin), env={"COLUMNS": "250"})
    assert "duplicate host" in t.stdout and str(twin) in t.stdout


def test_stale_documents_are_unknown_with_what_they_said(tmp_path: Path, good: Path) -> None:
    old = tmp_path / "old.json"
    d = json.loads(good.read_text())
    d["host"]["hostname"] = "compute-old"
    d["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7200))
    old.write_text(json.dumps(d))
    rc, doc = _report(str(good), str(old))  # default --max-age: 1 h
    r = _row(doc, old)
    assert r["status"] == "UNKNOWN" and r["reported_status"] == "OK" and rc == 3
    assert r["flags"][0].startswith("stale") and doc["stale"] == [str(old)]
    assert _row(doc, good)["status"] == "OK" and _row(doc, good)["flags"] == []
    rc, doc = _report("--max-age", "3h", str(good), str(old))
    assert _row(doc, old)["status"] == "OK" and rc == 0 and doc["max_age_seconds"] == 10800
    rc, doc = _report("--max-age", "0", str(old))
    assert rc == 0 and 7100 < _row(doc, old)["age_seconds"] < 7400
    # a document without generated_at cannot show it is fresh
    none = tmp_path / "none.json"
    d.pop("generated_at")
    none.write_text(json.dumps(d))
    rc, doc = _report(str(none))
    assert rc == 3 and "no generated_at" in _row(doc, none)["flags"][0]
    assert run_hvcheck("report", "--max-age", "soon", str(good)).returncode == 3


def test_a_replayed_snapshot_is_as_old_as_its_evidence(tmp_path: Path) -> None:
    f = tmp_path / "replay.json"
    f.write_text(run_hvcheck("--root", str(ONE_TCG), "--json").stdout)
    rc, doc = _report(str(f))
    r = _row(doc, f)
    assert r["status"] == "UNKNOWN" and r["reported_status"] == "CRITICAL" and rc == 3
    assert (
        r["generated_at"] == json.loads((ONE_TCG / "hvcheck-snapshot.json").read_text())["taken_at"]
    )


def test_the_table_shows_each_rows_file(tmp_path: Path, good: Path) -> None:
    other = tmp_path / "other-host.json"
    other.write_text(json.dumps(_fresh(json.loads(good.read_text()), "compute-2")))
    t = run_hvcheck("report", str(good), str(other), env={"COLUMNS": "250"})
    assert t.returncode == 0, t.stdout
    lines = t.stdout.splitlines()
    assert any("compute-ok" in ln and str(good) in ln for ln in lines), t.stdout
    assert any("compute-2" in ln and str(other) in ln for ln in lines), t.stdout
    assert "File" in t.stdout


# ---- generated_at ----------------------------------------------------------------------------
def test_generated_at_is_when_the_evidence_was_read(tmp_path: Path) -> None:
    schema = json.loads(schema_text())
    before = time.time()
    _, live = run_json("--only", "cpu")
    jsonschema.validate(live, schema)
    t = time.mktime(time.strptime(live["generated_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before - 2 <= t <= time.time() + 1
    _, replay = run_json("--root", str(ONE_TCG))
    jsonschema.validate(replay, schema)
    marker = json.loads((ONE_TCG / "hvcheck-snapshot.json").read_text())
    assert replay["generated_at"] == marker["taken_at"]
    # a snapshot without taken_at: the run's own time
    root = healthy_host(tmp_path / "s")
    _, doc = run_json("--root", str(root))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["generated_at"])
    _, failed = run_json("--root", str(tmp_path / "nope"))
    jsonschema.validate(failed, schema)
    assert "generated_at" in failed


def test_an_oversized_file_is_one_unknown_row_and_not_read_whole(
    tmp_path: Path, good: Path
) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as f:  # sparse: 64 MiB that take no disk
        f.truncate(64 * 1024 * 1024)
    rc, doc = _report(str(good), str(big))
    r = _row(doc, big)
    assert rc == 3 and r["status"] == "UNKNOWN" and "larger than 16 MiB" in r["error"], r
