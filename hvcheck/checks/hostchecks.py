"""Host readiness: can this host give a guest KVM?

Reads (through the host layer): /proc/cpuinfo, /proc/modules, /sys/module/*,
/lib/modules/*/modules.builtin, /dev/kvm (stat and functional probe), /dev/kmsg,
/dev/cpu/0/msr, /dev/vhost-net, /dev/net/tun, /sys/module/kvm_{intel,amd}/parameters/nested,
/sys/module/kvm/parameters/nested, /etc/modprobe.d/*.conf, /lib/modprobe.d/*.conf,
/usr/lib/modprobe.d/*.conf, /run/modprobe.d/*.conf, /proc/cmdline, /etc/os-release,
DMI and container markers.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from hvcheck import facts
from hvcheck.check import Check, Context
from hvcheck.model import CRITICAL, OK, SKIP, UNKNOWN, WARNING, Result
from hvcheck.mountns import process_root
from hvcheck.parsers.kernel import (
    CPU_LACKS,
    FAILURES,
    GUEST_WITHOUT_NESTED,
    MEANING_TEXT,
    NOT_AT_EL2,
    kvm_messages,
    param_enabled,
    parse_kernel_cmdline_param,
    parse_modprobe_options,
)

KVM_ARCHES = ("x86_64", "aarch64", "s390x", "ppc64", "ppc64le", "riscv64", "loongarch64")
FIRMWARE_HINT = (
    "enable Intel VT-x / AMD-V (SVM) in the firmware (BIOS/UEFI) setup, then cold "
    "power-cycle the host (a warm reboot can keep the MSR locked)"
)
NESTED_HINT = (
    "use [libvirt] virt_type = qemu in nova.conf, or enable nested virtualization on "
    "the host below (L0: kvm_intel nested=1 / kvm_amd nested=1, and give this VM a CPU "
    "model with vmx/svm, e.g. host-passthrough)"
)
EL2_HINT = (
    "the firmware or boot loader must start the kernel at EL2 (Arm's hypervisor level; "
    "TF-A/U-Boot/UEFI decide it): with the kernel entered at EL1, KVM cannot exist"
)


def firmware_hint(ctx: Context) -> str:
    """The firmware switch, named as this CPU's vendor names it."""
    vendor = facts.cpu_vendor_module(ctx)
    if vendor == "kvm_intel":
        what = "Intel Virtualization Technology (VT-x)"
    elif vendor == "kvm_amd":
        what = "SVM Mode (AMD-V)"
    else:
        return FIRMWARE_HINT
    return (
        f"enable {what} in the firmware (BIOS/UEFI) setup, then cold power-cycle the host "
        "(a warm reboot can keep the MSR locked)"
    )


# How the layer below gives a VM virtualization extensions (vendor documentation). The first
# entry whose words appear in the hypervisor name or the evidence applies.
_NESTED_BY_LAYER: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("wsl2",),
        "WSL2: set nestedVirtualization=true under [wsl2] in .wslconfig in the Windows user "
        "profile folder (Windows 11), then wsl --shutdown",
    ),
    (
        ("azure",),
        "Azure: resize the VM to a size that supports nested virtualization (the Dv3/Ev3 "
        "series and newer)",
    ),
    (
        ("hyper-v", "hyperv", "microsoft"),
        "Hyper-V: with the VM off, Set-VMProcessor -VMName <vm> "
        "-ExposeVirtualizationExtensions $true",
    ),
    (
        ("google",),
        "GCE: create the VM with --enable-nested-virtualization (an Intel machine type)",
    ),
    (
        ("amazon", "aws"),
        "AWS: use a *.metal instance type, or an instance type that offers nested virtualization",
    ),
    (
        ("virtualbox", "innotek", "oracle"),
        "VirtualBox: VBoxManage modifyvm <vm> --nested-hw-virt on (VirtualBox 6.1 or later, "
        "VM powered off)",
    ),
    (
        ("vmware",),
        'VMware: set vhv.enable = "TRUE" in the VM\'s .vmx ("Expose hardware assisted '
        'virtualization to the guest OS")',
    ),
    (("xen",), "Xen: nestedhvm=1 in the guest's xl configuration (HVM guests)"),
    (("parallels",), "Parallels: enable nested virtualization in the VM's CPU settings"),
    (
        ("firecracker",),
        "Firecracker exposes no VT-x/AMD-V to microVMs (nested virtualization is not "
        "offered): run guests on a host with VT-x/AMD-V, or through kvm_pvm",
    ),
    (
        ("powervm",),
        "PowerVM: enable 'KVM Mode' in the LPAR's configuration on the HMC (Power10, "
        "firmware FW1060.10 or later)",
    ),
    (("z/vm",), "z/VM: run the KVM host in an LPAR instead of a z/VM guest"),
)
# The generic KVM/QEMU host below, per CPU family of this VM
_NESTED_ON_KVM = {
    "x86": "on the KVM host below: kvm_intel nested=1 / kvm_amd nested=1, and a CPU model "
    "with vmx/svm for this VM (host-passthrough, -cpu host)",
    "arm": "on the KVM host below: an Armv8.4+ CPU with FEAT_NV2, kvm-arm.mode=nested, and "
    "QEMU -machine virt,virtualization=on for this VM",
    "s390": "on the KVM host below: kvm.nested=1 (s390x), and a CPU model with sie",
    "ppc": "on the KVM host below: kvm_hv nested=1, and QEMU -machine pseries,cap-nested-hv=on",
}
_EXTENSION = {"x86": "VT-x/AMD-V", "arm": "EL2", "s390": "SIE", "ppc": "nested KVM-HV"}


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    """Whole-word match ("hyperv" must not match "hypervisor detected")."""
    return any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w])", text) for w in words)


def nested_hint(ctx: Context) -> str:
    """What to switch on in the layer below this VM so it gets virtualization extensions."""
    env = facts.virt_env(ctx)
    fam = facts.arch(ctx).family or "x86"
    below = f"{env.hypervisor or ''} {' '.join(env.evidence)}".lower()
    how = next((h for words, h in _NESTED_BY_LAYER if _mentions(below, words)), None)
    if how is None:
        how = _NESTED_ON_KVM.get(fam, _NESTED_ON_KVM["x86"])
        if not _mentions(below, ("kvm", "qemu", "openstack", "proxmox", "ovirt")):
            how = f"the hypervisor below must expose {_EXTENSION.get(fam, 'virtualization')}; {how}"
    return (
        f"enable nested virtualization in the layer below this VM — {how}; or run guests "
        "without KVM: [libvirt] virt_type = qemu in nova.conf"
    )


def _install_hint(ctx: Context) -> str:
    return facts.install_command(ctx)


