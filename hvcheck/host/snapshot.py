"""Snapshots made by ``hvcheck collect``: a directory or a ``.tar.gz`` mirroring ``/``.

``SnapshotHost`` never touches the live system: it spawns nothing, makes no ioctl, follows no
symlink out of the snapshot, and caps every read. Reads ``hvcheck-snapshot.json`` (the
marker: devices, probes, denied paths) and the snapshot's copies of the host's files.
"""

from __future__ import annotations

import errno as errno_mod
import json
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from hvcheck.host.base import (
    MARKER,
    MAX_READ,
    MAX_SNAPSHOT_TOTAL,
    CapsResult,
    DeviceInfo,
    FileStat,
    Host,
    KernelLog,
    MsrResult,
    OsInfo,
    ProbeResult,
    ProcInfo,
    ProcView,
    SnapshotError,
    Uname,
    _by_number,
    _walk_procs,
    acl_from_json,
    os_info_from_distro,
    udev_from_json,
)
from hvcheck.host.procdir import _O_DIR, _FdProcView, _read_at

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery


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

    def _was_denied(self, path: str) -> bool:
        return path in self._denied_paths

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

    def _stat(self, path: str, follow: bool) -> FileStat:
        """The marker's ``stat``/``lstat`` record of ``path`` (what ``collect`` asked): a
        record, or null when it did not exist then; OSError(ENODATA) when not recorded."""
        self._denied(path)
        table = self.marker.get("stat" if follow else "lstat")
        if isinstance(table, dict) and path in table:
            rec = table[path]
            if rec is None:
                raise FileNotFoundError(errno_mod.ENOENT, "did not exist (when collected)", path)
            st = FileStat.from_json(rec)
            if st is not None:
                return st
            raise OSError(errno_mod.ENODATA, "unusable stat record in the snapshot", path)
        raise OSError(errno_mod.ENODATA, "stat not recorded in the snapshot", path)

    def _process_age(self, pid: int) -> Optional[float]:
        ages = self.marker.get("process_ages")
        v = ages.get(str(pid)) if isinstance(ages, dict) else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
            return float(v)
        return None

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

    def _walk_processes(self, denied: list[int]) -> Iterator[tuple[ProcInfo, Any]]:
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
            yield from super()._walk_processes(denied)
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

        def readlink(path: str) -> Optional[str]:
            _, _, pid, name = path.split("/", 3)
            if pid in plain and path not in self._denied_paths:
                try:
                    return os.readlink(f"{pid}/{name}", dir_fd=dfd)  # never follows the link
                except OSError:
                    return None
            return self._readlink_raw(path)

        try:
            yield from _walk_procs(
                _by_number(n for n, _ in entries), read, denied, self._was_denied, readlink
            )
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
                acl=acl_from_json(d.get("acl")),
                udev=udev_from_json(d.get("udev")),
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
        """distro's answer (``LinuxDistribution(root_dir=...)``) from a private copy of the
        snapshot's release files (``etc/os-release``, ``usr/lib/os-release``,
        ``etc/*-release``, ``etc/*_version``).

        distro with ``root_dir`` never runs lsb_release/uname; the copy, read through the
        snapshot's confined reads, keeps it from following a release-file symlink out of the
        snapshot and serves a ``.tar.gz`` as well as a directory.
        """
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
            return os_info_from_distro(
                distro.LinuxDistribution(root_dir=tmp, include_lsb=False, include_uname=False)
            )


def open_host(root: Optional[str]) -> Host:
    """The live host (``root`` None) or the snapshot at ``root``; SnapshotError if unusable."""
    if root is None:
        from hvcheck.host.live import LiveHost

        return LiveHost()
    return SnapshotHost(root)
