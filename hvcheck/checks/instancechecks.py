"""Running instances: does every QEMU process really run with KVM?

Reads: the process table, /proc/<pid>/{cmdline,fd/*,task/*/comm,status},
/run/libvirt/qemu/*.xml, /etc/libvirt/qemu/*.xml (as each process sees them: see
hvcheck.processes), and the nova config (see hvcheck.novaconfig) to know what was intended;
for a QEMU that fell back to TCG, who it runs as (/etc/passwd and /etc/group as it sees them),
/dev/kvm's mode, ACL and udev rules, and its device cgroup (/proc/<pid>/cgroup,
/sys/fs/cgroup/devices/<path>/devices.list), to say why it could not open /dev/kvm.
"""

from __future__ import annotations

from typing import Any, Optional

from hvcheck import facts, novaconfig
from hvcheck.check import Check, Context
from hvcheck.model import Result, Status
from hvcheck.processes import QemuProcess, discovery, qemu_processes

INCOMPLETE_HINT = (
    "run hvcheck as root (sudo): only root sees every process (hidepid) and their fds; in a "
    "container, run it in the host's pid namespace"
)

FALLBACK_HINT = (
    "the QEMU user could not open /dev/kvm, so QEMU fell back to TCG: make /dev/kvm 0660 "
    'root:kvm with the QEMU user in group kvm (udev rule KERNEL=="kvm", GROUP="kvm", '
    'MODE="0660"), then cold-migrate or stop/start the instances (a reboot of the guest '
    "is not enough: the QEMU process must be restarted)"
)


def _fallback_hint(ctx: Context, procs: list[QemuProcess]) -> str:
    """Who each fell-back QEMU runs as and why that user cannot open /dev/kvm (the node's
    mode, ACL and udev rule, its device cgroup), with the lasting fix; the generic advice
    when the process's ids or the node are not known."""
    parts: list[str] = []
    seen: set[tuple[Optional[int], tuple[int, ...]]] = set()
    for q in procs:
        if (q.uid, q.gids) in seen:
            continue
        seen.add((q.uid, q.gids))
        try:
            pa = facts.process_kvm_access(ctx, q.pid, q.uid, q.gids)
        except OSError:  # the node's record cannot be read: the generic advice, not no verdict
            pa = None
        if pa is not None:
            parts.append(f"{_label(q)}: {pa.hint()}")
    if not parts:
        return FALLBACK_HINT
    restart = facts.deployment(ctx).restart_instances()
    return "; ".join(parts[:3]) + f"; then restart these instances' QEMU processes: {restart}"


def _tcg_hint(ctx: Context, tcg: list[QemuProcess]) -> str:
    """For instances under TCG where KVM is expected: the setting of what started them
    (Proxmox VE's kvm option, KubeVirt's useEmulation), else how to restart them with KVM."""
    dep = facts.deployment(ctx)
    fixes = list(dict.fromkeys(f for q in tcg[:3] for f in [dep.instance_kvm_fix(q.pid)] if f))
    if fixes:
        return "; ".join(fixes)
    return (
        "restart these instances with KVM (" + dep.restart_instances() + "; plain QEMU: "
        "-accel kvm); check why they did not get it (kvm.device, libvirt.qemu_user)"
    )


def _label(q: QemuProcess) -> str:
    name = q.name or "?"
    nova = q.domain.nova if q.domain else None
    disp = f" '{nova.name}'" if nova and nova.name else ""
    return f"{name}{disp} (pid {q.pid})"


def _names(qs: list[QemuProcess], limit: int = 5) -> str:
    s = ", ".join(_label(q) for q in qs[:limit])
    return s + (f" and {len(qs) - limit} more" if len(qs) > limit else "")


def _evidence(q: QemuProcess) -> str:
    d = q.decision
    if d.starting is not None:
        return f"{_label(q)}: starting ({d.starting})"
    line = f"{_label(q)}: {d.accel} by {', '.join(d.kinds) or 'nothing'}"
    if not d.verified and d.accel != "unknown":
        line += " (unverified)"
    if d.requested is None and d.conflict and "cannot tell what was asked" in d.conflict:
        line += "; cannot tell what was asked"
    return line


