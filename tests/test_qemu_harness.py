"""Self-test of the real-QEMU harness: the three KVM/TCG scenarios, observed from outside.

Ground truth observed on a paused (-S) guest, QEMU 7.2 (Debian 12), debug-threads=on:
- ``-accel kvm`` as root: fds include /dev/kvm, anon_inode:kvm-vm, anon_inode:kvm-vcpu:0;
  threads "qemu-system-x86", "qemu-system-x86" or "call_rcu" (varies run to run),
  "IO mon_iothread", "CPU 0/KVM" (once running, also the kernel's "kvm-nx-lpage-re").
- ``-accel tcg``: no /dev/kvm nor anon_inode:kvm-* fd; threads ... "CPU 0/TCG".
- ``-machine pc,accel=kvm:tcg`` as nobody with /dev/kvm 0600 root: stderr says
  "failed to initialize kvm: Permission denied" / "falling back to tcg"; same fds and threads
  as plain TCG; QMP query-kvm says enabled=false.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from qemu_harness import (  # noqa: F401  (qemu_guests_fixture provides fixture qemu_guests)
    GuestFactory,
    QemuGuest,
    QemuStartError,
    qemu_guests_fixture,
    require_qemu,
    start_guest,
)

HERE = Path(__file__).resolve().parent

KVM_FDS = {"/dev/kvm", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"}

SCENARIOS = [
    # id, accel args, user, query-kvm enabled, vCPU thread name
    ("kvm", ["-accel", "kvm"], None, True, "CPU 0/KVM"),
    ("tcg", ["-accel", "tcg"], None, False, "CPU 0/TCG"),
    ("fallback", ["-machine", "pc,accel=kvm:tcg"], "nobody", False, "CPU 0/TCG"),
]


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _assert_gone(guest: QemuGuest) -> None:
    assert not Path(f"/proc/{guest.pid}").exists(), f"pid {guest.pid} still in /proc (zombie?)"
    assert not os.path.exists(guest.qmp_path)


@pytest.mark.parametrize(
    ("scenario", "accel", "user", "enabled", "vcpu_thread"),
    [pytest.param(*s, id=s[0]) for s in SCENARIOS],
)
def test_scenario(
    qemu_guests: GuestFactory,
    scenario: str,
    accel: list[str],
    user: Optional[str],
    enabled: bool,
    vcpu_thread: str,
) -> None:
    guest = qemu_guests(f"hvtest-{scenario}", accel, user=user)

    assert os.path.basename(guest.argv[0]) == "qemu-system-x86_64"
    assert guest.argv[1:4] == ["-name", f"guest=hvtest-{scenario},debug-threads=on", "-S"]
    assert guest.uuid in guest.argv
    assert Path(f"/proc/{guest.pid}/cmdline").read_bytes().split(b"\0")[:-1] == [
        a.encode() for a in guest.argv
    ]

    assert guest.query_kvm() == {"enabled": enabled, "present": True}
    assert guest.qmp("query-status")["status"] == "prelaunch"  # paused by -S

    fds = set(guest.fd_targets())
    threads = guest.thread_names()
    if enabled:
        assert fds >= KVM_FDS
    else:
        assert not {f for f in fds if f == "/dev/kvm" or f.startswith("anon_inode:kvm")}
    assert vcpu_thread in threads
    assert not [t for t in threads if t.startswith("CPU ") and t != vcpu_thread]

    if user is not None:
        assert _uid(guest.pid) == pwd.getpwnam(user).pw_uid
        log = guest.stderr_text()
        assert "falling back to tcg" in log

    guest.stop()
    _assert_gone(guest)
    guest.stop()  # idempotent


def test_early_exit_raises_with_stderr(qemu_guests: GuestFactory) -> None:
    # QEMU exits at once on a bad option: start_guest raises with its stderr, leaves nothing.
    with pytest.raises(QemuStartError, match="-no-such-option"):
        qemu_guests("hvtest-bad", ["-accel", "tcg"], extra=["-no-such-option"])


def _run_python(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _pids_gone(pid_file: Path) -> None:
    pids = [int(p) for p in pid_file.read_text().split()]
    assert pids
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"guest pid {pid} left behind"


def test_fixture_stops_guests_when_test_fails(tmp_path: Path) -> None:
    require_qemu(kvm=True)
    pid_file = tmp_path / "pids"
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(
        "from pathlib import Path\n"
        "from qemu_harness import GuestFactory, qemu_guests_fixture  # noqa: F401\n"
        "def test_fails(qemu_guests: GuestFactory) -> None:\n"
        "    a = qemu_guests('inner-kvm', ['-accel', 'kvm'])\n"
        "    b = qemu_guests('inner-tcg', ['-accel', 'tcg'])\n"
        f"    Path({str(pid_file)!r}).write_text(f'{{a.pid}} {{b.pid}}')\n"
        "    raise AssertionError('deliberate failure')\n"
    )
    res = _run_python(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", "pytest.ini", "test_inner.py"],
        tmp_path,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "deliberate failure" in res.stdout
    _pids_gone(pid_file)


def test_atexit_stops_forgotten_guest(tmp_path: Path) -> None:
    require_qemu(kvm=True)
    pid_file = tmp_path / "pids"
    script = (
        "from pathlib import Path\n"
        "from qemu_harness import start_guest\n"
        "g = start_guest('forgotten', ['-accel', 'kvm'])\n"
        f"Path({str(pid_file)!r}).write_text(str(g.pid))\n"
    )
    res = _run_python(["-c", script], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    _pids_gone(pid_file)


def test_start_guest_without_fixture_debug_threads_off() -> None:
    require_qemu(kvm=True)
    guest = start_guest("hvtest-plain", ["-accel", "kvm"], debug_threads=False)
    try:
        assert guest.argv[2] == "guest=hvtest-plain"
        assert guest.query_kvm()["enabled"] is True
        # without debug-threads no thread is named after its vCPU
        assert not [t for t in guest.thread_names() if t.startswith("CPU ")]
    finally:
        guest.stop()
    _assert_gone(guest)


def test_stop_escalates_to_sigkill(qemu_guests: GuestFactory) -> None:
    guest = qemu_guests("hvtest-stuck", ["-accel", "tcg"])
    os.kill(guest.pid, signal.SIGSTOP)  # a stopped QEMU cannot act on SIGTERM
    t0 = time.monotonic()
    guest.stop(grace=0.3)
    assert 0.3 <= time.monotonic() - t0 < 3
    _assert_gone(guest)
