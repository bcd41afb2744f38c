"""Facts shared by several checks, each computed once per run through ``Context.fact``.

Host paths read here: /proc/cpuinfo, /proc/modules, /sys/module/*, /lib/modules/*/modules.builtin,
/dev/kvm (stat + probe), the kernel log, /sys/hypervisor/type, /sys/class/dmi/id/{sys_vendor,
product_name}, /proc/sysinfo, /proc/1/cgroup, /.dockerenv, /run/.containerenv,
/run/systemd/container, /etc/passwd, /etc/group; for libvirt's QEMU user: the libvirtd /
virtqemud processes (hvcheck.processes), /etc/libvirt/qemu.conf,
/etc/kolla/nova-libvirt/qemu.conf and /proc/<libvirtd pid>/root/etc/libvirt/qemu.conf.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import DeviceInfo, KernelLog, OsInfo, ProbeResult, ProcInfo
from hvcheck.parsers.accounts import Accounts, parse_accounts
from hvcheck.parsers.cpuinfo import CpuInfo, arch_family, parse_cpuinfo
from hvcheck.parsers.kernel import (
    KernelMessage,
    arm_hyp_state,
    firmware_messages,
    parse_modules_builtin,
    parse_proc_modules,
)
from hvcheck.parsers.qemuconf import parse_qemu_conf
from hvcheck.processes import processes

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
    sources: tuple[str, ...]  # what could be read: /proc/modules, /sys/module, modules.builtin

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


def arm_hyp(ctx: Context) -> Optional[bool]:
    return arm_hyp_state(kernel_log(ctx).lines)


# ---------------------------------------------------------------------------------- QEMU user
UDEV_HINT = (
    "make /dev/kvm 0660 root:kvm and put the QEMU user in group kvm: "
    "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm, persisted by a udev rule "
    '(/etc/udev/rules.d/65-kvm.rules: KERNEL=="kvm", GROUP="kvm", MODE="0660"; '
    "Debian/Ubuntu ship it in the qemu-system packages), and usermod -aG kvm {user}"
)


class QemuUser(NamedTuple):
    user: str  # a name or, for kolla, a numeric uid as text
    group: Optional[str]
    source: str  # "path:line" of qemu.conf's user, or which default applies


def libvirt_daemons(ctx: Context) -> list[ProcInfo]:
    """The running libvirtd / virtqemud processes (the process walk's "libvirtd" group)."""
    return processes(ctx, "libvirtd")


def qemu_user(ctx: Context) -> Optional[QemuUser]:
    """Who libvirt runs QEMU as; None when libvirt is not on this host.

    qemu.conf's ``user``/``group`` (the host's, kolla's, or a containerised libvirtd's through
    its /proc/<pid>/root), else the default of libvirt's build: ``libvirt-qemu`` on Debian and
    Ubuntu, ``qemu`` elsewhere, uid 42427 in kolla's images.
    """

    def compute(c: Context) -> Optional[QemuUser]:
        h = c.host
        daemons = libvirt_daemons(c)
        paths = ["/etc/libvirt/qemu.conf", "/etc/kolla/nova-libvirt/qemu.conf"]
        paths += [f"/proc/{p.pid}/root/etc/libvirt/qemu.conf" for p in daemons]
        for path in paths:
            text = h.read_opt(path)
            if text is None:
                continue
            qc = parse_qemu_conf(text)
            if qc.user:
                return QemuUser(qc.user, qc.group, f"{path}:{qc.user_line}")
            break
        else:
            if not daemons and not h.exists("/etc/libvirt"):
                return None
        if "kolla" in path:
            return QemuUser("42427", "42427", "kolla's default (uid 42427)")
        fam = os_family(c)
        if fam == "debian":
            return QemuUser(
                "libvirt-qemu", "libvirt-qemu", "Debian/Ubuntu default (qemu.conf user unset)"
            )
        if fam in ("rhel", "suse"):
            return QemuUser("qemu", "qemu", f"{fam} default (qemu.conf user unset)")
        return QemuUser("qemu", "qemu", "libvirt's build default (qemu.conf user unset)")

    return ctx.fact("qemu_user", compute)


def can_open(dev: DeviceInfo, uid: int, gids: set[int]) -> bool:
    """Read-write access by mode bits (ACLs, e.g. logind's uaccess, are not considered)."""
    if uid == 0:
        return True
    if dev.uid == uid:
        return dev.perm & 0o600 == 0o600
    if dev.gid in gids:
        return dev.perm & 0o060 == 0o060
    return dev.perm & 0o006 == 0o006


class KvmAccess(NamedTuple):
    """Can libvirt's QEMU user open /dev/kvm?"""

    user: QemuUser
    device: DeviceInfo
    uid: Optional[int]  # None: the user is not in /etc/passwd (NSS/LDAP users are not read)
    groups: tuple[str, ...]  # the user's groups (names, or gids without a name), sorted
    ok: Optional[bool]  # None when the uid is unknown

    @property
    def mode(self) -> str:
        """``mode 0660 root:kvm``: the device's mode and ownership, for messages."""
        d = self.device
        return f"mode {d.mode} {d.owner or d.uid}:{d.group or d.gid}"


def qemu_kvm_access(ctx: Context) -> Optional[KvmAccess]:
    """The QEMU user's access to /dev/kvm by mode bits; None without libvirt or /dev/kvm.

    Its groups: its primary group (/etc/passwd) and memberships (/etc/group), plus
    qemu.conf's ``group``, the group libvirt runs QEMU with.
    """

    def compute(c: Context) -> Optional[KvmAccess]:
        qu = qemu_user(c)
        dev = kvm_device(c)
        if qu is None or dev is None:
            return None
        acc = accounts(c)
        user = acc.user(qu.user)
        if user is None:
            return KvmAccess(qu, dev, None, (), None)
        gids = acc.groups_of(user.name)
        if qu.group:
            g = acc.group(qu.group)
            if g is not None:
                gids.add(g.gid)
        groups = tuple(sorted(acc.group_name(g) or str(g) for g in gids))
        return KvmAccess(qu, dev, user.uid, groups, can_open(dev, user.uid, gids))

    return ctx.fact("qemu_kvm_access", compute)
