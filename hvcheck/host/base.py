"""The host interface and its records: what checks may ask of a host, and the shapes of the
answers.

Implementations: :mod:`hvcheck.host.live` (the running system), :mod:`hvcheck.host.snapshot`
(a snapshot made by ``hvcheck collect``, a directory or a ``.tar.gz``) and
:mod:`hvcheck.host.recorder` (a live host that remembers every answer, for ``collect``).
Checks never import ``os`` or ``pyudev`` themselves: that keeps ``--root`` honest.

Reads nothing itself but through the host's primitives: ``/proc/<pid>/{cmdline,comm}`` for
the generic (snapshot) process walk, ``/proc/<pid>/status`` for the processes it matched, and
``/proc/<pid>/{fd,task}`` for :class:`ProcView`.
"""

import errno as errno_mod
import fnmatch
import posixpath
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from hvcheck.parsers.pkgdb import RPM_QA, RPMDB_SQLITE, Package, format_rpm_qa, parse_rpm_qa
from hvcheck.parsers.procstatus import ZOMBIE_STATES, parse_status

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery

# a bound for rpmdb.sqlite copies (snapshots): real databases are 10-300 MiB, one read in place
# (the live host, hvcheck.host.rpmdb.read_rpmdb_file) is unbounded
MAX_RPMDB_BYTES = 256 * 1024 * 1024
MAX_READ = 8 * 1024 * 1024  # cpuinfo of a 448-CPU host is ~1.5 MiB; nothing we read is larger
MAX_SNAPSHOT_TOTAL = 512 * 1024 * 1024
MARKER = "hvcheck-snapshot.json"


class SnapshotError(Exception):
    """The path given to --root is not a usable snapshot."""


class ProcessGone(Exception):
    """The process exited between listing and reading."""


class DeviceInfo(NamedTuple):
    """``stat`` of a device node, its POSIX ACL and udev's view of it, as the marker stores it.

    ``acl``: the node's ``system.posix_acl_access`` extended attribute, the hex of its raw
    bytes (the kernel's ``posix_acl_xattr`` layout, include/uapi/linux/posix_acl_xattr.h);
    None when the node has none or it could not be read.
    ``udev``: udev's view through pyudev (libudev), ``{"initialized": bool, "properties":
    {"DEVNAME": "/dev/kvm", ...}, "tags": ["uaccess", ...]}`` and ``"current_tags"`` where
    pyudev has them (0.23+); ``initialized`` false when udev never processed the node (no
    udev database: the properties are then the kernel's uevent only). On a live host where udev
    does not run (no ``/run/udev``), ``{"initialized": False, "tags": [], "running": False}``,
    without asking pyudev (``LiveHost.udev_view``), recorded so by ``collect``. None when udev
    knows nothing of the node (pyudev or libudev missing, no such device number) or was not
    asked.
    """

    type: str  # char | block | file | dir | other
    major: int
    minor: int
    mode: str  # octal permission bits, e.g. "0660"
    uid: int
    gid: int
    owner: Optional[str] = None
    group: Optional[str] = None
    acl: Optional[str] = None
    udev: Optional[dict[str, Any]] = None

    @property
    def perm(self) -> int:
        return int(self.mode, 8)


def acl_from_json(v: Any) -> Optional[str]:
    """A marker's ``acl``: a string of hex digits (pairs), else None."""
    if isinstance(v, str) and len(v) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in v):
        return v.lower()
    return None


def _str_list(v: Any) -> Optional[list[str]]:
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    return None


def udev_from_json(v: Any) -> Optional[dict[str, Any]]:
    """A marker's ``udev`` view, when every part has its type (``initialized`` a bool,
    ``properties`` strings to strings, ``tags`` and ``current_tags`` lists of strings), or
    the view of a host where udev did not run (``{"initialized": false, "tags": [],
    "running": false}``, no properties); else None."""
    if not isinstance(v, dict) or not isinstance(v.get("initialized"), bool):
        return None
    if v.get("running") is False and "properties" not in v:
        if v["initialized"] is not False or v.get("tags") != [] or len(v) != 3:
            return None  # udev did not run: nothing can have initialized or tagged the node
        return {"initialized": False, "tags": [], "running": False}
    props = v.get("properties")
    if not isinstance(props, dict) or not all(
        isinstance(k, str) and isinstance(x, str) for k, x in props.items()
    ):
        return None
    tags = _str_list(v.get("tags"))
    if tags is None:
        return None
    out: dict[str, Any] = {"initialized": v["initialized"], "properties": dict(props), "tags": tags}
    if "current_tags" in v:
        current = _str_list(v["current_tags"])
        if current is None:
            return None
        out["current_tags"] = current
    return out


