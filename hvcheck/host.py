"""The host layer: every byte hvcheck reads comes through here.

``LiveHost`` reads the running system (files, ``/proc`` for the process table, ``os.stat`` of
device nodes, the KVM ioctl probe, MSRs, ``/dev/kmsg``). ``SnapshotHost`` reads a snapshot made
by ``hvcheck collect`` — a directory or a ``.tar.gz`` — and never touches the live system: it
spawns nothing, makes no ioctl, follows no symlink out of the snapshot, and caps every read.
``RecordingHost`` wraps a ``LiveHost`` and remembers every answer, which is what ``collect``
writes out, so a snapshot holds exactly what the checks read.

Checks never import ``os`` or ``pyudev`` themselves: that keeps ``--root`` honest.
"""

from __future__ import annotations

import errno as errno_mod
import fcntl
import fnmatch
import json
import os
import posixpath
import stat
import struct
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery

MAX_READ = 8 * 1024 * 1024  # cpuinfo of a 448-CPU host is ~1.5 MiB; nothing we read is larger
MAX_SNAPSHOT_TOTAL = 512 * 1024 * 1024
MARKER = "hvcheck-snapshot.json"

# include/uapi/linux/kvm.h: KVMIO 0xAE;
# KVM_GET_API_VERSION _IO(KVMIO, 0x00); KVM_CREATE_VM _IO(KVMIO, 0x01)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12  # stable since Linux 2.6.22 (include/uapi/linux/kvm.h)


class SnapshotError(Exception):
    """The path given to --root is not a usable snapshot."""


class ProcessGone(Exception):
    """The process exited between listing and reading."""


class DeviceInfo(NamedTuple):
    """``stat`` of a device node, as the marker stores it."""

    type: str  # char | block | file | dir | other
    major: int
    minor: int
    mode: str  # octal permission bits, e.g. "0660"
    uid: int
    gid: int
    owner: Optional[str] = None
    group: Optional[str] = None
    # the node's system.posix_acl_access xattr, hex of the raw bytes (None: none or unreadable)
    acl: Optional[str] = None
    # {"initialized": bool, "properties": {...}, "tags": [...]} from pyudev;
    # None = udev knows nothing / not asked
    udev: Optional[dict[str, Any]] = None

    @property
    def perm(self) -> int:
        return int(self.mode, 8)


class ProbeResult(NamedTuple):
    """Outcome of the functional /dev/kvm probe (open, KVM_GET_API_VERSION, KVM_CREATE_VM)."""

    ok: bool
    stage: str  # open | api_version | create_vm | done
    errno: Optional[str] = None  # symbolic, e.g. "EACCES"
    error: Optional[str] = None
    api_version: Optional[int] = None
    uid: Optional[int] = None

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_json(cls, d: Any) -> Optional[ProbeResult]:
        if not isinstance(d, dict) or not isinstance(d.get("ok"), bool):
            return None
        api = d.get("api_version")
        uid = d.get("uid")
        return cls(
            ok=d["ok"],
            stage=str(d.get("stage", "done")),
            errno=str(d["errno"]) if d.get("errno") is not None else None,
            error=str(d["error"]) if d.get("error") is not None else None,
            api_version=api if isinstance(api, int) else None,
            uid=uid if isinstance(uid, int) else None,
        )


class MsrResult(NamedTuple):
    value: Optional[int]
    error: Optional[str] = None


class KernelLog(NamedTuple):
    lines: tuple[str, ...]
    source: str  # "/dev/kmsg" or "snapshot dev/kmsg"
    error: Optional[str] = None  # why it could not be read (lines is empty then)


class ProcInfo(NamedTuple):
    pid: int
    comm: str
    argv: tuple[str, ...]


class Uname(NamedTuple):
    hostname: str
    arch: str
    kernel: str


class OsInfo(NamedTuple):
    id: str
    like: str
    name: str
    version: str
    codename: str


class CapsResult(NamedTuple):
    """libvirt's capabilities and kvm domain capabilities, as libvirt gave them (raw XML).

    ``status``: ``ok`` (``capabilities`` holds the XML; ``domcapabilities`` too unless libvirt
    refused, then ``domcaps_error`` says why), ``unavailable`` (libvirt not installed or not
    running: the check does not apply), ``timeout`` (no answer within the bound), ``error``.
    """

    status: str
    via: str  # libvirt-python | virsh | none
    uri: str = "qemu:///system"
    capabilities: Optional[str] = None
    domcapabilities: Optional[str] = None
    domcaps_error: Optional[str] = None
    error: Optional[str] = None
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d = dict(self._asdict())
        d["elapsed"] = round(self.elapsed, 3)
        return d

    @classmethod
    def from_json(cls, d: Any) -> Optional[CapsResult]:
        if not isinstance(d, dict) or d.get("status") not in (
            "ok",
            "unavailable",
            "timeout",
            "error",
        ):
            return None

        def s(k: str) -> Optional[str]:
            v = d.get(k)
            return v if isinstance(v, str) else None

        el = d.get("elapsed")
        return cls(
            status=str(d["status"]),
            via=s("via") or "snapshot",
            uri=s("uri") or "qemu:///system",
            capabilities=s("capabilities"),
            domcapabilities=s("domcapabilities"),
            domcaps_error=s("domcaps_error"),
            error=s("error"),
            elapsed=float(el) if isinstance(el, (int, float)) and not isinstance(el, bool) else 0.0,
        )


def _errno_name(e: OSError) -> str:
    return errno_mod.errorcode.get(e.errno or 0, str(e.errno))


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


_MISS = object()


class _Err(NamedTuple):
    kind: type[OSError]
    errno: Optional[int]
    strerror: Optional[str]
    filename: Any

    def error(self) -> OSError:
        return self.kind(self.errno, self.strerror, self.filename)