class InstancesAccel(Check):
    id = "instances.accel"
    title = "Instances really run with KVM"
    reads = (
        "process table (/proc/PID/cmdline, comm)",
        "/proc/<pid>/cmdline",
        "/proc/<pid>/fd/*",
        "/proc/<pid>/task/*/comm",
        "/proc/<pid>/status",
        "/run/libvirt/qemu/<name>.xml",
        "/etc/libvirt/qemu/<name>.xml",
        "stat of /proc/<pid>/exe (a QEMU is root's), of each directory to a -readconfig file "
        "(QEMU's user's rights)",
        "/proc/self/status, /proc/self/ns/pid, /proc/self/mountinfo (is the table complete?)",
    )

    def run(self, ctx: Context) -> Result:
        all_procs = qemu_processes(ctx)
        incomplete = discovery(ctx).incomplete
        # a QEMU still starting has no accelerator yet: named, never judged as KVM or TCG
        starting = [q for q in all_procs if q.decision.starting is not None]
        procs = [q for q in all_procs if q.decision.starting is None]
        if not procs:
            if incomplete:
                return self.result(
                    Status.UNKNOWN,
                    f"no QEMU instance visible, but {incomplete}",
                    hint=INCOMPLETE_HINT,
                    code="incomplete",
                    count=0,
                    incomplete=incomplete,
                    starting=[q.pid for q in starting],
                )
            if starting:
                return self.result(
                    Status.OK,
                    f"{len(starting)} QEMU instance(s) starting, no accelerator yet: "
                    f"{_names(starting)}",
                    code="starting",
                    evidence=[_evidence(q) for q in starting[:20]],
                    count=len(starting),
                    starting=[q.pid for q in starting],
                )
            return self.result(Status.OK, "no QEMU instances running", code="none", count=0)
        r = self._judge(ctx, procs, starting)
        if incomplete and r.status is not Status.CRITICAL:
            # what was seen may not be all there is: never an OK or WARNING over a gap
            return self.result(
                Status.UNKNOWN,
                f"{r.summary}; but {incomplete}",
                hint=INCOMPLETE_HINT,
                code="incomplete",
                evidence=r.evidence,
                details={**r.details, "incomplete": incomplete, "judged": r.status.label},
            )
        return r

    def _judge(self, ctx: Context, procs: list[QemuProcess], starting: list[QemuProcess]) -> Result:
        nova = novaconfig.nova_conf(ctx)
        virt_type = nova.effective_virt_type if nova is not None else None
        kvm = [q for q in procs if q.decision.accel == "kvm"]
        tcg = [q for q in procs if q.decision.accel == "tcg"]
        unknown = [q for q in procs if q.decision.accel == "unknown"]
        fallback = [q for q in tcg if q.decision.silent_fallback]
        ev = [_evidence(q) for q in (procs + starting)[:20]]
        warn, crit = ctx.options.get("tcg_warning"), ctx.options.get("tcg_critical")
        d = {
            "count": len(procs),
            "kvm": len(kvm),
            "tcg": len(tcg),
            "unknown": len(unknown),
            "silent_fallback": [q.pid for q in fallback],
            "starting": [q.pid for q in starting],
            "virt_type": virt_type,
            # the summary states the instance counts: the verdict need not repeat them
            "counts_instances": True,
            # the perfdata thresholds of tcg_instances (the -w/-c ranges where they judge):
            # any TCG instance is critical where nova asks for KVM
            "thresholds": {
                "tcg_instances": {"warning": "", "critical": "0" if virt_type == "kvm" else ""}
            },
        }
        counts = (
            f"{len(procs)} instance(s): {len(kvm)} KVM, {len(tcg)} TCG"
            + (f", {len(unknown)} unknown" if unknown else "")
            + (f"; {len(starting)} starting: {_names(starting)}" if starting else "")
        )
        # -w/-c judge the number of deliberate TCG instances; a silent fallback (asked for
        # KVM, runs TCG) is a broken host, CRITICAL whatever the thresholds say
        if (warn is not None or crit is not None) and not fallback:
            return self._thresholds(
                ctx, len(tcg), warn, crit, counts, tcg, fallback, unknown, ev, d
            )
        if fallback:
            return self.result(
                Status.CRITICAL,
                f"{counts}; silent fallback to TCG: {_names(fallback)} asked for KVM "
                f"({fallback[0].decision.requested}) but "
                f"{'hold' if len(fallback) > 1 else 'holds'} no KVM fd",
                hint=_fallback_hint(ctx, fallback),
                code="silent-fallback",
                evidence=ev,
                details=d,
            )
        if tcg and virt_type in (None, "kvm"):
            intended = "nova virt_type=kvm" if virt_type else "KVM is expected on this host"
            try:
                state = facts.kvm_state(ctx)
                usable, why = state.usable, state.reason
            except OSError as e:  # the instances' own evidence still stands
                usable, why = None, f"{e.strerror or e}"
            if virt_type is None and usable is False:
                # no nova, KVM not usable here: TCG is all this host can do
                return self.result(
                    Status.WARNING,
                    f"{counts}: {_names(tcg)} run under TCG "
                    "(10-50x slower); KVM is not usable on this host",
                    hint="see kvm.device / cpu.virt_ext",
                    code="tcg-no-kvm",
                    evidence=ev,
                    details=d,
                )
            if virt_type is None and usable is None:
                return self.result(
                    Status.WARNING,
                    f"{counts}: {_names(tcg)} run under TCG (10-50x slower); whether KVM is "
                    f"usable on this host cannot be told ({why})",
                    hint="see kvm.device / cpu.virt_ext",
                    code="tcg-kvm-unknown",
                    evidence=ev,
                    details=d,
                )
            status = Status.CRITICAL if virt_type == "kvm" else Status.WARNING
            return self.result(
                status,
                f"{counts}; emulated (TCG, 10-50x slower) although {intended}: {_names(tcg)}",
                hint=_tcg_hint(ctx, tcg),
                code="tcg-instances",
                evidence=ev,
                details=d,
            )
        if unknown:
            why = "; ".join(
                u for q in unknown for u in (*q.unreadable, *([q.identity] if q.identity else []))
            )[:200]
            others = [q.decision.other_accel for q in unknown if q.decision.other_accel]
            detail = f" (other accelerator: {', '.join(sorted(set(others)))})" if others else ""
            likely_tcg = [q for q in unknown if q.decision.likely == "tcg"]
            if likely_tcg:
                detail += f"; likely a silent fallback to TCG: {_names(likely_tcg)}"
            hint = "re-run with sudo to read /proc/<pid>/fd of QEMU processes"
            if likely_tcg:
                hint += f"; if they did fall back: {_fallback_hint(ctx, likely_tcg)}"
            return self.result(
                Status.UNKNOWN,
                f"{counts}; cannot prove the accelerator of {_names(unknown)}"
                f"{detail}" + (f": {why}" if why else ""),
                hint=hint,
                code="unknown",
                evidence=ev,
                details=d,
            )
        if tcg:  # virt_type == qemu (or another non-kvm type): TCG was intended
            return self.result(
                Status.OK,
                f"{counts}; TCG as configured (virt_type={virt_type})",
                code="tcg-as-configured",
                evidence=ev,
                details=d,
            )
        unverified = [q for q in kvm if not q.decision.verified]
        if unverified:
            # no fds or thread names: what they asked for, and QEMU does not start without it
            return self.result(
                Status.OK,
                f"{counts}: {len(kvm) - len(unverified)} hold KVM; requested kvm, unverified: "
                f"{_names(unverified)} (no fds or vCPU thread names to read)",
                code="kvm-unverified",
                evidence=ev,
                details=d,
            )
        return self.result(
            Status.OK, f"{counts}: every instance holds KVM", code="all-kvm", evidence=ev, details=d
        )

    def _thresholds(
        self,
        ctx: Context,
        n: int,
        warn: Any,
        crit: Any,
        counts: str,
        tcg: list[QemuProcess],
        fallback: list[QemuProcess],
        unknown: list[QemuProcess],
        ev: list[str],
        d: dict[str, Any],
    ) -> Result:
        """-w/-c given: the operator's ranges decide on the TCG count (fallbacks included)."""
        limits = d["thresholds"]["tcg_instances"]
        d = {
            **d,
            "warning_range": warn.text if warn else None,
            "critical_range": crit.text if crit else None,
            "thresholds": {
                "tcg_instances": {
                    "warning": warn.text if warn else limits["warning"],
                    "critical": crit.text if crit else limits["critical"],
                }
            },
        }
        names = f": {_names(tcg)}" if tcg else ""
        extra = f" ({len(fallback)} silent fallback)" if fallback else ""
        for rng, status, label in (
            (crit, Status.CRITICAL, "critical"),
            (warn, Status.WARNING, "warning"),
        ):
            if rng is not None and rng.alerts(n):
                return self.result(
                    status,
                    f"{counts}{extra}; TCG count {n} outside {label} range {rng.text}{names}",
                    hint=_fallback_hint(ctx, fallback)
                    if fallback
                    else "restart these instances with KVM",
                    code="tcg-threshold",
                    evidence=ev,
                    details=d,
                )
        if unknown:
            return self.result(
                Status.UNKNOWN,
                f"{counts}; cannot prove the accelerator of {_names(unknown)}",
                hint="re-run with sudo",
                code="unknown",
                evidence=ev,
                details=d,
            )
        return self.result(
            Status.OK,
            f"{counts}; TCG count {n} within thresholds{extra}",
            code="tcg-within-thresholds",
            evidence=ev,
            details=d,
        )
