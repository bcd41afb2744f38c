"""Host readiness: can this host give a guest KVM?

Reads (through the host layer): /proc/cpuinfo, /proc/modules, /sys/module/*,
/lib/modules/*/modules.builtin, /dev/kvm (stat and functional probe), /dev/kmsg,
/dev/cpu/0/msr, /dev/vhost-net, /dev/net/tun, /sys/module/kvm_{intel,amd}/parameters/nested,
/sys/module/kvm/parameters/nested, /etc/modprobe.d/*.conf, /lib/modprobe.d/*.conf,
/usr/lib/modprobe.d/*.conf, /run/modprobe.d/*.conf, /proc/cmdline, /etc/os-release,
DMI and container markers.
"""

from __future__ import annotations

from typing import Optional

from hvcheck import devaccess, facts
from hvcheck.check import Check, Context
from hvcheck.model import CRITICAL, OK, SKIP, UNKNOWN, WARNING, Result
from hvcheck.parsers.kernel import param_enabled, parse_kernel_cmdline_param, parse_modprobe_options

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


# How to give a VM virtualization extensions, by the hypervisor below it (vendor docs).
_NESTED_BY_HYPERVISOR = (
    ("VirtualBox", "VBoxManage modifyvm <vm> --nested-hw-virt on (VirtualBox >= 6.1)"),
    (
        "VMware",
        'set vhv.enable = "TRUE" in the VM\'s .vmx ("Expose hardware assisted '
        'virtualization to the guest OS")',
    ),
    ("Hyper-V", "Set-VMProcessor -VMName <vm> -ExposeVirtualizationExtensions $true"),
    ("Microsoft", "Set-VMProcessor -VMName <vm> -ExposeVirtualizationExtensions $true"),
    ("AWS", "use an EC2 .metal instance type or one that supports nested virtualization"),
    ("Amazon", "use an EC2 .metal instance type or one that supports nested virtualization"),
    ("Google", "create the VM with --enable-nested-virtualization (GCE)"),
)


def nested_hint(ctx: Context) -> str:
    env = facts.virt_env(ctx)
    below = f"{env.hypervisor or ''} {' '.join(env.evidence)}"
    for needle, how in _NESTED_BY_HYPERVISOR:
        if needle.lower() in below.lower():
            return (
                f"use [libvirt] virt_type = qemu in nova.conf, or enable nested "
                f"virtualization on the host below: {how}"
            )
    return NESTED_HINT


def _install_hint(ctx: Context) -> str:
    fam = facts.os_family(ctx)
    if fam == "debian":
        return "apt-get install qemu-system-x86 (Debian/Ubuntu load kvm modules via udev)"
    if fam == "rhel":
        return "dnf install qemu-kvm"
    return "install your distribution's QEMU/KVM packages"


def _vendor_for_cpu(ctx: Context) -> Optional[str]:
    ci = facts.cpuinfo(ctx)
    if ci is None:
        return None
    if ci.vmx:
        return "kvm_intel"
    if ci.svm:
        return "kvm_amd"
    # feat_ctl.c clears the vmx flag when firmware disabled VT-x: the vendor still tells
    # (on bare metal; in a VM a missing flag means the hypervisor below hides it)
    if ci.hypervisor:
        return None
    if ci.vendor == "GenuineIntel":
        return "kvm_intel"
    if ci.vendor in ("AuthenticAMD", "HygonGenuine"):
        return "kvm_amd"
    if ci.arch_family == "ppc":
        return "kvm_hv" if ci.platform == "PowerNV" else "kvm_pr"
    return None


def nova_wants_qemu(ctx: Context) -> bool:
    """nova [libvirt] virt_type = qemu: this host is meant to emulate, KVM is not needed."""
    from hvcheck import novaconfig

    try:
        conf = novaconfig.nova_conf(ctx)
    except Exception:
        return False
    return conf is not None and conf.virt_type.value == "qemu"


