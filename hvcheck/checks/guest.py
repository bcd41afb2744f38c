"""Checks run by ``hvcheck guest`` inside a VM (never in the host run: the engine selects ids
under ``guest.`` only there): is this VM accelerated or emulated, and is nested
virtualization offered to it?

Reads /proc/cpuinfo, the kernel log (/dev/kmsg), /sys/devices/system/clocksource/clocksource0/
{available,current}_clocksource, /sys/class/dmi/id/{sys_vendor,product_name},
/sys/hypervisor/type, /proc/sysinfo (s390x), /proc/device-tree/hypervisor/compatible and
/proc/device-tree/model (POWER), /proc/cmdline, /dev/kvm (stat), /proc/modules and /sys/module.
The judgements are hvcheck.facts.guest_accel and guest_nested.
"""

from __future__ import annotations

from typing import Optional

from hvcheck import facts
from hvcheck.check import Check, Context
from hvcheck.model import OK, SKIP, UNKNOWN, WARNING, Result


class GuestAccel(Check):
    id = "guest.accel"
    title = "This VM: KVM, another hypervisor, or TCG emulation"
    reads = facts.GUEST_READS

    def run(self, ctx: Context) -> Result:
        g = facts.guest_accel(ctx)
        details = {
            "accel": g.accel,
            "hypervisor": g.hypervisor,
            "platform": g.platform,
            "clues": [{"kind": c.kind, "says": c.says, "text": c.text} for c in g.clues],
            "unreadable": list(g.unreadable),
        }
        if g.accel in ("kvm", "other", "none"):
            code = {"kvm": "kvm", "other": "other-hypervisor", "none": "bare-metal"}[g.accel]
            return self.result(OK, g.summary, code=code, evidence=g.reasons, details=details)
        if g.accel == "tcg":
            return self.result(
                WARNING,
                g.summary,
                hint=_tcg_hint(g.platform),
                code="tcg",
                evidence=g.reasons,
                details=details,
            )
        return self.result(
            UNKNOWN,
            g.summary,
            hint=_unknown_hint(g),
            code="conflict" if g.summary.startswith("conflicting") else "cannot-tell",
            evidence=g.reasons,
            details=details,
        )


def _tcg_hint(platform: Optional[str]) -> str:
    """What to do about a guest that QEMU emulates: it is the layer below that must change."""
    below = (
        "the compute node runs this instance without KVM: its operator should run `hvcheck` "
        "there and set nova.conf [libvirt] virt_type = kvm once KVM is usable"
        if platform == "OpenStack Nova"
        else "the host runs this VM without KVM: run `hvcheck` on the host (can QEMU open "
        "/dev/kvm?), then start the VM with KVM (libvirt <domain type='kvm'>, QEMU -accel kvm; "
        "-accel kvm:tcg falls back to TCG silently when /dev/kvm cannot be opened)"
    )
    return below + "; until then QEMU translates every guest instruction in software"


def _unknown_hint(g: facts.GuestAccel) -> str:
    parts: list[str] = []
    if g.unreadable:
        parts.append(f"re-run as root: {', '.join(g.unreadable)} could not be read")
    kinds = {c.kind for c in g.clues}
    if "kernel-log" not in kinds:
        parts.append(
            "the kernel log holds the hypervisor the kernel detected at boot "
            "(Hypervisor detected: ...); if it has wrapped, `journalctl -k -b` may still have it"
        )
    if "clocksource" not in kinds:
        parts.append(
            "read /sys/devices/system/clocksource/clocksource0/available_clocksource "
            "(kvm-clock is there only under KVM)"
        )
    return "; ".join(parts) or "compare with `systemd-detect-virt --vm` on the live guest"


class GuestNested(Check):
    id = "guest.nested"
    title = "Nested virtualization offered to this VM"
    reads = ("/proc/cpuinfo", "/dev/kvm", "/proc/modules", "/sys/module", "/dev/kmsg")

    def run(self, ctx: Context) -> Result:
        n = facts.guest_nested(ctx)
        g = facts.guest_accel(ctx)
        details = {"nested": n.nested, "extension": n.extension, "device": n.device, "via": n.via}
        if g.accel == "none":
            return self.result(
                OK,
                "not a virtual machine: virtualization here is this host's own (run `hvcheck`)",
                code="bare-metal",
                evidence=n.evidence,
                details={**details, "nested": None},
            )
        if n.nested is None:
            return self.result(SKIP, n.summary, code="cannot-tell", details=details)
        hint: Optional[str] = None
        if g.accel == "tcg":
            hint = _offer_nested_hint(g.hypervisor, g.accel)
        elif n.nested and not n.device:
            module = {"vmx": "kvm_intel", "svm": "kvm_amd"}.get(n.extension or "", "kvm")
            hint = (
                f"modprobe {module}, and list it in /etc/modules-load.d/kvm.conf to keep it "
                "loaded after a reboot"
            )
        elif not n.nested:
            hint = _offer_nested_hint(g.hypervisor, g.accel)
        return self.result(
            OK,
            n.summary,
            hint=hint,
            code="offered" if n.nested else "not-offered",
            evidence=n.evidence,
            details=details,
        )


def _offer_nested_hint(hypervisor: Optional[str], accel: str) -> str:
    """How the layer below offers nested virtualization, for the hypervisor found."""
    if accel == "tcg":
        return (
            "this VM is emulated (TCG): give it KVM first; nested KVM inside TCG would be "
            "emulation within emulation"
        )
    return {
        "kvm": "on the KVM host: nested=1 for kvm_intel or kvm_amd (/etc/modprobe.d/kvm.conf: "
        "options kvm_intel nested=1) and this VM's CPU model host-passthrough (libvirt "
        "<cpu mode='host-passthrough'/>; Nova [libvirt] cpu_mode = host-passthrough)",
        "hyperv": "on the Hyper-V host, with the VM off: Set-VMProcessor -VMName <vm> "
        "-ExposeVirtualizationExtensions $true",
        "vmware": "in the VM's CPU settings: Expose hardware assisted virtualization to the "
        'guest OS (vhv.enable = "TRUE" in the .vmx)',
        "virtualbox": "with the VM off: VBoxManage modifyvm <vm> --nested-hw-virt on",
        "xen": "Xen: nestedhvm=1 in the domain's configuration (HVM guests only)",
    }.get(
        hypervisor or "",
        "the hypervisor below must expose VT-x/AMD-V to this VM (nested virtualization)",
    )


GUEST_CHECKS = (GuestAccel, GuestNested)