def _vendor_for_cpu(ctx: Context) -> Optional[str]:
    """The vendor module to load here: kvm_intel | kvm_amd (x86), kvm_hv | kvm_pr (POWER)."""
    ci = facts.cpuinfo(ctx)
    if ci is not None and ci.arch_family == "ppc":
        return "kvm_hv" if ci.platform == "PowerNV" else "kvm_pr"
    if ci is not None and ci.vmx:
        return "kvm_intel"
    if ci is not None and ci.svm:
        return "kvm_amd"
    # feat_ctl.c clears the vmx flag when firmware disabled VT-x: the vendor still tells
    # (on bare metal; in a VM a missing flag means the hypervisor below hides it)
    if ci is not None and ci.hypervisor:
        return None
    return facts.cpu_vendor_module(ctx)


_LOG_FAILURE_HINT = {
    "cpu-lacks": "this CPU has no VT-x/AMD-V as the kernel sees it: KVM guests need other "
    "hardware; without KVM use [libvirt] virt_type = qemu",
    "other-hypervisor-holds-vtx": "another hypervisor holds VT-x/AMD-V (VirtualBox, VMware "
    "Workstation, another KVM): stop its VMs and unload its driver (vboxdrv, vmmon), then load "
    "the KVM vendor module again (reboot if it is built in)",
    "disabled-on-command-line": "remove kvm-arm.mode=none from the kernel command line and reboot",
    "init-failed": "KVM's setup failed for another reason: read the kernel message and the "
    "source the catalogue names",
}


def kernel_log_hint(ctx: Context, error: Optional[str]) -> str:
    """What to do about a kernel log that could not be read, from why (``KernelLog.error``:
    "/dev/kmsg: EACCES (Permission denied)", "... ENOENT ...", a snapshot's note) and who
    ran: sudo helps only a user that is not root (kernel.dmesg_restrict=1 keeps /dev/kmsg
    from users without CAP_SYSLOG: kernel/printk/printk.c check_syslog_permissions)."""
    why = error or ""
    if "EACCES" in why or "EPERM" in why or "ermission denied" in why:
        if ctx.host.euid() != 0:
            if not ctx.host.live:
                return "take the snapshot again as root (`sudo hvcheck collect`)"
            return "re-run with sudo (or set kernel.dmesg_restrict=0)"
        return (
            "root was refused /dev/kmsg: in a container, reading it needs CAP_SYSLOG "
            "(kernel.dmesg_restrict=1) — run hvcheck on the host, or read `dmesg | grep -i kvm` "
            "there"
        )
    if "ENOENT" in why or "No such file" in why:
        return (
            "/dev/kmsg does not exist here (a container without the host's /dev/kmsg): run "
            "hvcheck on the host, or read `dmesg | grep -i kvm` there"
        )
    if not ctx.host.live:
        return "take the snapshot again with `hvcheck collect` run on the host itself, as root"
    return "read `dmesg | grep -i kvm` yourself"


def log_failure_hint(ctx: Context, meaning: str) -> str:
    """The lasting fix for a kernel-log failure meaning (hvcheck.parsers.kernel)."""
    if meaning == "firmware-disabled":
        return firmware_hint(ctx)
    if meaning == "guest-without-nested":
        return nested_hint(ctx)
    if meaning == "not-booted-at-el2":
        return EL2_HINT
    return _LOG_FAILURE_HINT.get(meaning, "read `dmesg | grep -i kvm`")


def nova_wants_qemu(ctx: Context) -> bool:
    """nova [libvirt] virt_type = qemu: this host is meant to emulate, KVM is not needed."""
    from hvcheck import novaconfig

    try:
        conf = novaconfig.nova_conf(ctx)
    except Exception:
        return False
    return conf is not None and conf.effective_virt_type == "qemu"


def compute_node(ctx: Context) -> bool:
    """A nova config, QEMU instances or a libvirt daemon: guest networking matters here."""
    from hvcheck import novaconfig
    from hvcheck.processes import qemu_processes

    try:
        return (
            novaconfig.nova_conf(ctx) is not None
            or bool(qemu_processes(ctx))
            or bool(facts.libvirt_daemons(ctx))
        )
    except Exception:
        return True


class KvmNeed(Check):
    """A check whose CRITICAL means "no KVM": not a problem where nova is set to emulate."""

    def judge(self, ctx: Context) -> Result:
        raise NotImplementedError

    def run(self, ctx: Context) -> Result:
        r = self.judge(ctx)
        if r.status is CRITICAL and nova_wants_qemu(ctx):
            return Result(
                r.id,
                OK,
                r.summary + " — expected: nova [libvirt] virt_type = qemu "
                "does not need KVM (a nested or emulation-only host)",
                hint=None,
                code=r.code + "-but-virt-type-qemu",
                evidence=r.evidence,
                details={**r.details, "relaxed_from": "CRITICAL"},
                title=r.title,
            )
        return r


class CpuArch(Check):
    id = "cpu.arch"
    title = "CPU architecture"
    reads = ("uname -m", "/proc/cpuinfo")

    def run(self, ctx: Context) -> Result:
        a = facts.arch(ctx)
        if not a.machine:
            return self.result(
                UNKNOWN,
                "architecture unknown: no uname and no readable cpuinfo",
                hint="check that /proc/cpuinfo is readable",
                code="unknown",
            )
        ev = [f"{a.source}: {a.machine}"]
        if a.machine in KVM_ARCHES:
            return self.result(
                OK,
                f"{a.machine}, 64-bit, an architecture KVM supports",
                code="ok",
                evidence=ev,
                arch=a.machine,
                family=a.family,
            )
        if a.family == "x86":
            return self.result(
                WARNING,
                f"{a.machine}: a 32-bit kernel; KVM needs a 64-bit "
                "kernel on current Linux (32-bit x86 host support was removed)",
                hint="install a 64-bit (x86_64) kernel and userland",
                code="32bit",
                evidence=ev,
                arch=a.machine,
                family=a.family,
            )
        if a.family == "arm":
            return self.result(
                WARNING,
                f"{a.machine}: a 32-bit ARM kernel; KVM for 32-bit ARM hosts was removed in "
                "Linux 5.7 (before that it needed the kernel entered in HYP mode)",
                hint="install a 64-bit (aarch64) kernel on an ARMv8 CPU, started at EL2; "
                "otherwise use virt_type=qemu (pure emulation)",
                code="32bit",
                evidence=ev,
                arch=a.machine,
                family=a.family,
            )
        return self.result(
            WARNING,
            f"{a.machine}: KVM is not available on this architecture",
            hint="use virt_type=qemu (pure emulation) on this host",
            code="unsupported",
            evidence=ev,
            arch=a.machine,
            family=a.family,
        )