def compute_node(ctx: Context) -> bool:
    """A nova config, QEMU instances or a libvirt daemon: guest networking matters here."""
    from hvcheck import novaconfig
    from hvcheck.checks.novachecks import libvirt_daemons
    from hvcheck.instances import qemu_processes

    try:
        return (
            novaconfig.nova_conf(ctx) is not None
            or bool(qemu_processes(ctx))
            or bool(libvirt_daemons(ctx))
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
            fw = facts.firmware_disabled(ctx)
            if fw:
                return self.result(
                    CRITICAL,
                    f"no vmx/svm: disabled by firmware ({fw[0].text})",
                    hint=FIRMWARE_HINT,
                    code="disabled-by-firmware",
                    evidence=[*ev, "kernel log"],
                    details=details,
                )
            if state.usable is None:
                return self.result(
                    UNKNOWN,
                    f"no vmx/svm flag and {state.reason}",
                    hint="re-run with sudo so the /dev/kvm probe can decide",
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
            return self.result(
                CRITICAL,
                "no vmx/svm: the CPU lacks VT-x/AMD-V or the firmware hides it",
                hint=FIRMWARE_HINT,
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
            if hyp is False:
                return self.result(
                    CRITICAL,
                    "kernel log: HYP mode not available (the kernel was not booted at EL2)",
                    hint="boot the kernel at EL2 (firmware/"
                    "bootloader setting); in a VM, nested virtualization is "
                    "needed from the host below",
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
                        hint=FIRMWARE_HINT,
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
                        hint=FIRMWARE_HINT,
                        code="msr-svm-disabled",
                        evidence=ev,
                        msr=msr.value,
                    )
        if fw:
            return self.result(
                CRITICAL,
                f"kernel log: {fw[0].text}",
                hint=FIRMWARE_HINT,
                code="disabled-by-firmware",
                evidence=[log.source, *ev],
                messages=[m.text for m in fw],
            )
        state = facts.kvm_state(ctx)
        if state.usable:
            return self.result(
                OK,
                "virtualization is enabled (KVM works)" + msr_note,
                code="enabled",
                evidence=[*state.evidence[:1], *ev],
            )
        mods = facts.modules(ctx)
        loaded = [m for m in ("kvm_intel", "kvm_amd") if m in mods.loaded or m in mods.present]
        if loaded:
            # vmx_init()/svm_init() refuse to load when firmware disabled VT-x/AMD-V
            # (arch/x86/kvm/vmx/vmx.c, svm/svm.c): a loaded vendor module proves it is on
            return self.result(
                OK,
                f"{loaded[0]} is loaded, which it cannot be with VT-x/AMD-V "
                "disabled in firmware" + msr_note,
                code="vendor-module-loaded",
                evidence=[f"module {loaded[0]} {mods.how(loaded[0])}", *ev],
            )
        if log.error:
            return self.result(
                UNKNOWN,
                f"kernel log unreadable ({log.error}); cannot tell if the "
                "firmware disabled VT-x/AMD-V",
                hint="re-run with sudo (or set kernel.dmesg_restrict=0)",
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
        ev = [f"{m}: {mods.how(m)}" for m in ["kvm", *vendors] if mods.has(m)] or [
            f"searched {', '.join(mods.sources) or 'nothing readable'}"
        ]
        d = {
            "kvm": mods.how("kvm"),
            "vendor": {m: mods.how(m) for m in vendors},
            "sources": list(mods.sources),
        }
        state = facts.kvm_state(ctx)
        needs_vendor = bool(facts.VENDOR_MODULES.get(fam))
        if have_kvm and (vendors or not needs_vendor):
            names = ", ".join(["kvm", *vendors])
            return self.result(OK, f"{names} present", code="ok", evidence=ev, details=d)
        if state.usable and state.code == "probe-ok":
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
                f"the vendor module cannot load: {fw[0].text}",
                hint=FIRMWARE_HINT,
                code="firmware",
                evidence=[*ev, "kernel log"],
                details=d,
            )
        if have_kvm and needs_vendor:
            hint = f"modprobe {want}" if want else "modprobe kvm_intel (Intel) or kvm_amd (AMD)"
            return self.result(
                CRITICAL,
                "kvm is loaded without a vendor module "
                f"({'/'.join(facts.VENDOR_MODULES[fam])}): /dev/kvm cannot work",
                hint=f"{hint}; if it fails, read `dmesg | grep -i kvm`",
                code="no-vendor",
                evidence=ev,
                details=d,
            )
        if want:
            hint = (
                f"modprobe {want} (persist: echo {want} > /etc/modules-load.d/kvm.conf); "
                f"if missing: {_install_hint(ctx)}"
            )
        elif fam == "x86":
            hint = "no vmx/svm: the module cannot load here; " + nested_hint(ctx)
        else:
            hint = "modprobe kvm"
        return self.result(
            CRITICAL,
            "kvm modules are not loaded",
            hint=hint,
            code="not-loaded",
            evidence=ev,
            details=d,
        )


class KvmDevice(KvmNeed):
    id = "kvm.device"
    title = "/dev/kvm"
    reads = ("/dev/kvm (stat, open, KVM_GET_API_VERSION, KVM_CREATE_VM)", *devaccess.READS)

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
        desc = (
            (
                f"char {dev.major}:{dev.minor} mode {dev.mode} "
                f"{dev.owner or dev.uid}:{dev.group or dev.gid}"
            )
            if dev
            else "absent"
        )
        if dev is None or state.code == "no-device":
            fw = facts.firmware_disabled(ctx)
            mods = facts.modules(ctx)
            want = _vendor_for_cpu(ctx)
            if fw:
                hint = FIRMWARE_HINT
            elif mods.has("kvm") and want and not mods.has(want):
                hint = f"modprobe {want} (kvm is loaded, {want} is not)"
            else:
                hint = f"load the KVM modules (see kvm.modules); {_install_hint(ctx)}"
            env = facts.virt_env(ctx)
            ci = facts.cpuinfo(ctx)
            if not fw and env.virtual and ci is not None and not (ci.vmx or ci.svm or ci.sie):
                hint = nested_hint(ctx)
            return self.result(
                CRITICAL,
                "/dev/kvm does not exist: guests cannot get KVM",
                hint=hint,
                code="missing",
                evidence=["stat /dev/kvm: ENOENT"],
                details=d,
            )
        if dev.type != "char" or (dev.major, dev.minor) != (facts.KVM_MAJOR, facts.KVM_MINOR):
            return self.result(
                CRITICAL,
                f"/dev/kvm is not the KVM device ({desc}; expected char 10:232)",
                hint="rm /dev/kvm and reload kvm (udev recreates it), or mknod /dev/kvm c 10 232",
                code="wrong-device",
                evidence=[f"stat /dev/kvm: {desc}"],
                details=d,
            )
        if state.code == "eacces":
            return self.result(
                UNKNOWN,
                f"/dev/kvm ({desc}) is not accessible to this user: cannot tell whether KVM works",
                hint="re-run with sudo (sudo hvcheck) to probe /dev/kvm"
                + devaccess.probe_user_hint(ctx, "/dev/kvm", dev, probe),
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


_NESTED = (
    ("kvm_intel", "/sys/module/kvm_intel/parameters/nested"),
    ("kvm_amd", "/sys/module/kvm_amd/parameters/nested"),
    ("kvm", "/sys/module/kvm/parameters/nested"),
)  # s390x: kvm.nested
_MODPROBE_DIRS = (
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
)


class Nested(Check):
    id = "nested.runtime"
    title = "Nested virtualization (runtime vs persisted)"
    reads = (*(p for _, p in _NESTED), *(f"{d}/*.conf" for d in _MODPROBE_DIRS), "/proc/cmdline")

    def run(self, ctx: Context) -> Result:
        runtime: Optional[tuple[str, str, str]] = None
        for mod, path in _NESTED:
            v = ctx.host.read_opt(path)
            if v is not None:
                runtime = (mod, path, v.strip())
                break
        if runtime is None:
            return self.result(
                SKIP, "no nested parameter (kvm_intel/kvm_amd/s390 kvm not loaded)", code="n/a"
            )
        mod, path, raw = runtime
        rt = param_enabled(raw)
        persisted = self._persisted(ctx, mod)
        d = {
            "module": mod,
            "runtime": raw,
            "runtime_enabled": rt,
            "persisted": None
            if persisted is None
            else {"value": persisted[0], "source": persisted[1]},
        }
        ev = [f"{path} = {raw}"] + ([f"{persisted[1]}: nested={persisted[0]}"] if persisted else [])
        if persisted is not None and param_enabled(persisted[0]) != rt:
            return self.result(
                WARNING,
                f"{mod} nested is {raw} at runtime ({path}) but {persisted[1]} sets "
                f"nested={persisted[0]}: the next module load or reboot changes it",
                hint=f"reload to apply: modprobe -r {mod} && modprobe {mod} (with no guests "
                "running), or fix the persisted setting to match",
                code="mismatch",
                evidence=ev,
                details=d,
            )
        state = "enabled" if rt else "disabled"
        tail = "" if persisted else " (not set persistently; kernel default)"
        return self.result(
            OK, f"{mod} nested {state} ({raw}){tail}", code=state, evidence=ev, details=d
        )

    @staticmethod
    def _persisted(ctx: Context, mod: str) -> Optional[tuple[str, str]]:
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
        cmdline = ctx.host.read_opt("/proc/cmdline") or ""
        v = parse_kernel_cmdline_param(cmdline, mod, "nested")
        if v is not None:
            found = (v, f"kernel command line {mod.replace('_', '-')}.nested")
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


BUILTIN_HOST_CHECKS = (
    CpuArch,
    CpuVirtExt,
    HostVirtual,
    FirmwareVirt,
    KvmModules,
    KvmDevice,
    NetDevices,
    Nested,
    OsRelease,
)
