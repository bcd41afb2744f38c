"""The process table, walked once per run and sorted into the groups the checks ask about.

One walk reads each process's ``comm``, ``cmdline`` and ``exe`` link once (``/proc/<pid>/``,
live or in a snapshot) instead of once per question; only the processes of a group are kept.
"""

from __future__ import annotations

import posixpath

from hvcheck.check import Context
from hvcheck.host import ProcInfo
from hvcheck.parsers.qemu import is_qemu_binary


def is_qemu_process(p: ProcInfo) -> bool:
    """A QEMU system emulator, known by the file it runs (``/proc/PID/exe``, also when the
    binary was replaced since: " (deleted)"), not by the name it was given: ``exec -a my-kvm
    qemu-system-x86_64`` is QEMU. When the link cannot be read (another user's process, an
    older snapshot): argv[0], or ``comm`` (the kernel names a process after the file it
    executes, not after argv[0]; QEMU's ``-name ...,process=NAME`` renames it).
    """
    if p.exe:
        return is_qemu_binary(p.exe)
    if p.argv and is_qemu_binary(p.argv[0]):
        return True
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