class ProbeResult(NamedTuple):
    """Outcome of the functional /dev/kvm probe (open, KVM_GET_API_VERSION, KVM_CREATE_VM)."""

    ok: bool
    stage: str  # open | api_version | create_vm | done
    errno: Optional[str] = None  # symbolic, e.g. "EACCES"
    error: Optional[str] = None
    api_version: Optional[int] = None
    uid: Optional[int] = None
    # x86: one vCPU running `out; hlt` in real mode (hvcheck.host.guestcode): {"ok", "stage",
    # "error", "exits"}; None where it was not run (other architectures, older snapshots)
    guest: Optional[dict[str, Any]] = None

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_json(cls, d: Any) -> "Optional[ProbeResult]":
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
            guest=_guest_json(d.get("guest")),
        )


def _guest_json(g: Any) -> Optional[dict[str, Any]]:
    if not isinstance(g, dict) or not isinstance(g.get("ok"), bool):
        return None
    exits = g.get("exits")
    return {
        "ok": g["ok"],
        "stage": str(g.get("stage", "")),
        "error": str(g["error"]) if g.get("error") is not None else None,
        "exits": [str(x) for x in exits] if isinstance(exits, list) else [],
    }


class MsrResult(NamedTuple):
    value: Optional[int]
    error: Optional[str] = None


class KernelLog(NamedTuple):
    lines: tuple[str, ...]
    source: str  # "/dev/kmsg" or "snapshot dev/kmsg"
    error: Optional[str] = None  # why it could not be read (lines is empty then)


class ProcInfo(NamedTuple):
    """One process of the table.

    ``comm``: the kernel's name (``/proc/<pid>/comm``, at most 15 characters); ``argv``: its
    command line. For the processes a walk matched (:meth:`Host.process_table`), also
    ``status`` in psutil's names ("running", "sleeping", ... see
    :mod:`hvcheck.parsers.procstatus`), ``uids``/``gids`` (real, effective, saved) and the
    supplementary ``groups``; None where unknown (not asked, denied, an older snapshot).
    ``exe``: the target of ``/proc/<pid>/exe`` (proc(5)), read for every process of the walk.
    """

    pid: int
    comm: str
    argv: tuple[str, ...]
    uids: Optional[tuple[int, int, int]] = None
    gids: Optional[tuple[int, int, int]] = None
    groups: Optional[tuple[int, ...]] = None
    status: Optional[str] = None
    exe: Optional[str] = None
    """Target of ``/proc/<pid>/exe`` as the kernel gives it (" (deleted)" appended when the
    file was replaced or removed since); None when it cannot be read (another user's process,
    a snapshot without it)."""
    exe_denied: bool = False
    """The ``exe`` link was refused (EACCES: another user's process, hvcheck without
    CAP_SYS_PTRACE; a snapshot's ``denied`` list): what the process runs cannot be told. False
    when it was read, or is simply absent (a kernel thread, an older snapshot)."""
    age: Optional[float] = None
    """Seconds since the process started, when the walk saw it: psutil's ``create_time()``
    (``/proc/<pid>/stat`` starttime after boot, ``/proc/stat`` btime) against the clock;
    a snapshot's marker ``process_ages``. None where unknown."""


class FileStat(NamedTuple):
    """``stat``/``lstat`` of a path (stat(2)): what permission judgements and cache
    freshness need. ``type``: file | dir | symlink | char | block | fifo | socket | other;
    ``mode``: the permission bits (``st_mode & 0o7777``); ``ctime``/``mtime``: whole seconds
    (as libvirt compares them); ``acl``: the hex of the ``system.posix_acl_access`` xattr (as
    :class:`DeviceInfo`), None without one. Stored in a snapshot's marker under ``stat`` /
    ``lstat``, keyed by path."""

    type: str
    mode: int
    uid: int
    gid: int
    ctime: int
    mtime: int
    size: int = 0
    acl: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        d = dict(self._asdict())
        d["mode"] = f"{self.mode:04o}"
        return d

    @classmethod
    def from_json(cls, d: Any) -> "Optional[FileStat]":
        """A marker's record; None unless every field has its type (the mode an octal
        string, the ids, times and size non-negative integers)."""
        if not isinstance(d, dict) or d.get("type") not in FILE_TYPES:
            return None
        mode = d.get("mode")
        if not isinstance(mode, str) or not mode or any(c not in "01234567" for c in mode):
            return None
        nums = [d.get(k, 0) for k in ("uid", "gid", "ctime", "mtime", "size")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in nums):
            return None
        uid, gid, ctime, mtime, size = nums
        return cls(
            str(d["type"]),
            int(mode, 8) & 0o7777,
            uid,
            gid,
            ctime,
            mtime,
            size,
            acl_from_json(d.get("acl")),
        )


