"""Decide, for one QEMU process, whether it runs with KVM or TCG — from evidence, strongest first.

1. Open file descriptors (``/proc/PID/fd``): a process using KVM holds ``/dev/kvm``,
   ``anon_inode:kvm-vm`` and one ``anon_inode:kvm-vcpu:N`` per vCPU (virt/kvm/kvm_main.c
   names them with anon_inode_getfd("kvm-vm"), "kvm-vcpu:%d"). Under TCG none exists.
   ``anon_inode:kvm-vm-stats`` / ``kvm-vcpu-stats`` are binary-stats fds, matched exactly so
   they never count on their own.
2. vCPU thread names (``/proc/PID/task/TID/comm``): ``CPU 0/KVM`` or ``CPU 0/TCG``, set by
   QEMU's qemu_thread_create() only with ``-name ...,debug-threads=on`` (libvirt always sets it).
   Not read when the fds already hold a ``kvm-vcpu`` inode (``instances.scan_process``):
   nothing a thread name says can add to that; they corroborate a TCG or undecided process.
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

import re
from collections.abc import Sequence
from typing import NamedTuple, Optional

from hvcheck.parsers.libvirt_xml import accel_from_domain_type
from hvcheck.parsers.qemu import QemuArgv

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