class CpuVirtExt(KvmNeed):
    id = "cpu.virt_ext"
    title = "CPU virtualization extensions"
    reads = ("/proc/cpuinfo", "/dev/kvm", "/dev/kmsg")

    def judge(self, ctx: Context) -> Result:
        ci = facts.cpuinfo(ctx)
        if ci is None:
            return self.result(
                UNKNOWN,
                "/proc/cpuinfo is missing",
                code="no-cpuinfo",
                hint="check that /proc is mounted",
            )
        state = facts.kvm_state(ctx)
        env = facts.virt_env(ctx)
        fam = ci.arch_family or facts.arch(ctx).family
        details = {
            "family": fam,
            "vmx": ci.vmx,
            "svm": ci.svm,
            "sie": ci.sie,
            "hypervisor": ci.hypervisor,
            "platform": ci.platform,
        }
        if fam == "x86":
            if ci.vmx or ci.svm:
                ext = "vmx (Intel VT-x)" if ci.vmx else "svm (AMD-V)"
                fw = facts.firmware_disabled(ctx)
                if fw and not state.usable:
                    # AMD before ~6.8 keeps the svm flag when VM_CR.SVMDIS is set
                    return self.result(
                        CRITICAL,
                        f"{ext} is in the CPU but disabled by the firmware (kernel log: "
                        f"{fw[0].text})",
                        hint=firmware_hint(ctx),
                        code="disabled-by-firmware",
                        evidence=[f"/proc/cpuinfo flags: {ci.virt_ext}", "kernel log"],
                        details=details,
                    )
                return self.result(
                    OK,
                    f"{ext} present",
                    code="present",
                    evidence=[f"/proc/cpuinfo flags: {ci.virt_ext}"],
                    details=details,
                )
            ev = ["/proc/cpuinfo flags: no vmx, no svm"]
            if state.usable:
                why = " through kvm_pvm" if facts.modules(ctx).has("kvm_pvm") else ""
                return self.result(
                    OK,
                    f"no vmx/svm flag, but KVM works{why} ({state.reason}); a missing flag "
                    "is not the verdict",
                    code="absent-but-kvm-works",
                    evidence=[*ev, *state.evidence],
                    details=details,
                )
            held = facts.kvm_instances_seen(ctx)
            if held:
                # running KVM guests: the CPU (or PVM) gives this kernel KVM, whatever the flag
                return self.result(
                    OK,
                    f"no vmx/svm flag, but KVM guests run here ({facts.held_by(held)} "
                    f"hold{'s' if len(held) == 1 else ''} KVM vCPUs); a missing flag is not the "
                    "verdict",
                    code="absent-but-kvm-runs",
                    evidence=[*ev, *state.evidence],
                    details=details,
                )
            fw = facts.firmware_disabled(ctx)
            if fw:
                return self.result(
                    CRITICAL,
                    f"no vmx/svm: disabled by firmware ({fw[0].text})",
                    hint=firmware_hint(ctx),
                    code="disabled-by-firmware",
                    evidence=[*ev, "kernel log"],
                    details=details,
                )
            if state.usable is None:
                return self.result(
                    UNKNOWN,
                    f"no vmx/svm flag and {state.reason}",
                    hint="re-run with sudo so the /dev/kvm probe can decide"
                    if state.code == "eacces"
                    else "see kvm.device",
                    code="absent-cannot-tell",
                    evidence=ev,
                    details=details,
                )
            if ci.hypervisor or env.virtual:
                return self.result(
                    CRITICAL,
                    "no vmx/svm: this host is a VM whose CPU model does "
                    "not expose virtualization extensions",
                    hint=nested_hint(ctx),
                    code="absent-in-vm",
                    evidence=[*ev, *env.evidence],
                    details=details,
                )
            said = facts.kernel_log_state(ctx)
            if said.meaning == CPU_LACKS and said.finding is not None:
                return self.result(
                    CRITICAL,
                    f"no vmx/svm: the CPU has no VT-x/AMD-V (kernel log: "
                    f"{said.finding.message.text})",
                    hint=log_failure_hint(ctx, CPU_LACKS),
                    code="cpu-lacks",
                    evidence=[*ev, "kernel log"],
                    details=details,
                )
            return self.result(
                CRITICAL,
                "no vmx/svm: the CPU lacks VT-x/AMD-V or the firmware hides it",
                hint=firmware_hint(ctx),
                code="absent",
                evidence=ev,
                details=details,
            )
        if fam == "s390":
            if ci.sie:
                return self.result(
                    OK,
                    "sie (Start Interpretive Execution) present",
                    code="present",
                    evidence=["/proc/cpuinfo features: sie"],
                    details=details,
                )
            if state.usable:
                return self.result(
                    OK,
                    f"no sie feature listed, but {state.reason}",
                    code="absent-but-kvm-works",
                    evidence=state.evidence,
                    details=details,
                )
            return self.result(
                CRITICAL,
                "no sie feature: this image cannot run KVM guests "
                "(z/VM guests and LPARs without SIE)",
                hint=nested_hint(ctx),
                code="absent",
                evidence=["/proc/cpuinfo features"],
                details=details,
            )
        if fam == "ppc":
            ev = [f"/proc/cpuinfo platform: {ci.platform or 'unknown'}"]
            if ci.platform == "PowerNV":
                return self.result(
                    OK,
                    "POWER bare metal (PowerNV): KVM-HV possible (kvm_hv)",
                    code="powernv",
                    evidence=ev,
                    details=details,
                )
            if state.usable:
                return self.result(
                    OK,
                    f"pSeries guest/LPAR, but {state.reason} (kvm_pr, slower than kvm_hv)",
                    code="pseries-kvm-works",
                    evidence=[*ev, *state.evidence],
                    details=details,
                )
            return self.result(
                WARNING,
                "pSeries (LPAR or guest): only KVM-PR (kvm_pr) is "
                "possible, much slower than KVM-HV on PowerNV",
                hint="run KVM-HV on a PowerNV (OPAL) host, or modprobe kvm_pr",
                code="pseries",
                evidence=ev,
                details=details,
            )
        if fam == "arm":
            hyp = facts.arm_hyp(ctx)
            if state.usable:
                return self.result(
                    OK,
                    f"arm64 has no cpuinfo flag; {state.reason}",
                    code="arm-kvm-works",
                    evidence=state.evidence,
                    details=details,
                )
            if hyp is True:
                return self.result(
                    OK,
                    "kernel log: KVM hyp mode initialized",
                    code="arm-hyp-ok",
                    evidence=["kernel log"],
                    details=details,
                )
            if hyp is False or facts.kernel_log_state(ctx).meaning in (
                NOT_AT_EL2,
                GUEST_WITHOUT_NESTED,
            ):
                said = facts.kernel_log_state(ctx)
                text = said.finding.message.text if said.finding else "HYP mode not available"
                if said.meaning == GUEST_WITHOUT_NESTED:
                    return self.result(
                        CRITICAL,
                        f"kernel log: {text} — this VM was not given EL2 (nested "
                        "virtualization) by the hypervisor below",
                        hint=nested_hint(ctx),
                        code="arm-no-el2-in-vm",
                        evidence=["kernel log", *facts.virt_env(ctx).evidence],
                        details=details,
                    )
                return self.result(
                    CRITICAL,
                    f"kernel log: {text} (the kernel was not started at EL2)",
                    hint=EL2_HINT,
                    code="arm-no-hyp",
                    evidence=["kernel log"],
                    details=details,
                )
            return self.result(
                UNKNOWN if state.usable is None else CRITICAL,
                f"arm64 has no cpuinfo flag; {state.reason}",
                hint=None if state.usable is None else nested_hint(ctx),
                code="arm-undecided",
                evidence=state.evidence,
                details=details,
            )
        return self.result(
            SKIP,
            "no virtualization extension known for this architecture",
            code="n/a",
            details=details,
        )


