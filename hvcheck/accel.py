"""Decide, for one QEMU process, whether it runs with KVM or TCG — from evidence, strongest first.

1. Open file descriptors (``/proc/PID/fd``): a process using KVM holds ``/dev/kvm``,
   ``anon_inode:kvm-vm`` and one ``anon_inode:kvm-vcpu:N`` per vCPU (virt/kvm/kvm_main.c
   names them with anon_inode_getfd("kvm-vm"), "kvm-vcpu:%d"). Under TCG none exists.
   ``anon_inode:kvm-vm-stats`` / ``kvm-vcpu-stats`` are binary-stats fds, matched exactly so
   they never count on their own.
2. vCPU thread names (``/proc/PID/task/TID/comm``), set by QEMU's qemu_thread_create() only
   with ``-name ...,debug-threads=on`` (libvirt always sets it): ``CPU 0/KVM``; ``CPU 0/TCG``
   for multi-threaded TCG (accel/tcg/tcg-accel-ops-mttcg.c) and ``ALL CPUs/TCG`` for the one
   round-robin thread of single-threaded TCG (tcg-accel-ops-rr.c: ``-accel tcg,thread=single``,
   ``-icount``). Not read when the fds already hold a ``kvm-vcpu`` inode
   (``instances.scan_process``): nothing a thread name says can add to that; they
   corroborate a TCG or undecided process.
3. libvirt's status XML ``<domain type='kvm'|'qemu'>``: what libvirt asked for (libvirt
   passes ``-accel kvm`` or ``-accel tcg``, never a fallback list).
4. The command line and the config files QEMU read (``parsers.qemu``): the list QEMU tries.

3 and 4 say what was *requested*; 1 and 2 what the process *has*. A **silent fallback** is a
request with KVM followed by another accelerator (``kvm:tcg``) whose process runs that other
one: QEMU's configure_accelerators() then tries the next accelerator and only warns on stderr.
A process running an accelerator its request does not list (``-accel kvm`` alone, running
TCG) means the request was misread: "cannot tell what was asked", never a fallback.

Without 1 and 2 (a snapshot without fds or threads, another user's process) the request is
judged, never verified: a single accelerator is what QEMU runs if it runs at all (it does not
start when that one fails); for ``kvm:tcg`` the device node's mode and owner and the process's
uid and groups say which is likely (:func:`kvm_access`).

>>> d = decide(["/dev/null", "/dev/kvm", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"],
...            ["qemu-system-x86", "CPU 0/KVM"], None, None)
>>> (d.accel, d.kinds, d.verified)
('kvm', ('fd', 'threads'), True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, Optional

from hvcheck.parsers.libvirt_xml import accel_from_domain_type
from hvcheck.parsers.qemu import QemuArgv

if TYPE_CHECKING:
    from hvcheck.host import DeviceInfo

_VCPU_FD = re.compile(r"anon_inode:kvm-vcpu:\d+")
# "CPU %d/KVM", "CPU %d/TCG", "CPU %d/HVF", "CPU %d/Dummy" (qtest, xen), and round-robin
# TCG's single "ALL CPUs/TCG" (QEMU 7.2 accel/*/…-accel-ops*.c, snprintf into thread_name)
_VCPU_THREAD = re.compile(r"(?:CPU \d+|ALL CPUs)/([A-Za-z0-9_]+)")
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


class KvmAccess(NamedTuple):
    """Could the process have opened /dev/kvm when it started? From the snapshot's records."""

    can_open: Optional[bool]  # None: cannot be told
    why: str  # e.g. "uid 65534 (groups 65534) cannot open /dev/kvm 0600 root:root"


