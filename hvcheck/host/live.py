"""The live host: the running system.

Reads files through ``os`` (``O_NONBLOCK``, regular files only); the process table through
psutil (``/proc/<pid>/{stat,cmdline,status}``), the ``Groups:`` line of
``/proc/<pid>/status`` and the ``/proc/<pid>/exe`` link itself (psutil has no supplementary
groups, and its ``exe()`` drops " (deleted)"), the ``/proc/<pid>/ns/mnt`` and
``/proc/self/ns/mnt`` links (mount namespaces), and each QEMU process's
``fd``/``task`` through :mod:`hvcheck.host.procdir` (psutil gives neither link targets nor
thread names); for a QEMU process's binary, ``os.stat`` of ``/proc/<pid>/exe`` and of the path
it names (``/proc/<pid>/root/<path>`` when ``/proc/<pid>/ns/mnt`` is not hvcheck's) and
psutil's start time; ``os.stat``, the ``system.posix_acl_access`` xattr and udev's record (pyudev:
``/sys/dev/char/M:m``, ``/run/udev/data``; asked only where ``/run/udev`` exists) of device
nodes; the KVM ioctl probe on ``/dev/kvm``; MSRs through ``/dev/cpu/N/msr``; the kernel log
through ``/dev/kmsg``; the OS through distro (``/etc/os-release``, ``/etc/*-release``).
psutil, pyudev and distro are imported only when first asked. The outside services
(libvirt, Nova) and ``rpm -qa`` are asked through :mod:`hvcheck.services`; an
``rpmdb.sqlite`` is read in place by :mod:`hvcheck.host.rpmdb`.
"""

from __future__ import annotations

import errno as errno_mod
import fcntl
import os
import stat
import struct
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from hvcheck.host.base import (
    MAX_READ,
    CapsResult,
    DeviceInfo,
    ExeRecord,
    FileStamp,
    FileStat,
    Host,
    KernelLog,
    MsrResult,
    OsInfo,
    ProbeResult,
    ProcessGone,
    ProcInfo,
    ProcView,
    RpmRead,
    Uname,
    _decode,
    _errno_name,
    file_type,
    os_info_from_distro,
)
from hvcheck.host.procdir import _O_DIR, _FdProcView, _read_all
from hvcheck.parsers.procstatus import parse_status

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery

# include/uapi/linux/kvm.h: KVMIO 0xAE;
# KVM_GET_API_VERSION _IO(KVMIO, 0x00); KVM_CREATE_VM _IO(KVMIO, 0x01)
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12  # stable since Linux 2.6.22 (include/uapi/linux/kvm.h)


# udev's runtime directory, which systemd-udevd creates when it starts and where it keeps its
# database (``data/c<major>:<minor>``: what libudev reads for "initialized", tags and udev's own
# properties; systemd src/libsystemd/sd-device/sd-device.c, device_read_db_internal); udev
# before 174 kept it in /dev/.udev. Neither there: udev does not run on this host.
UDEV_RUN_DIRS = ("/run/udev", "/dev/.udev")