class HostVirtual(Check):
    id = "host.virtual"
    title = "Host is itself a VM or container"
    reads = (
        "/proc/cpuinfo",
        "/sys/hypervisor/type",
        "/sys/class/dmi/id/sys_vendor",
        "/sys/class/dmi/id/product_name",
        "/proc/sysinfo",
        "/proc/1/cgroup",
        "/.dockerenv",
        "/run/.containerenv",
        "/run/systemd/container",
        "/dev/kmsg",
    )

    def run(self, ctx: Context) -> Result:
        env = facts.virt_env(ctx)
        d = {
            "virtual": env.virtual,
            "hypervisor": env.hypervisor,
            "container": env.container,
            "container_marker_only": env.container_weak,
        }
        if env.container and env.container_weak and env.virtual:
            below = env.hypervisor or "a hypervisor"
            return self.result(
                OK,
                f"this host is a virtual machine on {below}: KVM here is "
                "nested and needs nested virtualization from the host below"
                f" (a {env.container} marker file exists too, "
                "left by the image it was built from)",
                code="vm",
                evidence=env.evidence,
                details=d,
            )
        if env.container:
            return self.result(
                OK,
                f"runs in a {env.container} container: KVM needs /dev/kvm "
                "passed into it and the host kernel's modules",
                code="container",
                evidence=env.evidence,
                details=d,
            )
        if env.virtual:
            what = f" on {env.hypervisor}" if env.hypervisor else ""
            return self.result(
                OK,
                f"this host is a virtual machine{what}: KVM here is nested "
                "and needs nested virtualization from the host below, otherwise "
                "use virt_type=qemu",
                code="vm",
                evidence=env.evidence,
                details=d,
            )
        if env.virtual is False:
            return self.result(
                OK,
                "bare metal (no hypervisor evidence)",
                code="bare-metal",
                evidence=env.evidence or ["/proc/cpuinfo"],
                details=d,
            )
        return self.result(
            OK,
            "no evidence of a hypervisor below this host",
            code="no-evidence",
            evidence=env.evidence,
            details=d,
        )


# IA32_FEATURE_CONTROL (Intel SDM vol. 3, 23.7): bit 0 lock, bit 2 VMX outside SMX.
MSR_IA32_FEATURE_CONTROL = 0x3A
# AMD VM_CR (APM vol. 2, 15.30.1): bit 4 SVMDIS, bit 3 LOCK.
MSR_VM_CR = 0xC0010114


class FirmwareVirt(KvmNeed):
    id = "firmware.virt"
    title = "Virtualization enabled in firmware"
    reads = ("/dev/kmsg", "/dev/cpu/0/msr")

    def judge(self, ctx: Context) -> Result:
        fam = facts.arch(ctx).family
        if fam != "x86":
            return self.result(SKIP, "firmware VT-x/AMD-V switch applies to x86 only", code="n/a")
        fw = facts.firmware_disabled(ctx)
        log = facts.kernel_log(ctx)
        ci = facts.cpuinfo(ctx)
        ev: list[str] = []
        msr_note = ""
        if ci is not None and (ci.vmx or not ci.svm):
            msr = ctx.host.read_msr(0, MSR_IA32_FEATURE_CONTROL)
            if msr is not None and msr.value is not None:
                locked, vmx_on = bool(msr.value & 1), bool(msr.value & 4)
                ev.append(f"MSR IA32_FEATURE_CONTROL = {msr.value:#x}")
                if locked and not vmx_on and ci.vmx is False and not ci.svm:
                    return self.result(
                        CRITICAL,
                        "IA32_FEATURE_CONTROL is locked with VMX off: VT-x disabled in firmware",
                        hint=firmware_hint(ctx),
                        code="msr-vmx-locked-off",
                        evidence=ev,
                        msr=msr.value,
                    )
                msr_note = "; IA32_FEATURE_CONTROL allows VMX" if vmx_on else ""
        if ci is not None and ci.svm:
            msr = ctx.host.read_msr(0, MSR_VM_CR)
            if msr is not None and msr.value is not None:
                ev.append(f"MSR VM_CR = {msr.value:#x}")
                if msr.value & 0x10:
                    return self.result(
                        CRITICAL,
                        "VM_CR.SVMDIS is set: AMD-V disabled in firmware",
                        hint=firmware_hint(ctx),
                        code="msr-svm-disabled",
                        evidence=ev,
                        msr=msr.value,
                    )
        works = facts.working_evidence(ctx)
        if works:
            stale = [
                f.message.text
                for f in facts.kvm_log_findings(ctx)
                if f.note.startswith("outranked")
            ]
            return self.result(
                OK,
                f"virtualization is enabled: {works}" + msr_note,
                code="enabled",
                evidence=[works, *ev],
                outranked_log_lines=stale,
            )
        if fw:
            return self.result(
                CRITICAL,
                f"kernel log: {fw[0].text}",
                hint=firmware_hint(ctx),
                code="disabled-by-firmware",
                evidence=[log.source, *ev],
                messages=[m.text for m in fw],
                sources=[m.wording.source for m in fw if m.wording],
            )
        state = facts.kvm_state(ctx)
        if state.usable:
            return self.result(
                OK,
                "virtualization is enabled (KVM works)" + msr_note,
                code="enabled",
                evidence=[*state.evidence[:1], *ev],
            )
        vs = facts.vendor_state(ctx)
        if vs.started and vs.module in ("kvm_intel", "kvm_amd"):
            # vmx_init()/svm_init() refuse to start when firmware disabled VT-x/AMD-V
            # (arch/x86/kvm/vmx/vmx.c, svm/svm.c): a started vendor module proves it is on
            return self.result(
                OK,
                f"{vs.module} runs ({vs.evidence}), which it cannot with VT-x/AMD-V "
                "disabled in firmware" + msr_note,
                code="vendor-module-loaded",
                evidence=[f"module {vs.module} {vs.how}", *ev],
            )
        env = facts.virt_env(ctx)
        if env.virtual and ci is not None and not (ci.vmx or ci.svm):
            return self.result(
                SKIP,
                "this host is a VM without VT-x/AMD-V: the firmware switch that matters is "
                "the physical host's, and the hypervisor below decides what this VM gets "
                "(see cpu.virt_ext)",
                code="vm",
                evidence=list(env.evidence),
            )
        if log.error:
            return self.result(
                UNKNOWN,
                f"kernel log unreadable ({log.error}); cannot tell if the "
                "firmware disabled VT-x/AMD-V",
                hint=kernel_log_hint(ctx, log.error),
                code="no-kernel-log",
                evidence=ev,
            )
        return self.result(
            OK,
            "no firmware 'disabled by BIOS' message in the kernel log" + msr_note,
            code="no-message",
            evidence=[log.source, *ev],
        )