class Host(ABC):
    """What checks may ask of a host. Paths are absolute host paths ("/proc/cpuinfo")."""

    live: bool = False
    label: str = ""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def _memo(self, kind: str, key: str, fn: Callable[[], Any]) -> Any:
        # Per-process files (/proc/PID/...) are read once per run: caching them would only
        # hold memory on a host with thousands of instances.
        if key.startswith("/proc/") and key[6:7].isdigit():
            return fn()
        with self._lock:
            hit = self._cache.get((kind, key), _MISS)
        if hit is not _MISS:
            if isinstance(hit, _Err):
                raise hit.error()
            return hit
        try:
            value = fn()
        except OSError as e:
            # remember the failure, not the exception (its traceback holds whole frames)
            with self._lock:
                self._cache[(kind, key)] = _Err(type(e), e.errno, e.strerror, e.filename)
            raise
        with self._lock:
            self._cache[(kind, key)] = value
        return value

    # ---- files -------------------------------------------------------------------------
    def read_bytes(self, path: str, limit: int = MAX_READ) -> bytes:
        """Content of a regular file. Raises FileNotFoundError, PermissionError or OSError."""
        data: bytes = self._memo("read", path, lambda: self._read_bytes(path, limit))
        return data

    def read_text(self, path: str, limit: int = MAX_READ) -> str:
        return _decode(self.read_bytes(path, limit))

    def read_opt(self, path: str) -> Optional[str]:
        """Text of ``path``, or None when it does not exist. Other errors propagate."""
        try:
            return self.read_text(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, path: str) -> bool:
        ok: bool = self._memo("exists", path, lambda: self._exists(path))
        return ok

    def listdir(self, path: str) -> list[str]:
        """Sorted entries of a directory; [] when it does not exist."""
        try:
            names: list[str] = self._memo("listdir", path, lambda: sorted(self._listdir(path)))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return names

    def glob(self, pattern: str) -> list[str]:
        """Absolute paths matching a shell pattern (wildcards in the last component only)."""
        directory, base = posixpath.split(pattern)
        if not any(c in base for c in "*?["):
            return [pattern] if self.exists(pattern) else []
        return [
            posixpath.join(directory, n)
            for n in self.listdir(directory)
            if fnmatch.fnmatchcase(n, base)
        ]

    def readlink(self, path: str) -> Optional[str]:
        try:
            target: str = self._memo("readlink", path, lambda: self._readlink(path))
        except (FileNotFoundError, NotADirectoryError, OSError):
            return None
        return target

    # ---- processes ---------------------------------------------------------------------
    def processes(self, predicate: Callable[[ProcInfo], bool]) -> list[ProcInfo]:
        """Processes for which ``predicate`` holds, sorted by pid (vanished ones are dropped)."""
        return self.process_groups({"": predicate})[""]

    def process_groups(
        self, predicates: Mapping[str, Callable[[ProcInfo], bool]]
    ) -> dict[str, list[ProcInfo]]:
        """One walk of the process table, sorted into groups (a process may be in several)."""
        out: dict[str, list[ProcInfo]] = {k: [] for k in predicates}
        for p in self._all_processes():
            for k, pred in predicates.items():
                if pred(p):
                    out[k].append(p)
        for v in out.values():
            v.sort(key=lambda p: p.pid)
        return out

    def _all_processes(self) -> Iterator[ProcInfo]:
        """Every process with its ``comm`` and argv, read from ``/proc/<pid>/``."""
        return _walk_procs(self.listdir("/proc"), self._read_bytes, self.live)

    def open_proc(self, pid: int) -> ProcView:
        """One process's ``/proc/<pid>`` directory; close it (or use ``with``) when done."""
        return ProcView(self, pid)

    def proc_fd_targets(self, pid: int) -> list[str]:
        """Where each /proc/PID/fd/N points. Raises ProcessGone or PermissionError."""
        with self.open_proc(pid) as v:
            return v.fd_targets()

    def proc_thread_names(self, pid: int) -> list[str]:
        with self.open_proc(pid) as v:
            return v.thread_names()

    # ---- device, probes, kernel --------------------------------------------------------
    @abstractmethod
    def stat_device(self, path: str) -> Optional[DeviceInfo]: ...

    @abstractmethod
    def probe_kvm(self) -> Optional[ProbeResult]:
        """The functional probe; None where it cannot be run (a snapshot without it)."""

    @abstractmethod
    def read_msr(self, cpu: int, register: int) -> Optional[MsrResult]: ...

    @abstractmethod
    def kernel_log(self) -> KernelLog: ...

    @abstractmethod
    def uname(self) -> Uname: ...

    @abstractmethod
    def euid(self) -> int: ...

    @abstractmethod
    def os_info(self) -> OsInfo: ...

    # ---- live-only probes of outside services (snapshots replay what collect recorded) ----
    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        """libvirt's capabilities within ``timeout`` s; None where none can be had."""
        return None

    def nova_hypervisors(self, query: NovaQuery) -> Optional[NovaAnswer]:
        """Nova's record(s) of this hypervisor; None where none can be had."""
        return None

    # ---- backend primitives -------------------------------------------------------------
    @abstractmethod
    def _read_bytes(self, path: str, limit: int) -> bytes: ...

    @abstractmethod
    def _exists(self, path: str) -> bool: ...

    @abstractmethod
    def _listdir(self, path: str) -> list[str]: ...

    @abstractmethod
    def _readlink(self, path: str) -> str: ...

    def _readlink_raw(self, path: str) -> Optional[str]:
        try:
            return self._readlink(path)
        except OSError:
            return None


def _walk_procs(
    names: Iterable[str], read: Callable[[str, int], bytes], live: bool
) -> Iterator[ProcInfo]:
    for name in names:
        if not (name.isascii() and name.isdigit()):
            continue
        pid = int(name)
        try:
            raw = read(f"/proc/{pid}/cmdline", MAX_READ)
        except OSError:
            raw = b""
        if live and not raw:
            # a kernel thread, a zombie or a process that is exiting (its memory is gone):
            # none of them runs a guest or a daemon
            continue
        try:
            comm = _decode(read(f"/proc/{pid}/comm", 4096)).rstrip("\n")
        except OSError:
            comm = ""
        # decoded whole, then split: a NUL is never inside a UTF-8 sequence, so this is the
        # per-argument decoding, in one call
        text = _decode(raw)
        argv = (
            tuple(text.split("\0")[:-1])
            if text.endswith("\0")
            else tuple(a for a in text.split("\0") if a)
        )
        if not argv and not comm:
            continue
        yield ProcInfo(pid=pid, comm=comm, argv=argv)


def _by_number(names: Iterable[str]) -> list[str]:
    # fd and task entries are decimal numbers: (length, text) is their numeric order, and
    # still a total order for whatever else a snapshot may hold
    items = list(names)
    if all(n.isascii() and n.isdigit() for n in items):
        return sorted(items, key=int)
    return sorted(items, key=lambda s: (len(s), s))


class ProcView:
    """One process's ``/proc/<pid>`` directory, read through the host's path methods.

    The generic form: every read is a path lookup in the host layer (what a ``.tar.gz``
    snapshot and ``hvcheck collect`` use, the latter so that every read is recorded).
    """

    def __init__(self, host: Host, pid: int) -> None:
        self.host = host
        self.pid = pid
        self.base = f"/proc/{pid}"

    def __enter__(self) -> ProcView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def read(self, name: str, limit: int = MAX_READ) -> bytes:
        """Content of ``/proc/<pid>/<name>``; FileNotFoundError when it is not there."""
        return self.host._read_bytes(f"{self.base}/{name}", limit)

    def has(self, name: str) -> bool:
        return self.host.exists(f"{self.base}/{name}")

    def readlink(self, name: str) -> Optional[str]:
        return self.host.readlink(f"{self.base}/{name}")

    def alive(self) -> bool:
        """Still there (live: not exited, not a zombie) after everything was read."""
        return self.host.exists(self.base)

    def _entries(self, sub: str) -> tuple[str, list[str]]:
        base = f"{self.base}/{sub}"
        try:
            return base, _by_number(self.host._listdir(base))
        except FileNotFoundError as e:
            raise ProcessGone(self.pid) from e

    def fd_targets(self) -> list[str]:
        """Where each fd/N points. Raises ProcessGone or PermissionError."""
        base, names = self._entries("fd")
        targets = (self.host._readlink_raw(f"{base}/{n}") for n in names)
        return [t for t in targets if t is not None]

    def thread_names(self) -> list[str]:
        """``comm`` of every thread (task/TID/comm). Raises ProcessGone or PermissionError."""
        base, tids = self._entries("task")
        names: list[str] = []
        for tid in tids:
            try:
                names.append(self._comm(base, tid))
            except (FileNotFoundError, NotADirectoryError):
                continue  # the thread ended meanwhile
        return names

    def _comm(self, task_base: str, tid: str) -> str:
        return _decode(self.host._read_bytes(f"{task_base}/{tid}/comm", 4096)).rstrip("\n")


