"""Start and stop REAL qemu-system-x86_64 guests for tests.

Guests are started paused (``-S``) by default, with no disk and no network, and an argv shaped
like the one libvirt/Nova builds, so that the product sees realistic processes. Every guest is
stopped by PID and reaped (no zombie lingers) by ``QemuGuest.stop()``, by the ``qemu_guests``
fixture's teardown, and at interpreter exit as a safety net.

Usage in a test module (tests/ is on sys.path, so sibling modules import directly)::

    from qemu_harness import GuestFactory, qemu_guests_fixture  # noqa: F401  (fixture)

    def test_x(qemu_guests: GuestFactory) -> None:
        guest = qemu_guests("vm1", ["-accel", "kvm"])
        assert guest.query_kvm() == {"enabled": True, "present": True}
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import pytest

QEMU_BINARY = "qemu-system-x86_64"
KVM_DEVICE = "/dev/kvm"
READY_TIMEOUT = 10.0
STOP_GRACE = 3.0


class QmpError(RuntimeError):
    """QEMU answered a QMP command with an "error" object (or the QMP session broke)."""


class QemuStartError(RuntimeError):
    """The guest did not come up (QEMU exited early or was not ready in time)."""


# Every guest started and not yet stopped, by PID: the atexit safety net stops them all.
_LIVE: dict[int, QemuGuest] = {}
_LIVE_LOCK = threading.Lock()


@dataclass
class QemuGuest:
    pid: int
    name: str
    uuid: str
    argv: list[str]
    qmp_path: str
    workdir: str = field(default="", repr=False)
    log_path: str = field(default="", repr=False)
    _proc: Optional[subprocess.Popen[bytes]] = field(default=None, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    # ---- QMP ------------------------------------------------------------------------------
    def qmp(
        self, command: str, arguments: Optional[dict[str, Any]] = None, timeout: float = 5.0
    ) -> Any:
        """Run one QMP command on a fresh connection and return its "return" value.

        Raises QmpError when QEMU answers with "error" or the connection fails.
        """
        return qmp_command(self.qmp_path, command, arguments, timeout)

    def query_kvm(self) -> dict[str, bool]:
        """QMP query-kvm: {"enabled": bool, "present": bool}."""
        ret = self.qmp("query-kvm")
        return {"enabled": bool(ret["enabled"]), "present": bool(ret["present"])}

    # ---- /proc facts ------------------------------------------------------------------------
    def fd_targets(self) -> list[str]:
        """Targets of /proc/PID/fd/* links (e.g. "/dev/kvm", "anon_inode:kvm-vm")."""
        return fd_targets(self.pid)

    def thread_names(self) -> list[str]:
        """/proc/PID/task/*/comm of every thread (e.g. "CPU 0/KVM", "CPU 0/TCG")."""
        return thread_names(self.pid)

    def stderr_text(self) -> str:
        """What QEMU wrote to stdout/stderr so far (warnings, "falling back to tcg", ...)."""
        if not self.log_path:
            return ""
        try:
            return Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return Path(f"/proc/{self.pid}").exists()

    # ---- lifecycle --------------------------------------------------------------------------
    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after ``grace`` s, by PID; reap it so no zombie lingers.

        Idempotent. Also removes the guest's temp dir (QMP socket, log).
        """
        if self._stopped:
            return
        try:
            if self._proc is not None:
                _terminate_popen(self._proc, grace)
            else:
                _terminate_pid(self.pid, grace)
        finally:
            self._stopped = True
            with _LIVE_LOCK:
                _LIVE.pop(self.pid, None)
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)


