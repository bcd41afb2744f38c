"""Snapshots made by ``hvcheck collect``: a directory or a ``.tar.gz`` mirroring ``/``.

``SnapshotHost`` never touches the live system: it spawns nothing, makes no ioctl, follows no
symlink out of the snapshot, and caps every read. Reads ``hvcheck-snapshot.json`` (the
marker: devices, probes, denied paths, mount namespaces, the binaries of processes) and the
snapshot's copies of the host's files.

Opening a snapshot happens before the run's deadline starts, so everything it does is bounded
up front: a ``.tar.gz`` may hold at most ``MAX_MEMBERS`` members and unpack to at most
``MAX_UNPACKED`` bytes (counted on the decompressed stream itself, headers included, before a
member's data is read: a gzip bomb or a huge pax header stops there); the marker is at most
``MAX_MARKER`` bytes and ``MAX_MARKER_DEPTH`` levels of JSON nesting, checked before it is
parsed. A marker value of the wrong type is never read as "absent" when absence would be a
verdict (a device that is not there, a probe that failed): the snapshot host raises a
``PermissionError`` naming the value, and the engine makes what depends on it UNKNOWN.
"""

from __future__ import annotations

import errno as errno_mod
import json
import math
import os
import re
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
    ExeRecord,
    FileStat,
    Host,
    KernelLog,
    MsrResult,
    OsInfo,
    ProbeResult,
    ProcInfo,
    ProcView,
    RpmRead,
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

# A collected snapshot of a host with 1,000 instances holds ~70,000 members (per process:
# cmdline, comm, status, fd links, task comms) and a few MiB; the bounds leave room for
# ten times that and stop a crafted tarball within seconds.
MAX_MEMBERS = 500_000
MAX_UNPACKED = MAX_SNAPSHOT_TOTAL + 512 * MAX_MEMBERS  # file data plus one header each
MAX_MARKER = 1024 * 1024
MAX_MARKER_DEPTH = 32  # collect writes 8 at most (probes.nova_api.records[].…)


