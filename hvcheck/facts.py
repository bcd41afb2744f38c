"""Facts shared by several checks, each computed once per run through ``Context.fact``.

Host paths read here: /proc/cpuinfo, /proc/modules, /sys/module/*, /lib/modules/*/modules.builtin,
/dev/kvm (stat + probe), the kernel log, /sys/hypervisor/type, /sys/class/dmi/id/{sys_vendor,
product_name,chassis_asset_tag}, /proc/sysinfo, /proc/1/cgroup, /.dockerenv, /run/.containerenv,
/run/systemd/container, /etc/passwd, /etc/group; for `hvcheck guest` also
/sys/devices/system/clocksource/clocksource0/available_clocksource, /proc/cmdline and
/proc/device-tree/{hypervisor/compatible,model}; for libvirt's QEMU user: the running libvirt
QEMU processes' ids (/proc/<pid>/status, through the process walk), else the libvirtd /
virtqemud processes (hvcheck.processes) and the qemu.conf each reads
(/proc/<libvirtd pid>/root/etc/libvirt/qemu.conf when it runs in another mount namespace,
``hvcheck.mountns``; /var/snap/<snap>/common/etc/libvirt/qemu.conf for a snap's libvirt),
/etc/libvirt/qemu.conf, /etc/kolla/nova-libvirt/qemu.conf; /etc/passwd and /etc/group as that
process sees them (/proc/<pid>/root/etc/...); a process's device cgroup: /proc/<pid>/cgroup and
/sys/fs/cgroup/devices/<path>/devices.list; when a user cannot open /dev/kvm, through
``hvcheck.devaccess``: the udev rules directories (``*.rules``) and the links
/sys/dev/char/10:232 and /sys/devices/virtual/misc/kvm/subsystem;
the package databases: /var/lib/dpkg/status, {/usr/lib/sysimage,/var/lib}/rpm/rpmdb.sqlite (or
`rpm -qa` for a Berkeley DB/ndb one, live host only), /snap/*/current/meta/snap.yaml; for
the binaries QEMU processes run (``Host.exe_record``): ``stat`` of /proc/<pid>/exe and of the
path it names (under /proc/<pid>/root for another mount namespace), the start time from
/proc/<pid>/stat and /proc/stat (psutil).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from hvcheck import devaccess
from hvcheck.check import Context
from hvcheck.deployment import Deployment as Deployment  # re-exported: a fact like the others
from hvcheck.deployment import deployment as deployment
from hvcheck.deployment import device_fix
from hvcheck.devaccess import NodeAccess
from hvcheck.host import (
    MAX_READ,
    DeviceInfo,
    ExeRecord,
    KernelLog,
    OsInfo,
    ProbeResult,
    ProcInfo,
)
from hvcheck.mountns import process_root, read_seen
from hvcheck.parsers.accounts import Accounts, parse_accounts
from hvcheck.parsers.cpuinfo import CpuInfo, arch_family, parse_cpuinfo
from hvcheck.parsers.deployment import (
    device_allowed,
    devices_cgroup,
    parse_devices_list,
    parse_proc_cgroup,
    snap_name,
)
from hvcheck.parsers.kernel import (
    CPU_LACKS,
    FAILURES,
    FIRMWARE_DISABLED,
    GUEST_WITHOUT_NESTED,
    HARMLESS,
    KVM_INITIALIZED,
    NOT_APPLICABLE,
    NOT_AT_EL2,
    SUCCESSES,
    VENDOR_REGISTERED,
    KernelMessage,
    LogPlatform,
    arm_hyp_state,
    classify_kernel_log,
    kvm_messages,
    log_platform,
    modules_in_oops,
    parse_modules_builtin,
    parse_proc_modules,
)
from hvcheck.parsers.pkgdb import Package, parse_dpkg_status, parse_snap_yaml
from hvcheck.parsers.qemuconf import parse_qemu_conf
from hvcheck.processes import processes, qemu_processes

if TYPE_CHECKING:
    from hvcheck.parsers.guest import GuestLog

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


def kernel_messages(ctx: Context) -> list[KernelMessage]:
    """The kernel log's lines the catalogue knows (hvcheck.parsers.kernel.CATALOGUE), no context
    applied."""
    return ctx.fact("kmsg_classified", lambda c: classify_kernel_log(kernel_log(c).lines))


def boot_platform(ctx: Context) -> LogPlatform:
    """Platform lines of the kernel log (Linux version, Hypervisor detected, DMI, CPU0)."""
    return ctx.fact("kmsg_platform", lambda c: log_platform(kernel_log(c).lines))


# ---------------------------------------------------------------------------------- vendor module
# x86 vendor modules by cpuinfo vendor_id: kvm_intel also drives Zhaoxin/Centaur CPUs
# (arch/x86/kvm/vmx/vmx.c works off the VMX feature), kvm_amd also Hygon (svm.c).
_VENDOR_IDS = {
    "GenuineIntel": "kvm_intel",
    "CentaurHauls": "kvm_intel",
    "Shanghai": "kvm_intel",
    "AuthenticAMD": "kvm_amd",
    "HygonGenuine": "kvm_amd",
}


def _cpuinfo_quiet(ctx: Context) -> Optional[CpuInfo]:
    """cpuinfo for judgements that can do without it (an unreadable one is cpu.virt_ext's to
    report, not a reason to lose the KVM verdict)."""
    try:
        return cpuinfo(ctx)
    except OSError:
        return None


def cpu_vendor_module(ctx: Context) -> Optional[str]:
    """The x86 vendor module this CPU takes: ``kvm_intel`` | ``kvm_amd`` | None.

    From cpuinfo's vendor_id; without cpuinfo, from the kernel log: the boot CPU line
    ("smpboot: CPU0: Intel(R) ..."), or kvm_amd's own "not amd or hygon" refusal. None off x86
    or when nothing tells.
    """

    def compute(c: Context) -> Optional[str]:
        if arch(c).family not in ("x86", None):
            return None
        ci = _cpuinfo_quiet(c)
        if ci is not None and ci.vendor:
            return _VENDOR_IDS.get(ci.vendor.strip())
        cpu0 = (boot_platform(c).cpu0 or "").lower()
        if any(x in cpu0 for x in ("intel", "zhaoxin", "centaur")):
            return "kvm_intel"
        if any(x in cpu0 for x in ("amd", "hygon")):
            return "kvm_amd"
        if any(m.meaning == NOT_APPLICABLE and m.module == "kvm_amd" for m in kernel_messages(c)):
            return "kvm_intel"
        return None

    return ctx.fact("cpu_vendor_module", compute)


class VendorState(NamedTuple):
    """The vendor module this host needs and whether it runs.

    A loadable module is listed in /proc/modules only once its init succeeded. A built-in one
    has /sys/module/<name> and a modules.builtin line whether or not its init succeeded, so it
    counts as started only when something it does shows: /dev/kvm (kvm_init() registers it from
    the vendor module's init on x86), a working probe, or its own success lines in the log.
    """

    module: Optional[str]  # kvm_intel | kvm_amd | kvm_pvm | kvm_hv | kvm_pr | None (none needed)
    how: str  # loaded (/proc/modules) | built in (modules.builtin) | present (/sys/module) | absent
    started: Optional[bool]
    evidence: str


def vendor_state(ctx: Context) -> VendorState:
    return ctx.fact("vendor_state", _vendor_state)


def _vendor_state(ctx: Context) -> VendorState:
    fam = arch(ctx).family
    mods = modules(ctx)
    wanted: Optional[str] = None
    if fam == "x86":
        cpu_mod = cpu_vendor_module(ctx)
        if cpu_mod and cpu_mod in mods.loaded:
            wanted = cpu_mod
        elif mods.has("kvm_pvm"):
            wanted = "kvm_pvm"  # PVM: any x86 CPU, no VT-x/AMD-V needed
        else:
            wanted = cpu_mod
            if wanted is None:
                x86_loaded = [m for m in ("kvm_intel", "kvm_amd") if m in mods.loaded]
                wanted = x86_loaded[0] if x86_loaded else None
    elif fam == "ppc":
        ci = _cpuinfo_quiet(ctx)
        loaded = [m for m in ("kvm_hv", "kvm_pr") if m in mods.loaded]
        if loaded:
            wanted = loaded[0]
        elif ci is not None and ci.platform:
            wanted = "kvm_hv" if ci.platform == "PowerNV" else "kvm_pr"
    if wanted is None:
        return VendorState(None, "absent", None, "no vendor module applies")
    how = mods.how(wanted)
    if wanted in mods.loaded:
        return VendorState(wanted, how, True, f"{wanted} is in /proc/modules: its init succeeded")
    if not mods.has(wanted):
        return VendorState(wanted, how, False, f"{wanted} is neither loaded nor built in")
    probe = kvm_probe(ctx)
    if probe is not None and probe.ok:
        return VendorState(wanted, how, True, "the /dev/kvm probe works")
    for m in kernel_messages(ctx):
        if m.meaning == KVM_INITIALIZED and m.module == wanted:
            return VendorState(wanted, how, True, f"kernel log: {m.text}")
        if m.meaning == VENDOR_REGISTERED and m.module in (wanted, None):
            return VendorState(wanted, how, True, f"kernel log: {m.text}")
    dev = kvm_device(ctx)
    if dev is not None and dev.type == "char" and (dev.major, dev.minor) == (KVM_MAJOR, KVM_MINOR):
        return VendorState(
            wanted, how, True, f"{KVM_DEV} exists, which only a started vendor module registers"
        )
    held = kvm_instances_seen(ctx)
    if held:
        return VendorState(
            wanted,
            how,
            True,
            f"{held_by(held)} run{'s' if len(held) == 1 else ''} KVM vCPUs, which only a "
            f"started {wanted} allows",
        )
    if dev is None:
        return VendorState(
            wanted, how, False, f"{wanted} is {how} but did not start: {KVM_DEV} does not exist"
        )
    return VendorState(wanted, how, None, f"{wanted} is {how}; whether it started is not shown")


def kvm_instances_seen(ctx: Context) -> tuple[int, ...]:
    """The pids of QEMU processes whose fds or vCPU thread names prove they run KVM
    (``processes.Decision``: accel kvm, verified): proof that this kernel runs KVM guests,
    whatever hvcheck's own view of /dev/kvm (a container or mount namespace without the node,
    sharing the host's pid namespace). Empty when none, or the process table cannot be read."""
    try:
        procs = qemu_processes(ctx)
    except Exception:
        return ()
    return tuple(q.pid for q in procs if q.decision.accel == "kvm" and q.decision.verified)


def held_by(pids: tuple[int, ...]) -> str:
    """``QEMU pid 4242`` / ``QEMU pids 1, 2, 3 and 4 more``: the processes of
    :func:`kvm_instances_seen`, for messages."""
    more = f" and {len(pids) - 3} more" if len(pids) > 3 else ""
    return f"QEMU pid{'s' if len(pids) > 1 else ''} {', '.join(map(str, pids[:3]))}{more}"


def working_evidence(ctx: Context) -> Optional[str]:
    """What proves KVM works here (the probe, a loaded vendor module), or None.

    Working evidence outranks any kernel log line: the log keeps lines from modules that do not
    apply to this CPU and from earlier states of the host.
    """
    probe = kvm_probe(ctx)
    if probe is not None and probe.ok:
        return "the /dev/kvm probe (KVM_CREATE_VM) works"
    vs = vendor_state(ctx)
    if vs.started and vs.module and vs.module in modules(ctx).loaded:
        return f"{vs.module} is loaded (/proc/modules)"
    if vs.started and vs.module:
        return f"{vs.module} runs ({vs.evidence})"
    return None


class LogFinding(NamedTuple):
    """A catalogue message judged for this host."""

    message: KernelMessage
    meaning: str  # the message's meaning here (may refine the catalogue's)
    relevant: bool  # False: noise here (another vendor's module, outranked, not about VT-x)
    note: str  # why, when it is not taken at face value


def kvm_log_findings(ctx: Context) -> list[LogFinding]:
    return ctx.fact("kmsg_findings", _kvm_log_findings)


def _kvm_log_findings(ctx: Context) -> list[LogFinding]:
    fam = arch(ctx).family
    ci = _cpuinfo_quiet(ctx)
    cpu_mod = cpu_vendor_module(ctx)
    own_flag = bool(
        ci and ((cpu_mod == "kvm_intel" and ci.vmx) or (cpu_mod == "kvm_amd" and ci.svm))
    )
    vs = vendor_state(ctx)
    works = working_evidence(ctx)
    try:
        virtual = bool(virt_env(ctx).virtual)
    except OSError:
        virtual = False
    out: list[LogFinding] = []
    for m in kernel_messages(ctx):
        w = m.wording
        meaning, relevant, note = m.meaning, True, ""
        if w is not None and fam and w.family != fam:
            relevant, note = False, f"a {w.arch} message on a {fam} host"
        elif meaning == HARMLESS:
            relevant, note = False, "not about VT-x/AMD-V"
        elif meaning == NOT_APPLICABLE:
            relevant, note = (
                False,
                f"{m.module or 'a vendor module'} refusing a CPU it does not drive",
            )
        elif (
            m.module in ("kvm_intel", "kvm_amd")
            and cpu_mod in ("kvm_intel", "kvm_amd")
            and m.module != cpu_mod
            and meaning != VENDOR_REGISTERED
        ):
            meaning, relevant = NOT_APPLICABLE, False
            note = f"printed by {m.module}, which does not apply to this CPU ({cpu_mod} does)"
        elif (
            meaning == CPU_LACKS
            and m.module is None
            and w is not None
            and w.code == "no-hardware-support"
            and cpu_mod
            and (own_flag or vs.started)
        ):
            meaning, relevant = NOT_APPLICABLE, False
            why = "its flag is in cpuinfo" if own_flag else f"{cpu_mod} runs"
            note = (
                f"printed by the other vendor's module (this wording does not name it): "
                f"{cpu_mod} is the one for this CPU and {why}"
            )
        if relevant and meaning in FAILURES and works:
            relevant, note = False, f"outranked: {works}"
        if relevant and meaning in (CPU_LACKS, NOT_AT_EL2) and virtual:
            meaning = GUEST_WITHOUT_NESTED
            note = "this host is a VM: the hypervisor below does not expose virtualization to it"
        out.append(LogFinding(m, meaning, relevant, note))
    return out


def firmware_disabled(ctx: Context) -> list[KernelMessage]:
    """Kernel log lines that, on this host, say the firmware switched VT-x/AMD-V off."""
    return [
        f.message for f in kvm_log_findings(ctx) if f.relevant and f.meaning == FIRMWARE_DISABLED
    ]


class LogState(NamedTuple):
    """What the kernel log alone says about KVM on this host."""

    available: Optional[bool]  # True: KVM initialised / guests ran; False: it cannot; None
    meaning: str  # the deciding finding's meaning ("" when none)
    finding: Optional[LogFinding]


def kernel_log_state(ctx: Context) -> LogState:
    def compute(c: Context) -> LogState:
        found = [f for f in kvm_log_findings(c) if f.relevant]
        for meaning in FAILURES:
            for f in found:
                if f.meaning == meaning:
                    return LogState(False, meaning, f)
        for meaning in SUCCESSES:
            for f in found:
                if f.meaning == meaning:
                    return LogState(True, meaning, f)
        seen = modules_in_oops(kernel_log(c).lines)
        vs = vendor_state(c)
        cands = (
            [vs.module] if vs.module else ["kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_pr"]
        )
        if any(m in seen for m in cands):
            return LogState(True, "module-listed-in-oops", None)
        return LogState(None, "", None)

    return ctx.fact("kmsg_state", compute)


# ---------------------------------------------------------------------------------- /dev/kvm
def kvm_device(ctx: Context) -> Optional[DeviceInfo]:
    return ctx.fact("kvm_device", lambda c: c.host.stat_device(KVM_DEV))


def kvm_device_seen_by(ctx: Context, pid: Optional[int]) -> tuple[Optional[DeviceInfo], str]:
    """/dev/kvm as process ``pid`` sees it, and the path it was read at: a process in another
    mount namespace has its own /dev (a container's, a pod's with the device plugin's node,
    libvirt's per-domain copy), read through ``/proc/<pid>/root/dev/kvm``
    (``hvcheck.mountns``); hvcheck's own node for None or a process in its tree. (None, path)
    when that tree has no /dev/kvm."""
    if pid is None:
        return kvm_device(ctx), KVM_DEV
    root = process_root(ctx, pid)
    if root.roots == ("",):
        return kvm_device(ctx), KVM_DEV

    def compute(c: Context) -> tuple[Optional[DeviceInfo], str]:
        for prefix in root.roots:
            dev = c.host.stat_device(f"{prefix}{KVM_DEV}") if prefix else kvm_device(c)
            if dev is not None:
                return dev, f"{prefix}{KVM_DEV}"
        return None, root.path(KVM_DEV)

    seen: tuple[Optional[DeviceInfo], str] = ctx.fact(f"kvm_device:{pid}", compute)
    return seen


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
    # vendor modules that run: loaded ones, and the built-in one this CPU started (a built-in
    # kvm_intel on an AMD host is listed in modules.builtin but never ran)
    try:
        vs = vendor_state(ctx)
    except OSError:
        vs = VendorState(None, "absent", None, "unreadable")
    vendor: list[str] = [
        m for m in ("kvm_intel", "kvm_amd", "kvm_pvm", "kvm_hv", "kvm_pr") if m in mods.loaded
    ]
    if vs.module and vs.started and vs.module not in vendor:
        vendor.append(vs.module)
    mod_ev = [f"module {m} {mods.how(m)}" for m in ["kvm", *vendor] if mods.has(m)]
    if probe is not None:
        who = f"uid {probe.uid}" if probe.uid is not None else "this user"
        if probe.ok:
            g = probe.guest
            ran = ""
            if g is not None and g.get("ok"):
                ran = "; a vCPU ran real-mode guest code (" + ", ".join(g.get("exits", [])) + ")"
            elif g is not None and not modules(ctx).has("kvm_pvm"):
                # hvcheck.guestcode: the VM exists but no vCPU can run code in it
                return KvmState(
                    False,
                    "guest-code-failed",
                    f"{KVM_DEV} opens and KVM_CREATE_VM works, but a vCPU could not run "
                    f"real-mode guest code: {g.get('stage')}: {g.get('error')}",
                    (f"probe:/dev/kvm guest code {g.get('stage')} failed", *mod_ev),
                )
            elif g is not None:
                ran = f"; real-mode guest code failed ({g.get('stage')}: {g.get('error')})"
            return KvmState(
                True,
                "probe-ok",
                f"functional probe: opened {KVM_DEV}, KVM_GET_API_VERSION = "
                f"{probe.api_version}, KVM_CREATE_VM succeeded as {who}{ran}",
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
            return _no_device(ctx, "probe:/dev/kvm ENOENT")
        return KvmState(
            False,
            "probe-failed",
            f"{KVM_DEV} exists but does not work: {probe.error}"
            + (f" ({probe.errno})" if probe.errno else ""),
            (f"probe:/dev/kvm {probe.stage} {probe.errno or 'failed'}", *mod_ev),
        )
    # No probe (a snapshot that recorded none): judge from static evidence.
    if dev is None:
        return _no_device(ctx, "stat:/dev/kvm absent")
    if dev.type != "char" or (dev.major, dev.minor) != (KVM_MAJOR, KVM_MINOR):
        return KvmState(
            False,
            "wrong-device",
            f"{KVM_DEV} is not the KVM device ({node_desc(dev)}; expected char 10:232)",
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


def node_desc(dev: DeviceInfo) -> str:
    """``char 10:232 mode 0660 root:kvm``; a node of another kind says what it is (a directory
    is what ``docker -v /dev/kvm:/dev/kvm`` leaves on a host without the device), without a
    device number that would mean nothing."""
    who = f"mode {dev.mode} {dev.owner or dev.uid}:{dev.group or dev.gid}"
    if dev.type in ("char", "block"):
        return f"{dev.type} {dev.major}:{dev.minor} {who}"
    return f"{_NOT_A_NODE.get(dev.type, 'not a device node')}, {who}"


_NOT_A_NODE = {"dir": "a directory", "file": "a regular file"}


def _no_device(ctx: Context, evidence: str) -> KvmState:
    """No /dev/kvm where hvcheck runs: not usable ("no-device"), unless QEMU processes prove
    the kernel runs KVM guests (:func:`kvm_instances_seen`); then usability cannot be told
    from here ("not-visible": hvcheck runs where the node is not, a container or a mount
    namespace of its own), never "not usable", which those guests contradict."""
    held = kvm_instances_seen(ctx)
    elsewhere = tuple(p for p in held if process_root(ctx, p).other_ns is True)
    if not elsewhere:
        # in hvcheck's own mount namespace (or not known to be elsewhere) the node is gone:
        # guests that opened it before keep KVM, a new one cannot open it
        still = (
            f"; KVM guests still run ({held_by(held)}: KVM vCPUs opened before it went)"
            if held
            else ""
        )
        return KvmState(False, "no-device", f"{KVM_DEV} does not exist{still}", (evidence,))
    return KvmState(
        None,
        "not-visible",
        f"{KVM_DEV} does not exist in hvcheck's mount namespace, yet {held_by(elsewhere)}, "
        f"in another mount namespace, run{'s' if len(elsewhere) == 1 else ''} KVM vCPUs: this "
        "kernel runs KVM guests, and hvcheck cannot probe the device from here",
        (evidence, f"fd/threads: {held_by(elsewhere)} KVM vCPUs"),
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


# systemd-detect-virt names as printed by systemd at boot ("Detected virtualization kvm.")
_SYSTEMD_VIRT = {
    "kvm": "KVM",
    "qemu": "QEMU",
    "microsoft": "Hyper-V",
    "oracle": "VirtualBox",
    "vmware": "VMware",
    "xen": "Xen",
    "amazon": "AWS EC2",
    "google": "Google Compute Engine",
    "parallels": "Parallels",
    "bhyve": "bhyve",
    "zvm": "z/VM",
    "powervm": "PowerVM LPAR",
    "wsl": "Hyper-V (WSL2)",
}
# Azure writes this chassis asset tag into every VM's DMI (cloud-init's DataSourceAzure checks it)
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"


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
    boot = boot_platform(ctx)
    if boot.hypervisor:
        # arch/x86/kernel/cpu/hypervisor.c init_hypervisor_platform()
        virtual = True
        hv = hv or boot.hypervisor
        ev.append("kernel log: Hypervisor detected: " + boot.hypervisor)
    if boot.systemd_virt and boot.systemd_virt != "none":
        # systemd-detect-virt's names (src/basic/virt.c virtualization_table)
        virtual = True
        hv = hv or _SYSTEMD_VIRT.get(boot.systemd_virt, boot.systemd_virt)
        ev.append(f"kernel log: systemd detected virtualization {boot.systemd_virt}")
    if boot.dmi and not vendor and not product:
        for needle, name in _DMI_VIRTUAL:
            if needle.lower() in boot.dmi.lower():
                virtual, hv = True, hv or name
                ev.append(f"kernel log: DMI/Hardware name {boot.dmi.split(',')[0]}")
                break
    release = ctx.host.uname().kernel or boot.kernel or ""
    if "microsoft" in release.lower() and "wsl" in release.lower():
        virtual, hv = True, "Hyper-V (WSL2)"
        ev.append(f"kernel release {release} (WSL2's kernel)")
    if _first_line(ctx, "/sys/class/dmi/id/chassis_asset_tag") == AZURE_ASSET_TAG:
        virtual, hv = True, "Hyper-V (Microsoft Azure)"
        ev.append(f"DMI chassis_asset_tag {AZURE_ASSET_TAG} (Azure)")
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
    """debian | rhel | suse | arch | alpine | gentoo | other: which package names and commands
    hints should use (os-release ID and ID_LIKE)."""
    try:
        info = os_info(ctx)
    except Exception:
        return "other"
    ids = f"{info.id} {info.like}".lower().split()
    for fam, names in (
        ("debian", ("debian", "ubuntu")),
        ("rhel", ("rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn")),
        ("suse", ("suse", "opensuse", "sles", "sled", "opensuse-leap", "opensuse-tumbleweed")),
        ("arch", ("arch", "manjaro")),
        ("alpine", ("alpine",)),
        ("gentoo", ("gentoo",)),
    ):
        if any(i in names or (fam == "suse" and "suse" in i) for i in ids):
            return fam
    return "other"


# QEMU system emulator packages per distribution family and CPU family: what gives this host a
# QEMU for its own architecture (packages.debian.org, openSUSE's qemu-* split, Alpine aports).
_QEMU_PACKAGES: dict[str, dict[str, str]] = {
    "debian": {
        "x86": "qemu-system-x86",
        "arm": "qemu-system-arm",
        "ppc": "qemu-system-ppc",
        "s390": "qemu-system-s390x",
        "riscv": "qemu-system-misc",
    },
    "suse": {"x86": "qemu-x86", "arm": "qemu-arm", "ppc": "qemu-ppc", "s390": "qemu-s390x"},
    "alpine": {
        "x86": "qemu-system-x86_64",
        "arm": "qemu-system-aarch64",
        "ppc": "qemu-system-ppc64",
        "s390": "qemu-system-s390x",
        "riscv": "qemu-system-riscv64",
    },
}


def install_command(ctx: Context) -> str:
    """The command that installs QEMU/KVM for this distribution and architecture (Debian on
    arm64 gets qemu-system-arm, never qemu-system-x86)."""
    fam = os_family(ctx)
    cpu = arch(ctx).family or ""
    if fam == "rhel":
        return "dnf install qemu-kvm"  # the host-architecture QEMU on every RHEL/Fedora arch
    if fam == "arch":
        return "pacman -S qemu-base"
    if fam == "gentoo":
        return "emerge app-emulation/qemu"
    pkg = _QEMU_PACKAGES.get(fam, {}).get(cpu)
    if fam == "debian" and pkg:
        return f"apt-get install {pkg}"
    if fam == "suse" and pkg:
        return f"zypper install {pkg}"
    if fam == "alpine" and pkg:
        return f"apk add {pkg}"
    return "install your distribution's QEMU/KVM packages"


def kvm_log_lines(ctx: Context) -> list[str]:
    return kvm_messages(kernel_log(ctx).lines)


def arm_hyp(ctx: Context) -> Optional[bool]:
    return arm_hyp_state(kernel_log(ctx).lines)


# ---------------------------------------------------------------------------------- QEMU user
# What the device-access judgement reads (udev rules, sysfs links), for the checks' ``reads``.
ACCESS_READS: tuple[str, ...] = devaccess.READS

# The generic fix, when the udev rules were not there to read (a snapshot without them).
UDEV_HINT = (
    "make /dev/kvm 0660 root:kvm and put the QEMU user in group kvm: "
    "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm, persisted by a udev rule "
    '(/etc/udev/rules.d/65-kvm.rules: KERNEL=="kvm", GROUP="kvm", MODE="0660"; '
    "Debian/Ubuntu ship it in the qemu-system packages), and usermod -aG kvm {user}"
)


class QemuUser(NamedTuple):
    """Who libvirt runs QEMU as.

    From evidence when a libvirt QEMU runs: its effective ``uid`` and ``gids`` (the effective
    gid, then the supplementary groups: what the kernel checks when it opens /dev/kvm),
    ``pid`` that process, ``user``/``group`` their names in the passwd and group files that
    process sees (its ``/proc/<pid>/root`` when it runs in another mount namespace), or the
    numbers as text when those files do not name them. Else from qemu.conf or the build's
    default (``uid``/``gids`` None), names resolved as ``seen_by`` (the libvirtd whose
    qemu.conf it is, None for hvcheck's own tree) sees its files.
    """

    user: str  # a name or, when nothing names it, a numeric uid as text
    group: Optional[str]
    source: str  # "running QEMU pid N", "path:line" of qemu.conf's user, or which default
    uid: Optional[int] = None
    gids: Optional[tuple[int, ...]] = None
    pid: Optional[int] = None
    seen_by: Optional[int] = None  # the process whose passwd/group name the user

    @property
    def from_process(self) -> bool:
        return self.uid is not None


def libvirt_daemons(ctx: Context) -> list[ProcInfo]:
    """The running libvirtd / virtqemud processes (the process walk's "libvirtd" group)."""
    return processes(ctx, "libvirtd")


def accounts_seen_by(ctx: Context, pid: Optional[int]) -> Accounts:
    """/etc/passwd and /etc/group as process ``pid`` sees them (``hvcheck.mountns``: through
    its ``/proc/<pid>/root`` when it runs in another mount namespace: a container's own
    files); hvcheck's own (:func:`accounts`) for None or a process that shares its tree."""
    if pid is None:
        return accounts(ctx)
    root = process_root(ctx, pid)
    if root.roots == ("",):
        return accounts(ctx)

    def compute(c: Context) -> Accounts:
        return parse_accounts(
            read_seen(c, root, "/etc/passwd").text or "",
            read_seen(c, root, "/etc/group").text or "",
        )

    return ctx.fact(f"accounts:{'|'.join(root.roots)}", compute)


def passwd_seen_by(ctx: Context, pid: Optional[int]) -> str:
    """Where the passwd file process ``pid`` sees is read, for messages."""
    if pid is None:
        return "/etc/passwd"
    return process_root(ctx, pid).path("/etc/passwd")


def libvirt_managed(p: ProcInfo) -> bool:
    """A QEMU that libvirt started: its monitor is libvirt's chardev ``charmonitor``
    (qemuBuildMonitorCommandLine, libvirt >= 0.8) or lives in libvirt's state directory
    (``.../lib/libvirt/qemu/``: domain-N-NAME/monitor.sock, masterKey.aes, the capabilities
    probe's qmp-XXXX/qmp.monitor); no ``-runas`` (libvirt drops rights itself before exec)."""
    if "-runas" in p.argv:
        return False
    # argv joined on NUL (no token holds one, nor does either string): two searches
    args = "\0".join(p.argv)
    return "id=charmonitor" in args or "/lib/libvirt/qemu/" in args


def _evidence_user(ctx: Context) -> Optional[QemuUser]:
    """The identity the running libvirt QEMUs have: the one most of them share (ties: the
    lowest pid's); None when no libvirt QEMU runs or none's ids were read."""
    seen: dict[tuple[int, tuple[int, ...]], list[ProcInfo]] = {}
    for p in processes(ctx, "qemu"):
        if p.uids is None or p.gids is None or not libvirt_managed(p):
            continue
        ids = (p.gids[1], *(g for g in (p.groups or ()) if g != p.gids[1]))
        seen.setdefault((p.uids[1], ids), []).append(p)
    if not seen:
        return None
    key, procs = max(seen.items(), key=lambda kv: (len(kv[1]), -kv[1][0].pid))
    uid, gids = key
    first = procs[0]
    acc = accounts_seen_by(ctx, first.pid)
    user = acc.user_name(uid) or str(uid)
    group = acc.group_name(gids[0]) or str(gids[0])
    source = f"running QEMU pid {first.pid}" + (
        f" and {len(procs) - 1} more" if len(procs) > 1 else ""
    )
    others = sum(len(v) for k, v in seen.items() if k != key)
    if others:
        source += f" ({others} other libvirt QEMU process(es) run with other ids)"
    return QemuUser(user, group, source, uid, gids, first.pid, first.pid)


def _daemon_qemu_conf(d: ProcInfo) -> str:
    """The qemu.conf a libvirtd reads: ``<sysconfdir>/libvirt/qemu.conf``, sysconfdir ``/etc``
    or, for a snap's libvirt, ``/var/snap/<snap>/common/etc`` (snap-openstack-hypervisor's
    ``-Dsysconfdir``)."""
    snap = snap_name(d.exe) or snap_name(d.argv[0] if d.argv else None)
    return f"/var/snap/{snap}/common/etc/libvirt/qemu.conf" if snap else "/etc/libvirt/qemu.conf"


def qemu_user(ctx: Context) -> Optional[QemuUser]:
    """Who libvirt runs QEMU as; None when libvirt is not on this host.

    From evidence first: the ids of the running libvirt QEMU processes (``/proc/<pid>/status``
    Uid, Gid, Groups, as the process walk read them). When no libvirt QEMU runs: qemu.conf's
    ``user``/``group`` as the running libvirtd reads it (its own tree: a container's or a
    snap's), else the host's or kolla's copy; without a ``user`` there, the default of
    libvirt's build: ``libvirt-qemu`` on Debian and Ubuntu, ``qemu`` elsewhere, uid 42427 in
    kolla's images.
    """

    def compute(c: Context) -> Optional[QemuUser]:
        ev = _evidence_user(c)
        if ev is not None:
            return ev
        h = c.host
        daemons = libvirt_daemons(c)
        found: Optional[tuple[str, Optional[str], Optional[int]]] = None  # path, text, seen_by
        if daemons:
            d = daemons[0]
            seen = read_seen(c, process_root(c, d.pid), _daemon_qemu_conf(d))
            if seen.text is not None and seen.path is not None:
                found = (seen.path, seen.text, d.pid)
        if found is None:
            paths = ["/etc/libvirt/qemu.conf", "/etc/kolla/nova-libvirt/qemu.conf"]
            paths += sorted(h.glob("/var/snap/*/common/etc/libvirt/qemu.conf"))
            for path in paths:
                text = h.read_opt(path)
                if text is not None:
                    found = (path, text, None)
                    break
        if found is None and not daemons and not h.exists("/etc/libvirt"):
            return None
        # names are resolved as the running libvirtd sees its files
        by = daemons[0].pid if daemons else None
        if found is not None:
            path, text, by = found[0], found[1], found[2] if found[2] is not None else by
            qc = parse_qemu_conf(text or "")
            if qc.user:
                return QemuUser(qc.user, qc.group, f"{path}:{qc.user_line}", seen_by=by)
            if "kolla" in path:
                return QemuUser("42427", "42427", "kolla's default (uid 42427)", seen_by=by)
        fam = os_family(c)
        if fam == "debian":
            return QemuUser(
                "libvirt-qemu",
                "libvirt-qemu",
                "Debian/Ubuntu default (qemu.conf user unset)",
                seen_by=by,
            )
        if fam in ("rhel", "suse"):
            return QemuUser("qemu", "qemu", f"{fam} default (qemu.conf user unset)", seen_by=by)
        return QemuUser(
            "qemu", "qemu", "libvirt's build default (qemu.conf user unset)", seen_by=by
        )

    return ctx.fact("qemu_user", compute)


def can_open(dev: DeviceInfo, uid: int, gids: set[int]) -> Optional[bool]:
    """Read-write access as the kernel decides it: root always; the node's POSIX ACL when it
    has one (``DeviceInfo.acl``: a setfacl entry, logind's uaccess), by the acl(5) algorithm;
    else the owner, group or other mode bits (``devaccess.allows``). None when the ACL's bytes
    cannot be decoded."""
    return devaccess.allows(dev, uid, gids)


class DeviceCgroup(NamedTuple):
    """What a process's cgroup v1 device controller says about /dev/kvm (c 10:232).

    ``allowed``: True or False from its ``devices.list``; None when it cannot be read (cgroup
    v2, whose device filter is an eBPF program with no file to read; the files absent or
    refused). ``path``: the ``devices.list`` read; ``why``: a sentence for messages.
    """

    pid: int
    allowed: Optional[bool]
    path: Optional[str]
    why: str
    fix: str = ""  # how this deployment gives its container the device for good


DEVICES_V1 = "/sys/fs/cgroup/devices"


def device_cgroup(ctx: Context, pid: int) -> DeviceCgroup:
    """/dev/kvm in the device whitelist of process ``pid``'s cgroup (cgroup v1:
    ``/proc/<pid>/cgroup`` names its ``devices`` cgroup, whose
    ``/sys/fs/cgroup/devices/<path>/devices.list`` lists what it may open;
    Documentation/admin-guide/cgroup-v1/devices.rst). Once per pid and run."""

    def compute(c: Context) -> DeviceCgroup:
        try:
            text = c.host.read_opt(f"/proc/{pid}/cgroup")
        except OSError as e:
            return DeviceCgroup(pid, None, None, f"/proc/{pid}/cgroup: {e.strerror or e}")
        if text is None:
            return DeviceCgroup(pid, None, None, f"/proc/{pid}/cgroup is not there to read")
        path = devices_cgroup(parse_proc_cgroup(text))
        if path is None:
            return DeviceCgroup(
                pid,
                None,
                None,
                f"pid {pid} has no cgroup v1 device controller (cgroup v2 filters devices "
                "with an eBPF program, which has no file to read)",
            )
        listing = f"{DEVICES_V1}{path.rstrip('/')}/devices.list"
        try:
            rules_text = c.host.read_opt(listing)
        except OSError as e:
            return DeviceCgroup(pid, None, listing, f"{listing}: {e.strerror or e}")
        if rules_text is None:
            return DeviceCgroup(pid, None, listing, f"{listing} is not there to read")
        ok = device_allowed(parse_devices_list(rules_text), "c", KVM_MAJOR, KVM_MINOR)
        if ok:
            return DeviceCgroup(pid, True, listing, f"{listing} allows c 10:232 rw")
        return DeviceCgroup(
            pid,
            False,
            listing,
            f"the device cgroup of pid {pid} ({listing}) does not allow c 10:232 rw: "
            "its processes cannot open /dev/kvm whatever the node's mode (EPERM)",
            device_fix(deployment(c)),
        )

    found: DeviceCgroup = ctx.fact(f"device_cgroup:{pid}", compute)
    return found


class KvmAccess(NamedTuple):
    """Can libvirt's QEMU user open /dev/kvm?"""

    user: QemuUser
    device: DeviceInfo
    uid: Optional[int]  # None: the user is not in /etc/passwd (NSS/LDAP users are not read)
    groups: tuple[str, ...]  # the user's groups (names, or gids without a name), sorted
    ok: Optional[bool]  # None when the uid is unknown or the node's ACL cannot be decoded
    # the judgement behind ``ok`` (reasons, the udev rule, the lasting fix); None without uid
    access: Optional[NodeAccess] = None
    # the device cgroup of the QEMU (or libvirtd) process, where one runs
    cgroup: Optional[DeviceCgroup] = None
    # why that process's tree has no /dev/kvm at all (its container was not given it)
    missing: Optional[str] = None
    container_fix: str = ""  # how this deployment gives its container the device

    @property
    def mode(self) -> str:
        """``mode 0660 root:kvm`` (``, ACL user:64055:rw-,mask::rw-`` when the node has an
        ACL with entries beyond the mode's): the device's access, for messages."""
        d = self.device
        acl = devaccess.acl_summary(d)
        return f"mode {d.mode} {d.owner or d.uid}:{d.group or d.gid}" + (f", {acl}" if acl else "")

    @property
    def hint(self) -> str:
        """The hint for a QEMU user who cannot open /dev/kvm: what is wrong, whether udev
        keeps it, and the lasting fix (the rule and its file:line, or the rule to write);
        the generic udev advice when the rules were not there to read and udev may run."""
        node = ""
        if self.missing:
            node = f"{self.missing} — lasting fix: {self.container_fix}"
        elif self.access is not None and self.access.allowed is not True:
            node = (
                self.access.hint()
                if self.access.rule is not None or self.access.lasting_fix
                else UDEV_HINT.format(user=self.user.user)
            )
        if self.cgroup is not None and self.cgroup.allowed is False:
            cg = f"{self.cgroup.why} — lasting fix: {self.cgroup.fix}"
            if self.missing:
                return f"{cg} (its tree has no /dev/kvm either)"
            return f"{cg}; and {node}" if node else cg
        return node or UDEV_HINT.format(user=self.user.user)


def qemu_kvm_access(ctx: Context) -> Optional[KvmAccess]:
    """The QEMU user's access to /dev/kvm (mode bits and POSIX ACL, ``devaccess``); None
    without libvirt or /dev/kvm.

    From a running QEMU (:func:`qemu_user` from evidence): its own uid and groups, as the
    kernel checks them. Else the user named by qemu.conf, resolved in the passwd and group
    files libvirtd sees: its primary group (passwd) and memberships (group), plus qemu.conf's
    ``group``, the group libvirt runs QEMU with. When it cannot open the node, the udev
    rules (the host's: they set the node) are read to tell whether a fix lasts
    (``KvmAccess.hint``).
    """

    def compute(c: Context) -> Optional[KvmAccess]:
        qu = qemu_user(c)
        dev = kvm_device(c)
        if qu is None or dev is None:
            return None
        acc = accounts_seen_by(c, qu.seen_by)
        uid: int
        if qu.uid is not None and qu.gids is not None:
            uid, gids = qu.uid, set(qu.gids)
        else:
            user = acc.user(qu.user)
            if user is None:
                return KvmAccess(qu, dev, None, (), None)
            uid, gids = user.uid, acc.groups_of(user.name)
            if qu.group:
                g = acc.group(qu.group)
                if g is not None:
                    gids.add(g.gid)
        groups = tuple(sorted(acc.group_name(g) or str(g) for g in gids))
        # the process whose view counts: the running QEMU, else libvirtd (its QEMUs' /dev
        # and cgroups derive from its own; a v1 child cgroup never allows more than its
        # parent)
        who = qu.pid if qu.pid is not None else qu.seen_by
        if who is None:
            daemons = libvirt_daemons(c)
            who = daemons[0].pid if daemons else None
        cg = device_cgroup(c, who) if who is not None else None
        fix = device_fix(deployment(c))
        seen, node = kvm_device_seen_by(c, who)
        if seen is None:
            missing = f"{node} does not exist: pid {who} sees no /dev/kvm in its tree"
            return KvmAccess(qu, dev, uid, groups, False, None, cg, missing, fix)
        # the udev rules are the host's: their GROUP/OWNER names are the host's accounts
        judged = devaccess.node_access(c, KVM_DEV, seen, uid, gids, qu.user, accounts(c))
        ok = judged.allowed
        if cg is not None and cg.allowed is False:
            ok = False
        return KvmAccess(qu, seen, uid, groups, ok, judged, cg, None, fix)

    return ctx.fact("qemu_kvm_access", compute)


class ProcessKvmAccess(NamedTuple):
    """Could one running process open /dev/kvm? Its ids as the kernel checks them, named as
    the process sees its passwd and group files."""

    pid: int
    user: str  # its name in the passwd it sees, else "uid N"
    uid: int
    groups: tuple[str, ...]  # names (or gids) of its effective gid and supplementary groups
    allowed: Optional[bool]  # False when the node's mode/ACL or its device cgroup refuses it
    access: Optional[NodeAccess]  # the node's mode and ACL, the udev rule, the lasting fix
    cgroup: DeviceCgroup
    missing: Optional[str] = None  # its tree has no /dev/kvm (access is None then)

    def hint(self) -> str:
        """What keeps this user from /dev/kvm and the lasting fix (the device cgroup first:
        with it refusing, no mode helps)."""
        who = f"{self.user} (uid {self.uid}, groups {', '.join(self.groups) or 'none'})"
        parts: list[str] = []
        if self.cgroup.allowed is False:
            parts.append(f"{self.cgroup.why} — lasting fix: {self.cgroup.fix}")
        if self.missing or self.access is None:
            parts.append(self.missing or "")
            return f"{who} cannot open /dev/kvm: " + "; ".join(p for p in parts if p)
        if self.access.allowed is not True and (
            self.access.rule is not None or self.access.lasting_fix
        ):
            parts.append(self.access.hint())
        elif self.access.allowed is not True:  # the udev rules were not there to read
            parts.append(f"{'; '.join(self.access.reasons)} — {UDEV_HINT.format(user=self.user)}")
        if not parts:
            return f"{who} may open /dev/kvm now ({'; '.join(self.access.reasons)})"
        return f"{who} cannot open /dev/kvm: " + "; ".join(parts)


def process_kvm_access(
    ctx: Context, pid: int, uid: Optional[int], gids: tuple[int, ...]
) -> Optional[ProcessKvmAccess]:
    """Whether process ``pid`` (effective ``uid``, ``gids``: effective gid then supplementary
    groups, from its status) may open /dev/kvm now: the node's mode and ACL
    (``devaccess``) and its device cgroup (:func:`device_cgroup`). None without /dev/kvm
    or the process's uid."""
    if kvm_device(ctx) is None or uid is None:
        return None
    seen = accounts_seen_by(ctx, pid)
    name = seen.user_name(uid) or f"uid {uid}"
    groups = tuple(seen.group_name(g) or str(g) for g in gids)
    cg = device_cgroup(ctx, pid)
    dev, node = kvm_device_seen_by(ctx, pid)
    if dev is None:
        missing = (
            f"{node} does not exist: the process sees no /dev/kvm in its tree — lasting "
            f"fix: {device_fix(deployment(ctx))}"
        )
        return ProcessKvmAccess(pid, name, uid, groups, False, None, cg, missing)
    judged = devaccess.node_access(ctx, KVM_DEV, dev, uid, set(gids), name, accounts(ctx))
    allowed = False if cg.allowed is False else judged.allowed
    return ProcessKvmAccess(pid, name, uid, groups, allowed, judged, cg)


def refused_open_hint(
    ctx: Context, path: str, dev: Optional[DeviceInfo], probe: Optional[ProbeResult]
) -> str:
    """For a probe of ``path`` refused with EACCES: ``"; <user> cannot open it: why — lasting
    fix: ..."``, or why the files allow it and the kernel still refused (stale login groups,
    an LSM); "" when there is nothing to add. The user is the probe's uid (else the effective
    uid), with its groups from /etc/passwd and /etc/group."""
    return devaccess.probe_user_hint(ctx, path, dev, probe, accounts(ctx))


# ---------------------------------------------------------------------------------- guest
# What `hvcheck guest` judges from inside a VM: is it accelerated (KVM, or another hypervisor's
# hardware-assisted virtualization), emulated by QEMU's TCG, or bare metal? The checks in
# hvcheck.checks.guest read these; the host run never does. Sources and what each proves are
# described in hvcheck.parsers.guest.
GUEST_CLOCKSOURCES = "/sys/devices/system/clocksource/clocksource0/available_clocksource"
DMI_SYS_VENDOR = "/sys/class/dmi/id/sys_vendor"
DMI_PRODUCT_NAME = "/sys/class/dmi/id/product_name"
SYS_HYPERVISOR_TYPE = "/sys/hypervisor/type"
S390_SYSINFO = "/proc/sysinfo"
DT_HYPERVISOR = "/proc/device-tree/hypervisor/compatible"
DT_MODEL = "/proc/device-tree/model"
GUEST_READS = (
    "/proc/cpuinfo",
    "/dev/kmsg",
    GUEST_CLOCKSOURCES,
    DMI_SYS_VENDOR,
    DMI_PRODUCT_NAME,
    SYS_HYPERVISOR_TYPE,
    S390_SYSINFO,
    DT_HYPERVISOR,
    DT_MODEL,
    "/proc/cmdline",
)
# hypervisors other than KVM whose guests run hardware-assisted (accel "other")
OTHER_HYPERVISORS = {
    "xen": "Xen",
    "hyperv": "Microsoft Hyper-V",
    "vmware": "VMware",
    "virtualbox": "VirtualBox",
    "parallels": "Parallels",
    "bhyve": "bhyve",
    "acrn": "ACRN",
    "jailhouse": "Jailhouse",
    "zvm": "z/VM",
    "powervm": "PowerVM",
    "apple": "Apple Virtualization",
}
# evidence kinds, strongest first: a hypervisor named by the kernel outranks a DMI string
_KIND_ORDER = (
    "kernel-log",
    "clocksource",
    "sys-hypervisor",
    "sysinfo",
    "device-tree",
    "cpu-model",
    "cpu-flag",
    "dmi",
)


class GuestClue(NamedTuple):
    """One thing a guest sees, and what it says."""

    kind: str  # an evidence kind of _KIND_ORDER (the JSON guest.evidence names)
    # kvm | tcg | qemu (a QEMU machine, KVM or TCG) | vm | bare | an OTHER_HYPERVISORS key
    says: str
    text: str  # what was seen, for the summary


class GuestAccel(NamedTuple):
    """How this machine runs: ``hvcheck guest``'s headline.

    ``accel``: kvm | tcg | other (another hypervisor's hardware-assisted virtualization) |
    none (bare metal) | unknown. ``hypervisor``: kvm | qemu (QEMU without KVM) | an
    OTHER_HYPERVISORS key | None. ``evidence``: the kinds the verdict rests on, strongest
    first; ``reasons``: what each said; ``clues``: everything seen; ``unreadable``: sources that
    exist but could not be read (a reason to re-run as root).
    """

    accel: str
    hypervisor: Optional[str]
    platform: Optional[str]
    evidence: tuple[str, ...]
    reasons: tuple[str, ...]
    clues: tuple[GuestClue, ...]
    unreadable: tuple[str, ...]
    headline: str  # "TCG: this VM is emulated by QEMU without KVM"

    @property
    def summary(self) -> str:
        """The headline and every reason."""
        return self.headline + (": " + "; ".join(self.reasons) if self.reasons else "")


def guest_accel(ctx: Context) -> GuestAccel:
    """Is this machine KVM-accelerated, under another hypervisor, emulated by TCG, or bare
    metal? From the kernel log, the clocksources, cpuinfo, DMI, /sys/hypervisor, s390x
    /proc/sysinfo and the POWER device tree (GUEST_READS; hvcheck.parsers.guest says what each
    proves). Never raises for an unreadable source: it is listed in ``unreadable``."""
    return ctx.fact("guest_accel", _guest_accel)


def _guest_log(ctx: Context) -> "GuestLog":
    from hvcheck.parsers.guest import guest_log

    return ctx.fact("guest_log", lambda c: guest_log(kernel_log(c).lines))


def _guest_text(ctx: Context, path: str, unreadable: list[str]) -> Optional[str]:
    try:
        return ctx.host.read_opt(path)
    except OSError as e:
        unreadable.append(f"{path} ({e.strerror or type(e).__name__})")
        return None


def _guest_clues(ctx: Context, unreadable: list[str]) -> tuple[list[GuestClue], Optional[str]]:
    """Everything a guest sees of the machine under it, and the platform DMI names."""
    from hvcheck.parsers.guest import (
        PARAVIRT_CLOCKS,
        classify_cpu_model,
        classify_dmi,
        dmi_from_log,
        hypervisor_from_kernel,
        parse_clocksources,
        parse_dt_strings,
        parse_sysinfo,
    )

    clues: list[GuestClue] = []
    fam = arch(ctx).family
    try:
        ci = cpuinfo(ctx)
    except OSError as e:
        unreadable.append(f"/proc/cpuinfo ({e.strerror or type(e).__name__})")
        ci = None
    log = kernel_log(ctx)
    if log.error:
        unreadable.append(f"the kernel log ({log.error})")
    gl = _guest_log(ctx)

    # the kernel's own hypervisor detection (x86)
    if gl.hypervisor:
        hv = hypervisor_from_kernel(gl.hypervisor)
        clues.append(
            GuestClue("kernel-log", hv or "vm", f"kernel log: Hypervisor detected: {gl.hypervisor}")
        )
    if gl.paravirt == "KVM":
        clues.append(GuestClue("kernel-log", "kvm", "kernel log: paravirtualized kernel on KVM"))
    if gl.kvm_clock:
        clues.append(GuestClue("kernel-log", "kvm", "kernel log: kvm-clock registered"))

    # clocksources
    avail_text = _guest_text(ctx, GUEST_CLOCKSOURCES, unreadable)
    avail = parse_clocksources(avail_text) if avail_text is not None else None
    for name in avail or ():
        if name in PARAVIRT_CLOCKS:
            clues.append(
                GuestClue("clocksource", PARAVIRT_CLOCKS[name], f"clocksource {name} available")
            )

    # the CPU
    qemu_model = False
    if ci is not None and ci.model_name:
        model = classify_cpu_model(ci.model_name)
        if model is not None and model.tcg_only:
            clues.append(
                GuestClue("cpu-model", "tcg", f"CPU model '{ci.model_name}' (QEMU's TCG-only max)")
            )
        elif model is not None:
            qemu_model = True
            clues.append(
                GuestClue("cpu-model", "qemu", f"CPU model '{ci.model_name}' (QEMU's {model.name})")
            )
    if ci is not None and ci.arch_family == "x86":
        if ci.hypervisor:
            clues.append(GuestClue("cpu-flag", "vm", "cpuinfo flag 'hypervisor'"))
        elif not ci.truncated:
            clues.append(GuestClue("cpu-flag", "bare", "no 'hypervisor' flag in cpuinfo"))

    # DMI (the kernel log's DMI line when sysfs has none)
    vendor = _first_guest_line(ctx, DMI_SYS_VENDOR, unreadable) or ""
    product = _first_guest_line(ctx, DMI_PRODUCT_NAME, unreadable) or ""
    dmi_kind, dmi_where = "dmi", f"DMI '{vendor}' / '{product}'"
    if not vendor and not product and gl.dmi:
        vendor, product = dmi_from_log(gl.dmi)
        dmi_kind, dmi_where = "kernel-log", f"kernel log: DMI {gl.dmi.split(', BIOS')[0]}"
    ident = classify_dmi(vendor, product)
    if ident.hypervisor:
        clues.append(GuestClue(dmi_kind, ident.hypervisor, dmi_where))
    if ident.kvm is True:
        clues.append(GuestClue(dmi_kind, "kvm", f"{dmi_where} (QEMU says so only under KVM)"))
    elif ident.kvm is False:
        clues.append(GuestClue(dmi_kind, "tcg", f"{dmi_where} (QEMU's name without KVM)"))
    elif ident.qemu:
        clues.append(GuestClue(dmi_kind, "qemu", dmi_where))
    elif ident.virtual is False:
        clues.append(GuestClue(dmi_kind, "bare", dmi_where))

    # Xen's own sysfs
    xen = _first_guest_line(ctx, SYS_HYPERVISOR_TYPE, unreadable)
    if xen:
        clues.append(
            GuestClue("sys-hypervisor", xen.lower() if xen.lower() == "xen" else "vm",
                      f"/sys/hypervisor/type = {xen}")
        )  # fmt: skip

    # s390x: STSI as /proc/sysinfo shows it
    if fam == "s390" or (ci is not None and ci.arch_family == "s390"):
        text = _guest_text(ctx, S390_SYSINFO, unreadable)
        if text is not None:
            si = parse_sysinfo(text)
            cp = si.get("VM00 Control Program", "")
            manuf = si.get("Manufacturer", "")
            if cp.startswith("KVM"):
                says = "tcg" if manuf == "QEMU" else "kvm"
                clues.append(
                    GuestClue(
                        "sysinfo",
                        says,
                        f"/proc/sysinfo: Control Program {cp}, Manufacturer {manuf}",
                    )
                )
            elif cp.startswith("z/VM"):
                clues.append(GuestClue("sysinfo", "zvm", f"/proc/sysinfo: Control Program {cp}"))
            elif cp:
                clues.append(GuestClue("sysinfo", "vm", f"/proc/sysinfo: Control Program {cp}"))
            elif "LPAR Name" in si:
                clues.append(GuestClue("sysinfo", "bare", "/proc/sysinfo: an LPAR, no VM level"))

    # POWER: the device tree's /hypervisor node (QEMU adds it only under KVM)
    if fam == "ppc" or (ci is not None and ci.arch_family == "ppc"):
        try:
            raw = ctx.host.read_bytes(DT_HYPERVISOR)
            compat = parse_dt_strings(raw.decode("ascii", "replace"))
        except (FileNotFoundError, NotADirectoryError):
            compat = None
        except OSError as e:
            unreadable.append(f"{DT_HYPERVISOR} ({e.strerror or type(e).__name__})")
            compat = ()
        emulated = bool(ci and ci.power_model and "emulated by qemu" in ci.power_model)
        if compat and "linux,kvm" in compat:
            clues.append(GuestClue("device-tree", "kvm", "device tree /hypervisor: linux,kvm"))
        elif compat is None and emulated and ctx.host.exists(DT_MODEL):
            clues.append(
                GuestClue(
                    "device-tree", "tcg",
                    "a QEMU pSeries machine without the /hypervisor node QEMU adds under KVM",
                )
            )  # fmt: skip
        if ci is not None and ci.platform == "PowerNV":
            clues.append(GuestClue("cpu-model", "bare", "cpuinfo platform PowerNV"))
        elif ci is not None and ci.platform == "pSeries" and not emulated:
            clues.append(GuestClue("cpu-model", "powervm", "cpuinfo platform pSeries (PowerVM)"))
        elif ci is not None and emulated:
            clues.append(GuestClue("cpu-model", "qemu", f"cpuinfo model '{ci.power_model}'"))

    # x86 QEMU without KVM: what KVM would have shown is missing. QEMU's TCG answers CPUID
    # 0x40000000 with "TCGTCGTCGTCG" (target/i386/cpu.c), which no kernel driver claims, so a
    # complete boot log names no hypervisor; kvm-clock needs KVM's paravirtual clock.
    # A QEMU machine whose cpuinfo lacks the hypervisor flag hides it (-cpu ...,-hypervisor),
    # and then the kernel looks for no hypervisor at all: nothing can be concluded there.
    qemu_machine = ident.qemu or qemu_model
    decided = any(c.says not in ("qemu", "vm", "bare") for c in clues)
    hidden = any(c.kind == "cpu-flag" and c.says == "bare" for c in clues)
    if fam in ("x86", None) and qemu_machine and not hidden and not decided:
        if gl.complete and not gl.hypervisor:
            clues.append(
                GuestClue(
                    "kernel-log", "tcg",
                    "the boot log names no hypervisor"
                    + (f" (paravirtualized kernel on {gl.paravirt})" if gl.paravirt else ""),
                )
            )  # fmt: skip
        cmdline = _guest_text(ctx, "/proc/cmdline", unreadable) or ""
        if avail is not None and "no-kvmclock" not in cmdline.split():
            clues.append(
                GuestClue(
                    "clocksource", "tcg", f"no kvm-clock among the clocksources ({' '.join(avail)})"
                )
            )
    return clues, ident.platform


def _first_guest_line(ctx: Context, path: str, unreadable: list[str]) -> Optional[str]:
    t = _guest_text(ctx, path, unreadable)
    return t.strip().splitlines()[0].strip() if t and t.strip() else None


def _rank(c: GuestClue) -> int:
    return _KIND_ORDER.index(c.kind) if c.kind in _KIND_ORDER else len(_KIND_ORDER)


def _guest_accel(ctx: Context) -> GuestAccel:
    unreadable: list[str] = []
    clues, platform = _guest_clues(ctx, unreadable)
    clues.sort(key=_rank)
    kvm = [c for c in clues if c.says == "kvm"]
    tcg = [c for c in clues if c.says == "tcg"]
    other = [c for c in clues if c.says in OTHER_HYPERVISORS]
    qemu = [c for c in clues if c.says == "qemu"]
    vm = [c for c in clues if c.says == "vm"]
    bare = [c for c in clues if c.says == "bare"]
    where = f", on {platform}" if platform else ""

    def verdict(accel: str, hv: Optional[str], used: list[GuestClue], head: str) -> GuestAccel:
        used = sorted(used, key=_rank)
        kinds = tuple(dict.fromkeys(c.kind for c in used))
        reasons = tuple(dict.fromkeys(c.text for c in used))
        return GuestAccel(
            accel, hv, platform, kinds, reasons, tuple(clues), tuple(unreadable), head
        )

    vbox = [c for c in other if c.says == "virtualbox"]
    if kvm and tcg:
        return verdict(
            "unknown", None, kvm + tcg, "conflicting evidence: some says KVM, some says TCG"
        )
    if kvm and vbox:
        # VirtualBox's default paravirtualization interface for Linux guests is KVM's
        # (VirtualBox manual, "Paravirtualization Providers"): its guests see KVM's signature
        return verdict(
            "other", "virtualbox", vbox + kvm,
            "VirtualBox (hardware-assisted; it offers KVM's paravirtual interface)",
        )  # fmt: skip
    if kvm:
        return verdict("kvm", "kvm", kvm, f"KVM: this VM runs with hardware acceleration{where}")
    if tcg:
        return verdict(
            "tcg", "qemu", tcg + qemu + vm,
            f"TCG: this VM is emulated by QEMU without KVM{where}",
        )  # fmt: skip
    if other:
        hv = other[0].says
        name = OTHER_HYPERVISORS[hv]
        return verdict(
            "other", hv, [c for c in other if c.says == hv],
            f"{name}: this VM runs under {name}'s hardware-assisted virtualization{where}",
        )  # fmt: skip
    if qemu:
        return verdict(
            "unknown", None, qemu + vm + bare,
            f"a QEMU machine{where}, but nothing here tells KVM from TCG",
        )  # fmt: skip
    if vm:
        return verdict("unknown", None, vm, "a virtual machine, but nothing names its hypervisor")
    if bare:
        return verdict("none", None, bare, "not a virtual machine (bare metal)")
    return verdict("unknown", None, [], "nothing here tells whether this is a virtual machine")


class GuestNested(NamedTuple):
    """Is nested virtualization offered to this guest: can it run KVM guests of its own?

    ``nested``: True (the CPU extension or /dev/kvm is there), False (neither), None (cannot
    tell). ``extension``: vmx | svm | sie | EL2 | None; ``device``: /dev/kvm is KVM's node.
    """

    nested: Optional[bool]
    extension: Optional[str]
    device: bool
    via: Optional[str]  # kvm_pvm when /dev/kvm comes from PVM (no VT-x/AMD-V needed)
    summary: str
    evidence: tuple[str, ...]


def guest_nested(ctx: Context) -> GuestNested:
    """Nested virtualization offered to this guest: the CPU extension in cpuinfo (vmx, svm,
    s390x sie; arm64: the kernel started at EL2) and /dev/kvm (stat; with kvm_pvm in the
    modules, PVM needs no extension)."""
    return ctx.fact("guest_nested", _guest_nested)


def _guest_nested(ctx: Context) -> GuestNested:
    try:
        dev = kvm_device(ctx)
    except OSError:
        dev = None
    has_dev = bool(
        dev is not None and dev.type == "char" and (dev.major, dev.minor) == (KVM_MAJOR, KVM_MINOR)
    )
    ci = _cpuinfo_quiet(ctx)
    fam = arch(ctx).family or (ci.arch_family if ci else None)
    ext: Optional[str] = None
    if ci is not None:
        ext = ci.virt_ext
    ev: list[str] = []
    if ext:
        ev.append(f"cpuinfo flag '{ext}'")
    if fam == "arm" and ext is None:
        el = _guest_log(ctx).arm_el
        if el == "EL2":
            ext = "EL2"
            ev.append("kernel log: CPU: All CPU(s) started at EL2")
        elif el:
            ev.append(f"kernel log: CPU: All CPU(s) started at {el}")
    via: Optional[str] = None
    if has_dev:
        ev.append(f"{KVM_DEV} is char {KVM_MAJOR}:{KVM_MINOR}")
        if ext is None and fam == "x86" and modules(ctx).has("kvm_pvm"):
            via = "kvm_pvm"
    if has_dev:
        how = f" through {via} (PVM: no VT-x/AMD-V needed)" if via else ""
        what = f" and the CPU offers {ext}" if ext else ""
        return GuestNested(
            True, ext, True, via, f"offered: {KVM_DEV} is present{how}{what}", tuple(ev)
        )
    if ext:
        return GuestNested(
            True, ext, False, None,
            f"offered by the CPU ({ext}), but {KVM_DEV} is absent: KVM is not loaded in this guest",
            tuple(ev),
        )  # fmt: skip
    if ci is not None and fam in ("x86", "s390") and not ci.truncated:
        flags = "vmx/svm" if fam == "x86" else "sie"
        return GuestNested(
            False, None, False, None,
            f"not offered: this VM's CPU has no {flags} and there is no {KVM_DEV}",
            (f"cpuinfo without {flags}", f"no {KVM_DEV}"),
        )  # fmt: skip
    if fam == "arm" and ev:
        return GuestNested(
            False, None, False, None,
            f"not offered: the kernel started at EL1 and there is no {KVM_DEV}", tuple(ev),
        )  # fmt: skip
    return GuestNested(
        None, None, False, None,
        f"cannot tell: no {KVM_DEV}, and nothing shows whether the CPU offers virtualization",
        tuple(ev),
    )  # fmt: skip


# ---------------------------------------------------------------------------------- packages
# The package databases, read as files (hvcheck.parsers.pkgdb): dpkg's status file, RPM's
# rpmdb.sqlite (hvcheck.host.rpmdb; `rpm -qa` for Berkeley DB/ndb on the live host only) and
# each snap's meta/snap.yaml.
DPKG_STATUS = "/var/lib/dpkg/status"
# rpm's %_dbpath: /usr/lib/sysimage/rpm since rpm 4.16 on Fedora 36+ and openSUSE (where
# /var/lib/rpm is a link to it), /var/lib/rpm on RHEL/CentOS; the first that holds one wins
RPM_DB_DIRS = ("/usr/lib/sysimage/rpm", "/var/lib/rpm")
# snapd mounts snaps under /snap (Debian/Ubuntu), /var/lib/snapd/snap on Fedora/RHEL/Arch
SNAP_DIRS = ("/snap", "/var/lib/snapd/snap")
MAX_SNAP_YAML = 1024 * 1024


class PackageDb(NamedTuple):
    """One package database hvcheck looked at: ``kind`` (dpkg | rpmdb.sqlite | rpm -qa |
    snap), ``path``, ``status`` (ok | partial | error | timeout | unavailable), ``found``: how
    many packages it gave, ``error``: why it could not be read whole."""

    kind: str
    path: str
    status: str
    found: int
    error: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())


class InstalledPackages(NamedTuple):
    """Every installed package hvcheck could read, and the databases they came from.

    ``databases`` is empty when the host (or snapshot) has none of dpkg's status file, an RPM
    database or a snap; ``complete`` is False when one of them could not be read whole (a
    package missing from ``packages`` may then be installed all the same).
    """

    packages: tuple[Package, ...]
    databases: tuple[PackageDb, ...]

    @property
    def complete(self) -> bool:
        return all(d.status == "ok" for d in self.databases)

    def first(self, names: Iterable[str]) -> Optional[Package]:
        """The installed package with the first of ``names`` that is installed."""
        names = tuple(names)
        wanted = frozenset(names)
        by_name: dict[str, Package] = {}
        for p in self.packages:
            if p.name in wanted:
                by_name.setdefault(p.name, p)
        for n in names:
            if n in by_name:
                return by_name[n]
        return None


def installed_packages(ctx: Context) -> InstalledPackages:
    """The installed packages of this host: dpkg's ``/var/lib/dpkg/status``, the RPM database
    (``rpmdb.sqlite`` in :data:`RPM_DB_DIRS` read with sqlite3, or ``rpm -qa`` for a Berkeley
    DB/ndb one on the live host, within the run's remaining time) and the snaps
    (``/snap/<name>/current/meta/snap.yaml``). Each :class:`Package` says which database
    (``db``); other checks (a stale-QEMU check: "restart to pick up QEMU x.y") read them here.
    """

    def compute(c: Context) -> InstalledPackages:
        h = c.host
        pkgs: list[Package] = []
        dbs: list[PackageDb] = []
        try:
            data = h.read_bytes(DPKG_STATUS)
        except (FileNotFoundError, NotADirectoryError):
            data = None
        except OSError as e:
            dbs.append(PackageDb("dpkg", DPKG_STATUS, "error", 0, e.strerror or str(e)))
            data = None
        if data is not None:
            found = parse_dpkg_status(data)
            pkgs += found
            if len(data) >= MAX_READ:
                dbs.append(
                    PackageDb(
                        "dpkg",
                        DPKG_STATUS,
                        "partial",
                        len(found),
                        f"larger than {MAX_READ // 2**20} MiB: read in part",
                    )
                )
            else:
                dbs.append(PackageDb("dpkg", DPKG_STATUS, "ok", len(found)))
        for d in RPM_DB_DIRS:
            path = f"{d}/rpmdb.sqlite"
            r = h.rpm_sqlite(path)
            if r is not None and r.status != "ok":
                # not readable as a file (read during a transaction?): ask rpm itself (a
                # snapshot answers with what collect's rpm said, if it had to ask)
                q = h.rpm_query(d, c.remaining())
                r, path = (q, d) if q is not None and q.status == "ok" else (r, path)
            if r is None:
                path = d
                r = h.rpm_query(d, c.remaining())
            if r is None:
                continue
            pkgs += r.packages
            kind = "rpm -qa" if r.via == "rpm -qa" else "rpmdb.sqlite"
            err = r.error
            if r.bad and not err:
                err = f"{r.bad} package header(s) did not parse"
            dbs.append(PackageDb(kind, path, r.status, len(r.packages), err))
            break
        for d in SNAP_DIRS:
            names = [n for n in h.listdir(d) if n not in ("bin", "README")]
            if not names:
                continue
            snaps: list[Package] = []
            errors: list[str] = []
            for n in names:
                path = f"{d}/{n}/current/meta/snap.yaml"
                try:
                    text = h.read_text(path, MAX_SNAP_YAML)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                except OSError as e:
                    errors.append(f"{path}: {e.strerror or e}")
                    continue
                snap = parse_snap_yaml(text)
                if snap is not None:
                    snaps.append(snap)
            if snaps or errors:
                pkgs += snaps
                dbs.append(
                    PackageDb(
                        "snap",
                        d,
                        "error" if errors else "ok",
                        len(snaps),
                        "; ".join(errors[:3]) or None,
                    )
                )
            break
        return InstalledPackages(tuple(pkgs), tuple(dbs))

    return ctx.fact("installed_packages", compute)


# Packages that give a QEMU system emulator for the host's own CPU family, per distribution,
# the package holding the binary first: Debian/Ubuntu qemu-system-* (packages.debian.org; Ubuntu's
# qemu-kvm is a virtual package of qemu-system-x86), RHEL/CentOS qemu-kvm(-core) (the host
# architecture's /usr/libexec/qemu-kvm; qemu-kvm-ev/-rhev on RHEL 7 clouds), Fedora
# qemu-system-*-core, SUSE qemu-x86/-arm/-ppc/-s390x, Arch qemu-system-x86 (and the
# qemu-base/-desktop/-full bundles), Alpine qemu-system-<arch>; "qemu-system" and "qemu" are
# every architecture's metapackages.
QEMU_SYSTEM_PACKAGES: dict[str, tuple[str, ...]] = {
    "x86": (
        "qemu-system-x86",
        "qemu-system-x86-core",
        "qemu-kvm-core",
        "qemu-system-x86_64",
        "qemu-x86",
        "qemu-kvm",
        "qemu-kvm-ev",
        "qemu-kvm-rhev",
        "qemu-system-x86-microvm",
        "qemu-base",
        "qemu-desktop",
        "qemu-full",
        "qemu-system",
        "qemu",
    ),
    "arm": (
        "qemu-system-arm",
        "qemu-system-aarch64-core",
        "qemu-kvm-core",
        "qemu-system-aarch64",
        "qemu-arm",
        "qemu-kvm",
        "qemu-base",
        "qemu-desktop",
        "qemu-full",
        "qemu-system",
        "qemu",
    ),
    "ppc": (
        "qemu-system-ppc",
        "qemu-system-ppc-core",
        "qemu-kvm-core",
        "qemu-system-ppc64",
        "qemu-ppc",
        "qemu-kvm",
        "qemu-system",
        "qemu",
    ),
    "s390": (
        "qemu-system-s390x",
        "qemu-system-s390x-core",
        "qemu-kvm-core",
        "qemu-s390x",
        "qemu-kvm",
        "qemu-system",
        "qemu",
    ),
    "riscv": (
        "qemu-system-misc",
        "qemu-system-riscv-core",
        "qemu-system-riscv",
        "qemu-system-riscv64",
        "qemu-kvm-core",
        "qemu-kvm",
        "qemu-system",
        "qemu",
    ),
}
# libvirt's daemon with its QEMU driver: Debian/Ubuntu libvirt-daemon-system (libvirt-bin
# before Ubuntu 18.04) and libvirt-daemon-driver-qemu (split out in Debian 12), RHEL/Fedora
# libvirt-daemon-kvm / libvirt-daemon-driver-qemu, SUSE libvirt-daemon-qemu, Arch "libvirt",
# Alpine libvirt-daemon.
LIBVIRT_DAEMON_PACKAGES = (
    "libvirt-daemon-driver-qemu",
    "libvirt-daemon-kvm",
    "libvirt-daemon-qemu",
    "libvirt-daemon-system",
    "libvirt-daemon",
    "libvirt-bin",
    "libvirt",
)
# nova-compute: Debian/Ubuntu nova-compute(-kvm/-qemu/-libvirt), RDO/RHOSP
# openstack-nova-compute, and the python library alone (devstack-like installs use pip)
NOVA_COMPUTE_PACKAGES = (
    "nova-compute",
    "openstack-nova-compute",
    "nova-compute-kvm",
    "nova-compute-qemu",
    "nova-compute-libvirt",
    "python3-nova",
    "openstack-nova-common",
    "nova-common",
)
# snaps that bring QEMU, libvirt and nova-compute with them (CanonicalLtd/microstack,
# canonical/snap-openstack-hypervisor: their snapcraft.yaml builds qemu and libvirt parts)
HYPERVISOR_SNAPS = ("openstack-hypervisor", "microstack")


def qemu_package(ctx: Context) -> Optional[Package]:
    """The installed package that gives this host a QEMU system emulator for its own CPU
    family (:data:`QEMU_SYSTEM_PACKAGES`), or None. Its ``version`` is what a restarted QEMU
    would run (``upstream_release(p.version)``: "7.2" of "7.2+dfsg")."""
    fam = arch(ctx).family or ""
    return installed_packages(ctx).first(QEMU_SYSTEM_PACKAGES.get(fam, ()))


def libvirt_package(ctx: Context) -> Optional[Package]:
    """The installed libvirt daemon package (:data:`LIBVIRT_DAEMON_PACKAGES`), or None."""
    return installed_packages(ctx).first(LIBVIRT_DAEMON_PACKAGES)


def nova_compute_package(ctx: Context) -> Optional[Package]:
    """The installed nova-compute package (:data:`NOVA_COMPUTE_PACKAGES`), or None."""
    return installed_packages(ctx).first(NOVA_COMPUTE_PACKAGES)


def hypervisor_snap(ctx: Context) -> Optional[Package]:
    """An installed snap that brings QEMU, libvirt and nova (:data:`HYPERVISOR_SNAPS`)."""
    snaps = [p for p in installed_packages(ctx).packages if p.db == "snap"]
    return next((p for n in HYPERVISOR_SNAPS for p in snaps if p.name == n), None)


_LIBVIRT_INSTALL = {
    "debian": "apt-get install libvirt-daemon-system",
    "rhel": "dnf install libvirt-daemon-kvm",
    "suse": "zypper install libvirt-daemon-qemu",
    "arch": "pacman -S libvirt",
    "alpine": "apk add libvirt-daemon",
    "gentoo": "emerge app-emulation/libvirt",
}


def libvirt_install_command(ctx: Context) -> str:
    """The command that installs libvirt's daemon with its QEMU driver here."""
    return _LIBVIRT_INSTALL.get(
        os_family(ctx), "install your distribution's libvirt daemon (QEMU driver) package"
    )


# ------------------------------------------------------------------ stale QEMU binaries
# (instances.binary; the instance JSON's binary_stale)

CLOCK_SLACK = 2.0
"""Seconds within which a file's ctime and a process's start time are not ordered: psutil's
start time adds the process's start (clock ticks since boot, ``/proc/<pid>/stat``) to the
boot time ``/proc/stat`` gives in whole seconds, and that boot time moves when the clock is
stepped. Measured on this project's machine: a copy written before QEMU started had a ctime
0.8 s after the start time psutil computed."""

# where distributions install QEMU's system emulators (Debian/Ubuntu/Fedora/SUSE/Arch
# /usr/bin/qemu-system-*, RHEL /usr/libexec/qemu-kvm): a binary elsewhere (/opt, /usr/local,
# a build tree) is not the package's, and the package's version says nothing of it
PACKAGED_BINARY_DIRS = ("/usr/bin/", "/usr/libexec/", "/usr/sbin/", "/bin/", "/sbin/")


class BinaryState(NamedTuple):
    """Does a process run the file now installed at its binary's path?

    ``stale``: True when it runs a file replaced or removed since it started, False when it
    runs the file at the path, None when that cannot be told (``why`` says why). ``how``:
    ``deleted`` (``/proc/<pid>/exe`` reads "… (deleted)"), ``replaced`` (the inode it maps
    is not the path's), ``changed-after-start`` (no inode to compare: the path's file changed,
    by its ctime, after the process started), ``current``, ``unknown``, ``not-recorded`` (a
    snapshot without the records). ``path``: the binary's path; ``since``: when the file at
    the path changed (its ctime; for a file removed without a successor, the ctime of the
    unlinked inode the process maps), seconds since the epoch; ``verified``: decided from
    the inodes (exact), not from times.
    """

    stale: Optional[bool]
    how: str
    path: Optional[str]
    since: Optional[float]
    why: str
    verified: bool = False


def judge_binary(link: Optional[str], rec: Optional[ExeRecord]) -> BinaryState:
    """The judgement, from the ``/proc/<pid>/exe`` link text and :meth:`Host.exe_record`.

    In order: a link that ends with " (deleted)" (fs/d_path.c appends it to an unlinked
    name: ``dpkg``/``rpm`` install a new file and rename it over the old one, so an upgrade
    unlinks the running binary's name) is stale. Otherwise the inode the process maps
    (``stat /proc/<pid>/exe``) against the inode at the path now: another one is a
    replacement (the old one may survive under another name); the same one is the very file,
    which could not have been written while it ran (``ETXTBSY``: exec denies write access to
    a running binary, fs/exec.c). Without the mapped inode (another user's process), times:
    the path's file changed (ctime) more than :data:`CLOCK_SLACK` after the process started,
    or before it; closer than that cannot be told.

    >>> from hvcheck.host import ExeRecord, FileStamp
    >>> old, new = FileStamp(1, 10, 100.0, 100.0), FileStamp(1, 11, 100.0, 5000.0)
    >>> judge_binary("/usr/bin/qemu-system-x86_64 (deleted)",
    ...              ExeRecord("/usr/bin/qemu-system-x86_64", old, new, 1000.0))[:4]
    (True, 'deleted', '/usr/bin/qemu-system-x86_64', 5000.0)
    >>> judge_binary("/usr/bin/qemu-system-x86_64",
    ...              ExeRecord("/usr/bin/qemu-system-x86_64", old, old, 1000.0)).stale
    False
    """
    deleted = link is not None and link.endswith(" (deleted)")
    path = rec.path if rec is not None else None
    if path is None and link is not None:
        path = link[: -len(" (deleted)")] if deleted else link
    if deleted:
        since = None
        new = ""
        if rec is not None:
            stamp = rec.current or rec.running
            since = stamp.ctime if stamp is not None else None
            if rec.current is not None:
                new = f"; {path} is another file now (inode {rec.current.ino}"
                new += f", it maps {rec.running.ino})" if rec.running is not None else ")"
        return BinaryState(
            True,
            "deleted",
            path,
            since,
            f"the file it runs was removed (/proc/PID/exe reads '{link}'){new}",
            verified=True,
        )
    if rec is None:
        return BinaryState(
            None,
            "not-recorded",
            path,
            None,
            "this snapshot records no stat of the binary (made by an older hvcheck collect)",
        )
    errors = "; ".join(rec.errors)
    if rec.path is None:
        why = errors or "neither /proc/PID/exe nor an absolute argv[0] names the binary"
        return BinaryState(None, "unknown", None, None, why)
    if rec.current is None:
        why = errors or f"there is no file at {rec.path} now"
        return BinaryState(None, "unknown", rec.path, None, why)
    cur = rec.current
    if rec.running is not None:
        if (rec.running.dev, rec.running.ino) != (cur.dev, cur.ino):
            return BinaryState(
                True,
                "replaced",
                rec.path,
                cur.ctime,
                f"it maps inode {rec.running.ino}; {rec.path} is inode {cur.ino} now",
                verified=True,
            )
        return BinaryState(False, "current", rec.path, None, f"runs {rec.path}", verified=True)
    if rec.started is None:
        why = errors or "neither the inode it maps nor its start time is known"
        return BinaryState(None, "unknown", rec.path, None, why)
    if cur.ctime > rec.started + CLOCK_SLACK:
        return BinaryState(
            True,
            "changed-after-start",
            rec.path,
            cur.ctime,
            f"{rec.path} changed (ctime) after the process started; the inode it maps "
            f"cannot be read ({errors or 'no record'})",
        )
    if cur.ctime < rec.started - CLOCK_SLACK:
        return BinaryState(
            False, "current", rec.path, None, f"{rec.path} has not changed since it started"
        )
    return BinaryState(
        None,
        "unknown",
        rec.path,
        None,
        f"{rec.path} changed within {CLOCK_SLACK:g} s of the process's start, and the inode "
        f"it maps cannot be read ({errors or 'no record'})",
    )


def qemu_binaries(ctx: Context) -> dict[int, BinaryState]:
    """:func:`judge_binary` for every QEMU instance (``processes.qemu_processes``), by pid."""

    def compute(c: Context) -> dict[int, BinaryState]:
        info = {p.pid: p for p in processes(c, "qemu")}
        out: dict[int, BinaryState] = {}
        for q in qemu_processes(c):
            p = info.get(q.pid)
            out[q.pid] = (
                judge_binary(p.exe, c.host.exe_record(p))
                if p is not None
                else BinaryState(None, "unknown", None, None, "not in the process table")
            )
        return out

    return ctx.fact("qemu_binaries", compute)


def packaged_qemu(ctx: Context, path: Optional[str]) -> Optional[Package]:
    """The installed QEMU package (:func:`qemu_package`) when ``path`` is where distributions
    install QEMU (:data:`PACKAGED_BINARY_DIRS`): what a restarted process would run. None for
    a binary elsewhere, or when the package databases know no QEMU package."""
    if path is None or not path.startswith(PACKAGED_BINARY_DIRS):
        return None
    return qemu_package(ctx)