def _terminate_popen(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def _terminate_pid(pid: int, grace: float) -> None:
    """Stop a process we may not have a Popen for; reap it if it is our child."""

    def gone() -> bool:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:
            pass  # not our child: /proc tells (a zombie of another parent stays until reaped)
        return not Path(f"/proc/{pid}").exists()

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if gone():
                return
            time.sleep(0.02)


# ---- QMP client ---------------------------------------------------------------------------
class _QmpConnection:
    def __init__(self, path: str, timeout: float) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.buf = b""
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise

    def close(self) -> None:
        self.sock.close()

    def read_message(self) -> dict[str, Any]:
        while True:
            line, sep, rest = self.buf.partition(b"\n")
            if sep:
                self.buf = rest
                if line.strip():
                    msg: dict[str, Any] = json.loads(line)
                    return msg
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("QMP connection closed by QEMU")
            self.buf += chunk

    def execute(self, command: str, arguments: Optional[dict[str, Any]] = None) -> Any:
        req: dict[str, Any] = {"execute": command, "id": command}
        if arguments is not None:
            req["arguments"] = arguments
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            msg = self.read_message()
            if "event" in msg:
                continue
            if "error" in msg:
                err = msg["error"]
                raise QmpError(f"QMP {command}: {err.get('class')}: {err.get('desc')}")
            if "return" in msg:
                return msg["return"]


def qmp_command(
    path: str, command: str, arguments: Optional[dict[str, Any]] = None, timeout: float = 5.0
) -> Any:
    """Connect to a QMP unix socket, negotiate capabilities, run one command, disconnect."""
    try:
        conn = _QmpConnection(path, timeout)
    except OSError as exc:
        raise QmpError(f"cannot connect to QMP socket {path}: {exc}") from exc
    try:
        greeting = conn.read_message()
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting!r}")
        conn.execute("qmp_capabilities")
        return conn.execute(command, arguments)
    except (OSError, ValueError) as exc:
        raise QmpError(f"QMP {command} on {path}: {exc}") from exc
    finally:
        conn.close()


# ---- /proc helpers ------------------------------------------------------------------------
def fd_targets(pid: int) -> list[str]:
    out: list[str] = []
    fd_dir = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(fd_dir.iterdir(), key=lambda p: int(p.name)):
            with contextlib.suppress(OSError):
                out.append(os.readlink(entry))
    return out


def thread_names(pid: int) -> list[str]:
    out: list[str] = []
    task_dir = Path(f"/proc/{pid}/task")
    with contextlib.suppress(FileNotFoundError):
        for entry in sorted(task_dir.iterdir(), key=lambda p: int(p.name)):
            with contextlib.suppress(OSError):
                out.append((entry / "comm").read_text(encoding="utf-8").rstrip("\n"))
    return out


# ---- availability -------------------------------------------------------------------------
def skip_if_namespace_refused(p: subprocess.CompletedProcess[str], what: str) -> None:
    """Skip when ``unshare``/``mount`` refused to set up the namespace a test runs hvcheck
    in (the README's fresh-machine chroot, an unprivileged container): nothing ran, so there
    is nothing to judge. hvcheck's own failures still fail the test."""
    err = p.stderr.strip()
    if p.returncode != 0 and not p.stdout and err.startswith(("unshare:", "mount:")):
        pytest.skip(f"no {what} here: {err.splitlines()[0]}")


def qemu_binary() -> Optional[str]:
    return shutil.which(QEMU_BINARY)


def missing_requirements(*, kvm: bool = True, root: bool = False) -> list[str]:
    """What this machine lacks to run the harness's guests (empty list: all there)."""
    missing: list[str] = []
    if qemu_binary() is None:
        missing.append(f"{QEMU_BINARY} not found on PATH")
    if kvm:
        if not os.path.exists(KVM_DEVICE):
            missing.append(f"{KVM_DEVICE} absent")
        elif not os.access(KVM_DEVICE, os.R_OK | os.W_OK):
            missing.append(f"{KVM_DEVICE} not read/writable by uid {os.geteuid()}")
    if root and os.geteuid() != 0:
        missing.append("not root (needed to start a guest as another user)")
    return missing


def require_qemu(*, kvm: bool = True, root: bool = False) -> None:
    """pytest.skip when QEMU (or /dev/kvm, or root) is missing; pytest.fail instead under CI."""
    missing = missing_requirements(kvm=kvm, root=root)
    if not missing:
        return
    why = "; ".join(missing)
    if os.environ.get("CI"):
        pytest.fail(f"real-QEMU tests cannot run: {why} (CI must have them)")
    pytest.skip(f"real-QEMU tests cannot run: {why}")


