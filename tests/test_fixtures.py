"""Every snapshot under fixtures/ gives its expected verdict (fixtures/<scenario>/expected.json),
and every JSON document validates against the schema shipped in the package."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from hvcheck.cli import schema_text
from snap import PROJECT, run_hvcheck

FIXTURES = sorted(p.parent for p in (PROJECT / "fixtures").glob("*/expected.json"))
SCHEMA = json.loads(schema_text())


def test_there_are_fixtures() -> None:
    assert len(FIXTURES) >= 10, FIXTURES


@pytest.mark.parametrize("scenario", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_verdict(scenario: Path) -> None:
    want: dict[str, Any] = json.loads((scenario / "expected.json").read_text())
    if want.get("command") == "guest":
        _guest_fixture(scenario, want)
        return
    p = run_hvcheck("--root", str(scenario), "--json")
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    checks = {c["id"]: c for c in doc["checks"]}
    got = {cid: c["status"] for cid, c in checks.items()}
    assert doc["status"] == want["status"], (doc["verdict"]["summary"], got)
    assert p.returncode == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[want["status"]]
    assert doc["verdict"]["kvm_usable"] is want["kvm_usable"], doc["verdict"]
    for cid, status in want.get("checks", {}).items():
        assert got.get(cid) == status, (cid, checks.get(cid))
    for cid, text in want.get("hint_contains", {}).items():
        assert text.lower() in (checks[cid]["hint"] or "").lower(), (cid, checks[cid]["hint"])
    for cid, text in want.get("summary_contains", {}).items():
        assert text.lower() in checks[cid]["summary"].lower(), (cid, checks[cid]["summary"])
    for key in ("acceleration", "virt_type"):
        if key in want:
            assert doc["verdict"][key] == want[key], doc["verdict"]
    if "instances" in want:
        assert {i["name"]: i["accel"] for i in doc["instances"]} == want["instances"]
    if "binary_stale" in want:
        got_stale = {i["name"]: i["binary_stale"] for i in doc["instances"]}
        assert got_stale == want["binary_stale"], got_stale
    # the other formats agree on the exit code
    for fmt in ("nagios", "table"):
        assert run_hvcheck("--root", str(scenario), "--format", fmt).returncode == p.returncode


EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def _guest_fixture(scenario: Path, want: dict[str, Any]) -> None:
    """A guest's snapshot (expected.json ``"command": "guest"``): ``hvcheck guest --root``
    gives the expected status, ``guest`` object and check states."""
    p = run_hvcheck("guest", "--root", str(scenario), "--json")
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    g = doc["guest"]
    checks = {c["id"]: c for c in doc["checks"]}
    got = {cid: c["status"] for cid, c in checks.items()}
    assert doc["status"] == want["status"], (g["summary"], got)
    assert p.returncode == EXIT[want["status"]]
    for key in ("accel", "hypervisor", "nested", "platform"):
        if key in want:
            assert g[key] == want[key], (key, g)
    for kind in want.get("evidence_contains", ()):
        assert kind in g["evidence"], (kind, g["evidence"])
    for cid, status in want.get("checks", {}).items():
        assert got.get(cid) == status, (cid, checks.get(cid))
    for cid, text in want.get("hint_contains", {}).items():
        assert text.lower() in (checks[cid]["hint"] or "").lower(), (cid, checks[cid]["hint"])
    for cid, text in want.get("summary_contains", {}).items():
        assert text.lower() in checks[cid]["summary"].lower(), (cid, checks[cid]["summary"])
    # the other formats agree on the exit code; the host run never runs the guest checks
    for fmt in ("nagios", "table"):
        assert run_hvcheck("guest", "--root", str(scenario), "--format", fmt).returncode == (
            p.returncode
        )
    host = json.loads(run_hvcheck("--root", str(scenario), "--json").stdout)
    assert not any(c["id"].startswith("guest.") for c in host["checks"]), host["checks"]
