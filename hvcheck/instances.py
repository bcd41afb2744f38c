"""Find every QEMU process and prove, per process, which accelerator it runs with.

Reads through the host layer: the process table (``/proc/<pid>/``, live or in a snapshot),
``/proc/<pid>/cmdline``, ``/proc/<pid>/fd/*`` (links), ``/proc/<pid>/task/*/comm``,
``/proc/<pid>/status``, libvirt's status XML ``/run/libvirt/qemu/<name>.xml`` and config XML
``/etc/libvirt/qemu/<name>.xml`` — also under ``/proc/<pid>/root/`` when libvirt runs in a
container sharing the host's pid namespace (kolla's nova_libvirt) — and the config files QEMU
read at start (``/etc/qemu/qemu.conf``, ``-readconfig FILE``) as ``/proc/<pid>/root/<path>``,
a relative one under the target of ``/proc/<pid>/cwd``.
"""

from __future__ import annotations

import posixpath
from typing import Any, NamedTuple, Optional

from hvcheck import facts
from hvcheck.accel import Decision, decide, has_vcpu_fd, kvm_access
from hvcheck.check import Context
from hvcheck.host import ProcessGone, ProcInfo, ProcView
from hvcheck.parsers.libvirt_xml import DomainXml, parse_domain_xml
from hvcheck.parsers.qemu import QemuArgv, parse_qemu_argv
from hvcheck.procs import is_qemu_process, processes

__all__ = ["QemuProcess", "acceleration", "is_qemu_process", "qemu_processes", "scan_process"]


class QemuProcess(NamedTuple):
    pid: int
    argv: QemuArgv
    name: Optional[str]
    uuid: Optional[str]
    uid: Optional[int]
    decision: Decision
    domain: Optional[DomainXml]
    domain_source: Optional[str]
    unreadable: tuple[str, ...]  # evidence that could not be read, and why

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        nova = self.domain.nova if self.domain else None
        out: dict[str, Any] = {
            "binary": self.argv.binary,
            "requested": d.requested,
            "evidence_detail": list(d.details),
            "conflict": d.conflict,
            "silent_fallback": d.silent_fallback,
            "other_accel": d.other_accel,
            "verified": d.verified,
            "likely": d.likely,
            "process_uid": self.uid,
            "libvirt_xml": self.domain_source,
            "domain_type": self.domain.domain_type if self.domain else None,
            "unreadable": list(self.unreadable),
        }
        if nova is not None:
            out["nova"] = {
                "instance_uuid": self.domain.uuid if self.domain else None,
                "display_name": nova.name,
                "flavor": nova.flavor,
                "project": nova.project,
                "project_uuid": nova.project_uuid,
                "user": nova.user,
            }
        return out


def _safe_name(name: Optional[str]) -> bool:
    """A libvirt domain name usable as a file name: no path tricks from a hostile -name."""
    if not name:
        return False
    return "/" not in name and "\0" not in name and not name.startswith(".")


def _domain_xml(
    ctx: Context, pid: int, name: Optional[str], root_link: Optional[str]
) -> tuple[Optional[DomainXml], Optional[str]]:
    if not _safe_name(name):
        return None, None
    host = ctx.host
    dirs = ["/run/libvirt/qemu", "/var/run/libvirt/qemu", "/etc/libvirt/qemu"]
    # libvirt in a container sharing the host's pid namespace (kolla): its files are under
    # the QEMU process's root; for a process in the host's own root that is "/" again
    if root_link != "/":
        dirs += [f"/proc/{pid}/root/run/libvirt/qemu", f"/proc/{pid}/root/etc/libvirt/qemu"]
    fname = f"{name}.xml"
    for d in dirs:
        try:
            if fname not in host.listdir(d):  # listed once per run, not probed per instance
                continue
            text = host.read_opt(f"{d}/{fname}")
        except OSError:
            continue
        if text is None:
            continue
        dom = parse_domain_xml(text)
        if dom is None:
            continue
        if dom.pid is not None and dom.pid != pid:
            continue  # a stale status file of an earlier run of the same domain
        return dom, f"{d}/{fname}"
    return None, None


