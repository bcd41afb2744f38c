"""Issue 14, with real processes on this machine: impostors started as ``nobody`` never
change the verdict nor make hvcheck read a file for them; a QEMU still starting is "starting";
an unprivileged run behind ``hidepid`` or in a pid namespace of its own is UNKNOWN, never
"0 instances, OK"; a config file that is a FIFO ends the run in time with UNKNOWN.

Every process a test starts is stopped by its pid (``_Procs``); /proc is remounted only in
private mount namespaces (``unshare --mount``), never for the rest of the machine.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from qemu_harness import (  # noqa: F401
    GuestFactory,
    build_argv,
    qemu_binary,
    qemu_guests_fixture,
    skip_if_namespace_refused,
)
from snap import PROJECT, run_hvcheck, run_json

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs processes as nobody)")
SYSTEM_PYTHON = "/usr/bin/python3"
SLEEPER = "import time; time.sleep(120)"


def _nobody() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody")


class _Procs:
    """Processes started for a test, each stopped by its pid and reaped at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: list[str],
        *,
        executable: str,
        user: Optional[str] = None,
        cwd: Optional[str] = None,
    ) -> subprocess.Popen[bytes]:
        kw: dict[str, Any] = {}
        if user is not None:
            pw = pwd.getpwnam(user)
            kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        p = subprocess.Popen(
            argv,
            executable=executable,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
            **kw,
        )
        self.started.append(p)
        return p

    def stop(self) -> None:
        for p in reversed(self.started):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    os.kill(p.pid, signal.SIGKILL)
                    p.wait()


@pytest.fixture(name="procs")
def procs_fixture() -> Iterator[_Procs]:
    procs = _Procs()
    try:
        yield procs
    finally:
        procs.stop()


