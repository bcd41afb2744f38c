"""Real qemu-system-x86_64 processes on this machine, classified by hvcheck and checked against
QMP query-kvm's `enabled` for the same process: KVM, TCG, and the silent kvm:tcg fallback of a
QEMU that runs as a user who cannot open /dev/kvm."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from qemu_harness import GuestFactory, qemu_guests_fixture  # noqa: F401
from snap import run_hvcheck, run_json


def _instances(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {i["pid"]: i for i in doc["instances"]}


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs QEMU as another user)")
def test_kvm_tcg_and_silent_fallback_agree_with_qmp(
    qemu_guests: GuestFactory, tmp_path: Path
) -> None:
    kvm = qemu_guests("instance-0000000a", ["-accel", "kvm"], uuid=str(uuid.uuid4()))
    tcg = qemu_guests("instance-0000000b", ["-accel", "tcg"], uuid=str(uuid.uuid4()))
    fb = qemu_guests(
        "instance-0000000c", ["-machine", "pc,accel=kvm:tcg"], user="nobody", uuid=str(uuid.uuid4())
    )
    truth = {g.pid: ("kvm" if g.query_kvm()["enabled"] else "tcg") for g in (kvm, tcg, fb)}
    assert truth == {kvm.pid: "kvm", tcg.pid: "tcg", fb.pid: "tcg"}

    rc, doc = run_json()
    inst = _instances(doc)
    for g in (kvm, tcg, fb):
        assert g.pid in inst, f"{g.name} not discovered"
        i = inst[g.pid]
        assert i["accel"] == truth[g.pid], i
        assert i["name"] == g.name and i["uuid"] == g.uuid
        # a kvm-vcpu fd proves KVM on its own (threads are not read then); TCG is corroborated
        assert {"fd"} <= set(i["evidence"]) if g is kvm else {"fd", "threads"} <= set(i["evidence"])
    assert inst[fb.pid]["silent_fallback"] is True
    assert inst[fb.pid]["requested"] == "kvm:tcg"
    assert inst[kvm.pid]["silent_fallback"] is False
    assert inst[tcg.pid]["silent_fallback"] is False
    check = next(c for c in doc["checks"] if c["id"] == "instances.accel")
    assert check["status"] == "CRITICAL" and check["code"] == "silent-fallback"
    assert "instance-0000000c" in check["summary"] and check["hint"]
    assert doc["verdict"]["acceleration"] == "mixed"
    assert doc["counts"]["tcg_instances"] >= 2 and doc["counts"]["kvm_instances"] >= 1
    assert rc == 2

    nagios = run_hvcheck("--format", "nagios")
    first = nagios.stdout.splitlines()[0]
    assert first.startswith("HVCHECK CRITICAL - ") and "'tcg_instances'=" in first

    # the same processes, captured and replayed from a snapshot
    out = tmp_path / "live.tar.gz"
    assert run_hvcheck("collect", "-o", str(out)).returncode == 0
    _, snap = run_json("--root", str(out))
    replay = _instances(snap)
    for g in (kvm, tcg, fb):
        assert replay[g.pid]["accel"] == truth[g.pid]
        assert replay[g.pid]["evidence"] == inst[g.pid]["evidence"]
    assert next(c for c in snap["checks"] if c["id"] == "instances.accel")["status"] == "CRITICAL"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_without_debug_threads_fds_still_decide(qemu_guests: GuestFactory) -> None:
    g = qemu_guests("plain-guest", ["-accel", "kvm"], debug_threads=False)
    _, doc = run_json("--only", "instances")
    i = _instances(doc)[g.pid]
    assert i["accel"] == "kvm" and "fd" in i["evidence"] and "threads" not in i["evidence"]


def test_hostile_name_is_inert_in_every_format(qemu_guests: GuestFactory) -> None:
    evil = "evil\x1b]0;owned\x07\x1b[31mred|pipe"
    g = qemu_guests(evil, ["-accel", "tcg"])
    p = run_hvcheck("--json", "--only", "instances")
    assert "\x1b" not in p.stdout and "\\u001b" in p.stdout
    assert json.loads(p.stdout)["instances"][0]["name"] == evil
    for fmt in ("table", "nagios"):
        out = run_hvcheck("--format", fmt, "-v", "--only", "instances").stdout
        assert "\x1b" not in out and "\x07" not in out, fmt
        assert "\\x1b" in out, fmt
    first = run_hvcheck("--format", "nagios", "-v", "--only", "instances").stdout.splitlines()[0]
    assert first.count("|") == 1
    g.stop()
