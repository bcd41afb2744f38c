"""QEMU processes: find them in the one walk of the process table, and prove, per process,
which accelerator it runs with (KVM or TCG).

Reads through the host layer: the process table (``/proc/<pid>/comm`` and ``cmdline``, live
or in a snapshot), ``/proc/<pid>/fd/*`` (links), ``/proc/<pid>/task/*/comm``,
``/proc/<pid>/status``, libvirt's status XML ``/run/libvirt/qemu/<name>.xml`` and config XML
``/etc/libvirt/qemu/<name>.xml`` — also under ``/proc/<pid>/root/`` when libvirt runs in a
container sharing the host's pid namespace (kolla's nova_libvirt).

Process groups. One walk reads each process's ``comm`` and ``cmdline`` once and sorts the
processes into the groups the checks ask about (``GROUPS``: QEMU, libvirtd, nova-compute);
only the processes of a group are kept.

The decision (``decide``), from evidence, strongest first:

1. Open file descriptors (``/proc/PID/fd``): a process using KVM holds ``/dev/kvm``,
   ``anon_inode:kvm-vm`` and one ``anon_inode:kvm-vcpu:N`` per vCPU (virt/kvm/kvm_main.c
   names them with anon_inode_getfd("kvm-vm"), "kvm-vcpu:%d"). Under TCG none exists.
   ``anon_inode:kvm-vm-stats`` / ``kvm-vcpu-stats`` are binary-stats fds, matched exactly so
   they never count on their own.
2. vCPU thread names (``/proc/PID/task/TID/comm``): ``CPU 0/KVM`` or ``CPU 0/TCG``, set by
   QEMU's qemu_thread_create() only with ``-name ...,debug-threads=on`` (libvirt always sets it).
   Not read when the fds already hold a ``kvm-vcpu`` inode (``scan_process``): nothing a
   thread name says can add to that; they corroborate a TCG or undecided process.
3. libvirt's status XML ``<domain type='kvm'|'qemu'>``: what libvirt asked for.
4. The command line (``-accel``, ``-machine accel=``, ``-enable-kvm``, the binary default).

3 and 4 say what was *requested*; 1 and 2 what the process *has*. When they disagree the
strongest wins, and a request for KVM (alone or ``kvm:tcg``) that ended in TCG is a silent
fallback: QEMU's configure_accelerators() tries the next accelerator and only warns on stderr.

>>> d = decide(["/dev/null", "/dev/kvm", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"],
...            ["qemu-system-x86", "CPU 0/KVM"], None, None)
>>> (d.accel, d.kinds)
('kvm', ('fd', 'threads'))
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import ProcessGone, ProcInfo, ProcView
from hvcheck.parsers.libvirt_xml import DomainXml, accel_from_domain_type, parse_domain_xml
from hvcheck.parsers.qemu import QemuArgv, is_qemu_binary, parse_qemu_argv

__all__ = [
    "GROUPS",
    "Decision",
    "QemuProcess",
    "acceleration",
    "decide",
    "is_qemu_process",
    "processes",
    "qemu_processes",
    "scan_process",
]


# ---------------------------------------------------------------------------------- groups
def is_qemu_process(p: ProcInfo) -> bool:
    if p.argv:
        return is_qemu_binary(p.argv[0])
    return bool(p.comm) and is_qemu_binary(p.comm)


def is_libvirtd(p: ProcInfo) -> bool:
    return any(posixpath.basename(a) in ("libvirtd", "virtqemud") for a in p.argv[:2]) or (
        p.comm in ("libvirtd", "virtqemud")
    )


def is_nova_compute(p: ProcInfo) -> bool:
    # "nova-compute" as argv[0] or as the script a python interpreter runs
    for a in p.argv[:3]:
        if posixpath.basename(a) == "nova-compute":
            return True
    return p.comm == "nova-compute"


GROUPS = {"qemu": is_qemu_process, "libvirtd": is_libvirtd, "nova-compute": is_nova_compute}


def processes(ctx: Context, group: str) -> list[ProcInfo]:
    """The processes of one of ``GROUPS``, sorted by pid, from this run's one walk."""
    groups = ctx.fact("process_groups", lambda c: c.host.process_groups(GROUPS))
    return groups[group]


# ---------------------------------------------------------------------------------- decision
_VCPU_FD = re.compile(r"anon_inode:kvm-vcpu:\d+")
_VCPU_THREAD = re.compile(r"CPU \d+/([A-Za-z0-9_]+)")
KVM_FD_EXACT = ("/dev/kvm", "anon_inode:kvm-vm")


def kvm_fds(targets: Sequence[str]) -> list[str]:
    # the prefix test first: most fds are files, sockets, pipes and skip the regex
    return [
        t
        for t in targets
        if t in KVM_FD_EXACT or (t.startswith("anon_inode:kvm-vcpu:") and _VCPU_FD.fullmatch(t))
    ]


def has_vcpu_fd(targets: Sequence[str]) -> bool:
    """A ``kvm-vcpu:N`` inode among the fds: the process runs vCPUs in KVM."""
    return any(t.startswith("anon_inode:kvm-vcpu:") and _VCPU_FD.fullmatch(t) for t in targets)