FILE_TYPES = ("file", "dir", "symlink", "char", "block", "fifo", "socket", "other")


def file_type(st_mode: int) -> str:
    """The :class:`FileStat` type of an ``st_mode``."""
    import stat as st

    for test, name in (
        (st.S_ISREG, "file"),
        (st.S_ISDIR, "dir"),
        (st.S_ISLNK, "symlink"),
        (st.S_ISCHR, "char"),
        (st.S_ISBLK, "block"),
        (st.S_ISFIFO, "fifo"),
        (st.S_ISSOCK, "socket"),
    ):
        if test(st_mode):
            return name
    return "other"


class FileStamp(NamedTuple):
    """``stat(2)`` of one file: the inode (``st_dev``, ``st_ino``) and its ``st_mtime`` and
    ``st_ctime`` (seconds since the epoch, UTC)."""

    dev: int
    ino: int
    mtime: float
    ctime: float

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_json(cls, d: Any) -> "Optional[FileStamp]":
        """A marker's stamp when every field has its type (ints, numbers); else None."""
        if not isinstance(d, dict):
            return None
        dev, ino = _int(d.get("dev")), _int(d.get("ino"))
        mtime, ctime = _num(d.get("mtime")), _num(d.get("ctime"))
        if dev is None or ino is None or mtime is None or ctime is None:
            return None
        return cls(dev, ino, mtime, ctime)


def _int(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: Any) -> Optional[float]:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class ExeRecord(NamedTuple):
    """The file a process runs, the file now at its path, and when the process started
    (:meth:`Host.exe_record`).

    ``path``: the path whose file ``current`` is: the target of ``/proc/<pid>/exe`` without
    its " (deleted)", else an absolute argv[0]; None when neither is known.
    ``running``: ``stat`` of ``/proc/<pid>/exe`` itself, which follows the link to the inode
    the process maps, even after the file was replaced or removed (proc(5)); None when it
    cannot be read (another user's process without CAP_SYS_PTRACE).
    ``current``: ``stat`` of ``path`` now, looked up in the process's mount namespace; None
    when there is no file there (or it could not be stat'ed: ``errors`` says why).
    ``started``: when the process started, seconds since the epoch (psutil's
    ``create_time``: ``/proc/<pid>/stat`` starttime after ``/proc/stat`` btime).
    ``errors``: what could not be read, and why.
    """

    path: Optional[str]
    running: Optional[FileStamp]
    current: Optional[FileStamp]
    started: Optional[float]
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "running": self.running.to_json() if self.running else None,
            "current": self.current.to_json() if self.current else None,
            "started": self.started,
            "errors": list(self.errors),
        }

    @classmethod
    def from_json(cls, d: Any) -> "Optional[ExeRecord]":
        """The marker's ``binaries.<pid>``; None when it is not an object. A field of the
        wrong type reads as unknown."""
        if not isinstance(d, dict):
            return None
        path = d.get("path")
        errors = d.get("errors")
        return cls(
            path=path if isinstance(path, str) and path.startswith("/") else None,
            running=FileStamp.from_json(d.get("running")),
            current=FileStamp.from_json(d.get("current")),
            started=_num(d.get("started")),
            errors=tuple(str(e) for e in errors) if isinstance(errors, list) else (),
        )


class ProcessTable(NamedTuple):
    """One walk of the process table, sorted into the groups asked for (sorted by pid).

    ``denied``: pids whose command line could not be read (psutil's AccessDenied, EACCES in
    a snapshot): any group may be missing them, so the table is incomplete when it is not
    empty.
    """

    groups: dict[str, list[ProcInfo]]
    denied: tuple[int, ...] = ()


class Uname(NamedTuple):
    hostname: str
    arch: str
    kernel: str


