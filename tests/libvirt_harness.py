"""Start libvirtd/virtlogd by hand (no systemd here), define throw-away domains with virsh, and
put everything back: domains destroyed and undefined, daemons we started stopped by PID,
/dev/kvm's mode and group restored.

What these fixtures change is the machine's, not the test's: the system libvirtd and the mode
of /dev/kvm. Two runs of the suite on one machine (two developers, CI and a developer) would
break each other, so the fixtures hold ``system_lock`` (``flock`` on ``/run/hvcheck-tests.lock``)
for as long as they change anything: the ``libvirtd`` fixture for its whole module, and
``dev_kvm_mode`` for its block. A second run waits for the first (up to
``HVCHECK_TEST_LOCK_TIMEOUT`` seconds, default 1800) and then fails naming the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

URI = "qemu:///system"
SOCK = "/run/libvirt/libvirt-sock"


def virsh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["virsh", "-c", URI, *args], capture_output=True, text=True, timeout=timeout
    )


def _pid_of(name: str) -> Optional[int]:
    for pidfile in (f"/run/{name}.pid", f"/var/run/{name}.pid"):
        try:
            pid = int(Path(pidfile).read_text().strip())
        except (OSError, ValueError):
            continue
        if os.path.exists(f"/proc/{pid}"):
            return pid
    return None


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


LOCK_PATH = os.environ.get("HVCHECK_TEST_LOCK", "/run/hvcheck-tests.lock")
_lock_guard = threading.Lock()
_held: dict[str, int] = {}  # lock path -> nesting depth in this process (flock is per file)


def _acquire(fd: int, path: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        if time.monotonic() >= deadline:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            pytest.fail(
                f"another test run (pid {holder}) holds {path} (it changes /dev/kvm or the "
                f"system libvirtd); waited {wait:.0f} s"
            )
        time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


@contextlib.contextmanager
def system_lock(path: Optional[str] = None, timeout: Optional[float] = None) -> Iterator[None]:
    """Hold the suite's machine-wide lock (an exclusive ``flock`` on ``path``, default
    ``LOCK_PATH``) for the block. Re-entrant within the process: the fixtures nest (the
    module's libvirtd, a test's /dev/kvm mode). Waits up to ``timeout`` seconds (default
    ``HVCHECK_TEST_LOCK_TIMEOUT`` or 1800) for another run to finish, then fails with the
    holder's pid. The kernel drops the lock when the process dies, so a killed run never
    leaves it held."""
    path = path or LOCK_PATH
    env_wait = float(os.environ.get("HVCHECK_TEST_LOCK_TIMEOUT", "1800"))
    wait = env_wait if timeout is None else timeout
    with _lock_guard:
        nested = path in _held
        if nested:
            _held[path] += 1
    if nested:
        try:
            yield
        finally:
            with _lock_guard:
                _held[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, path, wait)
        with _lock_guard:
            _held[path] = 1
        try:
            yield
        finally:
            with _lock_guard:
                del _held[path]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def require_libvirt() -> None:
    missing = [
        b
        for b in ("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64")
        if shutil.which(b) is None
    ]
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {missing}")
        pytest.skip(f"needs {missing}")


@pytest.fixture(scope="module")
def libvirtd() -> Iterator[None]:
    """libvirtd and virtlogd running; the ones this fixture started are stopped by PID."""
    require_libvirt()
    with system_lock():
        yield from _libvirtd_running()


def _libvirtd_running() -> Iterator[None]:
    started: list[int] = []
    for daemon in ("virtlogd", "libvirtd"):
        if _pid_of(daemon) is None:
            subprocess.run([daemon, "-d"], check=True, timeout=30)
            for _ in range(100):
                if _pid_of(daemon):
                    break
                time.sleep(0.1)
            pid = _pid_of(daemon)
            assert pid, f"{daemon} did not start"
            started.append(pid)
    for _ in range(100):
        if os.path.exists(SOCK):
            break
        time.sleep(0.1)
    try:
        yield
    finally:
        for pid in reversed(started):
            _stop(pid)


@contextlib.contextmanager
def dev_kvm_mode(mode: int, group: str) -> Iterator[None]:
    """Set /dev/kvm's mode and group for the block; restored afterwards, pass or fail. Holds
    ``system_lock`` throughout."""
    with system_lock():
        st = os.stat("/dev/kvm")
        try:
            os.chown("/dev/kvm", -1, grp.getgrnam(group).gr_gid)
            os.chmod("/dev/kvm", mode)
            yield
        finally:
            os.chown("/dev/kvm", -1, st.st_gid)
            os.chmod("/dev/kvm", st.st_mode & 0o7777)


def domain_xml(name: str, dom_type: str, uuid: str, display: str) -> str:
    # Nova's libvirt driver writes this metadata (nova/virt/libvirt/config.py,
    # LibvirtConfigGuestMetaNovaInstance); the domain uuid is the instance uuid.
    return f"""<domain type='{dom_type}'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="27.1.0"/>
      <nova:name>{display}</nova:name>
      <nova:creationTime>2026-11-25 10:00:00</nova:creationTime>
      <nova:flavor name="m1.tiny">
        <nova:memory>64</nova:memory><nova:disk>0</nova:disk><nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral><nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="a5d1d9f2b7c84b5e9f3e2d1c0b9a8f7e">admin</nova:user>
        <nova:project uuid="9b2c3d4e5f6a4b7c8d9e0f1a2b3c4d5e">demo</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
"""


@contextlib.contextmanager
def defined_domain(name: str, xml: str, tmpdir: str) -> Iterator[str]:
    path = os.path.join(tmpdir, f"{name}.xml")
    with open(path, "w") as f:
        f.write(xml)
    r = virsh("define", path)
    assert r.returncode == 0, r.stderr
    try:
        yield name
    finally:
        virsh("destroy", name)
        virsh("undefine", name)


def start_paused(name: str) -> subprocess.CompletedProcess[str]:
    """virsh start --paused; skips (outside CI) where libvirt cannot start any domain at all.

    In a chroot (the README's fresh-machine check) libvirt's per-domain mount namespace fails:
    "Failed disable mount propagation out of the root filesystem" — nothing to do with KVM.
    """
    r = virsh("start", "--paused", name)
    if r.returncode != 0 and "mount propagation" in r.stderr:
        if os.environ.get("CI"):
            pytest.fail(f"libvirt cannot start domains here: {r.stderr.strip()}")
        pytest.skip("libvirt cannot start domains in this environment (chroot: no mount namespace)")
    return r
