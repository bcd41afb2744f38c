"""Stale QEMU binaries: instances that still run the QEMU a package upgrade replaced.

An upgrade (dpkg, rpm) writes the new binary beside the old one and renames it over the old
name; a running QEMU process keeps the old file, now unlinked, mapped until it exits
(``/proc/<pid>/exe`` then reads "… (deleted)"). It runs the old code: the upgrade's fixes
reach a guest only when its QEMU process is restarted (a reboot from inside the guest resets
the machine within the same process).

Reads (through hvcheck.facts): ``/proc/<pid>/exe`` (the link, and ``stat`` of the inode it
maps), ``stat`` of the binary's path (in the process's mount namespace), the process's start
time (``/proc/<pid>/stat``, ``/proc/stat`` btime), the QEMU processes of hvcheck.processes
(libvirt's status XML for the domain and its Nova metadata), and the QEMU package from the
package databases (``/var/lib/dpkg/status``, the RPM database, snaps).
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

from hvcheck import facts
from hvcheck.check import Check, Context
from hvcheck.facts import BinaryState
from hvcheck.model import OK, SKIP, UNKNOWN, WARNING, Result
from hvcheck.parsers.pkgdb import Package, upstream_release
from hvcheck.processes import QemuProcess, qemu_processes


def _label(q: QemuProcess) -> str:
    nova = q.domain.nova if q.domain else None
    disp = f" '{nova.name}'" if nova and nova.name else ""
    return f"{q.name or '?'}{disp} (pid {q.pid})"


def _names(qs: list[QemuProcess], limit: int = 5) -> str:
    s = ", ".join(_label(q) for q in qs[:limit])
    return s + (f" and {len(qs) - limit} more" if len(qs) > limit else "")


def when(ts: Optional[float]) -> Optional[str]:
    """A time in seconds since the epoch as ``2026-12-06 03:15:44 UTC``; None for None."""
    if ts is None:
        return None
    try:
        t = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _target(pkg: Optional[Package], state: BinaryState) -> str:
    """What a restart picks up: "QEMU 7.2 (qemu-system-x86 1:7.2+dfsg-7 installed)" when the
    package databases know the package that owns the binary's directory, else the file now
    at the path."""
    short = upstream_release(pkg.version) if pkg is not None else ""
    if pkg is not None and short:
        return f"QEMU {short} ({pkg.name} {pkg.evr} installed)"
    return f"the binary now at {state.path}" if state.path else "the binary now installed"


def _replaced(states: list[BinaryState]) -> str:
    """ " (replaced on 2026-12-06 03:31:43 UTC)", or between the first and last such times;
    "" when none is known."""
    times = sorted(t for t in (s.since for s in states) if t is not None)
    first, last = (when(times[0]), when(times[-1])) if times else (None, None)
    if first is None or last is None:
        return ""
    return f" (replaced on {first})" if first == last else f" (replaced {first} to {last})"


def _hint(stale: list[QemuProcess]) -> str:
    """How each kind of instance gets a new QEMU process: Nova, libvirt alone, plain QEMU."""
    nova = [q for q in stale if q.domain is not None and q.domain.nova is not None]
    libvirt = [q for q in stale if q.domain is not None and q.domain.nova is None]
    plain = [q for q in stale if q.domain is None]
    parts: list[str] = []
    if nova:
        server = nova[0].domain.uuid if nova[0].domain and nova[0].domain.uuid else "SERVER"
        parts.append(
            "Nova instances: live-migrate them (`openstack server migrate --live-migration "
            f"{server}`) or hard-reboot them (`openstack server reboot --hard {server}`): "
            "Nova's libvirt driver destroys and recreates the domain, so a new QEMU process "
            "starts from the installed binary"
        )
    if libvirt:
        name = libvirt[0].name or "DOMAIN"
        parts.append(
            f"libvirt domains: `virsh shutdown {name}` then `virsh start {name}`, or "
            f"`virsh migrate --live {name} qemu+ssh://OTHER-HOST/system`"
        )
    if plain:
        parts.append("plain QEMU processes: stop and start them again")
    parts.append(
        "a reboot from inside the guest keeps the same QEMU process; until it is restarted it "
        "runs the old code, whatever fixes the upgrade brought"
    )
    return "; ".join(parts)


class InstancesBinary(Check):
    id = "instances.binary"
    title = "Instances run the installed QEMU binary"
    reads = (
        "/proc/<pid>/exe (the link, and stat of the inode it maps)",
        "stat of the binary's path now (under /proc/<pid>/root for another mount namespace)",
        "/proc/<pid>/stat, /proc/stat btime (process start time, psutil)",
        "/run/libvirt/qemu/<name>.xml (domain, Nova metadata)",
        "/var/lib/dpkg/status, RPM database, /snap/*/current/meta/snap.yaml (QEMU package)",
    )

    def run(self, ctx: Context) -> Result:
        procs = qemu_processes(ctx)
        if not procs:
            return self.result(OK, "no QEMU instances running", code="none", count=0)
        states = facts.qemu_binaries(ctx)
        judged = [(q, states[q.pid]) for q in procs if q.pid in states]
        stale = [(q, s) for q, s in judged if s.stale is True]
        unknown = [(q, s) for q, s in judged if s.stale is None]
        evidence = [f"{_label(q)}: {self._line(s)}" for q, s in judged[:20]]
        details: dict[str, Any] = {
            "count": len(procs),
            "stale": [self._entry(ctx, q, s) for q, s in stale],
            "unknown": [self._entry(ctx, q, s) for q, s in unknown],
        }
        if stale:
            qs = [q for q, _ in stale]
            targets = [_target(facts.packaged_qemu(ctx, s.path), s) for _, s in stale]
            target = targets[0] if len(set(targets)) == 1 else "the binaries now installed"
            n = f"{len(stale)} of {len(procs)} instance(s)"
            return self.result(
                WARNING,
                f"{n} run a QEMU binary replaced since they started"
                f"{_replaced([st for _, st in stale])}: {_names(qs)}; restart or live-migrate "
                f"to pick up {target}",
                hint=_hint(qs),
                code="stale-binary",
                evidence=evidence,
                details=details,
            )
        if len(unknown) == len(judged) and all(s.how == "not-recorded" for _, s in unknown):
            return self.result(
                SKIP,
                "this snapshot records no stat of the QEMU binaries (made by an older hvcheck "
                "collect): cannot tell whether the instances run the installed one",
                code="not-recorded",
                evidence=evidence,
                details=details,
            )
        if unknown:
            qs = [q for q, _ in unknown]
            why = "; ".join(dict.fromkeys(s.why for _, s in unknown))[:300]
            return self.result(
                UNKNOWN,
                f"cannot tell whether {_names(qs)} run the installed QEMU binary: {why}",
                hint="run hvcheck as root: the inode behind /proc/PID/exe of another user's "
                "process can be read only with CAP_SYS_PTRACE",
                code="unknown",
                evidence=evidence,
                details=details,
            )
        pkg = facts.qemu_package(ctx)
        short = upstream_release(pkg.version) if pkg is not None else ""
        installed = f" (QEMU {short} installed: {pkg.name} {pkg.evr})" if pkg and short else ""
        return self.result(
            OK,
            f"{len(procs)} instance(s) run the QEMU binary now at their path{installed}",
            code="current",
            evidence=evidence,
            details=details,
        )

    @staticmethod
    def _line(s: BinaryState) -> str:
        word = {True: "stale", False: "current", None: "cannot tell"}[s.stale]
        date = when(s.since)
        how = f" ({s.how})" if s.how != word else ""
        return f"{word}{how}: {s.why}" + (f"; replaced on {date}" if date else "")

    @staticmethod
    def _entry(ctx: Context, q: QemuProcess, s: BinaryState) -> dict[str, Any]:
        pkg = facts.packaged_qemu(ctx, s.path) if s.stale else None
        return {
            "pid": q.pid,
            "name": q.name,
            "path": s.path,
            "how": s.how,
            "verified": s.verified,
            "replaced_at": when(s.since),
            "why": s.why,
            "installed": pkg.to_json() if pkg is not None else None,
        }