def _status(view: ProcView) -> tuple[Optional[str], Optional[int], tuple[int, ...]]:
    """State letter, effective uid and the gids (effective gid, then Groups) from
    /proc/PID/status (proc(5))."""
    try:
        text = view.read("status", 65536).decode("utf-8", "replace")
    except OSError:
        return None, None, ()
    state: Optional[str] = None
    uid: Optional[int] = None
    gids: list[int] = []
    for line in text.splitlines():
        if line.startswith("State:"):
            parts = line.split()
            state = parts[1] if len(parts) > 1 else None
        elif line.startswith("Uid:"):
            parts = line.split()
            if len(parts) > 2 and (parts[2].isascii() and parts[2].isdigit()):
                uid = int(parts[2])  # effective uid
        elif line.startswith(("Gid:", "Groups:")):
            parts = line.split()
            # Gid: real, effective, saved, fs -> the effective one; Groups: every one
            for g in parts[2:3] if line.startswith("Gid:") else parts[1:]:
                if g.isascii() and g.isdigit() and int(g) not in gids:
                    gids.append(int(g))
    return state, uid, tuple(gids)


# ---- config files QEMU read (issue 18); port as one block --------------------------------
def _config_files(
    ctx: Context, pid: int, argv: QemuArgv, view: ProcView, unreadable: list[str]
) -> dict[str, Optional[bytes]]:
    """The config files QEMU read at start (``argv.config_files``), as the process saw them:
    path as QEMU named it -> content, or None when it does not exist; a file that cannot be
    read is left out (``parse_qemu_argv`` then cannot tell what it said) and why goes to
    ``unreadable``.

    An absolute path is read as ``/proc/PID/root/PATH``: the kernel resolves it in the
    process's root and mount namespace (a container's, libvirt's private one), which
    ``readlink /proc/PID/root`` alone does not show. A relative path is relative to the
    directory QEMU started in: ``/proc/PID/cwd``, unless -daemonize moved it to "/" since.
    After -chroot the process's root is no longer the one it read its files in. When
    /proc/PID/root cannot be read (another user's process, hvcheck not root), the path is read
    in hvcheck's own root, and that is said. Only files are read; the file read is the file as
    it is now.
    """
    out: dict[str, Optional[bytes]] = {}
    host = ctx.host
    for path in argv.config_files:
        if argv.chroot is not None:
            unreadable.append(f"{path}: QEMU changed its root (-chroot) after reading it")
            continue
        full = path
        if not path.startswith("/"):
            cwd = view.readlink("cwd")
            if argv.daemonize or cwd is None or not cwd.startswith("/"):
                why = "-daemonize changed it" if argv.daemonize else "cannot be read"
                unreadable.append(f"{path}: relative to QEMU's start directory, which {why}")
                continue
            full = posixpath.join(cwd, path)
        try:
            out[path] = host.read_bytes(f"/proc/{pid}/root{full}", 1024 * 1024)
            continue
        except (FileNotFoundError, NotADirectoryError):
            out[path] = None
            continue
        except PermissionError:
            pass
        except OSError as e:
            unreadable.append(f"{path}: {e.strerror or e}")
            continue
        try:  # /proc/PID/root not readable: the file in our own root
            out[path] = host.read_bytes(full, 1024 * 1024)
            unreadable.append(f"/proc/{pid}/root: not readable; {full} read in hvcheck's root")
        except (FileNotFoundError, NotADirectoryError):
            out[path] = None
        except OSError as e:
            unreadable.append(f"{path}: {e.strerror or e}")
    return out


def _with_config(
    ctx: Context, p: ProcInfo, argv: QemuArgv, view: ProcView, unreadable: list[str]
) -> QemuArgv:
    """``argv`` read again with the config files QEMU read (when it read any)."""
    if not argv.config_files or not p.argv:
        return argv
    return parse_qemu_argv(list(p.argv), files=_config_files(ctx, p.pid, argv, view, unreadable))


# -------------------------------------------------------------------------------------------


