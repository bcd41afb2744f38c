"""Recording for ``hvcheck collect``: a live host that remembers every answer it gave, and
writes it out as a ``.tar.gz`` snapshot (the layout of DESIGN.md), so a snapshot holds
exactly what the checks read.
"""

from __future__ import annotations

import json
import os
import posixpath
import stat
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Optional

from hvcheck.host.base import (
    MARKER,
    CapsResult,
    DeviceInfo,
    FileStat,
    MsrResult,
    OsInfo,
    ProcessTable,
    ProcInfo,
    ProcView,
)
from hvcheck.host.live import LiveHost
from hvcheck.parsers.procstatus import format_status

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery


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