_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def _read_all(fd: int, limit: int, short_is_eof: bool = False) -> bytes:
    """Up to ``limit`` bytes. ``short_is_eof``: the files of /proc/PID hvcheck reads (cmdline,
    comm, status, stat: one record each) return everything they have up to the size asked
    for, so a shorter read is their end and the read that would return nothing is spared."""
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        want = min(65536, limit - size)
        chunk = os.read(fd, want)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if short_is_eof and len(chunk) < want:
            break
    return b"".join(chunks)


def _read_at(dir_fd: int, name: str, limit: int, check_regular: bool, shown: str) -> bytes:
    """Read ``name`` relative to ``dir_fd``, last component ``O_NOFOLLOW`` (``ELOOP`` on a
    link). ``check_regular`` (snapshots): refuse anything but a regular file, and let its
    size spare the read that would only find the end."""
    fd = os.open(name, _O_FILE, dir_fd=dir_fd)
    try:
        if not check_regular:  # live /proc/PID
            return _read_all(fd, limit, short_is_eof=True)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno_mod.EINVAL, "not a regular file in the snapshot", shown)
        want = min(limit, st.st_size + 1)
        data = os.read(fd, want)
        if len(data) < want or len(data) >= limit:
            return data  # a short read of a regular file is its end
        return data + _read_all(fd, limit - len(data))  # it grew meanwhile
    finally:
        os.close(fd)


class _FdProcView(ProcView):
    """``/proc/<pid>`` read relative to an open directory fd: one ``openat`` per file, no path
    walk and no per-component checks; every name is opened ``O_NOFOLLOW``.

    Live, the fd pins the process: every read is of the process that was opened, even if its
    pid is reused meanwhile (a read after it exits fails instead of reading another process).
    In a snapshot directory whatever is not plain (a symlink where a file or directory should
    be: ``ELOOP``/``ENOTDIR``) is handed to the generic, path-checked reads, so the snapshot's
    confinement rules stay those of ``_DirTree``; non-regular files are refused the same way.
    """

    def __init__(
        self, host: Host, pid: int, dir_fd: int, *, live: bool, denied: frozenset[str]
    ) -> None:
        super().__init__(host, pid)
        self.fd: Optional[int] = dir_fd
        self.live = live
        self.denied = denied
        self.root_read = False

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _check_denied(self, name: str) -> None:
        if self.denied and f"{self.base}/{name}" in self.denied:
            raise PermissionError(
                errno_mod.EACCES, "Permission denied (when collected)", f"{self.base}/{name}"
            )

    def _missing(self, e: OSError, shown: str) -> OSError:
        # live: ESRCH when the process exited after its directory was opened
        if e.errno == errno_mod.ESRCH:
            return FileNotFoundError(errno_mod.ENOENT, "process exited", shown)
        return e

    def read(self, name: str, limit: int = MAX_READ) -> bytes:
        assert self.fd is not None
        self._check_denied(name)
        shown = f"{self.base}/{name}"
        try:
            return _read_at(self.fd, name, limit, not self.live, shown)
        except OSError as e:
            if not self.live and e.errno in (errno_mod.ELOOP, errno_mod.ENOTDIR):
                return super().read(name, limit)
            raise self._missing(e, shown) from None

    def readlink(self, name: str) -> Optional[str]:
        assert self.fd is not None
        if self.denied and f"{self.base}/{name}" in self.denied:
            return None
        try:
            target = os.readlink(name, dir_fd=self.fd)  # never follows: safe in a snapshot too
        except OSError:
            return None
        if name == "root":
            # live: the root link reads only while the process runs (a zombie's, or a reaped
            # one's, fails), so once it has read after the evidence, alive() has its answer
            self.root_read = True
        return target

    def _open_dir(self, name: str) -> Optional[int]:
        """fd of a sub-directory; None when the generic path must decide (snapshot link)."""
        assert self.fd is not None
        self._check_denied(name)
        try:
            return os.open(name, _O_DIR, dir_fd=self.fd)
        except FileNotFoundError as e:
            raise ProcessGone(self.pid) from e
        except OSError as e:
            if e.errno == errno_mod.ESRCH:
                raise ProcessGone(self.pid) from e
            if not self.live and e.errno in (errno_mod.ELOOP, errno_mod.ENOTDIR):
                return None
            raise

    def fd_targets(self) -> list[str]:
        d = self._open_dir("fd")
        if d is None:
            return super().fd_targets()
        try:
            names = _by_number(os.listdir(d))
            try:
                return [os.readlink(n, dir_fd=d) for n in names]
            except OSError:
                pass  # one was closed meanwhile, or (snapshot) is not a link: one by one
            out: list[str] = []
            for n in names:
                try:
                    out.append(os.readlink(n, dir_fd=d))
                except OSError:
                    continue
            return out
        finally:
            os.close(d)

    def thread_names(self) -> list[str]:
        d = self._open_dir("task")
        if d is None:
            return super().thread_names()
        try:
            if self.live:
                # nothing can plant a link inside /proc: one openat per thread
                tids = [(t, True) for t in os.listdir(d)]
            else:
                with os.scandir(d) as it:
                    tids = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            names: list[str] = []
            for tid, plain in sorted(tids, key=lambda t: (len(t[0]), t[0])):
                try:
                    if not plain:  # a link, or a file where a directory should be
                        names.append(self._comm(f"{self.base}/task", tid))
                        continue
                    try:
                        raw = _read_at(
                            d, f"{tid}/comm", 4096, not self.live, f"{self.base}/task/{tid}/comm"
                        )
                    except OSError as e:
                        if self.live or e.errno not in (errno_mod.ELOOP, errno_mod.ENOTDIR):
                            raise
                        raw = self.host._read_bytes(f"{self.base}/task/{tid}/comm", 4096)
                    names.append(_decode(raw).rstrip("\n"))
                except (FileNotFoundError, NotADirectoryError):
                    continue  # the thread ended meanwhile
                except OSError as e:
                    if e.errno != errno_mod.ESRCH:
                        raise
            return names
        finally:
            os.close(d)

    def alive(self) -> bool:
        if not self.live or self.root_read:
            return True
        try:
            text = _decode(self.read("stat", 4096))
        except OSError:
            return False
        # proc(5): "pid (comm) S ..."; comm may hold spaces and parentheses
        state = text.rpartition(")")[2].split()[:1]
        return bool(state) and state[0] not in ("Z", "X", "x")


def _quick_os_info(host: Host) -> Optional[OsInfo]:
    """From os-release alone, when it says everything (``parsers.osrelease``); else None."""
    from hvcheck.parsers.osrelease import quick_os_info

    for path in ("/etc/os-release", "/usr/lib/os-release"):  # distro's order
        try:
            text = host.read_text(path, 65536)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        q = quick_os_info(text)
        return OsInfo(*q) if q is not None else None
    return None