def scan_process(
    ctx: Context, p: ProcInfo, argv: Optional[QemuArgv] = None
) -> Optional[QemuProcess]:
    """Evidence for one process; None when it vanished meanwhile (never a phantom instance)."""
    if argv is None:
        argv = _argv(p)
    try:
        view = ctx.host.open_proc(p.pid)
    except ProcessGone:
        return None
    with view:
        return _scan(ctx, p, argv, view)


def _scan(ctx: Context, p: ProcInfo, argv: QemuArgv, view: ProcView) -> Optional[QemuProcess]:
    host = ctx.host
    state, uid, gids = _status(view)
    if state in ("Z", "X"):
        return None  # a zombie (exited, not yet reaped) has no fds and runs no guest
    unreadable: list[str] = []
    fds: Optional[list[str]]
    threads: Optional[list[str]]
    try:
        fds = view.fd_targets()
    except ProcessGone:
        if host.live:
            return None
        fds = None  # a snapshot may hold only some entries of a process (contract)
    except OSError as e:
        fds = None
        unreadable.append(f"/proc/{p.pid}/fd: {e.strerror or e}")
    if fds is not None and has_vcpu_fd(fds):
        # a kvm-vcpu fd is proof of KVM that thread names cannot add to: not read (on a
        # node of KVM guests that is most of the per-instance reading saved)
        threads = None
    else:
        try:
            threads = view.thread_names()
        except ProcessGone:
            if host.live:
                return None
            threads = None
        except OSError as e:
            threads = None
            unreadable.append(f"/proc/{p.pid}/task: {e.strerror or e}")
    if fds == [] and not host.live and not view.has("fd"):
        fds = None  # a snapshot that holds no fd entries for this process says nothing
    if threads == [] and not view.has("task"):
        threads = None
    argv = _with_config(ctx, p, argv, view, unreadable)
    # read after the evidence: on a live host, a root link that still reads proves the process
    # ran throughout (ProcView.alive)
    dom, src = _domain_xml(ctx, p.pid, argv.name, view.readlink("root"))
    access = None
    if fds is None and threads is None:  # judged from the request: who could open /dev/kvm
        dev = facts.kvm_device(ctx)
        access = kvm_access(dev, uid, gids, argv.runas, device_absent=host.live and dev is None)
    decision = decide(fds, threads, dom.domain_type if dom else None, argv, access)
    if host.live and not view.alive():
        return None  # exited while we read it: what we saw may be half a process
    return QemuProcess(
        pid=p.pid,
        argv=argv,
        name=argv.name or (dom.name if dom else None),
        uuid=argv.uuid or (dom.uuid if dom else None),
        uid=uid,
        decision=decision,
        domain=dom,
        domain_source=src,
        unreadable=tuple(unreadable),
    )


def qemu_processes(ctx: Context) -> list[QemuProcess]:
    def compute(c: Context) -> list[QemuProcess]:
        out = []
        for p in processes(c, "qemu"):
            argv = _argv(p)
            if argv.machine == "none":
                # runs no guest: libvirt probing QEMU's capabilities (src/qemu/qemu_process.c
                # qemuProcessQMPLaunch: "-machine none,accel=kvm:tcg"), which it does on every
                # capabilities request while /dev/kvm is unusable; nothing more of it is read
                continue
            q = scan_process(c, p, argv)
            if q is not None:
                out.append(q)
        return out

    return ctx.fact("qemu_processes", compute)


def _argv(p: ProcInfo) -> QemuArgv:
    return parse_qemu_argv(list(p.argv)) if p.argv else parse_qemu_argv([p.comm])


def acceleration(procs: list[QemuProcess]) -> str:
    """verdict.acceleration: kvm | tcg | mixed | none | unknown."""
    if not procs:
        return "none"
    kinds = {q.decision.accel for q in procs}
    if kinds == {"kvm"}:
        return "kvm"
    if kinds == {"tcg"}:
        return "tcg"
    if {"kvm", "tcg"} <= kinds:
        return "mixed"
    return "unknown"