class _BoundedStream:
    """The decompressed tar stream, refusing to give more than ``limit`` bytes in all: a read
    that would pass the bound raises SnapshotError before anything is decompressed for it."""

    def __init__(self, raw: Any, limit: int, label: str) -> None:
        self.raw = raw
        self.limit = limit
        self.count = 0
        self.label = label

    def read(self, n: int = -1) -> bytes:
        room = self.limit - self.count
        if n is None or n < 0 or n > room + 1:
            n = room + 1  # one byte past the bound tells a stream that goes on
        data: bytes = self.raw.read(n)
        self.count += len(data)
        if self.count > self.limit:
            raise SnapshotError(
                f"{self.label}: unpacks to more than {self.limit // 2**20} MiB; refused"
            )
        return data


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def json_depth(text: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in a JSON text (brackets inside strings not
    counted), found without parsing it: Python's json recurses once per level. (An
    unterminated string is left in and its brackets counted: json refuses it anyway.)"""
    depth = deepest = 0
    for c in _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKET):
        if c in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def _refuse(what: str, path: str) -> PermissionError:
    """What a wrong-typed marker value is: a refusal naming it (the engine turns a
    PermissionError whose reason mentions the snapshot into an UNKNOWN with a hint)."""
    return PermissionError(
        errno_mod.EINVAL, f"the snapshot marker's {what} has the wrong type; not used", path
    )


_OCTAL_MODE = re.compile(r"0?[0-7]{3,4}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt(v: Any, kind: type) -> bool:
    return v is None or (isinstance(v, kind) and not isinstance(v, bool))


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
    """A snapshot directory. Every path is resolved one component at a time, inside the
    snapshot: a symlink's target is followed from the directory it is in (an absolute target
    only when it names a place inside the snapshot by its full path), and the walk stops as
    soon as a component would leave the snapshot's root — nothing outside it is ever looked
    at, let alone read. Resolved directories are cached (``_dirs``); the few refused ones
    apart (``_out``), so that a snapshot's thousands of ``proc/<pid>/root`` links to ``/``
    neither cost a walk each time nor evict the resolved ones."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._dirs: dict[str, str] = {self.root: self.root}  # lexical dir -> resolved dir
        self._out: set[str] = set()  # lexical dirs that resolve outside the snapshot

    def _within(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def _real_dir(self, d: str) -> Optional[str]:
        """Resolve a directory under the root one component at a time (cached): a new
        directory costs one readlink, not a walk of the whole path. None when it resolves
        outside the snapshot. A loop, not a recursion: a path named in a snapshot's own
        content (a ``--config-file``) may have thousands of components."""
        dirs = self._dirs
        hit = dirs.get(d)
        if hit is not None:
            return hit
        # the walk up runs for every path not yet resolved (each instance's /proc/PID/root
        # paths): locals, and one slice per step
        out, under = self._out, self.root + "/"
        pending: list[str] = []  # the lexical directories to resolve, deepest first
        cur = d
        while True:
            if cur in out:
                return None
            known = dirs.get(cur)
            if known is not None:
                break
            if not cur.startswith(under):
                return None  # not under the root (never asked: paths are root + "/" + rel)
            pending.append(cur)
            cur = cur[: cur.rfind("/")]
        real = known
        for cur in reversed(pending):
            step = self._follow(real, cur[cur.rfind("/") + 1 :], [0])
            if step is None:
                if len(self._out) > 256:
                    self._out.clear()
                self._out.add(cur)
                return None
            if len(self._dirs) > 4096:
                # processes are read one after the other: a small cache serves as well as a
                # whole snapshot's worth of /proc/PID/task/TID entries, at a fraction of the
                # memory
                self._dirs = {self.root: self.root}
            self._dirs[cur] = step
            real = step
        return real

    def refused_dir(self, rel: str) -> bool:
        """Whether ``rel``, as a directory, resolves outside the snapshot: then listing it and
        reading anything under it are refused (every such path resolves its directories
        through this one, ``_real_dir``). False when it resolves inside, cannot be resolved
        (a link loop: the reads themselves say so), or is not a normal path."""
        n = _norm(rel)
        if not n:
            return False
        try:
            return self._real_dir(self.root + "/" + n) is None
        except OSError:
            return False

    def plain_dir(self, rel: str, real: str) -> None:
        """Record that ``rel`` (a normal relative path) resolves to the directory ``real``,
        as the caller proved by opening it ``O_DIRECTORY|O_NOFOLLOW`` under its resolved
        parent: the readlink a later path through it would cost is spared."""
        if len(self._dirs) > 4096:
            self._dirs = {self.root: self.root}
        self._dirs[self.root + "/" + rel] = real

    def _follow(self, real: str, rel: str, hops: list[int]) -> Optional[str]:
        """``rel`` resolved from ``real`` (a resolved directory inside the snapshot) as the
        kernel would, symlinks followed, but never out of the snapshot: None as soon as a
        component leaves it (``..`` above the root, a link to a path outside). A component
        that does not exist is kept as named (``os.path.realpath``'s rule); more than 40
        links (the kernel's MAXSYMLINKS) raise ELOOP. ``hops``: links followed so far."""
        for part in rel.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if real == self.root:
                    return None
                real = real.rsplit("/", 1)[0]
                continue
            cand = real + "/" + part
            known = self._dirs.get(cand)
            if known is not None:
                real = known
                continue
            try:
                # one syscall tells a link (its target) from anything else (EINVAL) or
                # nothing (ENOENT): an lstat first would only cost a second one for a link
                target = os.readlink(cand)
            except OSError:
                real = cand
                continue
            hops[0] += 1
            if hops[0] > 40:
                raise OSError(errno_mod.ELOOP, "Too many levels of symbolic links", cand)
            if target.startswith("/"):
                # the collected host's path: inside the snapshot only when it names the
                # snapshot's own directory (never resolved from the host's "/")
                if not (target == self.root or target.startswith(self.root + "/")):
                    return None
                step = self._follow(self.root, target[len(self.root) :], hops)
            else:
                step = self._follow(real, target, hops)
            if step is None:
                return None
            real = step
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
        real: Optional[str] = None
        if parent is not None:
            real = parent + "/" + base
            if follow_last:
                real = self._follow(parent, base, [0])
        if parent is None or real is None or not (self._within(parent) and self._within(real)):
            # a symlink pointing outside the snapshot: never followed for content
            raise PermissionError(
                errno_mod.EACCES, "symlink leaves the snapshot; not followed", "/" + n
            )
        return real

    def read(self, rel: str, limit: int) -> bytes:
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
        # The directory is resolved and checked; the last component is looked at (lstat)
        # before it is opened, O_NOFOLLOW: a link takes the slow path, and anything but a
        # regular file is refused unopened (opening a device node planted in a snapshot, a
        # watchdog or a tape, is already an action).
        path = self._inside(rel, follow_last=False)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            path = self._inside(rel, follow_last=True)
            st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno_mod.EINVAL, "not a regular file in the snapshot", "/" + rel)
        fd = os.open(path, flags)
        try:
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

    def exists(self, rel: str) -> bool:
        try:
            return os.path.lexists(self._inside(rel, follow_last=False))
        except OSError:  # refused, or a link loop on the way
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
        total = 0  # file data kept
        declared = 0  # file data the headers announce (skipped data is unpacked too)
        members = 0
        try:
            import gzip
            import tarfile

            with gzip.open(path, "rb") as gz:
                stream = _BoundedStream(gz, MAX_UNPACKED, path)
                with tarfile.open(fileobj=stream, mode="r|") as tf:  # type: ignore[call-overload]
                    for m in tf:
                        members += 1
                        if members > MAX_MEMBERS:
                            raise SnapshotError(f"{path}: more than {MAX_MEMBERS} members; refused")
                        declared += max(0, m.size)
                        if declared > MAX_SNAPSHOT_TOTAL:
                            raise SnapshotError(
                                f"{path}: snapshot larger than {MAX_SNAPSHOT_TOTAL // 2**20} MiB"
                            )
                        total += self._member(tf, m, path, total)
        except SnapshotError:
            raise
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            raise SnapshotError(f"{path}: not a readable .tar.gz snapshot ({e})") from e

    def _member(self, tf: Any, m: Any, path: str, total: int) -> int:
        """Keep member ``m`` as a node; the bytes of file data kept."""
        rel = _norm(m.name)
        if rel is None or rel == "":
            return 0
        if m.isreg():
            f = tf.extractfile(m)
            data = f.read(min(MAX_READ, MAX_SNAPSHOT_TOTAL - total) + 1) if f else b""
            truncated = len(data) > MAX_READ
            data = data[:MAX_READ]
            if total + len(data) >= MAX_SNAPSHOT_TOTAL:
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
        return len(node.data) if node.kind == "file" else 0

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
            raw = self._tree.read(MARKER, MAX_MARKER + 1)
        except OSError as e:
            raise SnapshotError(
                f"{path}: not an hvcheck snapshot (no {MARKER} marker at its top)"
            ) from e
        if len(raw) > MAX_MARKER:
            raise SnapshotError(f"{path}: {MARKER} is larger than {MAX_MARKER // 1024} KiB")
        if json_depth(raw) > MAX_MARKER_DEPTH:
            raise SnapshotError(
                f"{path}: {MARKER} nests deeper than {MAX_MARKER_DEPTH} levels; refused"
            )
        try:
            marker = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise SnapshotError(f"{path}: {MARKER} is not valid JSON ({e})") from e
        fmt = marker.get("format") if isinstance(marker, dict) else None
        if not (_is_int(fmt) and fmt == 1):
            raise SnapshotError(f'{path}: {MARKER} must be a JSON object with "format": 1')
        self.marker: dict[str, Any] = marker
        # which reads the collecting user was denied shapes every read: a wrong type here
        # leaves nothing that could be trusted
        denied = marker.get("denied", [])
        if not (isinstance(denied, list) and all(isinstance(d, str) for d in denied)):
            raise SnapshotError(f'{path}: {MARKER}: "denied" must be a list of paths')
        self._denied_paths = frozenset(denied)
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
        record, or null when it did not exist then; OSError(ENODATA) when not recorded (an
        older snapshot). A table or record of the wrong type raises PermissionError: what
        depends on it is then UNKNOWN, never judged from a guess (the marker's bounds rule)."""
        self._denied(path)
        kind = "stat" if follow else "lstat"
        table = self.marker.get(kind)
        if table is None:
            raise OSError(errno_mod.ENODATA, "stat not recorded in the snapshot", path)
        if not isinstance(table, dict):
            raise _refuse(f'"{kind}"', path)
        if path not in table:
            raise OSError(errno_mod.ENODATA, "stat not recorded in the snapshot", path)
        rec = table[path]
        if rec is None:
            raise FileNotFoundError(errno_mod.ENOENT, "did not exist (when collected)", path)
        st = FileStat.from_json(rec)
        if st is None:
            raise _refuse(f'"{kind}" record of {path}', path)
        return st

    def stat_recorded(self) -> bool:
        return "stat" in self.marker or "lstat" in self.marker

    def refused_dir(self, path: str) -> bool:
        """A snapshot directory answers from its resolution of ``path`` (``_DirTree``); a
        ``.tar.gz`` does not say at once."""
        tree = self._tree
        return isinstance(tree, _DirTree) and tree.refused_dir(self._rel(path))

    def _process_age(self, pid: int) -> Optional[float]:
        """The marker's ``process_ages.<pid>`` (seconds); None when not recorded. A table or
        value of the wrong type raises PermissionError: whether a QEMU is still starting
        cannot then be told, and what depends on the process table is UNKNOWN."""
        ages = self.marker.get("process_ages")
        if ages is None:
            return None
        if not isinstance(ages, dict):
            raise _refuse('"process_ages"', f"/proc/{pid}/stat")
        v = ages.get(str(pid))
        if v is None:
            return None
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < math.inf):
            raise _refuse(f'"process_ages" value of pid {pid}', f"/proc/{pid}/stat")
        return float(v)

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

    def mount_namespace(self, pid: Optional[int]) -> Optional[str]:
        """What ``collect`` recorded in the marker's ``mount_ns``: ``"self"`` (its own) and
        ``"processes"`` (``{"<pid>": "mnt:[...]"}``); None where nothing (of the right type)
        was recorded."""
        ns = self.marker.get("mount_ns")
        if not isinstance(ns, dict):
            return None
        if pid is None:
            v = ns.get("self")
        else:
            procs = ns.get("processes")
            v = procs.get(str(pid)) if isinstance(procs, dict) else None
        return v if isinstance(v, str) and v else None

    def open_proc(self, pid: int) -> ProcView:
        proc = self._proc_path()
        if proc:
            real = f"{proc}/{pid}"
            try:
                fd = os.open(real, _O_DIR)
            except OSError:
                return ProcView(self, pid)  # missing, or a link: the generic path decides
            # a directory, not a link (O_NOFOLLOW): what resolving proc/<pid> would find
            # (paths under /proc/<pid>/root, read next, go through it)
            assert isinstance(self._tree, _DirTree)  # _proc_path() is "" otherwise
            self._tree.plain_dir(f"proc/{pid}", real)
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
        """The marker's ``devices[path]``; None when the marker records no such device (it
        was absent on the host). A record of the wrong shape raises PermissionError: "absent"
        would be a verdict (no /dev/kvm), "cannot tell" is the truth. ``acl`` and ``udev`` of
        the wrong type read as absent (docs/SNAPSHOT.md)."""
        devices = self.marker.get("devices")
        if devices is None:
            return None
        if not isinstance(devices, dict):
            raise _refuse('"devices"', path)
        d = devices.get(path)
        if d is None:
            return None
        if not (
            isinstance(d, dict)
            and isinstance(d.get("type", "char"), str)
            and all(_is_int(d.get(k, 0)) and d.get(k, 0) >= 0 for k in ("major", "minor"))
            and all(_is_int(d.get(k, 0)) for k in ("uid", "gid"))
            and isinstance(d.get("mode", "0000"), str)
            and _OCTAL_MODE.fullmatch(d.get("mode", "0000"))
            and _opt(d.get("owner"), str)
            and _opt(d.get("group"), str)
        ):
            raise _refuse(f'"devices" record of {path}', path)
        return DeviceInfo(
            type=d.get("type", "char"),
            major=d.get("major", 0),
            minor=d.get("minor", 0),
            mode=d.get("mode", "0000"),
            uid=d.get("uid", 0),
            gid=d.get("gid", 0),
            owner=d.get("owner"),
            group=d.get("group"),
            acl=acl_from_json(d.get("acl")),
            udev=udev_from_json(d.get("udev")),
        )

    def exe_record(self, p: ProcInfo) -> Optional[ExeRecord]:
        """The marker's ``binaries.<pid>`` (what ``collect`` stat'ed); None when absent."""
        recs = self.marker.get("binaries")
        return ExeRecord.from_json(recs.get(str(p.pid))) if isinstance(recs, dict) else None

    def _probes(self) -> dict[str, Any]:
        p = self.marker.get("probes")
        if p is None:
            return {}
        if not isinstance(p, dict):
            raise _refuse('"probes"', MARKER)
        return p

    def probe_kvm(self) -> Optional[ProbeResult]:
        """The recorded functional probe (``probes.kvm``); None when none was recorded. A
        record of the wrong shape raises PermissionError (a failed probe is a verdict)."""
        v = self._probes().get("kvm")
        if v is None:
            return None
        r = ProbeResult.from_json(v)
        if (
            r is None
            or not all(_opt(v.get(k), str) for k in ("stage", "errno", "error"))
            or not all(_opt(v.get(k), int) for k in ("api_version", "uid"))
            or (v.get("guest") is not None and r.guest is None)
        ):
            raise _refuse('"probes.kvm" record', "/dev/kvm")
        return r

    def read_msr(self, cpu: int, register: int) -> Optional[MsrResult]:
        msrs = self._probes().get("msr")
        if msrs is None:
            return None
        path = f"/dev/cpu/{cpu}/msr"
        if not isinstance(msrs, dict):
            raise _refuse('"probes.msr"', path)
        v = msrs.get(f"{cpu}:{register:#x}")
        if _is_int(v):
            return MsrResult(v)
        if isinstance(v, str):
            return MsrResult(None, v)
        if v is None:
            return None
        raise _refuse(f'"probes.msr" value of {cpu}:{register:#x}', path)

    def kernel_log(self) -> KernelLog:
        try:
            text = self.read_text("/dev/kmsg")
        except FileNotFoundError:
            try:
                err = self._probes().get("kmsg_error")
            except PermissionError as e:
                err = e.strerror
            return KernelLog(
                (), "snapshot dev/kmsg", str(err) if err else "no kernel log in the snapshot"
            )
        except OSError as e:
            return KernelLog((), "snapshot dev/kmsg", str(e))
        return KernelLog(tuple(text.splitlines()), "snapshot dev/kmsg")

    # A libvirt or Nova API record of the wrong shape reads as absent: those checks are then
    # SKIPped ("not recorded"), which is no verdict on the host.
    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        return CapsResult.from_json(self._probes().get("libvirt_caps"))

    def nova_hypervisors(self, query: NovaQuery) -> Optional[NovaAnswer]:
        from hvcheck.novaquery import NovaAnswer

        return NovaAnswer.from_json(self._probes().get("nova_api"))

    def _rpm_record(self, path: str) -> Optional[RpmRead]:
        rec = self._probes().get("rpm")
        return RpmRead.from_json(rec.get(path)) if isinstance(rec, dict) else None

    def rpm_sqlite(self, path: str) -> Optional[RpmRead]:
        """What ``collect`` recorded of the database (``probes.rpm``), else the file itself
        when the snapshot holds one (read from a private temporary copy)."""
        return self._rpm_record(path) or super().rpm_sqlite(path)

    def rpm_query(self, dbpath: str, timeout: float) -> Optional[RpmRead]:
        """``collect``'s record of ``rpm -qa`` (``probes.rpm``); never runs rpm."""
        rec = self._rpm_record(dbpath)
        if rec is None and any(self.exists(f"{dbpath}/{n}") for n in ("Packages", "Packages.db")):
            return RpmRead(
                "unavailable",
                "rpm -qa",
                error=f"{dbpath} holds a Berkeley DB/ndb RPM database, which only `rpm -qa` on "
                "the live host reads; this snapshot has no record of it",
            )
        return rec

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

    def taken_at(self) -> Optional[float]:
        """The marker's ``taken_at`` (ISO 8601; ``collect`` writes ``2026-11-30T00:00:00Z``;
        a time without a zone is read as UTC); None when absent or not a time."""
        v = self.marker.get("taken_at")
        if not isinstance(v, str) or len(v) > 64:
            return None
        from datetime import datetime, timezone

        try:
            t = datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v)
        except ValueError:
            return None
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        return t.timestamp()

    def euid(self) -> int:
        v = self.marker.get("taken_as_uid", 0)
        if not _is_int(v):
            raise _refuse('"taken_as_uid"', MARKER)
        return int(v)

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