class KvmModules(KvmNeed):
    id = "kvm.modules"
    title = "KVM kernel modules"
    reads = (
        "/proc/modules",
        "/sys/module/kvm",
        "/sys/module/kvm_intel",
        "/sys/module/kvm_amd",
        "/sys/module/kvm_pvm",
        "/sys/module/kvm_hv",
        "/sys/module/kvm_pr",
        "/lib/modules/$(uname -r)/modules.builtin",
    )

    def judge(self, ctx: Context) -> Result:
        mods = facts.modules(ctx)
        fam = facts.arch(ctx).family or ""
        vendors = [m for m in facts.VENDOR_MODULES.get(fam, ()) if mods.has(m)]
        have_kvm = mods.has("kvm")
        vs = facts.vendor_state(ctx)
        ev = [f"{m}: {mods.how(m)}" for m in ["kvm", *vendors] if mods.has(m)] or [
            f"searched {', '.join(mods.sources) or 'nothing readable'}"
        ]
        d: dict[str, Any] = {
            "kvm": mods.how("kvm"),
            "vendor": {m: mods.how(m) for m in vendors},
            "vendor_module": vs.module,
            "vendor_started": vs.started,
            "sources": list(mods.sources),
        }
        state = facts.kvm_state(ctx)
        needs_vendor = bool(facts.VENDOR_MODULES.get(fam))
        if have_kvm and (not needs_vendor or vs.started):
            running = ["kvm", *([vs.module] if vs.module else [])]
            if vs.module == "kvm_pvm":
                return self._pvm(ctx, running, ev, d)
            extra = f" ({vs.module} {vs.how}: {vs.evidence})" if vs.module else ""
            return self.result(
                OK, f"{', '.join(running)} present{extra}", code="ok", evidence=ev, details=d
            )
        if state.usable and state.code == "probe-ok":
            if vs.module == "kvm_pvm":
                return self._pvm(ctx, ["kvm", "kvm_pvm"], ev, d)
            return self.result(
                OK,
                "KVM works (built into the kernel or module list unreadable)",
                code="kvm-works",
                evidence=[*ev, *state.evidence[:1]],
                details=d,
            )
        if fam == "arm" and (state.usable or facts.arm_hyp(ctx)):
            return self.result(
                OK, "arm64 KVM is built into the kernel", code="builtin", evidence=ev, details=d
            )
        want = _vendor_for_cpu(ctx)
        if not mods.sources:
            return self.result(
                UNKNOWN,
                "cannot list kernel modules (/proc/modules and /sys/module unreadable)",
                code="unreadable",
                evidence=ev,
                details=d,
            )
        fw = facts.firmware_disabled(ctx)
        if fw and fam == "x86":
            return self.result(
                CRITICAL,
                f"the vendor module cannot start: {fw[0].text}",
                hint=firmware_hint(ctx),
                code="firmware",
                evidence=[*ev, "kernel log"],
                details=d,
            )
        said = facts.kernel_log_state(ctx)
        reason = (
            f" (kernel log: {said.finding.message.text})"
            if said.available is False and said.finding is not None
            else ""
        )
        if vs.module and mods.has(vs.module) and vs.started is False:
            # a built-in vendor module keeps its /sys/module entry when its init fails
            hint = (
                log_failure_hint(ctx, said.meaning)
                if said.available is False
                else "read `dmesg | grep -i kvm` for why it did not start"
            )
            env = facts.virt_env(ctx)
            ci = facts.cpuinfo(ctx)
            if said.available is not False and env.virtual and ci and not (ci.vmx or ci.svm):
                hint = nested_hint(ctx)
            return self.result(
                CRITICAL,
                f"{vs.module} is {vs.how} but did not start{reason}: /dev/kvm cannot work",
                hint=hint + f"; a {vs.module} built into the kernel cannot be reloaded, only "
                "rebooted"
                if "built in" in vs.how
                else hint,
                code="vendor-not-started",
                evidence=[*ev, vs.evidence],
                details=d,
            )
        if vs.module and mods.has(vs.module) and vs.started is None:
            return self.result(
                UNKNOWN,
                f"{vs.evidence}",
                hint="see kvm.device",
                code="vendor-undecided",
                evidence=ev,
                details=d,
            )
        if have_kvm and needs_vendor:
            if said.available is False:
                hint = log_failure_hint(ctx, said.meaning)
            else:
                hint = f"modprobe {want}" if want else "modprobe kvm_intel (Intel) or kvm_amd (AMD)"
                hint += "; if it fails, read `dmesg | grep -i kvm`"
            return self.result(
                CRITICAL,
                "kvm is loaded without a vendor module "
                f"({'/'.join(facts.VENDOR_MODULES[fam])}){reason}: /dev/kvm cannot work",
                hint=hint,
                code="no-vendor",
                evidence=ev,
                details=d,
            )
        if said.available is False:
            hint = log_failure_hint(ctx, said.meaning)
        elif want:
            hint = (
                f"modprobe {want} (persist: echo {want} > /etc/modules-load.d/kvm.conf); "
                f"if missing: {_install_hint(ctx)}"
            )
        elif fam == "x86":
            hint = "no vmx/svm: the module cannot load here; " + nested_hint(ctx)
        elif fam == "arm":
            # arch/arm64/kvm/Kconfig: KVM is bool, never a module
            hint = (
                "arm64 KVM is built into the kernel (CONFIG_KVM=y) and has no module to load: "
                "without /dev/kvm, " + EL2_HINT
            )
        else:
            hint = f"modprobe kvm; if missing: {_install_hint(ctx)}"
        return self.result(
            CRITICAL,
            f"kvm modules are not loaded{reason}",
            hint=hint,
            code="not-loaded",
            evidence=ev,
            details=d,
        )

    def _pvm(self, ctx: Context, running: list[str], ev: list[str], d: dict[str, Any]) -> Result:
        """kvm_pvm: KVM without VT-x/AMD-V, for PVM-enabled guest kernels only."""
        pvm_lines = [m.text for m in facts.kernel_messages(ctx) if m.module == "kvm_pvm"]
        ci = facts.cpuinfo(ctx)
        more = list(pvm_lines[:1])
        if ci is not None and ci.arch_family == "x86" and not (ci.vmx or ci.svm):
            more.append("/proc/cpuinfo: no vmx, no svm")
        return self.result(
            WARNING,
            f"{', '.join(running)} present: KVM here is PVM (kvm_pvm), which runs only "
            "PVM-enabled guest kernels — ordinary distribution and cloud images will not boot "
            "under -accel kvm (they hang early or stop with 'KVM internal error ... emulation "
            "failure')",
            hint="boot guests with a PVM-enabled guest kernel, or run stock images under TCG "
            "([libvirt] virt_type = qemu); a host with VT-x/AMD-V (kvm_intel/kvm_amd) runs "
            "them under KVM",
            code="pvm-guest-kernels-only",
            evidence=[*ev, *more],
            details=d,
        )