def kvm_access(
    device: Optional[DeviceInfo],
    uid: Optional[int],
    gids: Sequence[int],
    runas: Optional[str],
    device_absent: bool = False,
) -> KvmAccess:
    """Judge from the node's mode and owner and the process's ids whether QEMU could open
    /dev/kvm (O_RDWR: read and write permission, generic_permission() in fs/namei.c).

    ``uid``/``gids``: the process's effective uid and its gids (``/proc/PID/status`` Uid, Gid,
    Groups); ``runas``: QEMU's -runas user — QEMU opened /dev/kvm as whoever started it, before
    dropping to that user (os_setup_post), so the uid now says nothing. uid 0 may open it
    (CAP_DAC_OVERRIDE, or the owner bits of a root-owned node). A "no" leaves the POSIX ACLs
    of the node aside (a snapshot does not record them), and the mode is the node's now.

    >>> from hvcheck.host import DeviceInfo
    >>> kvm_access(DeviceInfo("char", 10, 232, "0600", 0, 0, "root", "root"), 65534, [65534], None)
    KvmAccess(can_open=False, why='uid 65534 (gids 65534) may not open /dev/kvm 0600 root:root')
    """
    if runas is not None:
        return KvmAccess(None, f"QEMU opened /dev/kvm before -runas {runas} dropped its rights")
    if device is None:
        if device_absent:
            return KvmAccess(False, "there is no /dev/kvm")
        return KvmAccess(None, "the mode of /dev/kvm is not recorded")
    if uid is None:
        return KvmAccess(None, "the process's uid is not recorded")
    try:
        mode = device.perm
    except ValueError:
        return KvmAccess(None, f"/dev/kvm has an unreadable mode {device.mode!r}")
    node = f"/dev/kvm {mode:04o} {device.owner or device.uid}:{device.group or device.gid}"
    who = f"uid {uid} (gids {' '.join(str(g) for g in gids) or 'none'})"
    if uid == 0:
        return KvmAccess(True, f"uid 0 may open {node}")
    if uid == device.uid:
        ok = mode & 0o600 == 0o600
    elif device.gid in gids:
        ok = mode & 0o060 == 0o060
    else:
        ok = mode & 0o006 == 0o006
    return KvmAccess(ok, f"{who} {'may' if ok else 'may not'} open {node}")


class Decision(NamedTuple):
    accel: str  # kvm | tcg | unknown
    kinds: tuple[str, ...]  # evidence kinds that agree with the decision: fd, threads, ...
    details: tuple[str, ...]  # human-readable evidence lines
    requested: Optional[str]  # what QEMU tries ("kvm:tcg", ...); None: cannot tell what was asked
    conflict: Optional[str]  # a disagreement between sources, explained
    silent_fallback: bool  # asked for KVM then another accelerator; runs that other one
    other_accel: Optional[str] = None  # hvf, xen, whpx...: named as such
    verified: bool = False  # fds or vCPU thread names decided; False: judged from the request
    likely: Optional[str] = None  # accel "unknown", but this one is likely (and why, in details)


def _after_kvm(accels: Sequence[str]) -> tuple[str, ...]:
    return tuple(accels[list(accels).index("kvm") + 1 :]) if "kvm" in accels else ()


def decide(
    fds: Optional[Sequence[str]],
    threads: Optional[Sequence[str]],
    domain_type: Optional[str],
    argv: Optional[QemuArgv],
    access: Optional[KvmAccess] = None,
) -> Decision:
    """``fds``/``threads`` are None when they could not be read (permission, vanished, not in
    the snapshot); ``access``: :func:`kvm_access` for the process, used only then."""
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
    observed = list(votes)

    # what was asked: the list QEMU tries (None: cannot be told), and from where
    asked: Optional[tuple[str, ...]] = None
    source = ""
    unknown_why: Optional[str] = None
    if domain_type:
        a = accel_from_domain_type(domain_type)
        details.append(f"libvirt-xml: <domain type='{domain_type}'> requests {a}")
        votes.append(("libvirt-xml", a))
        asked, source = (a,), f"<domain type='{domain_type}'>"
    if argv is not None and argv.binary:
        req = argv.accel
        tokens = " ".join(req.tokens) if req.tokens else req.source
        skipped = f" (QEMU skips unknown {', '.join(req.dropped)})" if req.dropped else ""
        if req.conflict:
            skipped += ' (QEMU 7.2 refuses -accel with "-machine accel=": read as older QEMU)'
        if req.undetermined is not None:
            details.append(f"cmdline: {tokens} → cannot tell what QEMU tries: {req.undetermined}")
            asked, unknown_why = None, req.undetermined
        else:
            details.append(f"cmdline: {tokens} → tries {req.decided}{skipped}")
            votes.append(("cmdline", req.primary))
            if asked is not None and asked[0] != req.primary:
                unknown_why = f"{source} and the command line ({req.decided}) disagree"
                asked = None
            else:
                asked, source = req.accels, "the command line"

    if observed:
        return _observed(observed, votes, details, asked, source, unknown_why)
    return _judged(votes, details, asked, source, unknown_why, access)