class LiveHost(Host):
    live = True
    label = "live host"
    _udev_context: Any = None  # one pyudev.Context per host, made when first needed

    def _read_bytes(self, path: str, limit: int) -> bytes:
        # O_NONBLOCK: a FIFO planted where a config file should be must not hang the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno_mod.EINVAL, "not a regular file", path)
            chunks: list[bytes] = []
            size = 0
            # a regular file's size asks for it in one read (dpkg's status: 850 KB, not 14
            # reads and a copy to join them); /proc and sysfs files say 0 or 4096 whatever
            # they hold, so 64 KiB at a time, until a read finds the end
            want = max(st.st_size + 1, 65536)
            while size < limit:
                chunk = os.read(fd, min(want, limit - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                want = 65536
            return b"".join(chunks)  # a single chunk is returned as it is, not copied
        finally:
            os.close(fd)

    def _exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def _listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def _readlink(self, path: str) -> str:
        return os.readlink(path)

    def _stat(self, path: str, follow: bool) -> FileStat:
        """``os.stat``/``os.lstat``, and the node's POSIX ACL for files and directories."""
        st = os.stat(path) if follow else os.lstat(path)
        kind = file_type(st.st_mode)
        acl = None
        if kind in ("file", "dir"):
            try:
                raw = os.getxattr(path, "system.posix_acl_access", follow_symlinks=follow)
                acl = raw.hex()
            except OSError:
                acl = None
        return FileStat(
            kind,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
            int(st.st_ctime),
            int(st.st_mtime),
            st.st_size,
            acl,
        )

    def _walk_processes(self, denied: list[int]) -> Iterator[tuple[ProcInfo, Any]]:
        """The process table through psutil (``process_iter``; ``cmdline``, ``name``), each
        process with its ``psutil.Process``, and its ``/proc/<pid>/exe`` link (read here, not
        by psutil's ``exe()``, which drops the " (deleted)" of a replaced binary). Kernel
        threads (no command line) and zombies (psutil's ZombieProcess) are left out, vanished
        processes (NoSuchProcess) skipped, denied ones (AccessDenied) listed in ``denied``.

        Never recorded by ``collect`` as such: a snapshot keeps only the processes the checks
        matched, not every command line on the host.
        """
        import psutil

        for proc in psutil.process_iter():
            try:
                # not under oneshot(): cmdline and name read different files, each once, and
                # setting up its caches cost more than they saved (~0.4 ms for 70 processes)
                argv = proc.cmdline()
                if not argv:
                    continue  # a kernel thread, or a process exiting (its memory gone)
                # psutil's name is /proc/PID/stat's comm, completed from the command line
                # when the kernel cut it: the first 15 characters are the kernel's
                comm = proc.name()[:_COMM_LEN]
            except psutil.ZombieProcess:
                continue  # exited, not yet reaped: runs no guest and no daemon
            except psutil.NoSuchProcess:
                continue
            except psutil.AccessDenied:
                denied.append(proc.pid)
                continue
            argv_t = tuple(sys.intern(_text(a)) for a in argv)  # shared: see host.base
            exe, exe_denied = _exe_link(proc.pid)
            yield ProcInfo(proc.pid, _text(comm), argv_t, exe=exe, exe_denied=exe_denied), proc

    def _process_details(self, p: ProcInfo, handle: Any) -> Optional[ProcInfo]:
        """psutil's status, uids and gids of a matched process; its supplementary groups
        (which psutil does not report) from the ``Groups:`` line of ``/proc/<pid>/status``.
        None when it vanished or is a zombie by now."""
        import psutil

        proc: psutil.Process = handle
        try:
            with proc.oneshot():
                status = proc.status()
                uids = proc.uids()
                gids = proc.gids()
                # /proc/PID/stat starttime after /proc/stat btime (psutil's create_time)
                age: Optional[float] = max(0.0, time.time() - proc.create_time())
        except psutil.NoSuchProcess:  # and its ZombieProcess
            return None
        except psutil.AccessDenied:
            return p
        try:
            groups = parse_status(_decode(_read_procfs(f"/proc/{p.pid}/status", 65536))).groups
        except OSError:
            groups = None
        return p._replace(
            age=age,
            uids=(uids.real, uids.effective, uids.saved),
            gids=(gids.real, gids.effective, gids.saved),
            groups=groups,
            status=str(status),
        )

    def mount_namespace(self, pid: Optional[int]) -> Optional[str]:
        """``readlink /proc/<pid>/ns/mnt`` (``/proc/self/ns/mnt`` for hvcheck itself)."""
        try:
            return os.readlink(f"/proc/{'self' if pid is None else pid}/ns/mnt")
        except OSError:
            return None

    def exe_record(self, p: ProcInfo) -> Optional[ExeRecord]:
        """``os.stat`` of ``/proc/<pid>/exe`` (the inode the process maps, also once replaced
        or deleted) and of the path its link names (or an absolute argv[0] when the link
        cannot be read), and psutil's ``create_time``.

        The link's text is the path as seen from hvcheck's own root (the kernel's d_path);
        a process in another mount namespace (a container's) is looked up under
        ``/proc/<pid>/root`` instead, where the kernel resolves the path in that namespace.
        """
        import psutil

        pid = p.pid
        errors: list[str] = []
        try:
            started: Optional[float] = float(psutil.Process(pid).create_time())
        except psutil.NoSuchProcess:
            return ExeRecord(None, None, None, None, ("the process exited",))
        except (psutil.AccessDenied, OSError) as e:  # pragma: no cover - /proc/PID/stat is 0444
            started = None
            errors.append(f"/proc/{pid}/stat: {e}")
        running = _stamp(f"/proc/{pid}/exe", errors)
        path: Optional[str] = None
        if p.exe is not None:
            path = p.exe[: -len(DELETED)] if p.exe.endswith(DELETED) else p.exe
        elif p.argv and p.argv[0].startswith("/"):
            path = p.argv[0]
        current: Optional[FileStamp] = None
        if path is not None and path.startswith("/"):
            current = _stamp(path if _same_mount_ns(pid) else f"/proc/{pid}/root{path}", errors)
        else:
            path = None
        return ExeRecord(path, running, current, started, tuple(errors))

    def open_proc(self, pid: int) -> ProcView:
        try:
            fd = os.open(f"/proc/{pid}", _O_DIR)
        except FileNotFoundError as e:
            raise ProcessGone(pid) from e
        return _FdProcView(self, pid, fd, live=True, denied=frozenset())

    def stat_device(self, path: str) -> Optional[DeviceInfo]:
        """``os.stat`` of the node and its ACL (``os.getxattr``); udev's view is asked for
        separately (``udev_view``), only where a judgement needs it."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        return _device_info(st)._replace(acl=_posix_acl(path))

    def udev_view(self, path: str, dev: DeviceInfo) -> Optional[dict[str, Any]]:
        """udev's view of the device ``dev`` (:meth:`udev_record`); None for a node that is
        no device.

        Where udev does not run (none of :data:`UDEV_RUN_DIRS`: a container, a minimal VM),
        there is no record for libudev to read, and its answer is known without loading it
        (pyudev finds libudev by running ``ldconfig -p``): not initialized, no tags, and as
        properties the kernel's uevent, which :mod:`hvcheck.parsers.udev` derives itself for
        the device nodes hvcheck judges. That answer is ``{"initialized": False, "tags": [],
        "running": False}``, and ``collect`` records it as such: what the live run saw (where
        libudev is missing, or is libudev-zero, which calls every device initialized, pyudev
        would have said otherwise)."""
        if dev.udev is not None or dev.type not in ("char", "block"):
            return dev.udev
        if not any(self.exists(d) for d in UDEV_RUN_DIRS):
            return {"initialized": False, "tags": [], "running": False}
        return self.udev_record(dev)

    def udev_record(self, dev: DeviceInfo) -> Optional[dict[str, Any]]:
        """udev's record of the device ``dev`` as pyudev gives it (by its device number),
        whether udev runs or not. None for a node that is no device. pyudev is imported here
        only: finding libudev runs ``ldconfig -p``, which a run that never needs udev's view
        does not pay for."""
        if dev.type not in ("char", "block"):
            return None
        return self._udev_view(dev.type, os.makedev(dev.major, dev.minor))

    def _udev_view(self, kind: str, rdev: int) -> Optional[dict[str, Any]]:
        """udev's record of the device (libudev through pyudev:
        ``Devices.from_device_number``): initialized (in udev's database), properties, tags.
        None when pyudev, libudev or the device cannot be had."""
        try:
            with self._lock:
                if self._udev_context is None:
                    # pyudev finds libudev with ctypes.util.find_library (`ldconfig -p`): once
                    import pyudev

                    self._udev_context = pyudev.Context()
                context = self._udev_context
            import pyudev

            dev = pyudev.Devices.from_device_number(context, kind, rdev)
            props = getattr(dev, "properties", dev)  # Device.properties since pyudev 0.21
            view: dict[str, Any] = {
                "initialized": bool(dev.is_initialized),
                "properties": {str(k): str(props[k]) for k in props},
                "tags": sorted(str(t) for t in dev.tags),
            }
            current = getattr(dev, "current_tags", None)  # pyudev 0.23+, libudev 247+
            if current is not None:
                view["current_tags"] = sorted(str(t) for t in current)
            return view
        except Exception:  # no pyudev or libudev, unknown device number, undecodable values
            return None

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
        """distro's answer from ``/etc/os-release`` (or ``/usr/lib/os-release``) and the
        ``/etc/*-release`` / ``/etc/*_version`` files."""
        import distro

        # include_uname/include_lsb off: distro would otherwise spawn `uname` / `lsb_release`
        return os_info_from_distro(distro.LinuxDistribution(include_lsb=False, include_uname=False))

    def libvirt_capabilities(self, timeout: float) -> Optional[CapsResult]:
        from hvcheck.services import libvirt_caps

        return libvirt_caps(timeout, os.uname().machine, os.geteuid())

    def nova_hypervisors(self, query: NovaQuery) -> Optional[NovaAnswer]:
        from hvcheck.services import nova_hypervisors

        return nova_hypervisors(query)

    def rpm_sqlite(self, path: str) -> Optional[RpmRead]:
        """The file opened in place by sqlite3, read-only and immutable
        (:func:`hvcheck.host.rpmdb.read_rpmdb_file`): no copy, no lock, no write."""
        if not os.path.isfile(path):
            return None
        from hvcheck.host.rpmdb import read_rpmdb_file

        result: RpmRead = self._memo("rpmdb", path, lambda: read_rpmdb_file(path))
        return result

    def rpm_query(self, dbpath: str, timeout: float) -> Optional[RpmRead]:
        """``rpm -qa`` (:func:`hvcheck.services.rpm_qa`) when ``dbpath`` holds a Berkeley DB
        ``Packages``, an ndb ``Packages.db`` or an ``rpmdb.sqlite`` file."""
        names = ("Packages", "Packages.db", "rpmdb.sqlite")
        if not any(os.path.isfile(f"{dbpath}/{n}") for n in names):
            return None
        from hvcheck.services import rpm_qa

        result: RpmRead = self._memo("rpm -qa", dbpath, lambda: rpm_qa(dbpath, timeout))
        return result


_COMM_LEN = 15  # TASK_COMM_LEN (include/linux/sched.h) less its NUL


def _text(s: str) -> str:
    """A string psutil decoded with the filesystem encoding's ``surrogateescape``, decoded as
    the rest of hvcheck decodes what it reads: UTF-8, invalid bytes as U+FFFD."""
    return s if s.isascii() else _decode(os.fsencode(s))


def _exe_link(pid: int) -> tuple[Optional[str], bool]:
    """The target of ``/proc/<pid>/exe`` as the kernel gives it, " (deleted)" included (proc(5);
    psutil's ``Process.exe()`` strips that suffix when the path is gone), and whether it was
    refused: (None, True) for EACCES (another user's process without CAP_SYS_PTRACE), (None,
    False) for ENOENT (a kernel thread or a process that exited)."""
    try:
        return _text(os.readlink(f"/proc/{pid}/exe")), False
    except PermissionError:
        return None, True
    except OSError:
        return None, False


DELETED = " (deleted)"  # what d_path() appends to the name of an unlinked file (fs/d_path.c)


def _stamp(path: str, errors: list[str]) -> Optional[FileStamp]:
    """``os.stat`` (following links: ``/proc/<pid>/exe`` resolves to the mapped inode) as a
    :class:`FileStamp`; None when there is no file there, or why not in ``errors``."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        errors.append(f"{path}: {e.strerror or e}")
        return None
    return FileStamp(st.st_dev, st.st_ino, st.st_mtime, st.st_ctime)


def _same_mount_ns(pid: int) -> bool:
    """Whether the process shares hvcheck's mount namespace (``/proc/<pid>/ns/mnt`` names the
    same namespace as ``/proc/self/ns/mnt``); True when that cannot be read."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        return True


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


def _posix_acl(path: str) -> Optional[str]:
    """The hex of the node's ``system.posix_acl_access`` xattr; None when it has none
    (ENODATA), the filesystem has no xattrs (ENOTSUP) or it cannot be read."""
    try:
        return os.getxattr(path, "system.posix_acl_access").hex()
    except OSError:
        return None


def _probe_kvm(path: str = "/dev/kvm") -> ProbeResult:
    """Open /dev/kvm, check KVM_GET_API_VERSION == 12, create a VM, close every fd.

    This is what QEMU's kvm_init() does first (accel/kvm/kvm-all.c), so success here means a
    process with this uid can get KVM. On x86-64 the new VM then runs ``out; hlt`` in one
    real-mode vCPU (hvcheck.host.guestcode), recorded as ``guest``.
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
        try:
            guest = None
            if os.uname().machine == "x86_64":
                from hvcheck.host.guestcode import run_real_mode_guest

                guest = run_real_mode_guest(fd, vm)
        finally:
            os.close(vm)
        return ProbeResult(True, "done", None, None, api, uid, guest)
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