# the node made by hand, as its package's udev rule would leave it (Debian's, Ubuntu's and
# RHEL's: group kvm, 0660)
_MKNOD_KVM = (
    "mknod /dev/kvm c 10 232, with the owner and mode your distribution gives it (root:kvm "
    "0660 on Debian, Ubuntu, RHEL)"
)


class KvmDevice(KvmNeed):
    def _not_visible(self, ctx: Context, state: facts.KvmState, d: dict[str, object]) -> Result:
        """No /dev/kvm in hvcheck's mount namespace while QEMU processes in another one run
        KVM vCPUs: hvcheck in a container (its mount namespace is not init's, pid 1's; or a
        container runtime's files say so) cannot probe the device; hvcheck on the host, whose
        /dev lacks the node that a container's own /dev has, can start no KVM guest itself."""
        env = facts.virt_env(ctx)
        own = process_root(ctx, 1).other_ns  # True: not in the mount namespace of pid 1
        if own is True or (env.container and not env.container_weak):
            return self.result(
                UNKNOWN,
                state.reason,
                hint="run hvcheck on the host itself (nsenter -t 1 -m -p hvcheck), or give its "
                "container the device (docker/podman run --device /dev/kvm; a Kubernetes pod: "
                "the device plugin or a hostPath /dev/kvm) so that the probe can decide",
                code="not-visible",
                evidence=list(state.evidence),
                details=d,
            )
        return self.result(
            WARNING,
            f"{state.reason}; hvcheck runs in the host's mount namespace: guests started in "
            "that other namespace get KVM through its own /dev, guests started on the host "
            "cannot",
            hint="recreate the host's node: " + _MKNOD_KVM,
            code="missing-on-host",
            evidence=list(state.evidence),
            details=d,
        )

    id = "kvm.device"
    title = "/dev/kvm"
    reads = ("/dev/kvm (stat, open, KVM_GET_API_VERSION, KVM_CREATE_VM)", *facts.ACCESS_READS)

    def judge(self, ctx: Context) -> Result:
        dev = facts.kvm_device(ctx)
        state = facts.kvm_state(ctx)
        probe = facts.kvm_probe(ctx)
        d: dict[str, object] = {
            "probe": probe.to_json() if probe else None,
            "device": None
            if dev is None
            else {
                "type": dev.type,
                "major": dev.major,
                "minor": dev.minor,
                "mode": dev.mode,
                "owner": dev.owner or dev.uid,
                "group": dev.group or dev.gid,
            },
        }
        desc = facts.node_desc(dev) if dev else "absent"
        if state.code == "not-visible":
            return self._not_visible(ctx, state, d)
        if dev is None or state.code == "no-device":
            fw = facts.firmware_disabled(ctx)
            mods = facts.modules(ctx)
            vs = facts.vendor_state(ctx)
            said = facts.kernel_log_state(ctx)
            want = _vendor_for_cpu(ctx)
            env = facts.virt_env(ctx)
            ci = facts.cpuinfo(ctx)
            held = facts.kvm_instances_seen(ctx)
            if held:
                # guests that opened the node before it went still run KVM: the modules are
                # loaded and work; only the node is gone (a reload would need them stopped)
                hint = (
                    f"the node was removed while KVM guests run ({facts.held_by(held)}): "
                    + _MKNOD_KVM
                )
            elif fw:
                hint = firmware_hint(ctx)
            elif said.available is False:
                hint = log_failure_hint(ctx, said.meaning)
            elif env.virtual and ci is not None and not (ci.vmx or ci.svm or ci.sie):
                hint = nested_hint(ctx)
            elif vs.module and mods.has(vs.module) and vs.started is False:
                hint = (
                    f"{vs.module} is {vs.how} but did not start: read `dmesg | grep -i kvm` "
                    "(see kvm.kernel_log)"
                )
            elif mods.has("kvm") and want and not mods.has(want):
                hint = f"modprobe {want} (kvm is loaded, {want} is not)"
            else:
                hint = f"load the KVM modules (see kvm.modules); {_install_hint(ctx)}"
            return self.result(
                CRITICAL,
                "/dev/kvm does not exist: guests cannot get KVM"
                + ("" if not held else " (those already running keep it)"),
                hint=hint,
                code="missing",
                evidence=["stat /dev/kvm: ENOENT"],
                details=d,
            )
        if dev.type != "char" or (dev.major, dev.minor) != (facts.KVM_MAJOR, facts.KVM_MINOR):
            return self.result(
                CRITICAL,
                f"/dev/kvm is not the KVM device ({desc}; expected char 10:232)",
                hint=f"{'rmdir' if dev.type == 'dir' else 'rm'} /dev/kvm, then mknod /dev/kvm "
                "c 10 232 (or reload kvm: the kernel's devtmpfs makes the node)",
                code="wrong-device",
                evidence=[f"stat /dev/kvm: {desc}"],
                details=d,
            )
        if state.code == "eacces":
            return self.result(
                UNKNOWN,
                f"/dev/kvm ({desc}) is not accessible to this user: cannot tell whether KVM works",
                hint="re-run with sudo (sudo hvcheck) to probe /dev/kvm"
                + facts.refused_open_hint(ctx, "/dev/kvm", dev, probe),
                code="permission-denied",
                evidence=list(state.evidence),
                details=d,
            )
        if state.usable is False:
            return self.result(
                CRITICAL,
                f"/dev/kvm ({desc}) is present but failing: {state.reason}",
                hint="read `dmesg | grep -i kvm`; another "
                "hypervisor (VirtualBox, VMware) holding VT-x, or a half-loaded "
                "module, causes this",
                code="failing",
                evidence=list(state.evidence),
                details=d,
            )
        how = "works" if state.code == "probe-ok" else "present (no probe recorded)"
        return self.result(
            OK,
            f"/dev/kvm {how}: {desc}; {state.reason}",
            code=state.code,
            evidence=[f"stat /dev/kvm: {desc}", *state.evidence],
            details=d,
        )