def _observed(
    observed: list[tuple[str, str]],
    votes: list[tuple[str, str]],
    details: list[str],
    asked: Optional[tuple[str, ...]],
    source: str,
    unknown_why: Optional[str],
) -> Decision:
    """fds or threads say what the process runs; the request only explains it."""
    accel = observed[0][1]
    other: Optional[str] = None
    if accel not in ("kvm", "tcg"):
        other, accel = accel, "unknown"
    kinds = tuple(k for k, a in votes if a == accel)
    run = (other or accel).upper()
    conflict: Optional[str] = None
    disagree = [(k, a) for k, a in votes if a != accel and accel != "unknown"]
    if disagree:
        # fd and threads are what the process has; anything else was only a request
        conflict = "; ".join(f"{k} says {a}" for k, a in disagree) + (
            f", but the process runs {run} ({observed[0][0]})"
        )
    silent = False
    requested: Optional[str] = None
    if asked is not None and accel != "unknown" and accel not in asked:
        # QEMU runs only what its list names: a list without it was misread (a config file
        # changed since, an option this parser does not know)
        unknown_why = f"{source} reads as {':'.join(asked)}, which QEMU does not run under {run}"
    elif asked is not None:
        requested = ":".join(asked)
        silent = accel == "tcg" and "tcg" in _after_kvm(asked)
    if requested is None and unknown_why:
        note = f"cannot tell what was asked: {unknown_why}"
        details.append(note)
        conflict = f"{conflict}; {note}" if conflict else note
    return Decision(accel, kinds, tuple(details), requested, conflict, silent, other, True)


def _judged(
    votes: list[tuple[str, str]],
    details: list[str],
    asked: Optional[tuple[str, ...]],
    source: str,
    unknown_why: Optional[str],
    access: Optional[KvmAccess],
) -> Decision:
    """No fds, no thread names: what the request and the records make of it, unverified."""
    if asked is None:
        note = f"cannot tell what was asked: {unknown_why}" if unknown_why else None
        if note:
            details.append(note)
        return Decision("unknown", (), tuple(details), None, note, False)
    requested = ":".join(asked)
    likely: Optional[str] = None
    accel = "unknown"
    conflict: Optional[str] = None
    if asked[0] != "kvm":
        # QEMU runs the first accelerator of the list (TCG does not fail to start)
        accel = asked[0]
        details.append(f"judged: {accel}, the first QEMU tries (unverified: no fds or threads)")
    elif len(asked) == 1:
        if access is not None and access.can_open is False:
            conflict = (
                f"cannot tell what was asked: {source} asks for KVM alone, without which QEMU "
                f"does not start, but {access.why}"
            )
            details.append(conflict)
            return Decision("unknown", (), tuple(details), None, conflict, False)
        accel = "kvm"
        details.append(
            "judged: requested kvm, unverified (QEMU does not start when KVM alone fails; "
            "no fds or threads to show it)"
        )
    else:
        nxt = asked[1]
        if access is None or access.can_open is None:
            why = access.why if access is not None else "who opened /dev/kvm is not recorded"
            details.append(f"judged: kvm or, if KVM failed, {nxt}; unverified ({why})")
        elif access.can_open:
            likely = "kvm"
            details.append(f"judged: likely kvm, unverified ({access.why})")
        else:
            likely = nxt
            details.append(
                f"judged: likely {nxt}, a silent fallback, unverified ({access.why}; "
                "an ACL on the node, not recorded, could still allow it)"
            )
    other: Optional[str] = None
    if accel not in ("kvm", "tcg", "unknown"):
        other, accel = accel, "unknown"
    kinds = tuple(k for k, a in votes if a == accel)
    return Decision(accel, kinds, tuple(details), requested, conflict, False, other, False, likely)
