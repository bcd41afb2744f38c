"""The live host: this machine (kvm_pvm, no vmx/svm, working /dev/kvm), as root and as a user,
and `collect` → `--root` giving the same verdict as the live run it came from."""

from __future__ import annotations

import io
import json
import os
import pwd
import sys
from pathlib import Path

import pytest

from snap import run_hvcheck, run_json

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
needs_kvm = pytest.mark.skipif(
    not os.path.exists("/dev/kvm") and not os.environ.get("CI"),
    reason="no /dev/kvm on this machine",
)


@needs_root
@needs_kvm
def test_root_live_run_says_kvm_usable_from_the_probe() -> None:
    rc, doc = run_json()
    assert doc["verdict"]["kvm_usable"] is True, doc["verdict"]
    dev = next(c for c in doc["checks"] if c["id"] == "kvm.device")
    assert dev["status"] == "OK"
    assert any("KVM_CREATE_VM ok" in e for e in dev["evidence"])
    assert dev["details"]["probe"]["ok"] is True
    assert dev["details"]["probe"]["api_version"] == 12
    if os.path.isdir("/sys/module/kvm_pvm"):
        # this project's machines: no vmx/svm in cpuinfo, KVM through kvm_pvm
        ext = next(c for c in doc["checks"] if c["id"] == "cpu.virt_ext")
        assert ext["status"] == "OK" and "kvm_pvm" in ext["summary"]
        mods = next(c for c in doc["checks"] if c["id"] == "kvm.modules")
        assert "kvm_pvm" in mods["summary"]
        assert any("kvm_pvm" in e for e in dev["evidence"])
    assert rc == doc["exit_code"]


def _dummy_verdict() -> object:
    from hvcheck.model import HostFacts, Verdict

    return Verdict(HostFacts("h", "x86_64", "k", "os", None), None, "r", "none", None, "s", ())


def _run_as_nobody(args: list[str]) -> tuple[int, str, str]:
    """Fork, drop to the 'nobody' user, and run the CLI in the child.

    Everything is imported before privileges drop: the interpreter lives under /root here,
    which 'nobody' cannot read; what runs unprivileged is the real CLI code against the host.
    """
    import hvcheck.cli
    import hvcheck.engine
    import hvcheck.report.json
    import hvcheck.report.nagios
    import hvcheck.report.table
    from hvcheck.engine import load_checks

    load_checks()
    # warm rich's lazily imported modules (unicode tables) while they are still readable
    hvcheck.report.table.render_to(_dummy_verdict(), io.StringIO())
    import encodings.ascii  # noqa: F401 - distro opens files with it, lazily
    import grp  # noqa: F401 - the device owner's names (host.live), imported lazily

    import distro  # noqa: F401
    import psutil  # noqa: F401 - the live process table (host.live), imported lazily
    import pyudev  # noqa: F401 - udev's view of the device nodes (host.live), lazily
    import rich.console
    import rich.table  # noqa: F401

    nobody = pwd.getpwnam("nobody")
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r_out)
            os.close(r_err)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", 0), write_through=True)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", 0), write_through=True)
            hvcheck.cli.main(args)
        except SystemExit as e:
            os._exit(e.code if isinstance(e.code, int) else 3)
        except BaseException:
            import traceback

            traceback.print_exc()
            os._exit(99)
        os._exit(0)
    os.close(w_out)
    os.close(w_err)
    with os.fdopen(r_out) as fo, os.fdopen(r_err) as fe:
        out, err = fo.read(), fe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out, err


@needs_root
@needs_kvm
def test_unprivileged_run_cannot_tell_and_says_how_to_find_out() -> None:
    st = os.stat("/dev/kvm")
    if st.st_mode & 0o006:
        pytest.skip("/dev/kvm is world-accessible here; nothing is denied")
    rc, out, err = _run_as_nobody(["--json"])
    assert "Traceback" not in out + err, err
    doc = json.loads(out)
    assert doc["verdict"]["kvm_usable"] is None
    assert "sudo" in doc["verdict"]["kvm_usable_reason"]
    dev = next(c for c in doc["checks"] if c["id"] == "kvm.device")
    assert dev["status"] == "UNKNOWN" and "sudo" in dev["hint"]
    assert not [c for c in doc["checks"] if c["status"] == "CRITICAL"], "CRITICAL from EACCES"
    assert rc == 3 == doc["exit_code"]
    rc, out, err = _run_as_nobody(["--format", "table"])
    assert "Traceback" not in out + err and "cannot tell" in out and rc == 3


