"""One process's ``/proc/<pid>`` read relative to an open directory fd (live and snapshot
directories): ``openat`` per file, every name ``O_NOFOLLOW``.

Reads ``/proc/<pid>/{cmdline,comm,stat,status,root,fd/*,task/*/comm}`` (live) or the same
names under a snapshot directory's ``proc/``.
"""

from __future__ import annotations

import errno as errno_mod
import os
import stat
from typing import Optional

from hvcheck.host.base import MAX_READ, Host, ProcessGone, ProcView, _decode

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_S_ISREG = stat.S_ISREG


def _fd_path(d: int) -> str:
    return f"/proc/self/fd/{d}"


# Whether /proc/self/fd/<fd> reopens the directory an fd is open on: None until a listing has
# checked it (once per run: /proc may be no procfs at all, in a chroot or a sandbox).
_proc_fd_reopens: Optional[bool] = None


def _reopen_path(d: int) -> Optional[str]:
    """The ``/proc/self/fd/<d>`` path of the open directory ``d``, when that path names the
    very directory ``d`` is open on (proc(5): the link reopens what the fd refers to), else
    None. The first answer that can be had is kept: a /proc that is not this process's procfs
    (an empty tmpfs, a directory tree of its own) would list another directory, or none."""
    global _proc_fd_reopens
    path = _fd_path(d)
    if _proc_fd_reopens is None:
        try:
            via, own = os.stat(path), os.fstat(d)
        except OSError:
            return None  # no /proc, or d's directory gone meanwhile: asked again next time
        _proc_fd_reopens = (via.st_dev, via.st_ino) == (own.st_dev, own.st_ino)
    return path if _proc_fd_reopens else None


def _listdir_fd(d: int) -> list[str]:
    """The names in the open directory ``d``, listed through its ``/proc/self/fd/<d>`` link
    (:func:`_reopen_path`): 5 syscalls, where ``os.listdir(d)`` takes 8 (CPython dups the fd,
    and glibc's fdopendir checks and rewinds it). Each QEMU process's ``fd`` and ``task`` are
    listed so, a thousand times in a large snapshot. Where the link cannot be used, or fails
    (a process reaped meanwhile: ESRCH, where the fd's listing ends empty), the fd itself
    lists, and raises what it raises."""
    path = _reopen_path(d)
    if path is not None:
        try:
            return os.listdir(path)
        except OSError:
            pass
    return os.listdir(d)


def _entries_fd(d: int) -> list[tuple[str, bool]]:
    """Each name in the open directory ``d`` and whether it is a directory itself (not
    following links; the type ``getdents`` gives, no stat), listed as :func:`_listdir_fd`
    lists."""
    path = _reopen_path(d)
    if path is not None:
        try:
            with os.scandir(path) as it:
                return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        except OSError:
            pass
    with os.scandir(d) as it:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]


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
    if not check_regular:  # live /proc/PID
        fd = os.open(name, _O_FILE, dir_fd=dir_fd)
        try:
            return _read_all(fd, limit, short_is_eof=True)
        finally:
            os.close(fd)
    # looked at before it is opened: opening a device node planted in a snapshot (a watchdog,
    # a tape) is already an action; a link is refused as by O_NOFOLLOW (ELOOP)
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not _S_ISREG(st.st_mode):
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno_mod.ELOOP, "Too many levels of symbolic links", shown)
        raise OSError(errno_mod.EINVAL, "not a regular file in the snapshot", shown)
    want = st.st_size + 1
    if want > limit:
        want = limit
    fd = os.open(name, _O_FILE, dir_fd=dir_fd)
    try:
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
        """Where each fd/N points, in the directory's order (what reads them counts them and
        looks for KVM's among them: their order says nothing)."""
        d = self._open_dir("fd")
        if d is None:
            return super().fd_targets()
        try:
            names = _listdir_fd(d)
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
                tids = [(t, True) for t in _listdir_fd(d)]
            else:
                tids = _entries_fd(d)
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
