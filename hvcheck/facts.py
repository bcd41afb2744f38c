"""Facts shared by several checks, each computed once per run through ``Context.fact``.

Host paths read here: /proc/cpuinfo, /proc/modules, /sys/module/*, /lib/modules/*/modules.builtin,
/dev/kvm (stat + probe), the kernel log, /sys/hypervisor/type, /sys/class/dmi/id/{sys_vendor,
product_name}, /proc/sysinfo, /proc/1/cgroup, /.dockerenv, /run/.containerenv,
/run/systemd/container, /etc/passwd, /etc/group.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import DeviceInfo, KernelLog, OsInfo, ProbeResult
from hvcheck.parsers.accounts import Accounts, parse_accounts
from hvcheck.parsers.cpuinfo import CpuInfo, arch_family, parse_cpuinfo
from hvcheck.parsers.kernel import (
    KernelMessage,
    arm_hyp_state,
    firmware_messages,
    kvm_messages,
    parse_modules_builtin,
    parse_proc_modules,
)

KVM_DEV = "/dev/kvm"
KVM_MAJOR, KVM_MINOR = 10, 232  # Documentation/admin-guide/devices.txt: 10 char 232 = /dev/kvm

# Vendor modules that register /dev/kvm, per architecture family.
VENDOR_MODULES: dict[str, tuple[str, ...]] = {
    "x86": ("kvm_intel", "kvm_amd", "kvm_pvm"),
    "ppc": ("kvm_hv", "kvm_pr"),
    "s390": (),  # kvm.ko itself drives SIE
    "arm": (),  # arm64 KVM is always built in (arch/arm64/kvm/Kconfig: bool)
    "riscv": (),
}
ALL_MODULES = ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_pr", "vhost_net", "tun")


# ---------------------------------------------------------------------------------- cpu/arch
def cpuinfo(ctx: Context) -> Optional[CpuInfo]:
    def compute(c: Context) -> Optional[CpuInfo]:
        text = c.host.read_opt("/proc/cpuinfo")
        return parse_cpuinfo(text) if text is not None else None

    return ctx.fact("cpuinfo", compute)


class Arch(NamedTuple):
    machine: str  # uname -m, or the cpuinfo guess
    family: Optional[str]
    source: str


def arch(ctx: Context) -> Arch:
    def compute(c: Context) -> Arch:
        m = c.host.uname().arch
        if m:
            return Arch(m, arch_family(m), "uname")
        ci = cpuinfo(c)
        if ci and ci.arch:
            return Arch(ci.arch, ci.arch_family, "/proc/cpuinfo")
        return Arch("", None, "unknown")

    return ctx.fact("arch", compute)


# ---------------------------------------------------------------------------------- modules
class Modules(NamedTuple):
    loaded: frozenset[str]  # from /proc/modules
    present: frozenset[str]  # /sys/module/<name> exists (loaded module or built-in with params)
    builtin: frozenset[str]  # modules.builtin
    proc_modules: bool  # /proc/modules was readable
    sources: tuple[str, ...]

    def has(self, name: str) -> bool:
        return name in self.loaded or name in self.present or name in self.builtin

    def how(self, name: str) -> str:
        if name in self.loaded:
            return "loaded (/proc/modules)"
        if name in self.builtin:
            return "built in (modules.builtin)"
        if name in self.present:
            return "present (/sys/module)"
        return "absent"


def modules(ctx: Context) -> Modules:
    def compute(c: Context) -> Modules:
        h = c.host
        sources: list[str] = []
        text = h.read_opt("/proc/modules")
        loaded = parse_proc_modules(text) if text is not None else set()
        if text is not None:
            sources.append("/proc/modules")
        present = {n for n in h.listdir("/sys/module") if n in ALL_MODULES}
        if h.exists("/sys/module"):
            sources.append("/sys/module")
        kernel = h.uname().kernel
        builtin: set[str] = set()
        if kernel:
            bt = h.read_opt(f"/lib/modules/{kernel}/modules.builtin")
            if bt is not None:
                builtin = parse_modules_builtin(bt) & set(ALL_MODULES)
                sources.append(f"/lib/modules/{kernel}/modules.builtin")
        return Modules(
            frozenset(loaded & set(ALL_MODULES)),
            frozenset(present),
            frozenset(builtin),
            text is not None,
            tuple(sources),
        )

    return ctx.fact("modules", compute)


# ---------------------------------------------------------------------------------- kernel log
def kernel_log(ctx: Context) -> KernelLog:
    return ctx.fact("kmsg", lambda c: c.host.kernel_log())


def firmware_disabled(ctx: Context) -> list[KernelMessage]:
    return ctx.fact("firmware_msgs", lambda c: firmware_messages(kernel_log(c).lines))


# ---------------------------------------------------------------------------------- /dev/kvm
def kvm_device(ctx: Context) -> Optional[DeviceInfo]:
    return ctx.fact("kvm_device", lambda c: c.host.stat_device(KVM_DEV))


def kvm_probe(ctx: Context) -> Optional[ProbeResult]:
    return ctx.fact("kvm_probe", lambda c: c.host.probe_kvm())


class KvmState(NamedTuple):
    """The headline judgement: can a guest get KVM on this host now?"""

    usable: Optional[bool]
    code: str  # probe-ok | static-ok | no-device | wrong-device | eacces | probe-failed | ...
    reason: str
    evidence: tuple[str, ...] = ()


def kvm_state(ctx: Context) -> KvmState:
    return ctx.fact("kvm_state", _kvm_state)


def _kvm_state(ctx: Context) -> KvmState:
    dev = kvm_device(ctx)
    probe = kvm_probe(ctx)
    mods = modules(ctx)
    vendor = [m for m in ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_pr") if mods.has(m)]
    mod_ev = [f"module {m} {mods.how(m)}" for m in ["kvm", *vendor] if mods.has(m)]
    if probe is not None:
        who = f"uid {probe.uid}" if probe.uid is not None else "this user"
        if probe.ok:
            return KvmState(
                True,
                "probe-ok",
                f"functional probe: opened {KVM_DEV}, KVM_GET_API_VERSION = "
                f"{probe.api_version}, KVM_CREATE_VM succeeded as {who}",
                ("probe:/dev/kvm KVM_CREATE_VM ok", *mod_ev),
            )
        if probe.errno in ("EACCES", "EPERM"):
            mode = (
                f" (mode {dev.mode} {dev.owner or dev.uid}:{dev.group or dev.gid})" if dev else ""
            )
            return KvmState(
                None,
                "eacces",
                f"cannot tell: {KVM_DEV}{mode} cannot be opened by {who} "
                f"({probe.errno}); re-run with sudo to probe it",
                (f"probe:/dev/kvm {probe.errno}",),
            )
        if probe.errno == "ENOENT" or (probe.stage == "open" and dev is None):
            return KvmState(
                False, "no-device", f"{KVM_DEV} does not exist", ("probe:/dev/kvm ENOENT",)
            )
        return KvmState(
            False,
            "probe-failed",
            f"{KVM_DEV} exists but does not work: {probe.error}"
            + (f" ({probe.errno})" if probe.errno else ""),
            (f"probe:/dev/kvm {probe.stage} {probe.errno or 'failed'}", *mod_ev),
        )
    # No probe (a snapshot that recorded none): judge from static evidence.
    if dev is None:
        return KvmState(False, "no-device", f"{KVM_DEV} does not exist", ("stat:/dev/kvm absent",))
    if dev.type != "char" or (dev.major, dev.minor) != (KVM_MAJOR, KVM_MINOR):
        return KvmState(
            False,
            "wrong-device",
            f"{KVM_DEV} is a {dev.type} {dev.major}:{dev.minor}, not char 10:232",
            ("stat:/dev/kvm",),
        )
    fw = firmware_disabled(ctx)
    if fw:
        return KvmState(False, "firmware", f"kernel log: {fw[0].text}", ("kernel log",))
    return KvmState(
        True,
        "static-ok",
        f"{KVM_DEV} is char 10:232"
        + (f" and {', '.join(['kvm', *vendor])} present" if mods.has("kvm") else "")
        + " (static evidence; no functional probe recorded)",
        ("stat:/dev/kvm char 10:232", *mod_ev),
    )


# ---------------------------------------------------------------------------------- environment
_DMI_VIRTUAL = (
    ("QEMU", "QEMU"),
    ("KVM", "KVM"),
    ("VMware", "VMware"),
    ("VirtualBox", "VirtualBox"),
    ("innotek", "VirtualBox"),
    ("Xen", "Xen"),
    ("Microsoft Corporation", "Hyper-V"),
    ("Amazon EC2", "AWS EC2"),
    ("Google", "Google Compute Engine"),
    ("OpenStack", "OpenStack"),
    ("Parallels", "Parallels"),
    ("Bochs", "Bochs"),
    ("BHYVE", "bhyve"),
    ("Nutanix", "Nutanix AHV"),
    ("oVirt", "oVirt"),
    ("RHEV", "RHEV"),
    ("Firecracker", "Firecracker"),
)


class VirtEnv(NamedTuple):
    virtual: Optional[bool]  # the host is itself a VM (None: cannot tell)
    hypervisor: Optional[str]  # what runs it, when known
    container: Optional[str]  # docker | podman | lxc | kubernetes | systemd-nspawn | openvz
    evidence: tuple[str, ...]
    # Only a marker file (/.dockerenv, /run/.containerenv) says "container": images built from
    # container images keep these files when booted as VMs (this project's own machines do).
    container_weak: bool = False


def virt_env(ctx: Context) -> VirtEnv:
    return ctx.fact("virt_env", _virt_env)


def _first_line(ctx: Context, path: str) -> Optional[str]:
    try:
        t = ctx.host.read_opt(path)
    except OSError:
        return None
    return t.strip().splitlines()[0].strip() if t and t.strip() else None


def _virt_env(ctx: Context) -> VirtEnv:
    ev: list[str] = []
    virtual: Optional[bool] = None
    hv: Optional[str] = None
    ci = cpuinfo(ctx)
    if ci is not None and ci.arch_family == "x86":
        virtual = ci.hypervisor
        if ci.hypervisor:
            ev.append("cpuinfo flag 'hypervisor'")
    if ci is not None and ci.arch_family == "ppc":
        if ci.power_model and "emulated by qemu" in ci.power_model:
            virtual, hv = True, "KVM/QEMU (pSeries)"
            ev.append(f"cpuinfo model '{ci.power_model}'")
        elif ci.platform == "pSeries":
            virtual, hv = True, "PowerVM LPAR"
            ev.append("cpuinfo platform pSeries")
        elif ci.platform == "PowerNV":
            virtual = False
            ev.append("cpuinfo platform PowerNV (bare metal)")
    xen = _first_line(ctx, "/sys/hypervisor/type")
    if xen:
        virtual, hv = True, xen.capitalize()
        ev.append(f"/sys/hypervisor/type = {xen}")
    vendor = _first_line(ctx, "/sys/class/dmi/id/sys_vendor") or ""
    product = _first_line(ctx, "/sys/class/dmi/id/product_name") or ""
    for needle, name in _DMI_VIRTUAL:
        if needle.lower() in f"{vendor} {product}".lower():
            if name == "Hyper-V" and "virtual" not in product.lower():
                continue
            virtual, hv = True, hv or name
            ev.append(f"DMI sys_vendor='{vendor}' product_name='{product}'")
            break
    sysinfo = ctx.host.read_opt("/proc/sysinfo") if ci and ci.arch_family == "s390" else None
    if sysinfo:
        for line in sysinfo.splitlines():
            if line.startswith("VM00 Control Program:"):
                virtual, hv = True, line.split(":", 1)[1].strip()
                ev.append(f"/proc/sysinfo {line.strip()}")
                break
    if (
        ci is not None
        and ci.arch_family == "arm"
        and virtual is None
        and any("All CPU(s) started at EL2" in line for line in kernel_log(ctx).lines)
    ):
        # arch/arm64/kernel/smp.c: the kernel owns EL2 — bare metal, or a VM given nested EL2
        virtual = False
        ev.append("kernel log: CPU: All CPU(s) started at EL2")
    for line in kernel_log(ctx).lines:
        if "Hypervisor detected:" in line:
            virtual = True
            hv = hv or line.rsplit("Hypervisor detected:", 1)[1].strip()
            ev.append("kernel log: Hypervisor detected: " + hv)
            break
    container: Optional[str] = None
    weak = False
    nspawn = _first_line(ctx, "/run/systemd/container")
    if nspawn:
        container = nspawn
        ev.append(f"/run/systemd/container = {nspawn}")
    else:
        try:
            cg = ctx.host.read_opt("/proc/1/cgroup") or ""
        except OSError:
            cg = ""
        for key, name in (
            ("kubepods", "kubernetes"),
            ("docker", "docker"),
            ("libpod", "podman"),
            ("lxc", "lxc"),
        ):
            if key in cg:
                container = name
                ev.append(f"/proc/1/cgroup mentions {key}")
                break
    if container is None:
        for marker, name in (("/.dockerenv", "docker"), ("/run/.containerenv", "podman")):
            if ctx.host.exists(marker):
                container, weak = name, True
                ev.append(f"{marker} exists")
                break
    mods = modules(ctx)
    if mods.has("kvm_pvm"):
        ev.append("module kvm_pvm (KVM through PVM, nested on a KVM L0)")
        virtual = True if virtual is None else virtual
    return VirtEnv(virtual, hv, container, tuple(ev), weak)


# ---------------------------------------------------------------------------------- accounts, OS
def accounts(ctx: Context) -> Accounts:
    def compute(c: Context) -> Accounts:
        return parse_accounts(
            c.host.read_opt("/etc/passwd") or "", c.host.read_opt("/etc/group") or ""
        )

    return ctx.fact("accounts", compute)


def os_info(ctx: Context) -> OsInfo:
    return ctx.fact("os_info", lambda c: c.host.os_info())


def os_family(ctx: Context) -> str:
    """debian | rhel | suse | other: which package names and commands hints should use."""
    try:
        info = os_info(ctx)
    except Exception:
        return "other"
    ids = f"{info.id} {info.like}".lower()
    if any(x in ids for x in ("debian", "ubuntu")):
        return "debian"
    if any(x in ids for x in ("rhel", "fedora", "centos", "rocky", "almalinux")):
        return "rhel"
    if "suse" in ids:
        return "suse"
    return "other"


def kvm_log_lines(ctx: Context) -> list[str]:
    return kvm_messages(kernel_log(ctx).lines)


def arm_hyp(ctx: Context) -> Optional[bool]:
    return arm_hyp_state(kernel_log(ctx).lines)