def _os_info_from_distro(dist: Any) -> OsInfo:
    return OsInfo(
        id=str(dist.id() or ""),
        like=str(dist.like() or ""),
        name=str(dist.name(pretty=True) or ""),
        version=str(dist.version() or ""),
        codename=str(dist.codename() or ""),
    )


# ============================================================================================
# Live host
# ============================================================================================
class LiveHost(Host):
    live = True
    label = "live host"

    def __init__(self, root: str = "/") -> None:
        super().__init__()
        self._root = root

    def _read_bytes(self, path: str, limit: int) -> bytes:
        # O_NONBLOCK: a FIFO planted where a config file should be must not hang the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno_mod.EINVAL, "not a regular file", path)
            chunks: list[bytes] = []
            size = 0
            while size < limit:
                chunk = os.read(fd, min(65536, limit - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def _listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def _readlink(self, path: str) -> str:
        return os.readlink(path)

    def _all_processes(self) -> Iterator[ProcInfo]:
        # never recorded by `collect`: a snapshot keeps only the processes the checks matched,
        # not every command line on the host
        return _walk_procs(os.listdir("/proc"), _read_procfs, True)

    def open_proc(self, pid: int) -> ProcView:
        try:
            fd = os.open(f"/proc/{pid}", _O_DIR)
        except FileNotFoundError as e:
            raise ProcessGone(pid) from e
        return _FdProcView(self, pid, fd, live=True, denied=frozenset())

    def stat_device(self, path: str) -> Optional[DeviceInfo]:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return _device_info(st)

    def probe_kvm(self) -> Optional[ProbeResult]:
        result: ProbeResult = self._memo("probe", "kvm", _probe_kvm)
        return result

    def read_msr(self, cpu: int, register: int) -> Optional[MsrResult]:
        path = f"/dev/cpu/{cpu}/msr"
        if not os.path.exists(path):
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            return MsrResult(None, f"{path}: {_errno_name(e)} ({e.strerror})")
        try:
            data = os.pread(fd, 8, register)
            return (
                MsrResult(struct.unpack("<Q", data)[0])
                if len(data) == 8
                else MsrResult(None, "short read")
            )
        except OSError as e:
            return MsrResult(None, f"rdmsr {register:#x}: {_errno_name(e)} ({e.strerror})")
        finally:
            os.close(fd)

    def kernel_log(self) -> KernelLog:
        log: KernelLog = self._memo("kmsg", "", _read_kmsg)
        return log

    def uname(self) -> Uname:
        u = os.uname()
        return Uname(hostname=u.nodename, arch=u.machine, kernel=u.release)

    def euid(self) -> int:
        return os.geteuid()

    def os_info(self) -> OsInfo:
        quick = _quick_os_info(self)
        if quick is not None:
            return quick
        import distro

        # include_uname/include_lsb off: distro would otherwise spawn `uname` / `lsb_release`
        return _os_info_from_distro(
            distro.LinuxDistribution(include_lsb=False, include_uname=False)
        )

    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        return _libvirt_caps(timeout, os.uname().machine, os.geteuid())

    def nova_hypervisors(self, query: NovaQuery) -> Optional[NovaAnswer]:
        from hvcheck.novaquery import NO_CREDENTIALS, NovaAnswer, credentials_configured

        try:
            if credentials_configured(os.environ, os.getcwd(), os.path.expanduser("~")) is None:
                # nothing to ask: the client code (hvcheck.openstack) is not even imported
                return NovaAnswer("skip", NO_CREDENTIALS)
        except OSError:
            pass  # nova_hypervisors reports why it cannot look
        from hvcheck.openstack import nova_hypervisors

        return nova_hypervisors(query)


def _read_procfs(path: str, limit: int) -> bytes:
    """A file of procfs (always a regular file there: no fstat needed)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _read_all(fd, limit, short_is_eof=True)
    finally:
        os.close(fd)


def _device_info(st: os.stat_result) -> DeviceInfo:
    import grp
    import pwd

    if stat.S_ISCHR(st.st_mode):
        kind = "char"
    elif stat.S_ISBLK(st.st_mode):
        kind = "block"
    elif stat.S_ISREG(st.st_mode):
        kind = "file"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    else:
        kind = "other"
    try:
        owner: Optional[str] = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = None
    try:
        group: Optional[str] = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = None
    dev = st.st_rdev if kind in ("char", "block") else 0
    return DeviceInfo(
        type=kind,
        major=os.major(dev),
        minor=os.minor(dev),
        mode=f"{stat.S_IMODE(st.st_mode):04o}",
        uid=st.st_uid,
        gid=st.st_gid,
        owner=owner,
        group=group,
    )


def _probe_kvm(path: str = "/dev/kvm") -> ProbeResult:
    """Open /dev/kvm, check KVM_GET_API_VERSION == 12, create a VM, close every fd.

    This is what QEMU's kvm_init() does first (accel/kvm/kvm-all.c), so success here means a
    process with this uid can get KVM. It creates no vCPU and touches no memory.
    """
    uid = os.geteuid()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return ProbeResult(False, "open", _errno_name(e), f"open {path}: {e.strerror}", uid=uid)
    try:
        try:
            api = fcntl.ioctl(fd, KVM_GET_API_VERSION)
        except OSError as e:
            return ProbeResult(
                False, "api_version", _errno_name(e), f"KVM_GET_API_VERSION: {e.strerror}", uid=uid
            )
        if api != KVM_API_VERSION:
            return ProbeResult(
                False,
                "api_version",
                None,
                f"KVM_GET_API_VERSION returned {api}, expected 12",
                api,
                uid,
            )
        try:
            vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        except OSError as e:
            return ProbeResult(
                False, "create_vm", _errno_name(e), f"KVM_CREATE_VM: {e.strerror}", api, uid
            )
        os.close(vm)
        return ProbeResult(True, "done", None, None, api, uid)
    finally:
        os.close(fd)


def _read_kmsg() -> KernelLog:
    """Read the kernel ring buffer through /dev/kmsg without blocking.

    Each read() returns one record ("PRI,SEQ,TS,FLAGS;text"); EAGAIN marks the end
    (Documentation/ABI/testing/dev-kmsg). EPIPE means a record was overwritten: keep going.
    """
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return KernelLog((), "/dev/kmsg", f"/dev/kmsg: {_errno_name(e)} ({e.strerror})")
    lines: list[str] = []
    total = 0
    try:
        while total < MAX_READ:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno_mod.EPIPE:
                    continue
                return KernelLog(
                    tuple(lines), "/dev/kmsg", f"/dev/kmsg: {_errno_name(e)} ({e.strerror})"
                )
            if not rec:
                break
            total += len(rec)
            # continuation lines (" KEY=value") are dictionary properties: keep the record only
            lines.append(_decode(rec).split("\n", 1)[0])
    finally:
        os.close(fd)
    return KernelLog(tuple(lines), "/dev/kmsg")


# ============================================================================================
# libvirt capabilities (virConnectGetCapabilities / virConnectGetDomainCapabilities)
# ============================================================================================
LIBVIRT_URI = "qemu:///system"
# The monolithic daemon's and the modular QEMU daemon's sockets (libvirt's docs/daemons.rst).
LIBVIRT_RO_SOCKETS = (
    "/run/libvirt/libvirt-sock-ro",
    "/run/libvirt/virtqemud-sock-ro",
    "/var/run/libvirt/libvirt-sock-ro",
    "/var/run/libvirt/virtqemud-sock-ro",
)


def _libvirt_caps(timeout: float, arch: str, euid: int) -> CapsResult:
    """Ask libvirt for its capabilities and its kvm domain capabilities, within ``timeout``.

    Through libvirt-python when it is importable, else ``virsh``. Capabilities come over a
    read-only connection; domain capabilities need a read-write one (libvirt's ACL makes
    ``virConnectGetDomainCapabilities`` a ``connect:write`` operation, since it may probe QEMU:
    "read only access prevents virConnectGetDomainCapabilities"), so they are asked only as
    root. libvirt answers from its capability cache, but re-probes QEMU whenever /dev/kvm's
    ctime changes (``virQEMUCapsIsValid``) and on every call while the QEMU user cannot use
    /dev/kvm, and that probe takes seconds (4-30 s seen): past ``timeout`` it is abandoned
    (virsh killed), never waited for.
    """
    import time

    start = time.monotonic()
    if not any(os.path.exists(p) for p in LIBVIRT_RO_SOCKETS):
        return CapsResult(
            "unavailable",
            "none",
            error="libvirt is not running (no libvirtd or virtqemud socket in /run/libvirt)",
        )
    import importlib.util

    try:
        have_api = importlib.util.find_spec("libvirt") is not None
    except (ImportError, ValueError):
        have_api = False
    if have_api:
        return _libvirt_caps_api(timeout, arch, euid, start)
    return _libvirt_caps_virsh(timeout, arch, euid, start)


def _libvirt_caps_virsh(timeout: float, arch: str, euid: int, start: float) -> CapsResult:
    import shutil
    import subprocess
    import time

    virsh = shutil.which("virsh")
    if virsh is None:
        return CapsResult(
            "unavailable",
            "none",
            error="libvirt runs but neither libvirt-python nor virsh is installed "
            "(libvirt-clients / libvirt-client package)",
        )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        left = timeout - (time.monotonic() - start)
        if left <= 0.05:
            raise subprocess.TimeoutExpired(args, max(0.0, left))
        return subprocess.run(
            [virsh, *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=left,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def err(p: subprocess.CompletedProcess[str]) -> str:
        lines = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
        lines = [ln[7:] if ln.startswith("error: ") else ln for ln in lines]
        return "; ".join(lines[:3]) or f"virsh exited with status {p.returncode}"

    try:
        p = run(["-r", "-c", LIBVIRT_URI, "capabilities"])
        if p.returncode != 0:
            e = err(p)
            status = "unavailable" if "failed to connect" in e.lower() else "error"
            return CapsResult(status, "virsh", error=e, elapsed=time.monotonic() - start)
        caps = p.stdout
        domcaps: Optional[str] = None
        dc_err: Optional[str] = None
        if euid == 0:
            args = ["-c", LIBVIRT_URI, "domcapabilities", "--virttype", "kvm"]
            if arch:
                args += ["--arch", arch]
            try:
                q = run(args)
            except subprocess.TimeoutExpired:
                # the capabilities came: report them; only the domain capabilities are missing
                q = None
                dc_err = f"libvirt did not answer domcapabilities within {timeout:.1f} s"
            if q is not None and q.returncode == 0:
                domcaps = q.stdout
            elif q is not None:
                dc_err = err(q)
        else:
            dc_err = "domain capabilities need a read-write libvirt connection (run as root)"
        return CapsResult(
            "ok",
            "virsh",
            capabilities=caps,
            domcapabilities=domcaps,
            domcaps_error=dc_err,
            elapsed=time.monotonic() - start,
        )
    except subprocess.TimeoutExpired as e:
        what = " ".join(str(a) for a in e.cmd[-3:]) if isinstance(e.cmd, list) else "virsh"
        return CapsResult(
            "timeout",
            "virsh",
            error=f"libvirt did not answer `virsh {what}` within {timeout:.1f} s",
            elapsed=time.monotonic() - start,
        )
    except OSError as e:
        return CapsResult(
            "error", "virsh", error=f"cannot run virsh: {e}", elapsed=time.monotonic() - start
        )


def _libvirt_caps_api(timeout: float, arch: str, euid: int, start: float) -> CapsResult:
    """The same through libvirt-python, in a daemon thread abandoned past ``timeout``."""
    import time

    box: list[CapsResult] = []
    step = ["connecting"]
    got_caps: list[str] = []

    def work() -> None:
        try:
            import libvirt

            # libvirt's default error handler prints every error to stderr
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            try:
                conn = libvirt.openReadOnly(LIBVIRT_URI)
            except libvirt.libvirtError as e:
                box.append(
                    CapsResult("unavailable", "libvirt-python", error=str(e).strip() or "failed")
                )
                return
            try:
                step[0] = "capabilities"
                caps = conn.getCapabilities()
                got_caps.append(caps)
            finally:
                conn.close()
            domcaps: Optional[str] = None
            dc_err: Optional[str] = None
            if euid == 0:
                step[0] = "domcapabilities --virttype kvm"
                try:
                    rw = libvirt.open(LIBVIRT_URI)
                    try:
                        domcaps = rw.getDomainCapabilities(None, arch or None, None, "kvm", 0)
                    finally:
                        rw.close()
                except libvirt.libvirtError as e:
                    dc_err = str(e).strip()
            else:
                dc_err = "domain capabilities need a read-write libvirt connection (run as root)"
            box.append(
                CapsResult(
                    "ok",
                    "libvirt-python",
                    capabilities=caps,
                    domcapabilities=domcaps,
                    domcaps_error=dc_err,
                    elapsed=time.monotonic() - start,
                )
            )
        except Exception as e:
            box.append(CapsResult("error", "libvirt-python", error=f"{type(e).__name__}: {e}"))

    t = threading.Thread(target=work, name="hvcheck-libvirt-caps", daemon=True)
    t.start()
    t.join(max(0.0, timeout - (time.monotonic() - start)))
    if box:
        return box[0]
    if got_caps:  # only the domain capabilities are missing
        return CapsResult(
            "ok",
            "libvirt-python",
            capabilities=got_caps[0],
            domcaps_error=f"libvirt did not answer {step[0]} within {timeout:.1f} s",
            elapsed=time.monotonic() - start,
        )
    return CapsResult(
        "timeout",
        "libvirt-python",
        error=f"libvirt did not answer {step[0]} within {timeout:.1f} s",
        elapsed=time.monotonic() - start,
    )


# ============================================================================================
# Snapshots
# ============================================================================================
class _Node:
    __slots__ = ("children", "data", "kind", "target", "truncated")

    def __init__(
        self, kind: str, data: bytes = b"", target: str = "", truncated: bool = False
    ) -> None:
        self.kind = kind  # file | dir | symlink | other
        self.data = data
        self.target = target
        self.truncated = truncated
        self.children: set[str] = set()


def _norm(rel: str) -> Optional[str]:
    """Normalise a member name to a relative path inside the snapshot; None if it escapes."""
    if (
        rel
        and rel[0] not in "/."
        and rel[-1] != "/"
        and "//" not in rel
        and ".." not in rel
        and "/." not in rel
        and "\\" not in rel
    ):
        return rel  # already normal: the common case, kept cheap
    rel = rel.replace("\\", "/")
    if rel.startswith("/"):
        return None
    parts: list[str] = []
    for p in rel.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            return None
        parts.append(p)
    return "/".join(parts)


class _Tree(ABC):
    """A snapshot's files, addressed by relative path."""

    @abstractmethod
    def read(self, rel: str, limit: int) -> bytes: ...

    @abstractmethod
    def exists(self, rel: str) -> bool: ...

    @abstractmethod
    def listdir(self, rel: str) -> list[str]: ...

    @abstractmethod
    def readlink(self, rel: str) -> str: ...


class _DirTree(_Tree):
    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._dirs: dict[str, str] = {self.root: self.root}  # lexical dir -> resolved dir

    def _within(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def _real_dir(self, d: str) -> str:
        """Resolve a directory under the root one component at a time (cached): a new
        directory costs one lstat, not a walk of the whole path."""
        hit = self._dirs.get(d)
        if hit is not None:
            return hit
        if len(self._dirs) > 4096:
            # processes are read one after the other: a small cache serves as well as a whole
            # snapshot's worth of /proc/PID/task/TID entries, at a fraction of the memory
            self._dirs = {self.root: self.root}
        parent, base = d.rsplit("/", 1)
        rp = self._real_dir(parent if parent else "/")
        cand = rp + "/" + base
        real = os.path.realpath(cand) if os.path.islink(cand) else cand
        self._dirs[d] = real
        return real

    def _inside(self, rel: str, follow_last: bool) -> str:
        n = _norm(rel)
        if n is None:
            raise PermissionError(errno_mod.EACCES, "path escapes the snapshot", rel)
        if not n:
            return self.root
        full = self.root + "/" + n
        d, base = full.rsplit("/", 1)
        parent = self._real_dir(d)
        real = parent + "/" + base
        if follow_last and os.path.islink(real):
            real = os.path.realpath(real)
        if not (self._within(parent) and self._within(real)):
            # a symlink pointing outside the snapshot: never followed for content
            raise PermissionError(
                errno_mod.EACCES, "symlink leaves the snapshot; not followed", "/" + n
            )
        return real

    def read(self, rel: str, limit: int) -> bytes:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        # The directory is resolved and checked; the last component is opened O_NOFOLLOW, so
        # a plain file costs no extra lstat and only a symlink (ELOOP) takes the slow path.
        try:
            fd = os.open(self._inside(rel, follow_last=False), flags)
        except OSError as e:
            if e.errno != errno_mod.ELOOP:
                raise
            fd = os.open(self._inside(rel, follow_last=True), flags)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno_mod.EINVAL, "not a regular file in the snapshot", "/" + rel)
            out = b""
            while len(out) < limit:
                chunk = os.read(fd, min(65536, limit - len(out)))
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        try:
            return os.path.lexists(self._inside(rel, follow_last=False))
        except PermissionError:
            return False

    def listdir(self, rel: str) -> list[str]:
        real = self._inside(rel, follow_last=True)
        return os.listdir(real)

    def readlink(self, rel: str) -> str:
        return os.readlink(self._inside(rel, follow_last=False))


class _TarTree(_Tree):
    """A .tar.gz snapshot read into memory once: nothing is ever extracted to disk.

    Members with absolute or ``..`` names are ignored; device files, FIFOs and hard links are
    kept as unreadable nodes; symlinks are kept as links and never followed for content.
    """

    def __init__(self, path: str) -> None:
        self.nodes: dict[str, _Node] = {"": _Node("dir")}
        total = 0
        try:
            import tarfile

            with tarfile.open(path, "r:gz") as tf:
                for m in tf:
                    rel = _norm(m.name)
                    if rel is None or rel == "":
                        continue
                    if m.isreg():
                        f = tf.extractfile(m)
                        data = f.read(min(MAX_READ, MAX_SNAPSHOT_TOTAL - total) + 1) if f else b""
                        truncated = len(data) > MAX_READ
                        data = data[:MAX_READ]
                        total += len(data)
                        if total >= MAX_SNAPSHOT_TOTAL:
                            raise SnapshotError(
                                f"{path}: snapshot larger than {MAX_SNAPSHOT_TOTAL // 2**20} MiB"
                            )
                        node = _Node("file", data=data, truncated=truncated)
                    elif m.isdir():
                        node = self.nodes.get(rel) or _Node("dir")
                        node.kind = "dir"
                    elif m.issym():
                        node = _Node("symlink", target=m.linkname)
                    else:
                        node = _Node("other")
                    self._add(rel, node)
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise SnapshotError(f"{path}: not a readable .tar.gz snapshot ({e})") from e

    def _add(self, rel: str, node: _Node) -> None:
        old = self.nodes.get(rel)
        if old is not None and old.kind == "dir":
            node.children = old.children
        self.nodes[rel] = node
        parent, _, name = rel.rpartition("/")
        while True:
            p = self.nodes.get(parent)
            if p is None:
                p = _Node("dir")
                self.nodes[parent] = p
            p.children.add(name)
            if parent == "":
                break
            parent, _, name = parent.rpartition("/")

    def _get(self, rel: str) -> _Node:
        n = _norm(rel)
        node = self.nodes.get(n) if n is not None else None
        if node is None:
            raise FileNotFoundError(errno_mod.ENOENT, "not in snapshot", "/" + rel)
        return node

    def read(self, rel: str, limit: int) -> bytes:
        node = self._get(rel)
        if node.kind == "symlink":
            raise PermissionError(errno_mod.EACCES, "symlink in snapshot; not followed", "/" + rel)
        if node.kind != "file":
            raise OSError(errno_mod.EINVAL, "not a regular file in the snapshot", "/" + rel)
        return node.data[:limit]

    def exists(self, rel: str) -> bool:
        try:
            self._get(rel)
            return True
        except FileNotFoundError:
            return False

    def listdir(self, rel: str) -> list[str]:
        node = self._get(rel)
        if node.kind != "dir":
            raise NotADirectoryError(errno_mod.ENOTDIR, "not a directory", "/" + rel)
        return list(node.children)

    def readlink(self, rel: str) -> str:
        node = self._get(rel)
        if node.kind != "symlink":
            raise OSError(errno_mod.EINVAL, "not a symlink", "/" + rel)
        return node.target


class SnapshotHost(Host):
    """A snapshot made by ``hvcheck collect``: a directory or a .tar.gz mirroring ``/``."""

    live = False

    def __init__(self, path: str) -> None:
        super().__init__()
        self.label = path
        if os.path.isdir(path):
            self._tree: _Tree = _DirTree(path)
        elif os.path.isfile(path):
            self._tree = _TarTree(path)
        else:
            raise SnapshotError(f"{path}: no such snapshot directory or .tar.gz file")
        try:
            raw = self._tree.read(MARKER, 1024 * 1024)
        except OSError as e:
            raise SnapshotError(
                f"{path}: not an hvcheck snapshot (no {MARKER} marker at its top)"
            ) from e
        try:
            marker = json.loads(raw)
        except ValueError as e:
            raise SnapshotError(f"{path}: {MARKER} is not valid JSON ({e})") from e
        if not isinstance(marker, dict) or marker.get("format") != 1:
            raise SnapshotError(f'{path}: {MARKER} must be a JSON object with "format": 1')
        self.marker: dict[str, Any] = marker
        denied = marker.get("denied")
        self._denied_paths = frozenset(
            d for d in (denied if isinstance(denied, list) else ()) if isinstance(d, str)
        )
        self._proc_dir: Optional[str] = None  # resolved proc/ of a snapshot directory

    @staticmethod
    def _rel(path: str) -> str:
        return path.lstrip("/")

    def _denied(self, path: str) -> None:
        if path in self._denied_paths:
            # the collecting user could not read it: answer as the live host did
            raise PermissionError(errno_mod.EACCES, "Permission denied (when collected)", path)

    def _read_bytes(self, path: str, limit: int) -> bytes:
        self._denied(path)
        return self._tree.read(self._rel(path), limit)

    def _exists(self, path: str) -> bool:
        return self._tree.exists(self._rel(path))

    def _listdir(self, path: str) -> list[str]:
        self._denied(path)
        return self._tree.listdir(self._rel(path))

    def _readlink(self, path: str) -> str:
        return self._tree.readlink(self._rel(path))

    def _proc_path(self) -> str:
        """Resolved ``proc/`` of a snapshot directory ("" for a .tar.gz or none usable)."""
        if self._proc_dir is None:
            path = ""
            if isinstance(self._tree, _DirTree):
                try:
                    path = self._tree._inside("proc", follow_last=True)
                except OSError:
                    path = ""
            self._proc_dir = path
        return self._proc_dir

    def open_proc(self, pid: int) -> ProcView:
        proc = self._proc_path()
        if proc:
            try:
                fd = os.open(f"{proc}/{pid}", _O_DIR)
            except OSError:
                return ProcView(self, pid)  # missing, or a link: the generic path decides
            return _FdProcView(self, pid, fd, live=False, denied=self._denied_paths)
        return ProcView(self, pid)

    def _all_processes(self) -> Iterator[ProcInfo]:
        """The generic walk, but each plain ``proc/<pid>/`` directory is read with one
        ``openat`` per file (``O_NOFOLLOW``, regular files only); anything else — a link, a
        denied path — goes through the path-checked reads."""
        proc = self._proc_path()
        dfd = -1
        entries: list[tuple[str, bool]] = []
        if proc and "/proc" not in self._denied_paths:
            try:
                dfd = os.open(proc, _O_DIR)
                with os.scandir(dfd) as it:
                    entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            except OSError:
                if dfd >= 0:
                    os.close(dfd)
                dfd = -1
        if dfd < 0:
            yield from super()._all_processes()
            return
        plain = {n for n, is_dir in entries if is_dir}

        def read(path: str, limit: int) -> bytes:
            _, _, pid, name = path.split("/", 3)
            if pid in plain and path not in self._denied_paths:
                try:
                    return _read_at(dfd, f"{pid}/{name}", limit, True, path)
                except OSError as e:
                    if e.errno not in (errno_mod.ELOOP, errno_mod.ENOTDIR):
                        raise
            return self._read_bytes(path, limit)

        try:
            yield from _walk_procs(_by_number(n for n, _ in entries), read, False)
        finally:
            os.close(dfd)

    def stat_device(self, path: str) -> Optional[DeviceInfo]:
        devices = self.marker.get("devices")
        d = devices.get(path) if isinstance(devices, dict) else None
        if not isinstance(d, dict):
            return None
        try:
            return DeviceInfo(
                type=str(d.get("type", "char")),
                major=int(d.get("major", 0)),
                minor=int(d.get("minor", 0)),
                mode=str(d.get("mode", "0000")),
                uid=int(d.get("uid", 0)),
                gid=int(d.get("gid", 0)),
                owner=str(d["owner"]) if d.get("owner") is not None else None,
                group=str(d["group"]) if d.get("group") is not None else None,
            )
        except (TypeError, ValueError):
            return None

    def _probes(self) -> dict[str, Any]:
        p = self.marker.get("probes")
        return p if isinstance(p, dict) else {}

    def probe_kvm(self) -> Optional[ProbeResult]:
        return ProbeResult.from_json(self._probes().get("kvm"))

    def read_msr(self, cpu: int, register: int) -> Optional[MsrResult]:
        msrs = self._probes().get("msr")
        if not isinstance(msrs, dict):
            return None
        v = msrs.get(f"{cpu}:{register:#x}")
        if isinstance(v, int):
            return MsrResult(v)
        if isinstance(v, str):
            return MsrResult(None, v)
        return None

    def kernel_log(self) -> KernelLog:
        try:
            text = self.read_text("/dev/kmsg")
        except FileNotFoundError:
            err = self._probes().get("kmsg_error")
            return KernelLog(
                (), "snapshot dev/kmsg", str(err) if err else "no kernel log in the snapshot"
            )
        except OSError as e:
            return KernelLog((), "snapshot dev/kmsg", str(e))
        return KernelLog(tuple(text.splitlines()), "snapshot dev/kmsg")

    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        return CapsResult.from_json(self._probes().get("libvirt_caps"))

    def nova_hypervisors(self, query: NovaQuery) -> Optional[NovaAnswer]:
        from hvcheck.novaquery import NovaAnswer

        return NovaAnswer.from_json(self._probes().get("nova_api"))

    def uname(self) -> Uname:
        def m(key: str, fallback_path: str) -> str:
            v = self.marker.get(key)
            if isinstance(v, str) and v:
                return v
            try:
                return self.read_text(fallback_path).strip()
            except OSError:
                return ""

        return Uname(
            hostname=m("hostname", "/proc/sys/kernel/hostname"),
            arch=m("arch", "/proc/sys/kernel/arch"),
            kernel=m("kernel", "/proc/sys/kernel/osrelease"),
        )

    def euid(self) -> int:
        v = self.marker.get("taken_as_uid", 0)
        return v if isinstance(v, int) else 0

    def os_info(self) -> OsInfo:
        """From the snapshot's os-release when it says everything; else distro's own parser,
        pointed at a private copy of the snapshot's release files.

        distro with ``root_dir`` never runs lsb_release/uname; the copy keeps it from following
        a release-file symlink out of the snapshot.
        """
        quick = _quick_os_info(self)
        if quick is not None:
            return quick
        import tempfile

        import distro

        with tempfile.TemporaryDirectory(prefix="hvcheck-os-") as tmp:
            etc = os.path.join(tmp, "etc")
            os.makedirs(etc)
            os.makedirs(os.path.join(tmp, "usr", "lib"))
            for p in [
                "/etc/os-release",
                "/usr/lib/os-release",
                *self.glob("/etc/*-release"),
                *self.glob("/etc/*_version"),
            ]:
                try:
                    data = self.read_bytes(p, 65536)
                except OSError:
                    continue
                with open(os.path.join(tmp, p.lstrip("/")), "wb") as f:
                    f.write(data)
            return _os_info_from_distro(
                distro.LinuxDistribution(root_dir=tmp, include_lsb=False, include_uname=False)
            )


def open_host(root: Optional[str]) -> Host:
    return LiveHost() if root is None else SnapshotHost(root)


# ============================================================================================
# Recording (for `hvcheck collect`)
# ============================================================================================
class RecordingHost(LiveHost):
    """A live host that remembers every answer it gave, to be written out as a snapshot."""

    # listings whose sub-directories are facts in themselves (a module is present when its
    # directory is); elsewhere only what was read is kept
    CHILD_DIRS_MATTER = ("/sys/module",)

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, bytes] = {}
        self.dirs: dict[str, list[str]] = {}
        self.links: dict[str, str] = {}
        self.devices: dict[str, DeviceInfo] = {}
        self.procs: dict[int, ProcInfo] = {}
        self.msrs: dict[str, Any] = {}
        self.libvirt_caps: Optional[CapsResult] = None
        self.nova_api: Optional[NovaAnswer] = None
        self.denied: set[str] = set()  # paths the collecting user could not read
        self.existing: set[str] = set()  # paths only tested for existence
        self.rec_lock = threading.Lock()

    def _read_bytes(self, path: str, limit: int) -> bytes:
        try:
            data = super()._read_bytes(path, limit)
        except PermissionError:
            with self.rec_lock:
                self.denied.add(path)
            raise
        with self.rec_lock:
            self.files[path] = data
        return data

    def _listdir(self, path: str) -> list[str]:
        try:
            names = super()._listdir(path)
        except PermissionError:
            with self.rec_lock:
                self.denied.add(path)
            raise
        with self.rec_lock:
            self.dirs[path] = list(names)
        return names

    def _exists(self, path: str) -> bool:
        found = super()._exists(path)
        if found:
            with self.rec_lock:
                self.existing.add(path)
        return found

    def _readlink(self, path: str) -> str:
        t = super()._readlink(path)
        with self.rec_lock:
            self.links[path] = t
        return t

    def process_groups(
        self, predicates: Mapping[str, Callable[[ProcInfo], bool]]
    ) -> dict[str, list[ProcInfo]]:
        groups = super().process_groups(predicates)
        with self.rec_lock:
            for found in groups.values():
                for p in found:
                    self.procs[p.pid] = p
        return groups

    def open_proc(self, pid: int) -> ProcView:
        return ProcView(self, pid)  # path by path, so that every read is recorded

    def stat_device(self, path: str) -> Optional[DeviceInfo]:
        d = super().stat_device(path)
        if d is not None:
            with self.rec_lock:
                self.devices[path] = d
        return d

    def os_info(self) -> OsInfo:
        # distro reads these itself; read them through the recorder too so --root sees them
        for p in ["/etc/os-release", "/usr/lib/os-release", *self.glob("/etc/*-release")]:
            try:
                self.read_bytes(p, 65536)
            except OSError:
                continue
        return super().os_info()

    def read_msr(self, cpu: int, register: int) -> Optional[MsrResult]:
        r = super().read_msr(cpu, register)
        if r is not None:
            with self.rec_lock:
                self.msrs[f"{cpu}:{register:#x}"] = r.value if r.value is not None else r.error
        return r

    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        r = super().libvirt_capabilities(timeout)
        self.libvirt_caps = r
        return r

    def nova_hypervisors(self, query: NovaQuery) -> Optional[NovaAnswer]:
        a = super().nova_hypervisors(query)  # holds no secret (see hvcheck.openstack)
        self.nova_api = a
        return a

    def write_snapshot(
        self, out: str, taken_at: str, live_verdict: Optional[dict[str, Any]] = None
    ) -> None:
        """Write everything recorded as a .tar.gz snapshot (the contract's layout).

        ``live_verdict`` (the collecting run's own conclusion) is kept in the marker, so a
        replay with --root can be held against the run it came from.
        """
        import io

        u = self.uname()
        probe = self.probe_kvm()
        kmsg = self.kernel_log()
        marker: dict[str, Any] = {
            "format": 1,
            "taken_as_uid": self.euid(),
            "hostname": u.hostname,
            "arch": u.arch,
            "kernel": u.kernel,
            "taken_at": taken_at,
            "devices": {k: dict(v._asdict()) for k, v in sorted(self.devices.items())},
            "probes": {},
        }
        if live_verdict is not None:
            marker["live_verdict"] = live_verdict
        if probe is not None:
            marker["probes"]["kvm"] = probe.to_json()
        if self.msrs:
            marker["probes"]["msr"] = self.msrs
        if kmsg.error:
            marker["probes"]["kmsg_error"] = kmsg.error
        if self.libvirt_caps is not None:
            marker["probes"]["libvirt_caps"] = self.libvirt_caps.to_json()
        if self.nova_api is not None:
            marker["probes"]["nova_api"] = self.nova_api.to_json()
        if self.denied:
            marker["denied"] = sorted(self.denied)
        files = dict(self.files)
        if not kmsg.error:
            files["/dev/kmsg"] = ("\n".join(kmsg.lines) + "\n").encode()
        for pid, p in self.procs.items():
            files.setdefault(
                f"/proc/{pid}/cmdline",
                b"".join(a.encode("utf-8", "replace") + b"\0" for a in p.argv),
            )
            files.setdefault(f"/proc/{pid}/comm", (p.comm + "\n").encode("utf-8", "replace"))
        files[f"/{MARKER}"] = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()

        import tarfile

        def add_dir(tf: tarfile.TarFile, name: str) -> None:
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o755
            tf.addfile(ti)

        # A listed directory's sub-directories are kept (empty) so that listings such as
        # /sys/module read the same from the snapshot; files are kept only when read.
        dirs = {d for d in self.dirs if d.lstrip("/")}
        for d, names in self.dirs.items():
            if d not in self.CHILD_DIRS_MATTER:
                continue
            for n in names:
                child = posixpath.join(d, n)
                if child in files or child in self.links or child in dirs:
                    continue
                try:
                    if stat.S_ISDIR(os.lstat(child).st_mode):
                        dirs.add(child)
                except OSError:
                    continue
        for path in sorted(self.existing):
            if path in files or path in self.links or path in dirs or not path.lstrip("/"):
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                dirs.add(path)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                files[path] = b""  # a marker file (/.dockerenv): its existence is the fact
            elif stat.S_ISREG(st.st_mode):
                files[path] = b""
                marker.setdefault("content_not_collected", []).append(path)
        if "content_not_collected" in marker:
            files[f"/{MARKER}"] = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
        tmp = out + ".tmp"
        with tarfile.open(tmp, "w:gz") as tf:
            for d in sorted(dirs):
                add_dir(tf, d.lstrip("/"))
            for path, target in sorted(self.links.items()):
                ti = tarfile.TarInfo(path.lstrip("/"))
                ti.type = tarfile.SYMTYPE
                ti.linkname = target
                tf.addfile(ti)
            for path, data in sorted(files.items()):
                ti = tarfile.TarInfo(path.lstrip("/"))
                ti.size = len(data)
                ti.mode = 0o644
                tf.addfile(ti, io.BytesIO(data))
        os.replace(tmp, out)