class NetDevices(Check):
    id = "kvm.vhost"
    title = "vhost-net and tun"
    reads = ("/dev/vhost-net", "/dev/net/tun", "/sys/module/vhost_net", "/sys/module/tun")

    def run(self, ctx: Context) -> Result:
        vhost = ctx.host.stat_device("/dev/vhost-net")
        tun = ctx.host.stat_device("/dev/net/tun")
        ev = [
            f"/dev/vhost-net {'present' if vhost else 'absent'}",
            f"/dev/net/tun {'present' if tun else 'absent'}",
        ]
        d = {"vhost_net": vhost is not None, "tun": tun is not None}
        if tun is None:
            return self.result(
                WARNING,
                "/dev/net/tun is missing: libvirt cannot create tap interfaces for guests",
                hint="modprobe tun",
                code="no-tun",
                evidence=ev,
                details=d,
            )
        if vhost is None and not compute_node(ctx):
            return self.result(
                OK,
                "/dev/vhost-net is missing; it matters once guests run "
                "here (no nova config, no libvirtd, no QEMU instances now)",
                hint="modprobe vhost_net",
                code="no-vhost-net-idle",
                evidence=ev,
                details=d,
            )
        if vhost is None:
            return self.result(
                WARNING,
                "/dev/vhost-net is missing: guest networking runs in "
                "QEMU userspace (slower, more host CPU)",
                hint="modprobe vhost_net (persist: echo vhost_net > "
                "/etc/modules-load.d/vhost.conf)",
                code="no-vhost-net",
                evidence=ev,
                details=d,
            )
        return self.result(
            OK, "/dev/vhost-net and /dev/net/tun present", code="ok", evidence=ev, details=d
        )


_NESTED = {
    "kvm_intel": "/sys/module/kvm_intel/parameters/nested",
    "kvm_amd": "/sys/module/kvm_amd/parameters/nested",
    "kvm_hv": "/sys/module/kvm_hv/parameters/nested",
    "kvm": "/sys/module/kvm/parameters/nested",  # s390x: kvm.ko itself
}
_MODPROBE_DIRS = (
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
)
_CMDLINE_HOW = (
    "the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub or "
    "grub2-mkconfig -o /boot/grub2/grub.cfg; or grubby --update-kernel=ALL --args=...)"
)


class Nested(Check):
    id = "nested.runtime"
    title = "Nested virtualization (runtime vs persisted)"
    reads = (*_NESTED.values(), *(f"{d}/*.conf" for d in _MODPROBE_DIRS), "/proc/cmdline")

    @staticmethod
    def _module(ctx: Context) -> Optional[str]:
        """Whose nested parameter counts: the vendor module this CPU runs (a built-in kvm_intel
        keeps /sys/module/kvm_intel/parameters on an AMD host, where it means nothing)."""
        fam = facts.arch(ctx).family
        if fam == "s390":
            return "kvm"
        vs = facts.vendor_state(ctx)
        if vs.module in _NESTED:
            return vs.module
        if fam in ("x86", None) and vs.module is None:
            for mod in ("kvm_intel", "kvm_amd"):
                if mod in facts.modules(ctx).loaded:
                    return mod
        return None

    def run(self, ctx: Context) -> Result:
        mod = self._module(ctx)
        vs = facts.vendor_state(ctx)
        path = _NESTED.get(mod or "", "")
        raw_text = ctx.host.read_opt(path) if mod else None
        if mod is None or raw_text is None:
            what = f"{vs.module} has no nested parameter" if vs.module else "no vendor module"
            return self.result(
                SKIP,
                f"no nested parameter to read ({what}; kvm_intel/kvm_amd/kvm_hv/s390 kvm not "
                "running)",
                code="n/a",
            )
        if mod == vs.module and vs.started is False:
            return self.result(
                SKIP,
                f"{mod} is {vs.how} but did not start: its nested parameter means nothing "
                "until it runs",
                code="not-started",
                evidence=[vs.evidence],
            )
        raw = raw_text.strip()
        rt = param_enabled(raw)
        mods = facts.modules(ctx)
        builtin = mod in mods.builtin and mod not in mods.loaded
        cmdline = ctx.host.read_opt("/proc/cmdline") or ""
        on_cmdline = parse_kernel_cmdline_param(cmdline, mod, "nested")
        in_modprobe = self._modprobe(ctx, mod)
        key = f"{mod.replace('_', '-')}.nested"
        persisted: Optional[tuple[str, str]] = None
        if on_cmdline is not None:
            persisted = (on_cmdline, f"kernel command line {key}")
        elif in_modprobe is not None and not builtin:
            persisted = in_modprobe
        d = {
            "module": mod,
            "builtin": builtin,
            "runtime": raw,
            "runtime_enabled": rt,
            "persisted": None
            if persisted is None
            else {"value": persisted[0], "source": persisted[1]},
            "modprobe_d": None
            if in_modprobe is None
            else {"value": in_modprobe[0], "source": in_modprobe[1], "applies": not builtin},
        }
        ev = [f"{path} = {raw}"]
        if builtin:
            ev.append(f"{mod} is built into the kernel (modules.builtin)")
        if persisted:
            ev.append(f"{persisted[1]}: nested={persisted[0]}")
        if in_modprobe is not None and builtin:
            ev.append(f"{in_modprobe[1]}: nested={in_modprobe[0]} (not read: built in)")
        want = "1" if mod == "kvm_amd" or mod == "kvm" else "Y"
        if builtin and in_modprobe is not None and on_cmdline is None:
            wanted = param_enabled(in_modprobe[0])
            if wanted != rt:
                state = "on" if wanted else "off"
                return self.result(
                    WARNING,
                    f"{mod} nested is {raw} at runtime ({path}) and {in_modprobe[1]} sets "
                    f"nested={in_modprobe[0]}, which never applies: {mod} is built into the "
                    "kernel, and modprobe.d only configures modules that modprobe loads",
                    hint=f"to turn nested {state}, add {key}={in_modprobe[0]} to {_CMDLINE_HOW}, "
                    f"and reboot (a built-in {mod} cannot be reloaded); drop the inert "
                    f"options line from {in_modprobe[1].rsplit(':', 1)[0]}",
                    code="builtin-modprobe-ignored",
                    evidence=ev,
                    details=d,
                )
        if persisted is not None and param_enabled(persisted[0]) != rt:
            if builtin:
                hint = (
                    f"reboot to apply {persisted[1]}={persisted[0]} (a built-in {mod} cannot "
                    "be reloaded)"
                )
            else:
                hint = (
                    f"reload to apply: modprobe -r {mod} && modprobe {mod} (with no guests "
                    "running), or fix the persisted setting to match"
                )
            return self.result(
                WARNING,
                f"{mod} nested is {raw} at runtime ({path}) but {persisted[1]} sets "
                f"nested={persisted[0]}: the next "
                + ("reboot" if builtin else "module load or reboot")
                + " changes it",
                hint=hint,
                code="mismatch",
                evidence=ev,
                details=d,
            )
        state = "enabled" if rt else "disabled"
        if persisted:
            tail = ""
        elif builtin:
            tail = (
                f" (built in: kernel default; {key}={want} on the kernel command line changes it)"
            )
        else:
            tail = " (not set persistently; kernel default)"
        return self.result(
            OK, f"{mod} nested {state} ({raw}){tail}", code=state, evidence=ev, details=d
        )

    @staticmethod
    def _modprobe(ctx: Context, mod: str) -> Optional[tuple[str, str]]:
        found: Optional[tuple[str, str]] = None
        # modprobe.d(5): files sorted by name across directories; /etc overrides same-named
        # files in /lib. The last "options" for a parameter wins.
        byname: dict[str, str] = {}
        for d in reversed(_MODPROBE_DIRS):
            for p in ctx.host.glob(f"{d}/*.conf"):
                byname[p.rsplit("/", 1)[1]] = p
        for name in sorted(byname):
            text = ctx.host.read_opt(byname[name])
            for value, line in parse_modprobe_options(text or "", mod, "nested"):
                found = (value, f"{byname[name]}:{line}")
        return found