# ---- starting guests ----------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1
_libc: Optional[ctypes.CDLL] = None
with contextlib.suppress(OSError):
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the guest if the thread that started it dies (pytest SIGKILLed).

    Runs after the uid/gid switch, so the kernel keeps the setting across exec.
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def build_argv(
    name: str,
    accel_args: list[str],
    *,
    guest_uuid: str,
    qmp_path: str,
    extra: Optional[list[str]] = None,
    debug_threads: bool = True,
    paused: bool = True,
    binary: str = QEMU_BINARY,
    user_config: bool = False,
) -> list[str]:
    """A libvirt/Nova-shaped argv: no disk, no network, no display, QMP on a unix socket.

    ``user_config``: leave out -no-user-config, so QEMU reads its default config file."""
    argv = [binary, "-name", f"guest={name},debug-threads=on" if debug_threads else f"guest={name}"]
    if paused:
        argv.append("-S")
    if "-machine" not in accel_args and "-M" not in accel_args:
        argv += ["-machine", "pc,usb=off,dump-guest-core=off"]
    argv += accel_args
    argv += [
        "-m",
        "64",
        "-smp",
        "1,sockets=1,cores=1,threads=1",
        "-uuid",
        guest_uuid,
        *([] if user_config else ["-no-user-config"]),
        "-nodefaults",
        "-display",
        "none",
        "-qmp",
        f"unix:{qmp_path},server=on,wait=off",
        "-rtc",
        "base=utc",
        "-no-shutdown",
    ]
    argv += extra or []
    return argv


def start_guest(
    name: str,
    accel_args: list[str],
    *,
    user: Optional[str] = None,
    uuid: Optional[str] = None,
    extra: Optional[list[str]] = None,
    debug_threads: bool = True,
    paused: bool = True,
    argv0: Optional[str] = None,
    cwd: Optional[str] = None,
    user_config: bool = False,
    prefix: Optional[list[str]] = None,
    binary: Optional[str] = None,
) -> QemuGuest:
    """Start a real QEMU guest and return once QMP answers and its vCPU threads exist.

    ``user`` runs QEMU as that user (primary group, no supplementary groups): as "nobody",
    ``-machine pc,accel=kvm:tcg`` falls back to TCG when /dev/kvm is 0600 root.
    ``argv0``: the name QEMU is given (``exec -a NAME qemu-system-x86_64``); ``cwd``: the
    directory it starts in; ``user_config``: no -no-user-config. ``prefix``: a command that
    ends by exec'ing its arguments (e.g. ``unshare --mount ... sh -c '...; exec "$@"' sh``),
    so the pid is still QEMU's; ``user`` is then switched after it, with setpriv.
    ``binary``: the QEMU executable to run (default: qemu-system-x86_64 on PATH).
    Raises QemuStartError (with QEMU's stderr) if QEMU exits early or is not ready in 10 s.
    """
    binary = binary or qemu_binary() or QEMU_BINARY
    guest_uuid = uuid or str(uuidlib.uuid4())
    workdir = tempfile.mkdtemp(prefix="hvcheck-qemu-")
    qmp_path = os.path.join(workdir, "qmp.sock")
    log_path = os.path.join(workdir, "qemu.log")
    argv = build_argv(
        name,
        accel_args,
        guest_uuid=guest_uuid,
        qmp_path=qmp_path,
        extra=extra,
        debug_threads=debug_threads,
        paused=paused,
        binary=argv0 or binary,
        user_config=user_config,
    )
    command = list(argv)
    if argv0 is not None and prefix is not None:
        raise ValueError("argv0 and prefix together are not supported")

    popen_kw: dict[str, Any] = {"cwd": cwd}
    if argv0 is not None:
        popen_kw["executable"] = binary
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(workdir, pw.pw_uid, pw.pw_gid)
        os.chmod(workdir, 0o755)
        if prefix is None:
            popen_kw.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        else:
            command = [
                "setpriv",
                f"--reuid={pw.pw_uid}",
                f"--regid={pw.pw_gid}",
                "--clear-groups",
                "--",
                *command,
            ]
    if prefix is not None:
        command = [*prefix, *command]
    if threading.current_thread() is threading.main_thread():
        # PDEATHSIG fires when the *thread* that forked exits: only safe from the main thread.
        popen_kw["preexec_fn"] = _die_with_parent

    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C at the terminal does not hit QEMU directly
                **popen_kw,
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
    guest = QemuGuest(
        pid=proc.pid,
        name=name,
        uuid=guest_uuid,
        argv=argv,
        qmp_path=qmp_path,
        workdir=workdir,
        log_path=log_path,
        _proc=proc,
    )
    with _LIVE_LOCK:
        _LIVE[proc.pid] = guest
    try:
        _wait_ready(guest, proc, debug_threads=debug_threads)
    except BaseException:
        guest.stop()
        raise
    return guest