@needs_root
@needs_kvm
def test_collect_then_root_gives_the_live_verdict(tmp_path: Path) -> None:
    import tarfile

    out = tmp_path / "snap.tar.gz"
    p = run_hvcheck("collect", "-o", str(out))
    assert p.returncode == 0 and out.is_file(), p.stderr
    with tarfile.open(out) as tf:
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        live = json.load(f)["live_verdict"]  # what the collecting run itself concluded
    rc_snap, snap = run_json("--root", str(out))
    assert snap["status"] == live["status"]
    assert rc_snap == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[live["status"]]
    assert snap["verdict"]["kvm_usable"] == live["kvm_usable"]
    assert snap["verdict"]["acceleration"] == live["acceleration"]
    assert {c["id"]: c["status"] for c in snap["checks"]} == live["checks"]
    assert snap["source"]["snapshot"] == str(out)
    # and a fresh live run agrees on everything about the host itself (instances and the
    # daemons' answers may change between two runs on a busy machine)
    _, fresh = run_json(
        "--only", "cpu", "--only", "kvm", "--only", "host", "--only", "firmware", "--only", "nested"
    )
    for c in fresh["checks"]:
        assert live["checks"][c["id"]] == c["status"], c
    assert snap["host"] == fresh["host"]


@needs_root
@needs_kvm
def test_unprivileged_run_with_root_owned_qemu_is_unknown_not_critical() -> None:
    import shutil
    import subprocess

    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("needs qemu-system-x86_64")
    from qemu_harness import start_guest

    g = start_guest("instance-priv-0001", ["-accel", "kvm"])
    try:
        rc, out, err = _run_as_nobody(["--json"])
        assert "Traceback" not in out + err, err
        doc = json.loads(out)
        inst = {i["pid"]: i for i in doc["instances"]}
        assert inst[g.pid]["accel"] in ("unknown", "kvm")
        acc = next(c for c in doc["checks"] if c["id"] == "instances.accel")
        assert acc["status"] != "CRITICAL", acc
        critical = [c for c in doc["checks"] if c["status"] == "CRITICAL"]
        assert not critical, critical
        assert rc == 3 and doc["status"] == "UNKNOWN"
        if inst[g.pid]["accel"] == "unknown":
            assert "sudo" in (acc["hint"] or "")
    finally:
        g.stop()
        subprocess.run(["true"], check=True)


def test_a_zombie_named_like_qemu_is_no_instance() -> None:
    """A real zombie whose comm is "qemu-system-x86": its cmdline is empty, its root link does
    not read, it runs no guest; the process walk and the per-process reads agree."""
    import ctypes
    import time

    from hvcheck.check import Context
    from hvcheck.host import LiveHost
    from hvcheck.processes import qemu_processes

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: rename itself, then exit without being reaped
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(15, b"qemu-system-x86", 0, 0, 0)  # PR_SET_NAME
        finally:
            os._exit(0)
    os.close(w)
    try:
        os.read(r, 1)  # EOF once the child has exited
        for _ in range(100):
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.02)
        with open(f"/proc/{pid}/comm") as f:
            assert f.read().strip() == "qemu-system-x86"
        host = LiveHost()
        with host.open_proc(pid) as view:
            assert view.readlink("root") is None and not view.alive()
        ctx = Context(host, {})
        assert pid not in {q.pid for q in qemu_processes(ctx)}
    finally:
        os.close(r)
        os.waitpid(pid, 0)


@needs_root
@needs_kvm
def test_probe_runs_real_mode_guest_code_and_checks_both_exits() -> None:
    import platform

    from hvcheck.host import ProbeResult
    from hvcheck.host.live import _probe_kvm

    p = _probe_kvm()
    assert p.ok, p
    if platform.machine() != "x86_64":
        assert p.guest is None
        return
    assert p.guest is not None
    assert p.guest == {
        "ok": True,
        "stage": "done",
        "error": None,
        "exits": ["IO port 0x10 out 0x42", "KVM_EXIT_HLT"],
    }, p.guest
    # recorded in snapshots like the rest of the probe
    assert ProbeResult.from_json(p.to_json()) == p
