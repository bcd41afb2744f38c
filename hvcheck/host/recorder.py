"""Recording for ``hvcheck collect``: a live host that remembers every answer it gave, and
writes it out as a ``.tar.gz`` snapshot (the layout of DESIGN.md), so a snapshot holds
exactly what the checks read — with the secrets of configuration files redacted
(``hvcheck.parsers.redact``; the marker's ``redacted`` names what was).

The snapshot is written the way a root process must write into a directory other users may
share (``write_exclusive``): the target must be a regular file or absent; the data goes to a
temporary file that ``tempfile.mkstemp`` creates in the target's directory with an
unpredictable name, ``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode 0600 (so a planted symlink or file is
never opened); the temporary file is renamed over the target only once complete, and removed
on any failure.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import stat
import threading
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

from hvcheck.host.base import (
    MARKER,
    CapsResult,
    DeviceInfo,
    ExeRecord,
    FileStat,
    MsrResult,
    OsInfo,
    ProcessTable,
    ProcInfo,
    ProcView,
    RpmRead,
)
from hvcheck.host.live import LiveHost
from hvcheck.parsers.procstatus import format_status
from hvcheck.parsers.redact import redact_file

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery

SNAPSHOT_MODE = 0o600  # the snapshot file: configuration files and process lists, root's only
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def redact_files(files: dict[str, bytes]) -> dict[str, list[str]]:
    """Replace, in place, each of ``files`` (host path -> content) by its redacted form
    (``hvcheck.parsers.redact.redact_file``: configuration files, domain XML, command lines);
    what was redacted, by path, for the marker's ``redacted`` key (names, never values)."""
    redacted: dict[str, list[str]] = {}
    for path in sorted(files):
        r = redact_file(path, files[path])
        if r.what:
            files[path] = r.data
            redacted[path] = list(r.what)
    return redacted


def check_target(out: str) -> None:
    """Raise OSError unless ``out`` can take a snapshot: absent, or a regular file (never
    followed if a symlink: ``lstat``), in an existing directory. ``-o /dev/null`` and
    ``-o DIR`` are refused here, before anything is written."""
    try:
        st: Optional[os.stat_result] = os.lstat(out)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EEXIST
        raise OSError(code, f"{kind}, not a regular file: refusing to replace it", out)
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise FileNotFoundError(errno.ENOENT, "no such directory", parent)