@pytest.fixture(name="shared_dir")
def shared_dir_fixture() -> Iterator[Path]:
    """A directory in /tmp that nobody may enter (tmp_path is root's 0700)."""
    d = Path(tempfile.mkdtemp(prefix="hvcheck-trust-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _wait_cmdline(pid: int, needle: str) -> None:
    """Until the kernel shows the process's command line with ``needle`` (exec done)."""
    for _ in range(200):
        try:
            if needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"pid {pid} never showed {needle!r}")


def _check(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == cid)


def _every_output(*args: str) -> str:
    outs = []
    for fmt in ("json", "table", "nagios", "prometheus"):
        p = run_hvcheck("--format", fmt, "-v", "--no-api", *args)
        assert "Traceback" not in p.stdout + p.stderr, p.stderr
        outs.append(p.stdout + p.stderr)
    return "\n".join(outs)


def _snapshot_text(path: Path) -> str:
    with tarfile.open(path) as tf:
        parts = []
        for m in tf:
            f = tf.extractfile(m) if m.isreg() else None
            parts.append(m.name + (m.linkname or ""))
            if f is not None:
                parts.append(f.read().decode("utf-8", "replace"))
    return "\n".join(parts)


def _no_other_nova_compute() -> None:
    """Skip where some other nova-compute already runs (another test on this shared machine):
    which one hvcheck takes would depend on it."""
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        if any(Path(a).name == "nova-compute" for a in (p.info["cmdline"] or [])[:3]):
            pytest.skip(f"another nova-compute runs here (pid {p.pid})")


# ---- 1. impostors -----------------------------------------------------------------------------
@needs_root
def test_python_with_qemus_argv0_is_not_an_instance(procs: _Procs, shared_dir: Path) -> None:
    """python3 run by nobody, argv[0] /usr/bin/qemu-system-x86_64, -accel kvm (and one
    asking kvm:tcg): /proc/PID/exe says python, so neither is an instance. A copy of python
    named qemu-system-x86_64 and owned by nobody is not one either: a QEMU is root's."""
    argv0 = "/usr/bin/qemu-system-x86_64"
    a = procs.start(
        [argv0, "-c", SLEEPER, "-name", "guest=impostor-a", "-accel", "kvm"],
        executable=SYSTEM_PYTHON,
        user="nobody",
    )
    b = procs.start(
        [argv0, "-c", SLEEPER, "-name", "guest=impostor-b", "-machine", "accel=kvm:tcg"],
        executable=SYSTEM_PYTHON,
        user="nobody",
    )
    copy = shared_dir / "qemu-system-x86_64"
    shutil.copy2(os.path.realpath(SYSTEM_PYTHON), copy)
    os.chown(copy, _nobody().pw_uid, _nobody().pw_gid)
    c = procs.start(
        [str(copy), "-c", SLEEPER, "-name", "guest=impostor-c", "-accel", "kvm:tcg"],
        executable=str(copy),
        user="nobody",
    )
    for p in (a, b, c):
        _wait_cmdline(p.pid, "impostor-")
    assert os.readlink(f"/proc/{c.pid}/exe") == str(copy)  # its executable is named QEMU
    rc, doc = run_json("--only", "instances")
    pids = {i["pid"] for i in doc["instances"]}
    assert not pids & {a.pid, b.pid, c.pid}, doc["instances"]
    acc = _check(doc, "instances.accel")
    assert "impostor" not in acc["summary"], acc
    if not doc["instances"]:  # nothing else runs on this (shared) machine
        assert acc["status"] == "OK" and rc != 2, acc


@needs_root
def test_nova_compute_impostor_reads_nothing_and_decides_nothing(
    procs: _Procs, shared_dir: Path, tmp_path: Path, qemu_guests: GuestFactory
) -> None:
    """nobody's "nova-compute" names a root-only file and its own virt_type = qemu; a real
    nova-compute (root's) names virt_type = kvm, and a real QEMU runs TCG. The impostor starts
    first (the lower pid): its files are never read, not in any output nor in the snapshot, and
    the TCG instance stays CRITICAL against the trusted virt_type=kvm."""
    _no_other_nova_compute()
    secret = f"HVCHECK-ROOT-SECRET-{uuid.uuid4().hex}"
    root_file = Path(f"/root/.hvcheck-test-{uuid.uuid4().hex[:8]}.conf")
    root_file.write_text(f"[DEFAULT]\ntransport_url = rabbit://nova:{secret}@mq/\n")
    root_file.chmod(0o600)
    try:
        own = shared_dir / "x"
        own.mkdir()
        (own / "nova.conf").write_text("[libvirt]\nvirt_type = qemu\n# IMPOSTOR-FILE\n")
        for p in (own, own / "nova.conf"):
            os.chown(p, _nobody().pw_uid, _nobody().pw_gid)
        impostor = procs.start(
            [
                "nova-compute",
                "-c",
                SLEEPER,
                "--config-file",
                str(root_file),
                "--config-file",
                str(own / "nova.conf"),
            ],
            executable=SYSTEM_PYTHON,
            user="nobody",
        )
        real_conf = tmp_path / "nova.conf"
        real_conf.write_text("[libvirt]\nvirt_type = kvm\n")
        real = procs.start(
            ["nova-compute", "-c", SLEEPER, "--config-file", str(real_conf)],
            executable=SYSTEM_PYTHON,
        )
        _wait_cmdline(impostor.pid, "--config-file")
        _wait_cmdline(real.pid, "--config-file")
        assert impostor.pid < real.pid
        tcg = qemu_guests("instance-tcg", ["-accel", "tcg"])

        rc, doc = run_json("--no-api", "--only", "nova", "--only", "instances")
        nova = _check(doc, "nova.virt_type")
        assert nova["details"]["nova_compute_pid"] == real.pid, nova
        assert nova["details"]["virt_type"] == "kvm"
        assert nova["details"]["files"] == [str(real_conf)]
        assert any(str(impostor.pid) in w for w in nova["details"]["ignored_processes"]), nova
        assert doc["verdict"]["virt_type"] == "kvm"
        acc = _check(doc, "instances.accel")
        inst = {i["pid"]: i for i in doc["instances"]}
        assert inst[tcg.pid]["accel"] == "tcg" and acc["status"] == "CRITICAL", acc
        if len(inst) == 1:  # nothing else runs on this (shared) machine
            assert acc["code"] == "tcg-instances" and "instance-tcg" in acc["summary"], acc
        assert rc == 2

        text = _every_output("--only", "nova", "--only", "instances")
        assert secret not in text and "IMPOSTOR-FILE" not in text
        out = tmp_path / "snap.tar.gz"
        assert run_hvcheck("--no-api", "collect", "-o", str(out)).returncode in (0, 1, 2, 3)
        snap = _snapshot_text(out)
        assert secret not in snap and "IMPOSTOR-FILE" not in snap
        # replayed, the snapshot gives the same answer
        _, replay = run_json("--root", str(out), "--only", "nova", "--only", "instances")
        assert _check(replay, "nova.virt_type")["details"]["nova_compute_pid"] == real.pid
        assert _check(replay, "instances.accel")["status"] == "CRITICAL"
    finally:
        root_file.unlink(missing_ok=True)


@needs_root
def test_the_impostor_alone_leaves_nova_unfound(procs: _Procs, shared_dir: Path) -> None:
    """Only nobody's "nova-compute" runs: no nova-compute is taken, its virt_type = qemu is
    not the verdict's, and nova.virt_type says which process was ignored and why."""
    (shared_dir / "nova.conf").write_text("[libvirt]\nvirt_type = qemu\n")
    p = procs.start(
        ["nova-compute", "-c", SLEEPER, "--config-file", str(shared_dir / "nova.conf")],
        executable=SYSTEM_PYTHON,
        user="nobody",
    )
    _wait_cmdline(p.pid, "--config-file")
    _, doc = run_json("--no-api", "--only", "nova.virt_type")
    nova = _check(doc, "nova.virt_type")
    assert doc["verdict"]["virt_type"] != "qemu"
    assert nova["details"].get("nova_compute_pid") != p.pid
    assert f"pid {p.pid} runs as uid 65534" in json.dumps(nova), nova


@needs_root
def test_readconfig_is_read_only_while_qemus_user_could(
    qemu_guests: GuestFactory, shared_dir: Path, tmp_path: Path
) -> None:
    """QEMU run by nobody read its -readconfig file; then the file became root's 0600 (with
    a secret in it): hvcheck does not read it on nobody's behalf, says so, and collect does
    not archive it."""
    cfg = shared_dir / "guest.cfg"
    cfg.write_text('[accel]\n  accel = "tcg"\n')
    cfg.chmod(0o644)
    g = qemu_guests("readconfig-guest", ["-readconfig", str(cfg)], user="nobody")
    secret = f"HVCHECK-CFG-SECRET-{uuid.uuid4().hex}"
    cfg.write_text(f'[accel]\n  accel = "tcg"\n# {secret}\n')
    os.chown(cfg, 0, 0)
    cfg.chmod(0o600)
    _, doc = run_json("--only", "instances")
    inst = next(i for i in doc["instances"] if i["pid"] == g.pid)
    assert any("not read on behalf of QEMU's user" in u for u in inst["unreadable"]), inst
    assert inst["accel"] == "tcg"  # its fds and threads still say what it runs
    out = tmp_path / "snap.tar.gz"
    assert run_hvcheck("--no-api", "collect", "-o", str(out)).returncode in (0, 1, 2, 3)
    assert secret not in _snapshot_text(out)
    assert secret not in _every_output("--only", "instances")
    # readable by nobody again: read as before
    cfg.chmod(0o644)
    _, doc = run_json("--only", "instances")
    inst = next(i for i in doc["instances"] if i["pid"] == g.pid)
    assert not any("on behalf" in u for u in inst["unreadable"]), inst
    assert inst["requested"] == "tcg"


# ---- 2. the start race -----------------------------------------------------------------------
@needs_root
def test_qemu_reading_its_config_from_a_pipe_is_starting_then_kvm(
    qemu_guests: GuestFactory, tmp_path: Path
) -> None:
    """QEMU with -accel kvm blocked on -readconfig FIFO (nobody writes it yet) has no
    /dev/kvm fd and no vCPU: "starting", never a CRITICAL. Once the config is written, it
    opens /dev/kvm and is KVM."""
    binary = qemu_binary()
    if binary is None or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("needs qemu-system-x86_64 and /dev/kvm")
    fifo = tmp_path / "guest.cfg"
    os.mkfifo(fifo)
    qmp = tmp_path / "qmp.sock"
    argv = build_argv(
        "instance-starting",
        ["-accel", "kvm", "-readconfig", str(fifo)],
        guest_uuid=str(uuid.uuid4()),
        qmp_path=str(qmp),
    )
    proc = subprocess.Popen(
        argv,
        executable=binary,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_cmdline(proc.pid, "instance-starting")
        time.sleep(1.2)  # past STARTING_AGE: the threads decide, not the age
        for _ in range(2):
            rc, doc = run_json("--only", "instances")
            inst = next(i for i in doc["instances"] if i["pid"] == proc.pid)
            assert inst["accel"] == "unknown" and inst["starting"], inst
            assert inst["silent_fallback"] is False
            acc = _check(doc, "instances.accel")
            assert proc.pid in acc["details"]["starting"], acc
            assert proc.pid not in acc["details"].get("silent_fallback", []), acc
            assert "starting" in acc["summary"] and "instance-starting" in acc["summary"], acc
            if len(doc["instances"]) == 1:  # nothing else runs on this (shared) machine
                assert (acc["status"], acc["code"], rc) == ("OK", "starting", 0), acc
        assert not Path(f"/proc/{proc.pid}/fd").exists() or "/dev/kvm" not in [
            os.readlink(f"/proc/{proc.pid}/fd/{n}") for n in os.listdir(f"/proc/{proc.pid}/fd")
        ]

        def feed() -> None:
            with open(fifo, "w") as f:  # blocks until QEMU opens its end
                f.write("# nothing more to configure\n")

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        writer.join(10)
        for _ in range(200):  # until the vCPU thread exists
            names = [
                Path(f"/proc/{proc.pid}/task/{t}/comm").read_text().strip()
                for t in os.listdir(f"/proc/{proc.pid}/task")
            ]
            if any(n.startswith("CPU ") for n in names):
                break
            time.sleep(0.05)
        rc, doc = run_json("--only", "instances")
        inst = next(i for i in doc["instances"] if i["pid"] == proc.pid)
        assert inst["accel"] == "kvm" and not inst["starting"], inst
        if len(doc["instances"]) == 1:
            assert _check(doc, "instances.accel")["status"] == "OK" and rc == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


# ---- 3. hidden processes -----------------------------------------------------------------------
def _venv_site() -> str:
    return site.getsitepackages()[0]


def _run_hidden(*args: str) -> subprocess.CompletedProcess[str]:
    """hvcheck as nobody, in a private mount namespace whose /proc is a new proc mount with
    hidepid=invisible: root's processes are not listed. The machine's /proc is untouched."""
    env = {**os.environ, "PYTHONPATH": f"{PROJECT}:{_venv_site()}"}
    script = (
        "mount -t proc -o hidepid=invisible proc /proc && "
        f"exec setpriv --reuid={_nobody().pw_uid} --regid={_nobody().pw_gid} --clear-groups "
        f'-- {SYSTEM_PYTHON} -m hvcheck "$@"'
    )
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd="/",
    )


@needs_root
def test_hidepid_hides_roots_qemu_from_nobody_and_says_so(qemu_guests: GuestFactory) -> None:
    before = Path("/proc/mounts").read_text()
    g = qemu_guests("instance-hidden", ["-accel", "kvm"])
    p = _run_hidden("--json", "--only", "instances", "-t", "8")
    skip_if_namespace_refused(p, "private mount namespace with a hidepid /proc")
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    assert g.pid not in {i["pid"] for i in doc["instances"]}  # hidden indeed
    acc = _check(doc, "instances.accel")
    if not doc["instances"]:  # no other user's QEMU runs on this (shared) machine
        assert acc["status"] == "UNKNOWN" and acc["code"] == "incomplete", acc
        assert "hidepid" in acc["summary"] and "sudo" in acc["hint"]
    assert doc["verdict"]["acceleration"] == "unknown"
    assert "hidepid" in doc["verdict"]["instances_unknown"]
    assert "counts" not in doc  # never "0 instances"
    assert p.returncode in (2, 3)
    nagios = _run_hidden("--format", "nagios", "--only", "instances", "-t", "8")
    assert "'instances'=U;" in nagios.stdout and nagios.returncode in (2, 3), nagios.stdout
    assert Path("/proc/mounts").read_text() == before  # the machine's /proc is as it was
    # root sees it, in the same kind of namespace
    _, doc = run_json("--only", "instances")
    assert g.pid in {i["pid"] for i in doc["instances"]}


@needs_root
def test_a_pid_namespace_of_its_own_is_unknown_not_zero(qemu_guests: GuestFactory) -> None:
    g = qemu_guests("instance-other-ns", ["-accel", "kvm"])
    p = subprocess.run(
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            sys.executable,
            "-m",
            "hvcheck",
            "--json",
            "--only",
            "instances",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    skip_if_namespace_refused(p, "pid namespace with its own /proc")
    doc = json.loads(p.stdout)
    assert g.pid not in {i["pid"] for i in doc["instances"]} and not doc["instances"]
    acc = _check(doc, "instances.accel")
    assert acc["status"] == "UNKNOWN" and "pid namespace of its own" in acc["summary"], acc
    assert doc["verdict"]["acceleration"] == "unknown" and p.returncode == 3


# ---- 5. bounded reads -------------------------------------------------------------------------
@needs_root
def test_a_fifo_as_nova_conf_ends_in_time_as_unknown(procs: _Procs, tmp_path: Path) -> None:
    """root's nova-compute names a FIFO as its nova.conf: hvcheck does not block on it, and
    nova.virt_type is UNKNOWN (what nova read from it cannot be known), not a CRITICAL."""
    _no_other_nova_compute()
    fifo = tmp_path / "nova.conf"
    os.mkfifo(fifo)
    p = procs.start(
        ["nova-compute", "-c", SLEEPER, "--config-file", str(fifo)], executable=SYSTEM_PYTHON
    )
    _wait_cmdline(p.pid, "--config-file")
    t0 = time.monotonic()
    rc, doc = run_json("--no-api", "-t", "5")
    assert time.monotonic() - t0 < 5 + 2
    nova = _check(doc, "nova.virt_type")
    assert nova["status"] == "UNKNOWN" and nova["code"] == "unreadable", nova
    assert "fifo" in nova["summary"] and "re-run as root" not in (nova["hint"] or "")
    assert doc["verdict"]["virt_type"] is None
    assert rc in (2, 3)