def _wait_ready(guest: QemuGuest, proc: subprocess.Popen[bytes], *, debug_threads: bool) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last_err = "QMP socket not created yet"
    while True:
        rc = proc.poll()
        if rc is not None:
            raise QemuStartError(
                f"{QEMU_BINARY} for guest {guest.name!r} exited early with status {rc}:\n"
                f"{guest.stderr_text().strip()}\nargv: {guest.argv}"
            )
        if time.monotonic() > deadline:
            raise QemuStartError(
                f"guest {guest.name!r} (pid {guest.pid}) not ready after {READY_TIMEOUT} s: "
                f"{last_err}\n{guest.stderr_text().strip()}"
            )
        if os.path.exists(guest.qmp_path):
            try:
                cpus = guest.qmp("query-cpus-fast", timeout=2.0)
                tids = {int(c["thread-id"]) for c in cpus}
                task_dir = f"/proc/{guest.pid}/task"
                missing = [t for t in tids if not os.path.exists(f"{task_dir}/{t}")]
                # "CPU 0/KVM", "CPU 0/TCG"; single-threaded TCG: "ALL CPUs/TCG"
                named = not debug_threads or all(
                    Path(f"{task_dir}/{t}/comm").read_text().startswith(("CPU ", "ALL CPUs/"))
                    for t in tids
                )
                if tids and not missing and named:
                    return
                last_err = f"vCPU threads {sorted(tids)} not all present/named yet"
            except (QmpError, OSError) as exc:
                last_err = str(exc)
        time.sleep(0.05)


def stop_all() -> None:
    """Stop every guest this process started and has not stopped yet."""
    with _LIVE_LOCK:
        guests = list(_LIVE.values())
    for guest in guests:
        with contextlib.suppress(Exception):
            guest.stop()


atexit.register(stop_all)


# ---- pytest fixture -----------------------------------------------------------------------
class GuestFactory(Protocol):
    def __call__(
        self,
        name: str,
        accel_args: list[str],
        *,
        user: Optional[str] = ...,
        uuid: Optional[str] = ...,
        extra: Optional[list[str]] = ...,
        debug_threads: bool = ...,
        paused: bool = ...,
        argv0: Optional[str] = ...,
        cwd: Optional[str] = ...,
        user_config: bool = ...,
        prefix: Optional[list[str]] = ...,
        binary: Optional[str] = ...,
    ) -> QemuGuest: ...


@pytest.fixture(name="qemu_guests")
def qemu_guests_fixture() -> Iterator[GuestFactory]:
    """A start_guest factory; every guest it started is stopped at teardown, pass or fail.

    Skips (fails under CI) when qemu-system-x86_64 or /dev/kvm is missing, and when a guest
    is requested with ``user=`` by a non-root test run.
    """
    require_qemu(kvm=True)
    started: list[QemuGuest] = []

    def factory(
        name: str,
        accel_args: list[str],
        *,
        user: Optional[str] = None,
        uuid: Optional[str] = None,
        extra: Optional[list[str]] = None,
        debug_threads: bool = True,
        paused: bool = True,
        argv0: Optional[str] = None,
        cwd: Optional[str] = None,
        user_config: bool = False,
        prefix: Optional[list[str]] = None,
        binary: Optional[str] = None,
    ) -> QemuGuest:
        if user is not None:
            require_qemu(kvm=True, root=True)
        guest = start_guest(
            name,
            accel_args,
            user=user,
            uuid=uuid,
            extra=extra,
            debug_threads=debug_threads,
            paused=paused,
            argv0=argv0,
            cwd=cwd,
            user_config=user_config,
            prefix=prefix,
            binary=binary,
        )
        started.append(guest)
        return guest

    try:
        yield factory
    finally:
        for guest in reversed(started):
            with contextlib.suppress(Exception):
                guest.stop()


# Importing either name into a test module makes the fixture "qemu_guests" available there.
# Prefer qemu_guests_fixture: the test's `qemu_guests` argument then shadows no import (no F811).
qemu_guests = qemu_guests_fixture