def write_exclusive(out: str, fill: Callable[[IO[bytes]], None]) -> None:
    """Write ``out`` through ``fill(file)``: a fresh temporary file in ``out``'s directory
    (``tempfile.mkstemp``: ``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0600, an unpredictable name),
    flushed to disk, then renamed over ``out``. Raises OSError (``check_target``'s refusals,
    the write's own errors); the temporary file never outlives a failure."""
    import tempfile

    check_target(out)
    parent = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(out)}.", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), SNAPSHOT_MODE)  # mkstemp's own mode; said, not assumed
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        check_target(out)  # what is there now: something swapped in meanwhile is not replaced
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        # stat/lstat answers by path (None: it did not exist), for the marker's stat/lstat
        self.stats: dict[str, dict[str, Optional[FileStat]]] = {"stat": {}, "lstat": {}}
        self.procs: dict[int, ProcInfo] = {}
        self.denied_procs: set[int] = set()  # pids whose command line was denied
        self.msrs: dict[str, Any] = {}
        self.libvirt_caps: Optional[CapsResult] = None
        self.nova_api: Optional[NovaAnswer] = None
        self.exes: dict[int, ExeRecord] = {}  # what each QEMU process runs (marker "binaries")
        self.rpm: dict[str, RpmRead] = {}  # RPM databases read (path -> packages), for the marker
        self.denied: set[str] = set()  # paths the collecting user could not read
        self.existing: set[str] = set()  # paths only tested for existence
        # mount namespaces asked for: pid (None: hvcheck itself) -> link text
        self.mount_ns: dict[Optional[int], str] = {}
        self.rec_lock = threading.Lock()
        self.redacted: dict[str, list[str]] = {}  # what write_snapshot redacted, by path

    def _read_bytes(self, path: str, limit: int) -> bytes:
        try:
            data = super()._read_bytes(path, limit)
        except PermissionError:
            with self.rec_lock:
                self.denied.add(path)
            raise
        kept = data
        if path.startswith("/proc/") and path.endswith("/environ"):
            from hvcheck.parsers.novaconf import environ_for_snapshot

            kept = environ_for_snapshot(data)  # only what oslo.config's environment source reads
        with self.rec_lock:
            self.files[path] = kept
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

    def _stat(self, path: str, follow: bool) -> FileStat:
        try:
            st = super()._stat(path, follow)
        except (FileNotFoundError, NotADirectoryError):
            with self.rec_lock:
                self.stats["stat" if follow else "lstat"][path] = None
            raise
        with self.rec_lock:
            self.stats["stat" if follow else "lstat"][path] = st
        return st

    def process_table(self, predicates: Mapping[str, Callable[[ProcInfo], bool]]) -> ProcessTable:
        table = super().process_table(predicates)
        with self.rec_lock:
            for found in table.groups.values():
                for p in found:
                    self.procs[p.pid] = p
            self.denied_procs.update(table.denied)
        return table

    def mount_namespace(self, pid: Optional[int]) -> Optional[str]:
        ns = super().mount_namespace(pid)
        if ns is not None:
            with self.rec_lock:
                self.mount_ns[pid] = ns
        return ns

    def open_proc(self, pid: int) -> ProcView:
        return ProcView(self, pid)  # path by path, so that every read is recorded

    def exe_record(self, p: ProcInfo) -> Optional[ExeRecord]:
        r = super().exe_record(p)
        if r is not None:
            with self.rec_lock:
                self.exes[p.pid] = r
        return r

    def stat_device(self, path: str) -> Optional[DeviceInfo]:
        d = super().stat_device(path)
        if d is not None:  # udev's view goes into the marker whether this run needed it or not
            d = d._replace(udev=self.udev_view(path, d))
            with self.rec_lock:
                self.devices[path] = d
        return d

    def os_info(self) -> OsInfo:
        # distro reads these itself; read them through the recorder too so --root sees them
        for p in [
            "/etc/os-release",
            "/usr/lib/os-release",
            *self.glob("/etc/*-release"),
            *self.glob("/etc/*_version"),
        ]:
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

    def rpm_sqlite(self, path: str) -> Optional[RpmRead]:
        r = super().rpm_sqlite(path)
        if r is not None:
            with self.rec_lock:
                self.rpm[path] = r
        return r

    def rpm_query(self, dbpath: str, timeout: float) -> Optional[RpmRead]:
        r = super().rpm_query(dbpath, timeout)
        if r is not None:
            with self.rec_lock:
                self.rpm[dbpath] = r
        return r

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
        if self.mount_ns:
            # which processes were in another mount namespace than hvcheck: their files were
            # read through /proc/<pid>/root (hvcheck.mountns); a replay must do the same
            ns: dict[str, Any] = {"processes": {}}
            for pid, link in sorted(self.mount_ns.items(), key=lambda kv: kv[0] or 0):
                if pid is None:
                    ns["self"] = link
                else:
                    ns["processes"][str(pid)] = link
            if "self" not in ns:
                own = super().mount_namespace(None)
                if own is not None:
                    ns["self"] = own
            marker["mount_ns"] = ns
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
        if self.exes:
            # stat of what each process runs and of the file now at its path: no plain file
            # can hold them (docs/SNAPSHOT.md "binaries")
            marker["binaries"] = {str(k): v.to_json() for k, v in sorted(self.exes.items())}
        if self.rpm:
            # the package list, not the database file (tens to hundreds of MiB of headers)
            marker["probes"]["rpm"] = {k: v.to_json() for k, v in sorted(self.rpm.items())}
        for kind, found in self.stats.items():
            if found:
                marker[kind] = {
                    k: (v.to_json() if v is not None else None) for k, v in sorted(found.items())
                }
        ages = {str(pid): p.age for pid, p in self.procs.items() if p.age is not None}
        if ages:
            marker["process_ages"] = ages
        # a process whose command line was denied: its directory, and the denial
        denied = self.denied | {f"/proc/{pid}/cmdline" for pid in self.denied_procs}
        # a process whose executable could not be read: the denial, as the live walk met it
        denied |= {f"/proc/{pid}/exe" for pid, p in self.procs.items() if p.exe_denied}
        if denied:
            marker["denied"] = sorted(denied)
        files = dict(self.files)
        if not kmsg.error:
            files["/dev/kmsg"] = ("\n".join(kmsg.lines) + "\n").encode()
        # what the live walk saw of each process it matched, in the kernel's formats (a file
        # the checks read themselves, e.g. a QEMU process's status, was recorded as read)
        for pid, p in self.procs.items():
            files.setdefault(
                f"/proc/{pid}/cmdline",
                b"".join(a.encode("utf-8", "replace") + b"\0" for a in p.argv),
            )
            files.setdefault(f"/proc/{pid}/comm", (p.comm + "\n").encode("utf-8", "replace"))
            if p.exe is not None:
                # the executable it was known by (" (deleted)" kept), as a link like procfs's
                self.links.setdefault(f"/proc/{pid}/exe", p.exe)
            if (p.status, p.uids, p.gids, p.groups) != (None, None, None, None):
                text = format_status(p.comm, p.status, p.uids, p.gids, p.groups)
                files.setdefault(f"/proc/{pid}/status", text.encode("utf-8", "replace"))
        redacted = redact_files(files)
        if redacted:
            marker["redacted"] = redacted
        files[f"/{MARKER}"] = (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode()
        self.redacted = redacted

        import tarfile

        def add_dir(tf: tarfile.TarFile, name: str) -> None:
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = 0o700
            tf.addfile(ti)

        # A listed directory's sub-directories are kept (empty) so that listings such as
        # /sys/module read the same from the snapshot; files are kept only when read.
        dirs = {d for d in self.dirs if d.lstrip("/")}
        dirs.update(f"/proc/{pid}" for pid in self.denied_procs)
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

        def fill(f: IO[bytes]) -> None:
            with tarfile.open(fileobj=f, mode="w:gz") as tf:
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
                    ti.mode = SNAPSHOT_MODE
                    tf.addfile(ti, io.BytesIO(data))

        write_exclusive(out, fill)