def vcpu_thread_accels(names: Sequence[str]) -> list[str]:
    """Accelerator names from vCPU thread names, e.g. ["KVM", "KVM"]."""
    out = []
    for n in names:
        m = _VCPU_THREAD.fullmatch(n.strip())
        if m:
            out.append(m.group(1).upper())
    return out


class Decision(NamedTuple):
    accel: str  # kvm | tcg | unknown
    kinds: tuple[str, ...]  # evidence kinds that agree with the decision: fd, threads, ...
    details: tuple[str, ...]  # human-readable evidence lines
    requested: Optional[str]  # what the command line / libvirt asked for ("kvm:tcg", ...)
    conflict: Optional[str]  # a disagreement between sources, explained
    silent_fallback: bool  # KVM was asked for, TCG is what runs
    other_accel: Optional[str] = None  # hvf, xen, whpx...: named as such


def decide(
    fds: Optional[Sequence[str]],
    threads: Optional[Sequence[str]],
    domain_type: Optional[str],
    argv: Optional[QemuArgv],
) -> Decision:
    """``fds``/``threads`` are None when they could not be read (permission, vanished)."""
    details: list[str] = []
    votes: list[tuple[str, str]] = []  # (kind, accel) strongest first
    if fds is not None:
        k = kvm_fds(fds)
        if k:
            vcpus = sum(1 for t in k if _VCPU_FD.fullmatch(t))
            details.append(f"fd: holds {', '.join(sorted(set(k) - {''}))[:120]} ({vcpus} vCPU fds)")
            votes.append(("fd", "kvm"))
        else:
            details.append(f"fd: {len(fds)} open fds, none is /dev/kvm or a kvm-vm/kvm-vcpu inode")
            votes.append(("fd", "tcg"))
    if threads is not None:
        accs = vcpu_thread_accels(threads)
        if accs:
            names = sorted(set(accs))
            details.append(f"threads: {len(accs)} vCPU thread(s) named CPU n/{'/'.join(names)}")
            if names == ["KVM"]:
                votes.append(("threads", "kvm"))
            elif names == ["TCG"]:
                votes.append(("threads", "tcg"))
            else:
                votes.append(("threads", names[0].lower()))
    if domain_type:
        a = accel_from_domain_type(domain_type)
        details.append(f"libvirt-xml: <domain type='{domain_type}'> requests {a}")
        votes.append(("libvirt-xml", a))
    requested: Optional[str] = None
    if argv is not None and argv.binary:
        req = argv.accel
        requested = req.decided
        tokens = " ".join(req.tokens) if req.tokens else req.source
        details.append(f"cmdline: {tokens} → tries {req.decided}")
        votes.append(("cmdline", req.primary))
    elif domain_type:
        requested = accel_from_domain_type(domain_type)

    observed = [v for v in votes if v[0] in ("fd", "threads")]
    if observed:
        accel = observed[0][1]
    elif votes:
        accel = votes[0][1]
    else:
        accel = "unknown"
    other: Optional[str] = None
    if accel not in ("kvm", "tcg", "unknown"):
        other, accel = accel, "unknown"
    kinds = tuple(k for k, a in votes if a == accel)
    conflict: Optional[str] = None
    disagree = [(k, a) for k, a in votes if a != accel and accel != "unknown"]
    silent = False
    if observed and disagree:
        # fd and threads are what the process has; anything else was only a request
        conflict = "; ".join(f"{k} says {a}" for k, a in disagree) + (
            f", but the process runs {accel.upper()} ({observed[0][0]})"
        )
        wants_kvm = (argv is not None and argv.accel.wants_kvm) or (domain_type == "kvm")
        silent = accel == "tcg" and wants_kvm
    elif votes and not observed and len({a for _, a in votes}) > 1:
        conflict = "; ".join(f"{k} says {a}" for k, a in votes)
    return Decision(accel, kinds, tuple(details), requested, conflict, silent, other)


# ---------------------------------------------------------------------------------- scan
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


def _status(view: ProcView) -> tuple[Optional[str], Optional[int]]:
    """State letter and effective uid from /proc/PID/status (proc(5))."""
    try:
        text = view.read("status", 65536).decode("utf-8", "replace")
    except OSError:
        return None, None
    state: Optional[str] = None
    uid: Optional[int] = None
    for line in text.splitlines():
        if line.startswith("State:"):
            parts = line.split()
            state = parts[1] if len(parts) > 1 else None
        elif line.startswith("Uid:"):
            parts = line.split()
            if len(parts) > 2 and (parts[2].isascii() and parts[2].isdigit()):
                uid = int(parts[2])  # effective uid
        if state is not None and uid is not None:
            break
    return state, uid


def scan_process(ctx: Context, p: ProcInfo, argv: QemuArgv) -> Optional[QemuProcess]:
    """Evidence for one process; None when it vanished meanwhile (never a phantom instance)."""
    try:
        view = ctx.host.open_proc(p.pid)
    except ProcessGone:
        return None
    with view:
        return _scan(ctx, p, argv, view)


def _scan(ctx: Context, p: ProcInfo, argv: QemuArgv, view: ProcView) -> Optional[QemuProcess]:
    host = ctx.host
    state, uid = _status(view)
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
    # read after the evidence: on a live host, a root link that still reads proves the process
    # ran throughout (ProcView.alive)
    dom, src = _domain_xml(ctx, p.pid, argv.name, view.readlink("root"))
    decision = decide(fds, threads, dom.domain_type if dom else None, argv)
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