class OsInfo(NamedTuple):
    """The distribution, as ``distro`` names it: ``id`` (normalised, e.g. "ubuntu", "rhel",
    "oracle"), ``like`` (os-release ID_LIKE), ``name`` (pretty name), ``version``,
    ``codename``; "" where unknown."""

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
    def from_json(cls, d: Any) -> "Optional[CapsResult]":
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


class RpmRead(NamedTuple):
    """What an RPM database gave (:meth:`Host.rpm_sqlite`, :meth:`Host.rpm_query`).

    ``status``: ``ok`` (``packages`` holds every package), ``error`` (``error`` says why;
    ``packages`` what could be read, if anything), ``timeout`` (``rpm -qa`` did not finish in
    time), ``unavailable`` (the database exists but cannot be read here: no ``rpm`` command,
    or a Berkeley DB database in a snapshot without ``collect``'s record). ``via``:
    ``sqlite3`` (rpmdb.sqlite read with the stdlib) or ``rpm -qa``. ``bad``: header blobs
    that did not parse (they are left out of ``packages``).
    """

    status: str
    via: str
    packages: tuple[Package, ...] = ()
    error: Optional[str] = None
    bad: int = 0

    def to_json(self) -> dict[str, Any]:
        """The marker's form: packages as ``rpm -qa --qf RPM_QUERYFORMAT`` lines."""
        return {
            "status": self.status,
            "via": self.via,
            "error": self.error,
            "bad": self.bad,
            "packages": format_rpm_qa(self.packages),
        }

    @classmethod
    def from_json(cls, d: Any) -> "Optional[RpmRead]":
        if not isinstance(d, dict) or d.get("status") not in (
            "ok",
            "error",
            "timeout",
            "unavailable",
        ):
            return None
        via = str(d["via"]) if d.get("via") in ("sqlite3", "rpm -qa") else "snapshot"
        lines = d.get("packages")
        text = "\n".join(x for x in lines if isinstance(x, str)) if isinstance(lines, list) else ""
        bad = d.get("bad")
        return cls(
            status=str(d["status"]),
            via=via,
            packages=tuple(parse_rpm_qa(text, RPM_QA if via == "rpm -qa" else RPMDB_SQLITE)),
            error=str(d["error"]) if d.get("error") is not None else None,
            bad=bad if isinstance(bad, int) and not isinstance(bad, bool) else 0,
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

    def read_once(self, path: str) -> Optional[str]:
        """``read_opt`` without keeping the text for the rest of the run: for a file read once
        per instance (a domain's XML, 5-15 KB), which, kept for thousands of instances, would
        hold tens of MB. Same reads, errors and records (``collect``) as ``read_opt``."""
        try:
            return _decode(self._read_bytes(path, MAX_READ))
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

    def stat(self, path: str, follow: bool = True) -> Optional[FileStat]:
        """``stat`` (``follow``) or ``lstat`` of ``path``; None when it does not exist.
        Raises PermissionError (a directory on the way may not be searched) or OSError."""
        kind = "stat" if follow else "lstat"
        try:
            st: Optional[FileStat] = self._memo(kind, path, lambda: self._stat(path, follow))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return st

    def _stat(self, path: str, follow: bool) -> FileStat:
        """The backend's stat. Raises FileNotFoundError when the path does not exist, and
        OSError(ENODATA) where it is not known (a snapshot that did not record it)."""
        raise OSError(errno_mod.ENODATA, "not recorded", path)

    def refused_dir(self, path: str) -> bool:
        """True when this host is known, without trying, to refuse the directory ``path``:
        listing it, and reading anything under it, raise PermissionError (a snapshot
        directory's ``proc/<pid>/root`` link to ``/``, which leaves the snapshot). A caller
        with several reads there may then skip them, knowing their answer. False when that
        is not known at once (the live host: each read decides)."""
        return False

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
        return self.process_table(predicates).groups

    def process_table(self, predicates: Mapping[str, Callable[[ProcInfo], bool]]) -> ProcessTable:
        """One walk of the process table, sorted into groups (a process may be in several).

        Kernel threads (no command line) are not in it. Each process a predicate matched is
        completed with its status, ids and groups; one that vanished meanwhile or is a zombie
        (it runs no guest and no daemon) is dropped. Pids whose command line could not be read
        are listed in ``denied``.
        """
        groups: dict[str, list[ProcInfo]] = {k: [] for k in predicates}
        denied: list[int] = []
        for p, handle in self._walk_processes(denied):
            keys = [k for k, pred in predicates.items() if pred(p)]
            if not keys:
                continue
            full = self._process_details(p, handle)
            if full is None or full.status in ZOMBIE_STATES:
                continue
            for k in keys:
                groups[k].append(full)
        for v in groups.values():
            v.sort(key=lambda p: p.pid)
        return ProcessTable(groups, tuple(sorted(denied)))

    def _walk_processes(self, denied: list[int]) -> Iterator[tuple[ProcInfo, Any]]:
        """Every process with its ``comm``, argv and executable, read from ``/proc/<pid>/``
        through the host's paths, each with the handle ``_process_details`` reads it by."""
        return _walk_procs(
            self.listdir("/proc"), self._read_bytes, denied, self._was_denied, self._readlink_raw
        )

    def _was_denied(self, path: str) -> bool:
        """Whether reading ``path`` was refused to the user who made this host's record (a
        snapshot's ``denied`` list); the live host answers by trying."""
        return False

    def _process_details(self, p: ProcInfo, handle: Any) -> Optional[ProcInfo]:
        """``p`` completed from its ``/proc/<pid>/status`` (``handle``: the read function of
        the walk); ``p`` as it is when there is none (an older snapshot) or it is denied."""
        age = self._process_age(p.pid)
        try:
            text = _decode(handle(f"/proc/{p.pid}/status", 65536))
        except OSError:
            return p._replace(age=age)
        st = parse_status(text)
        # one new record, built directly (_replace is a Python-level rebuild of every field):
        # this runs for every process matched
        return ProcInfo(
            pid=p.pid,
            comm=p.comm,
            argv=p.argv,
            uids=st.uids,
            gids=st.gids,
            groups=st.groups,
            status=st.status,
            exe=p.exe,
            exe_denied=p.exe_denied,
            age=age,
        )

    def _process_age(self, pid: int) -> Optional[float]:
        """Seconds since ``pid`` started, as the walk saw it (:attr:`ProcInfo.age`); None
        where not known."""
        return None

    def mount_namespace(self, pid: Optional[int]) -> Optional[str]:
        """The mount namespace of process ``pid`` (hvcheck's own for None): the target of
        ``/proc/<pid>/ns/mnt`` (``/proc/self/ns/mnt``), e.g. ``"mnt:[4026531841]"``
        (namespaces(7): two processes share a namespace exactly when these are equal).

        None when it cannot be told: the link is refused (another user's process without
        CAP_SYS_PTRACE: ptrace access mode PTRACE_MODE_READ_FSCREDS), the process is gone, or
        a snapshot did not record it. The generic host has no namespaces to read."""
        return None

    def exe_record(self, p: ProcInfo) -> Optional[ExeRecord]:
        """The file ``p`` runs, the file now at its path and when ``p`` started; None where
        nothing was recorded (a snapshot made before ``collect`` recorded them). The live
        host ``stat``s; a snapshot replays the marker's ``binaries``."""
        return None

    def open_proc(self, pid: int) -> "ProcView":
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

    def udev_view(self, path: str, dev: DeviceInfo) -> Optional[dict[str, Any]]:
        """udev's record of the node at ``path`` (``DeviceInfo.udev``'s shape: initialized,
        properties, tags); None when udev knows nothing of it. A snapshot replays what
        ``collect`` recorded in ``dev``; the live host asks pyudev (``LiveHost.udev_view``)."""
        return dev.udev

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

    def stat_recorded(self) -> bool:
        """Whether :meth:`stat` can answer at all: True on the live host; for a snapshot,
        whether its marker has a ``stat``/``lstat`` table (a snapshot made before ``collect``
        recorded them, or assembled by hand, has none: files a process names are then read
        as the snapshot holds them, as they were before issue 14's rules)."""
        return True

    def taken_at(self) -> Optional[float]:
        """When this host's evidence was read, in seconds since the epoch, where that is not
        now: a snapshot's ``taken_at``. None on the live host (the run reads it now)."""
        return None

    # ---- live-only probes of outside services (snapshots replay what collect recorded) ----
    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        """libvirt's capabilities within ``timeout`` s; None where none can be had."""
        return None

    def nova_hypervisors(self, query: "NovaQuery") -> "Optional[NovaAnswer]":
        """Nova's record(s) of this hypervisor; None where none can be had."""
        return None

    # ---- package databases (hvcheck.host.rpmdb; snapshots replay collect's record) ------
    def rpm_sqlite(self, path: str) -> Optional[RpmRead]:
        """The packages of the ``rpmdb.sqlite`` at ``path``; None when there is none.

        This generic form reads the file through the host's reads (at most
        ``MAX_RPMDB_BYTES``) and opens a private temporary copy read-only
        (:func:`hvcheck.host.rpmdb.read_rpmdb_bytes`): what a snapshot that holds the file
        itself does. The live host opens the file in place, read-only.
        """

        def read() -> Optional[RpmRead]:
            try:
                data = self._read_bytes(path, MAX_RPMDB_BYTES + 1)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as e:
                return RpmRead("error", "sqlite3", error=f"{path}: {e.strerror or e}")
            if len(data) > MAX_RPMDB_BYTES:
                return RpmRead(
                    "error",
                    "sqlite3",
                    error=f"{path}: larger than {MAX_RPMDB_BYTES // 2**20} MiB, not read",
                )
            # sqlite3, tempfile and the header parser: only for a host that has the file
            from hvcheck.host.rpmdb import read_rpmdb_bytes

            return read_rpmdb_bytes(data, path)

        result: Optional[RpmRead] = self._memo("rpmdb", path, read)
        return result

    def rpm_query(self, dbpath: str, timeout: float) -> Optional[RpmRead]:
        """``rpm -qa`` of the RPM database in the directory ``dbpath`` (Berkeley DB
        ``Packages``, ndb ``Packages.db``, or an ``rpmdb.sqlite`` that could not be read as a
        file), within ``timeout`` s; None where there is none or it cannot be asked (only the
        live host runs rpm; snapshots replay collect's record)."""
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
    names: Iterable[str],
    read: Callable[[str, int], bytes],
    denied: list[int],
    was_denied: Callable[[str], bool],
    readlink: Callable[[str], Optional[str]],
) -> Iterator[tuple[ProcInfo, Callable[[str, int], bytes]]]:
    """``/proc/<pid>/{cmdline,comm}`` and the ``exe`` link of each pid in ``names`` (a
    snapshot's, or any path host's). A pid whose cmdline ``was_denied`` (to the collecting
    user) goes to ``denied``; one that cannot be read for another reason (a link out of a
    snapshot) is read as empty; ``readlink`` gives None for a link it cannot read."""
    for name in names:
        if not (name.isascii() and name.isdigit()):
            continue
        pid = int(name)
        if was_denied(f"/proc/{pid}/cmdline"):
            denied.append(pid)
            continue
        try:
            raw = read(f"/proc/{pid}/cmdline", MAX_READ)
        except OSError:
            raw = b""
        try:
            comm = _decode(read(f"/proc/{pid}/comm", 4096)).rstrip("\n")
        except OSError:
            comm = ""
        # decoded whole, then split: a NUL is never inside a UTF-8 sequence, so this is the
        # per-argument decoding, in one call
        text = _decode(raw)
        # interned: the QEMU processes of a node share most of their arguments (-machine,
        # -cpu, -device ...), and one copy of each serves them all (5,000 instances: ~10 MB)
        parts = text.split("\0")
        parts = parts[:-1] if text.endswith("\0") else [a for a in parts if a]
        argv = tuple(map(sys.intern, parts))
        if not argv and not comm:
            continue
        # what runs, whatever argv[0] says (exec -a): proc(5) /proc/PID/exe
        exe = readlink(f"/proc/{pid}/exe")
        denied_exe = exe is None and was_denied(f"/proc/{pid}/exe")
        yield ProcInfo(pid=pid, comm=comm, argv=argv, exe=exe, exe_denied=denied_exe), read


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

    def __enter__(self) -> "ProcView":
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


def os_info_from_distro(dist: Any) -> OsInfo:
    """The answer of a ``distro.LinuxDistribution`` (distro's id normalisation and its
    os-release / ``/etc/*-release`` precedence), as an :class:`OsInfo`.

    Raises ValueError naming the cause when distro cannot parse the files (its shell lexer
    on an unbalanced quote in os-release)."""
    try:
        return OsInfo(
            id=str(dist.id() or ""),
            like=str(dist.like() or ""),
            name=str(dist.name(pretty=True) or ""),
            version=str(dist.version() or ""),
            codename=str(dist.codename() or ""),
        )
    except ValueError as e:
        raise ValueError(f"os-release cannot be parsed (distro: {e})") from None