class OsRelease(Check):
    id = "host.os"
    title = "Operating system"
    reads = ("/etc/os-release", "/usr/lib/os-release", "/etc/*-release")

    def run(self, ctx: Context) -> Result:
        info = facts.os_info(ctx)
        fam = facts.os_family(ctx)
        if not info.id:
            return self.result(
                OK,
                "distribution not identified (no os-release)",
                code="unknown-os",
                evidence=["/etc/os-release absent"],
                family=fam,
            )
        return self.result(
            OK,
            info.name or f"{info.id} {info.version}",
            code="ok",
            evidence=["/etc/os-release"],
            id=info.id,
            version=info.version,
            codename=info.codename,
            like=info.like,
            family=fam,
            packages=_install_hint(ctx),
        )


class KernelLogKvm(KvmNeed):
    """The manual procedure's `dmesg | grep kvm` step: KVM's own kernel messages since boot,
    each with what it means on this host (hvcheck.parsers.kernel.CATALOGUE)."""

    id = "kvm.kernel_log"
    title = "KVM messages in the kernel log"
    reads = ("/dev/kmsg",)

    def judge(self, ctx: Context) -> Result:
        log = facts.kernel_log(ctx)
        if log.error and not log.lines:
            return self.result(
                UNKNOWN,
                f"kernel log unreadable ({log.error})",
                hint=kernel_log_hint(ctx, log.error),
                code="unreadable",
            )
        findings = facts.kvm_log_findings(ctx)
        known = {f.message.text for f in findings}
        other = [t for t in kvm_messages(log.lines) if t not in known]
        listed = [
            {
                "text": f.message.text,
                "code": f.message.code,
                "meaning": f.meaning,
                "relevant": f.relevant,
                "note": f.note,
                "module": f.message.module,
                "repeats": f.message.repeats,
                "kernels": f.message.wording.kernels if f.message.wording else None,
                "source": f.message.wording.source if f.message.wording else None,
            }
            for f in findings
        ]
        d: dict[str, Any] = {"messages": listed, "unrecognised": other[:50]}
        rotated = _ring_rotated(log.lines)
        since = "in the kernel log" if not rotated else "in what the ring buffer still holds"
        d["boot_messages_lost"] = rotated
        said = facts.kernel_log_state(ctx)
        if said.available is False and said.finding is not None:
            f = said.finding
            w = f.message.wording
            where = f" ({w.source}, kernels {w.kernels})" if w else ""
            return self.result(
                CRITICAL,
                f"kernel log: {f.message.text} — {MEANING_TEXT.get(f.meaning, f.meaning)}{where}"
                + (f"; {f.note}" if f.note else ""),
                hint=log_failure_hint(ctx, f.meaning),
                code=f.meaning,
                evidence=[log.source, f.message.text],
                details=d,
            )
        noise = [f for f in findings if not f.relevant]
        good = [f for f in findings if f.relevant and f.meaning not in FAILURES]
        parts = []
        if good:
            parts.append(f"{len(good)} saying KVM works or ran guests ({good[0].message.text})")
        if noise:
            parts.append(
                f"{len(noise)} that do not apply here ({noise[0].message.text}: {noise[0].note})"
            )
        if other:
            parts.append(f"{len(other)} not in the catalogue")
        if not parts:
            summary = f"no KVM messages {since}"
            if rotated:
                summary += " (the boot messages have been overwritten)"
            return self.result(OK, summary, code="none", evidence=[log.source], details=d)
        return self.result(
            OK,
            f"KVM messages {since}: " + "; ".join(parts) + "; none says KVM cannot work",
            code="ok",
            evidence=[log.source],
            details=d,
        )


def _ring_rotated(lines: tuple[str, ...]) -> bool:
    """/dev/kmsg records carry a sequence number: a first record past 0 means the boot
    messages were overwritten (Documentation/ABI/testing/dev-kmsg)."""
    head = lines[0] if lines else ""
    seq = head.split(",", 2)[1] if head[:1].isdigit() and head.count(",") >= 2 else ""
    return seq.isdigit() and int(seq) > 0 and ";" in head


BUILTIN_HOST_CHECKS = (
    CpuArch,
    CpuVirtExt,
    HostVirtual,
    FirmwareVirt,
    KvmModules,
    KvmDevice,
    NetDevices,
    Nested,
    KernelLogKvm,
    OsRelease,
)
