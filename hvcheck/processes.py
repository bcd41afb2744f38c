"""QEMU processes: find them in the one walk of the process table, and prove, per process,
which accelerator it runs with (KVM or TCG).

Reads through the host layer: the process table (``/proc/<pid>/comm``, ``cmdline`` and the
``exe`` link, live or in a snapshot), ``/proc/<pid>/fd/*`` (links), ``/proc/<pid>/task/*/comm``,
``/proc/<pid>/status``, libvirt's status XML ``/run/libvirt/qemu/<name>.xml`` and config XML
``/etc/libvirt/qemu/<name>.xml`` (and a snap libvirt's under ``/var/snap/<snap>/common``) as
the QEMU process, then each libvirtd, sees them (``hvcheck.mountns``: through
``/proc/<pid>/root`` for a process in another mount namespace, as kolla's nova_libvirt
container, a snap or libvirt's per-domain namespace), the config files QEMU
read at start (``/etc/qemu/qemu.conf``, ``-readconfig FILE``) as ``/proc/<pid>/root/<path>``,
a relative one under the target of ``/proc/<pid>/cwd``, and ``/dev/kvm``'s mode, owner and ACL
(``hvcheck.facts.kvm_device``) when a process's request must be judged without fds or threads.

Process groups. One walk reads each process's ``comm``, ``cmdline`` and ``exe`` link once and
sorts the processes into the groups the checks ask about (``GROUPS``: QEMU, libvirtd,
nova-compute, KubeVirt's virt-launcher); only the processes of a group are kept.

The decision (``decide``), from evidence, strongest first:

1. Open file descriptors (``/proc/PID/fd``): a process using KVM holds ``/dev/kvm``,
   ``anon_inode:kvm-vm`` and one ``anon_inode:kvm-vcpu:N`` per vCPU (virt/kvm/kvm_main.c
   names them with anon_inode_getfd("kvm-vm"), "kvm-vcpu:%d"). Under TCG none exists.
   ``anon_inode:kvm-vm-stats`` / ``kvm-vcpu-stats`` are binary-stats fds, matched exactly so
   they never count on their own.
2. vCPU thread names (``/proc/PID/task/TID/comm``), set by QEMU's qemu_thread_create() only
   with ``-name ...,debug-threads=on`` (libvirt always sets it): ``CPU 0/KVM``; ``CPU 0/TCG``
   for multi-threaded TCG (accel/tcg/tcg-accel-ops-mttcg.c) and ``ALL CPUs/TCG`` for the one
   round-robin thread of single-threaded TCG (tcg-accel-ops-rr.c: ``-accel tcg,thread=single``,
   ``-icount``). Not read when the fds already hold a ``kvm-vcpu`` inode (``scan_process``):
   nothing a thread name says can add to that; they corroborate a TCG or undecided process.
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
start when that one fails); for ``kvm:tcg`` the device node's mode, owner and ACL and the process's
uid and groups say which is likely (:func:`kvm_access`).

>>> d = decide(["/dev/null", "/dev/kvm", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"],
...            ["qemu-system-x86", "CPU 0/KVM"], None, None)
>>> (d.accel, d.kinds, d.verified)
('kvm', ('fd', 'threads'), True)
"""

import posixpath
import re
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.devaccess import acl_summary, allows
from hvcheck.host import DeviceInfo, ProcessGone, ProcessTable, ProcInfo, ProcView
from hvcheck.mountns import process_root
from hvcheck.parsers.deployment import snap_name
from hvcheck.parsers.procstatus import ZOMBIE_STATES, ProcStatus, parse_status
from hvcheck.parsers.qemu import DEFAULT_CONFIG, QemuArgv, is_qemu_binary, parse_qemu_argv

if TYPE_CHECKING:  # the libvirt XML parser loads where a libvirt domain is looked for
    from hvcheck.parsers.libvirt_xml import DomainXml

__all__ = [
    "GROUPS",
    "STARTING_AGE",
    "Decision",
    "Discovery",
    "KvmAccess",
    "QemuProcess",
    "acceleration",
    "decide",
    "discovery",
    "is_qemu_process",
    "kvm_access",
    "processes",
    "qemu_processes",
    "scan_process",
    "starting",
]


# ---------------------------------------------------------------------------------- groups
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


# The group predicates run for every process of the walk: a file's name is taken with
# str.rpartition (posixpath.basename's result for a str, without its call overhead).
def is_libvirtd(p: ProcInfo) -> bool:
    for a in p.argv[:2]:
        if a.rpartition("/")[2] in ("libvirtd", "virtqemud"):
            return True
    return p.comm in ("libvirtd", "virtqemud")


def is_nova_compute(p: ProcInfo) -> bool:
    # "nova-compute" as argv[0] or as the script a python interpreter runs
    for a in p.argv[:3]:
        if a.rpartition("/")[2] == "nova-compute":
            return True
    return p.comm == "nova-compute"


def is_virt_launcher(p: ProcInfo) -> bool:
    """KubeVirt's per-VM launcher (``virt-launcher-monitor`` and its child ``virt-launcher``,
    the pod's entry point that starts libvirt and the QEMU of one VirtualMachineInstance)."""
    return bool(p.argv) and p.argv[0].rpartition("/")[2] in (
        "virt-launcher",
        "virt-launcher-monitor",
    )


GROUPS = {
    "qemu": is_qemu_process,
    "libvirtd": is_libvirtd,
    "nova-compute": is_nova_compute,
    "virt-launcher": is_virt_launcher,
}


TRUSTED_GROUPS = ("qemu", "libvirtd", "nova-compute")
"""The groups whose processes are judged by :mod:`hvcheck.trust` before they are taken (the
others, KubeVirt's virt-launcher, only tell how the host is deployed, never what it runs)."""


class Discovery(NamedTuple):
    """This run's one walk of the process table, sorted into ``GROUPS`` and judged.

    ``groups``: the processes each group may take as its own (:mod:`hvcheck.trust`: QEMU by
    its executable, nova-compute and libvirtd by their user); ``ignored``: per group, the
    processes that named themselves so and were not taken, each with why; ``unverified``:
    pids of the QEMU group whose executable could not be read (only their name says QEMU);
    ``incomplete``: why the table may lack processes (None: complete as far as can be told).
    """

    groups: dict[str, list[ProcInfo]]
    ignored: dict[str, list[tuple[ProcInfo, str]]]
    unverified: frozenset[int]
    incomplete: Optional[str]


def discovery(ctx: Context) -> Discovery:
    """The walk, once per run (``Host.process_table``), with the trust rules applied."""

    def compute(c: Context) -> Discovery:
        table = c.host.process_table(GROUPS)
        groups: dict[str, list[ProcInfo]] = {k: [] for k in GROUPS}
        ignored: dict[str, list[tuple[ProcInfo, str]]] = {k: [] for k in GROUPS}
        unverified: set[int] = set()
        for name, found in table.groups.items():
            if name not in TRUSTED_GROUPS:
                groups[name].extend(found)  # named, not trusted: evidence of a deployment
                continue
            if not found:
                continue
            # the trust rules, imported only where a process is there to judge
            from hvcheck.trust import qemu_executable, service_trust

            for p in found:
                t = qemu_executable(c, p) if name == "qemu" else service_trust(c, p, name)
                if name == "qemu" and not t.trusted and t.unverified:
                    # its name says QEMU and nothing can be read to tell: kept, never trusted
                    unverified.add(p.pid)
                    groups[name].append(p)
                elif t.trusted:
                    groups[name].append(p)
                else:
                    ignored[name].append((p, t.why))
        return Discovery(groups, ignored, frozenset(unverified), _incomplete(c, table))

    return ctx.fact("process_discovery", compute)


def processes(ctx: Context, group: str) -> list[ProcInfo]:
    """The processes of one of ``GROUPS`` this run takes as that group's (sorted by pid):
    see :func:`discovery`."""
    return discovery(ctx).groups[group]


INIT_PID_NS = f"pid:[{0xEFFFFFFC}]"
"""``readlink /proc/self/ns/pid`` in the initial pid namespace: its inode is the constant
PROC_PID_INIT_INO (include/linux/proc_ns.h, Linux 3.8+)."""


def _incomplete(ctx: Context, table: ProcessTable) -> Optional[str]:
    """Why the process table may lack processes, or None.

    * pids whose command line was refused (``ProcessTable.denied``: ``/proc`` mounted
      ``hidepid=1``/``noaccess``, an LSM);
    * ``/proc`` mounted ``hidepid=2``/``invisible`` (proc(5)): the processes of other users
      are not even listed, unless hvcheck runs as root (CAP_SYS_PTRACE) or in the mount's
      ``gid=`` group — read from ``/proc/self/mountinfo`` (only when not root);
    * hvcheck in a pid namespace of its own (a container without the host's pids): the link
      ``/proc/self/ns/pid`` is not the initial namespace's (:data:`INIT_PID_NS`), or the
      ``NSpid:`` line of ``/proc/self/status`` lists more than one pid (proc(5), Linux 4.1).
    """
    host = ctx.host
    if table.denied:
        n = len(table.denied)
        return (
            f"the command line of {n} process(es) could not be read (pids "
            f"{', '.join(str(p) for p in table.denied[:5])}{' ...' if n > 5 else ''})"
        )
    try:
        status = parse_status_ns(host.read_text("/proc/self/status", 65536))
    except OSError:
        status = None
    ns = host.readlink("/proc/self/ns/pid")
    if ns is not None and ns != INIT_PID_NS:
        return (
            f"hvcheck runs in a pid namespace of its own ({ns}, not the host's "
            f"{INIT_PID_NS}): the host's processes are not visible"
        )
    if status is not None:
        nspid, euid, groups = status
        if len(nspid) > 1:
            return (
                f"hvcheck runs in a child pid namespace (its pid {nspid[-1]} is "
                f"{nspid[0]} outside): the host's processes are not visible"
            )
    else:
        euid, groups = (host.euid(), ())
    if euid == 0:
        return None
    try:
        mountinfo = host.read_text("/proc/self/mountinfo")
    except OSError:
        return None
    hide = proc_hidepid(mountinfo)
    if hide is None:
        return None
    level, gid = hide
    # 2/invisible: not listed; 4/ptraceable: only those hvcheck's user may ptrace are
    if level in ("2", "invisible", "4", "ptraceable") and not (gid is not None and gid in groups):
        return (
            f"/proc is mounted hidepid={level} and hvcheck runs as uid {euid}: other users' "
            "processes (QEMU, libvirtd, nova-compute) are not listed"
        )
    return None


def parse_status_ns(text: str) -> Optional[tuple[list[int], int, tuple[int, ...]]]:
    r"""``NSpid:`` pids (outermost namespace first), the effective uid and the groups
    (effective gid and supplementary) from a ``/proc/<pid>/status`` text; None without
    ``Uid:``.

    >>> parse_status_ns("Uid:\t1000\t1000\t1000\t1000\nGid:\t5\t5\t5\t5\n"
    ...                 "Groups:\t5 27 \nNSpid:\t4242\t7\n")
    ([4242, 7], 1000, (5, 27))
    """
    st = parse_status(text)
    if st.uids is None:
        return None
    nspid: list[int] = []
    for line in text.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split(":", 1)[1].split()
            if all(f.isascii() and f.isdigit() for f in fields):
                nspid = [int(f) for f in fields]
    groups = tuple(dict.fromkeys(([st.gids[1]] if st.gids else []) + list(st.groups or ())))
    return nspid, st.uids[1], groups


def proc_hidepid(mountinfo: str) -> Optional[tuple[str, Optional[int]]]:
    r"""The ``hidepid=`` level and ``gid=`` of the proc filesystem mounted at ``/proc``
    (``/proc/<pid>/mountinfo``, proc(5): the super options follow the fstype and source);
    None when it has none (or there is no proc at /proc). The last mount at /proc wins.

    >>> proc_hidepid("22 1 0:5 / /proc rw,nosuid - proc proc rw,hidepid=invisible,gid=27\n")
    ('invisible', 27)
    >>> proc_hidepid("22 1 0:5 / /proc rw - proc proc rw\n") is None
    True
    """
    found: Optional[tuple[str, Optional[int]]] = None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        f = left.split()
        if not sep or len(f) < 5 or f[4] != "/proc":
            continue
        r = right.split()
        if len(r) < 3 or r[0] != "proc":
            continue
        level: Optional[str] = None
        gid: Optional[int] = None
        for opt in r[2].split(","):
            k, _, v = opt.partition("=")
            if k == "hidepid":
                level = v
            elif k == "gid" and v.isascii() and v.isdigit():
                gid = int(v)
        found = (level, gid) if level not in (None, "0", "off") else None
    return found


# ---------------------------------------------------------------------------------- decision
_VCPU_FD = re.compile(r"anon_inode:kvm-vcpu:\d+")
# "CPU %d/KVM", "CPU %d/TCG", "CPU %d/HVF", "CPU %d/Dummy" (qtest, xen), and round-robin
# TCG's single "ALL CPUs/TCG" (QEMU 7.2 accel/*/…-accel-ops*.c, snprintf into thread_name)
_VCPU_THREAD = re.compile(r"(?:CPU \d+|ALL CPUs)/([A-Za-z0-9_]+)")
KVM_FD_EXACT = ("/dev/kvm", "anon_inode:kvm-vm")


_VCPU_PREFIX = "anon_inode:kvm-vcpu:"
_vcpu_fullmatch = _VCPU_FD.fullmatch


def _is_vcpu_fd(target: str) -> bool:
    # the prefix test first: most fds are files, sockets, pipes and skip the regex
    return target.startswith(_VCPU_PREFIX) and _vcpu_fullmatch(target) is not None


def _is_kvm_fd(target: str) -> bool:
    return target in KVM_FD_EXACT or _is_vcpu_fd(target)


# The three below test each fd inline, "kvm" in it first (every KVM target holds it, nearly
# no other fd does): they run over every fd of every instance, up to three times, and a
# function call per fd cost more than the test (30 fds, 1,000 instances: ~8 ms).
def kvm_fds(targets: Sequence[str]) -> list[str]:
    """The fd targets that are KVM's: ``/dev/kvm``, a VM or a vCPU."""
    return [
        t
        for t in targets
        if "kvm" in t
        and (t in KVM_FD_EXACT or (t.startswith(_VCPU_PREFIX) and _vcpu_fullmatch(t) is not None))
    ]


def has_kvm_fd(targets: Sequence[str]) -> bool:
    """Whether :func:`kvm_fds` would find any (stops at the first)."""
    for t in targets:
        if "kvm" in t and (
            t in KVM_FD_EXACT or (t.startswith(_VCPU_PREFIX) and _vcpu_fullmatch(t) is not None)
        ):
            return True
    return False


def has_vcpu_fd(targets: Sequence[str]) -> bool:
    """A ``kvm-vcpu:N`` inode among the fds: the process runs vCPUs in KVM."""
    if _VCPU_PREFIX not in "\0".join(targets):  # one search, not one per fd (30 a QEMU)
        return False
    return any(t.startswith(_VCPU_PREFIX) and _vcpu_fullmatch(t) is not None for t in targets)


def vcpu_thread_accels(names: Sequence[str]) -> list[str]:
    """Accelerator names from vCPU thread names, e.g. ["KVM", "KVM"]."""
    out = []
    for n in names:
        m = _VCPU_THREAD.fullmatch(n.strip())
        if m:
            out.append(m.group(1).upper())
    return out


class KvmAccess(NamedTuple):
    """Could one QEMU process have opened /dev/kvm when it started? From the records of the
    node and the process (``hvcheck.facts.KvmAccess`` is another question: libvirt's QEMU
    user's access)."""

    can_open: Optional[bool]  # None: cannot be told
    why: str  # e.g. "uid 65534 (gids 65534) may not open /dev/kvm 0600 root:root"


def kvm_access(
    device: Optional[DeviceInfo],
    uid: Optional[int],
    gids: Sequence[int],
    runas: Optional[str],
    device_absent: bool = False,
) -> KvmAccess:
    """Judge from the node's mode, owner and POSIX ACL and the process's ids whether QEMU
    could open /dev/kvm (O_RDWR: read and write permission, generic_permission() in
    fs/namei.c, as :func:`hvcheck.devaccess.allows` decides it).

    ``uid``/``gids``: the process's effective uid and its gids (``/proc/PID/status`` Uid, Gid,
    Groups); ``runas``: QEMU's -runas user — QEMU opened /dev/kvm as whoever started it, before
    dropping to that user (os_setup_post), so the uid now says nothing. uid 0 may open it
    (CAP_DAC_OVERRIDE). The node is judged as it is now, not as it was when QEMU started.

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
    acl = acl_summary(device)
    node = f"/dev/kvm {mode:04o} {device.owner or device.uid}:{device.group or device.gid}" + (
        f" ({acl})" if acl else ""
    )
    if uid == 0:
        return KvmAccess(True, f"uid 0 may open {node}")
    who = f"uid {uid} (gids {' '.join(str(g) for g in gids) or 'none'})"
    ok = allows(device, uid, set(gids))
    if ok is None:
        return KvmAccess(None, f"whether {who} may open {node} cannot be told")
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
    starting: Optional[str] = None  # accel "unknown": still starting (why), neither KVM nor TCG


def _after_kvm(accels: Sequence[str]) -> tuple[str, ...]:
    return tuple(accels[list(accels).index("kvm") + 1 :]) if "kvm" in accels else ()


STARTING_AGE = 1.0
"""Seconds: a QEMU younger than this may not have opened /dev/kvm yet."""


def starting(
    fds: Optional[Sequence[str]],
    threads: Optional[Sequence[str]],
    debug_threads: bool,
    age: Optional[float],
) -> Optional[str]:
    """Why a QEMU without KVM fds is still starting rather than running TCG, or None.

    QEMU chooses its accelerator (configure_accelerators(): kvm_init() opens /dev/kvm and
    creates the VM) before the machine and its vCPU threads exist (qemu_init() then
    qmp_x_exit_preconfig(): machine init creates the vCPUs); before that, it may still be
    reading its ``-readconfig`` files (from a pipe, a slow mount). So without KVM fds:

    * with ``debug-threads=on`` (what libvirt passes), no thread named ``CPU n/…`` or
      ``ALL CPUs/…`` yet means no vCPU yet: still starting;
    * without thread names to go by, a process started under :data:`STARTING_AGE` ago
      (psutil's create_time) may be before its accelerator.

    >>> starting(["/dev/null"], ["qemu-system-x86"], True, 30.0)[:20]
    'no vCPU thread yet ('
    >>> starting(["/dev/null"], ["qemu-system-x86", "CPU 0/TCG"], True, 0.2) is None
    True
    """
    if fds is None or has_kvm_fd(fds):
        return None
    if threads is not None and vcpu_thread_accels(threads):
        return None
    if threads is not None and debug_threads:
        return (
            "no vCPU thread yet (QEMU names them CPU n/ACCEL when it creates them, after "
            "choosing its accelerator)"
        )
    if age is not None and age < STARTING_AGE:
        return f"started {age:.1f} s ago, maybe before choosing its accelerator"
    return None


def decide(
    fds: Optional[Sequence[str]],
    threads: Optional[Sequence[str]],
    domain_type: Optional[str],
    argv: Optional[QemuArgv],
    access: Optional[KvmAccess] = None,
    start: Optional[str] = None,
) -> Decision:
    """``fds``/``threads`` are None when they could not be read (permission, vanished, not in
    the snapshot); ``access``: :func:`kvm_access` for the process, used only then;
    ``start``: why the process is still starting (:func:`starting`): it runs no accelerator
    yet, so what it has is not weighed."""
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
        from hvcheck.parsers.libvirt_xml import accel_from_domain_type

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

    if start is not None:
        note = f"starting: {start}"
        return Decision(
            "unknown",
            (),
            (*details, note),
            ":".join(asked) if asked is not None else None,
            None,
            False,
            starting=start,
        )
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
                "the node as it is now, not necessarily as QEMU found it)"
            )
    other: Optional[str] = None
    if accel not in ("kvm", "tcg", "unknown"):
        other, accel = accel, "unknown"
    kinds = tuple(k for k, a in votes if a == accel)
    return Decision(accel, kinds, tuple(details), requested, conflict, False, other, False, likely)


# ---------------------------------------------------------------------------------- scan
class QemuProcess(NamedTuple):
    pid: int
    argv: QemuArgv
    name: Optional[str]
    uuid: Optional[str]
    uid: Optional[int]
    decision: Decision
    domain: "Optional[DomainXml]"
    domain_source: Optional[str]
    unreadable: tuple[str, ...]  # evidence that could not be read, and why
    identity: Optional[str] = None  # why it is not known to run QEMU (None: its exe says so)
    # the effective gid, then the supplementary groups (/proc/PID/status Gid, Groups): with
    # ``uid``, what the kernel checks when the process opens a device node
    gids: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        d = self.decision
        nova = self.domain.nova if self.domain else None
        out: dict[str, Any] = {
            "binary": self.argv.binary,
            "requested": d.requested,
            "evidence_detail": list(d.details),
            "conflict": d.conflict,
            "silent_fallback": d.silent_fallback,
            "other_accel": d.other_accel,
            "verified": d.verified,
            "likely": d.likely,
            "process_uid": self.uid,
            "process_gids": list(self.gids),
            "libvirt_xml": self.domain_source,
            "domain_type": self.domain.domain_type if self.domain else None,
            "unreadable": list(self.unreadable),
            "starting": d.starting,
            "identity_unverified": self.identity,
        }
        if nova is not None:
            out["nova"] = {
                "instance_uuid": self.domain.uuid if self.domain else None,
                "display_name": nova.name,
                "flavor": nova.flavor,
                "project": nova.project,
                "project_uuid": nova.project_uuid,
                "user": nova.user,
            }
        return out


def _safe_name(name: Optional[str]) -> bool:
    """A libvirt domain name usable as a file name: no path tricks from a hostile -name."""
    if not name:
        return False
    return "/" not in name and "\0" not in name and not name.startswith(".")


# where libvirt keeps each running domain's status XML (runstatedir/libvirt/qemu, written by
# qemuDomainSaveStatus) and its persistent config XML (sysconfdir/libvirt/qemu)
LIBVIRT_XML_DIRS = ("/run/libvirt/qemu", "/var/run/libvirt/qemu", "/etc/libvirt/qemu")


def libvirt_xml_dirs(daemons: Sequence[ProcInfo]) -> list[str]:
    """The directories a libvirtd keeps domain XML in: the usual ones, and those of a snap's
    libvirt (built with localstatedir and sysconfdir under ``/var/snap/<snap>/common``:
    canonical/snap-openstack-hypervisor ``snap/snapcraft.yaml``)."""
    dirs = list(LIBVIRT_XML_DIRS)
    for d in daemons:
        snap = snap_name(d.exe) or snap_name(d.argv[0] if d.argv else None)
        if snap:
            base = f"/var/snap/{snap}/common"
            dirs += [f"{base}/run/libvirt/qemu", f"{base}/etc/libvirt/qemu"]
    return list(dict.fromkeys(dirs))


class _XmlPlaces(NamedTuple):
    """Where domain XML is looked for this run, apart from each QEMU's own root: the
    directories (:func:`libvirt_xml_dirs`), their listings in hvcheck's own tree
    (``own``: path -> names, None when it cannot be listed), and each libvirtd's listings in
    order (``(path listed, names)``, each path once)."""

    dirs: tuple[str, ...]
    own: dict[str, Optional[frozenset[str]]]
    daemons: tuple[tuple[str, frozenset[str]], ...]


def _xml_listing(ctx: Context, where: str) -> Optional[frozenset[str]]:
    """The names in directory ``where`` (a path of hvcheck's tree or of a libvirtd's root),
    once per run: the same directory lists the same for every instance. None when it cannot
    be listed (an absent one lists nothing: empty)."""

    def compute(c: Context) -> Optional[frozenset[str]]:
        try:
            return frozenset(c.host.listdir(where))
        except OSError:
            return None

    names: Optional[frozenset[str]] = ctx.fact(f"libvirt_xml_listing:{where}", compute)
    return names


def _xml_places(ctx: Context) -> _XmlPlaces:
    """The directories and libvirtd listings of :class:`_XmlPlaces`, once per run."""

    def compute(c: Context) -> _XmlPlaces:
        daemons = processes(c, "libvirtd")
        dirs = tuple(libvirt_xml_dirs(daemons))
        own = {d: _xml_listing(c, d) for d in dirs}
        listed: dict[str, frozenset[str]] = {}
        for d in daemons:
            root = process_root(c, d.pid)
            for directory in dirs:
                for prefix in root.roots:
                    where = f"{prefix}{directory}"
                    if where not in listed:
                        names = _xml_listing(c, where)
                        if names is not None:
                            listed[where] = names
        return _XmlPlaces(dirs, own, tuple(listed.items()))

    places: _XmlPlaces = ctx.fact("libvirt_xml_places", compute)
    return places


def _domain_xml(
    ctx: Context, pid: int, name: Optional[str]
) -> "tuple[Optional[DomainXml], Optional[str]]":
    """The domain XML of QEMU process ``pid`` named ``name``: read as the process sees its
    tree (``hvcheck.mountns``: through ``/proc/<pid>/root`` when it is in another mount
    namespace, as under kolla's nova_libvirt container or libvirt's own namespace), then as
    each libvirtd sees its own (the file is libvirtd's). A status file of another pid is an
    earlier run of the same domain, skipped. Directories are listed once per run and tree
    (:func:`_xml_places`); only those under the process's own root are listed per process."""
    if not _safe_name(name):
        return None, None
    host = ctx.host
    places = _xml_places(ctx)
    own = process_root(ctx, pid)
    own_prefix = f"/proc/{pid}/root"
    fname = f"{name}.xml"

    def candidates() -> Iterator[str]:
        """The directories holding ``fname``, in order; listed only as far as needed."""
        listed: set[str] = set()
        refused: Optional[bool] = None  # the host refuses everything under own_prefix
        for d in places.dirs:
            for prefix in own.roots:
                where = f"{prefix}{d}"
                if where in listed:
                    continue
                if prefix == own_prefix:  # this process's alone: listed once, not kept
                    if refused is None:
                        # a snapshot's root link to "/" refuses each listing under it: known
                        # once (the link read and judged), not raised three times
                        refused = host.refused_dir(own_prefix)
                    try:
                        names: Optional[Collection[str]] = None if refused else host.listdir(where)
                    except OSError:
                        names = None
                elif prefix == "":
                    names = places.own[d]
                else:
                    names = _xml_listing(ctx, where)
                if names is None:
                    continue
                listed.add(where)
                if fname in names:  # listed once per tree, not probed per instance
                    yield where
        for where, shared in places.daemons:
            if where not in listed and fname in shared:
                listed.add(where)
                yield where

    for where in candidates():
        try:
            text = host.read_once(f"{where}/{fname}")  # one per instance: not kept
        except OSError:
            continue
        if text is None:
            continue
        from hvcheck.parsers.libvirt_xml import parse_domain_xml  # only where a file is read

        dom = parse_domain_xml(text)
        if dom is None:
            continue
        if dom.pid is not None and dom.pid != pid:
            continue  # a stale status file of an earlier run of the same domain
        return dom, f"{where}/{fname}"
    return None, None


def _status(p: ProcInfo, view: ProcView) -> tuple[Optional[str], Optional[int], tuple[int, ...]]:
    """State (psutil's name), effective uid and gids (effective gid, then the supplementary
    groups) of the process: the state from ``/proc/PID/status`` read now through ``view``
    (proc(5)); the ids as the walk recorded them (``ProcInfo``: psutil, or a snapshot's status
    file), else from that same status. A snapshot's status file does not change: when the
    walk read its state (``ProcInfo.status``) it is not read and parsed again."""
    if not view.host.live and p.status is not None:
        st = ProcStatus(status=p.status)
    else:
        try:
            st = parse_status(view.read("status", 65536).decode("utf-8", "replace"))
        except OSError:
            st = ProcStatus()
    uids = p.uids if p.uids is not None else st.uids
    gid_ids = p.gids if p.gids is not None else st.gids
    groups = p.groups if p.groups is not None else (st.groups or ())
    gids = [] if gid_ids is None else [gid_ids[1]]
    gids += [g for g in groups if g not in gids]
    return st.status, uids[1] if uids is not None else None, tuple(gids)


def _config_files(
    ctx: Context,
    pid: int,
    argv: QemuArgv,
    view: ProcView,
    unreadable: list[str],
    reader: tuple[Optional[int], tuple[int, ...]] = (0, ()),
) -> dict[str, Optional[bytes]]:
    """The config files QEMU read at start (``argv.config_files``), as the process saw them:
    path as QEMU named it -> content, or None when it does not exist; a file that cannot be
    read is left out (``parse_qemu_argv`` then cannot tell what it said) and why goes to
    ``unreadable``.

    An absolute path is read as ``/proc/PID/root/PATH``: the kernel resolves it in the
    process's root and mount namespace (a container's, libvirt's private one), which
    ``readlink /proc/PID/root`` alone does not show. A relative path is relative to the
    directory QEMU started in: ``/proc/PID/cwd``, unless -daemonize moved it to "/" since.
    After -chroot the process's root is no longer the one it read its files in. When
    /proc/PID/root cannot be read (another user's process, hvcheck not root), the path is read
    in hvcheck's own root, and that is said. Only files are read; the file read is the file as
    it is now.

    ``reader``: the uid and groups QEMU read its files as (its own, or root's when it dropped
    to ``-runas``, which only a process started by root can do): a file that user could not
    read now is not read on its behalf (:func:`hvcheck.trust.may_read`).
    """
    from hvcheck.trust import may_read

    out: dict[str, Optional[bytes]] = {}
    host = ctx.host
    uid, gids = reader
    through = f"/proc/{pid}/root"
    refused: Optional[bool] = None  # the host refuses everything under /proc/PID/root
    for path in argv.config_files:
        if argv.chroot is not None:
            unreadable.append(f"{path}: QEMU changed its root (-chroot) after reading it")
            continue
        full = path
        if not path.startswith("/"):
            cwd = view.readlink("cwd")
            if argv.daemonize or cwd is None or not cwd.startswith("/"):
                why = "-daemonize changed it" if argv.daemonize else "cannot be read"
                unreadable.append(f"{path}: relative to QEMU's start directory, which {why}")
                continue
            full = posixpath.join(cwd, path)
        if uid != 0:
            acc = may_read(ctx, full, uid, gids, f"/proc/{pid}/root")
            if acc.allowed is not True:
                unreadable.append(
                    f"{path}: not read on behalf of QEMU's user ({acc.why})"
                    if acc.allowed is False
                    else f"{path}: whether QEMU's user may read it cannot be told ({acc.why})"
                )
                continue
        if refused is None:
            # a snapshot's root link to "/": the read below would raise PermissionError
            refused = host.refused_dir(through)
        if not refused:
            try:
                out[path] = host.read_bytes(f"{through}{full}", 1024 * 1024)
                continue
            except (FileNotFoundError, NotADirectoryError):
                out[path] = None
                continue
            except PermissionError:
                pass
            except OSError as e:
                unreadable.append(f"{path}: {e.strerror or e}")
                continue
        if uid != 0 and may_read(ctx, full, uid, gids).allowed is not True:
            unreadable.append(f"{path}: /proc/{pid}/root is not readable")
            continue
        try:  # /proc/PID/root not readable: the file in our own root
            out[path] = host.read_bytes(full, 1024 * 1024)
            unreadable.append(f"/proc/{pid}/root: not readable; {full} read in hvcheck's root")
        except (FileNotFoundError, NotADirectoryError):
            out[path] = None
        except OSError as e:
            unreadable.append(f"{path}: {e.strerror or e}")
    return out


def _with_config(
    ctx: Context,
    p: ProcInfo,
    argv: QemuArgv,
    view: ProcView,
    unreadable: list[str],
    reader: tuple[Optional[int], tuple[int, ...]],
) -> QemuArgv:
    """``argv`` read again with the config files QEMU read (when it read any)."""
    if not argv.config_files or not p.argv:
        return argv
    files = _config_files(ctx, p.pid, argv, view, unreadable, reader)
    if argv.config_files == (DEFAULT_CONFIG,) and files == {DEFAULT_CONFIG: None}:
        return argv  # only the default config, absent: what the argv alone said (no re-parse)
    return parse_qemu_argv(list(p.argv), files=files)


def scan_process(ctx: Context, p: ProcInfo, argv: QemuArgv) -> Optional[QemuProcess]:
    """Evidence for one process; None when it vanished meanwhile (never a phantom instance)."""
    try:
        view = ctx.host.open_proc(p.pid)
    except ProcessGone:
        return None
    with view:
        return _scan(ctx, p, argv, view)


def _scan(ctx: Context, p: ProcInfo, argv: QemuArgv, view: ProcView) -> Optional[QemuProcess]:
    host = ctx.host
    state, uid, gids = _status(p, view)
    if state in ZOMBIE_STATES:
        return None  # a zombie (exited, not yet reaped) has no fds and runs no guest
    unreadable: list[str] = []
    fds: Optional[list[str]]
    threads: Optional[list[str]]
    try:
        fds = view.fd_targets()
    except ProcessGone:
        if host.live:
            return None
        fds = None  # a snapshot may hold only some entries of a process (contract)
    except OSError as e:
        fds = None
        unreadable.append(f"/proc/{p.pid}/fd: {e.strerror or e}")
    if fds is not None and has_vcpu_fd(fds):
        # a kvm-vcpu fd is proof of KVM that thread names cannot add to: not read (on a
        # node of KVM guests that is most of the per-instance reading saved)
        threads = None
    else:
        try:
            threads = view.thread_names()
        except ProcessGone:
            if host.live:
                return None
            threads = None
        except OSError as e:
            threads = None
            unreadable.append(f"/proc/{p.pid}/task: {e.strerror or e}")
    if fds == []:
        # no fd at all says nothing: every running QEMU holds some (its stdio, eventfds, its
        # monitor); an empty list is a snapshot that holds none for this process, or a process
        # exiting (the kernel closes its files first: exit_files)
        fds = None
    if threads == [] and not view.has("task"):
        threads = None
    # who read the config files: -runas drops root's rights after QEMU read them
    # (os_setup_post); without root, setgid/initgroups fail and QEMU exits (os-posix.c)
    reader = (0, ()) if argv.runas is not None else (uid, gids)
    if not host.live and ((uid is None and p.uids is None) or not host.stat_recorded()):
        reader = (0, ())  # an older snapshot: no ids or stat recorded, read as it was then
    argv = _with_config(ctx, p, argv, view, unreadable, reader)
    if host.live:
        # read after the evidence: a root link that still reads proves the process ran
        # throughout (ProcView.alive); a snapshot's processes do not exit
        view.readlink("root")
    dom, src = _domain_xml(ctx, p.pid, argv.name)
    access = None
    if fds is None and threads is None:  # judged from the request: who could open /dev/kvm
        from hvcheck.facts import kvm_device  # facts imports this module

        dev = kvm_device(ctx)
        access = kvm_access(dev, uid, gids, argv.runas, device_absent=host.live and dev is None)
    start = starting(fds, threads, argv.debug_threads, p.age)
    decision = decide(fds, threads, dom.domain_type if dom else None, argv, access, start)
    identity: Optional[str] = None
    if p.pid in discovery(ctx).unverified:
        # only its name says QEMU: what it asked for is kept, never taken as what it runs
        from hvcheck.trust import qemu_executable

        why = f"/proc/{p.pid}/exe cannot be read" if p.exe is None else qemu_executable(ctx, p).why
        identity = f"{why}: only its name says QEMU ({(p.argv[:1] or (p.comm,))[0]})"
        if decision.accel != "unknown" or decision.silent_fallback:
            decision = decision._replace(
                accel="unknown",
                kinds=(),
                details=(*decision.details, f"identity: {identity}"),
                silent_fallback=False,
                verified=False,
                likely=decision.accel if decision.accel != "unknown" else decision.likely,
            )
    if host.live and not view.alive():
        return None  # exited while we read it: what we saw may be half a process
    return QemuProcess(
        pid=p.pid,
        argv=argv,
        name=argv.name or (dom.name if dom else None),
        uuid=argv.uuid or (dom.uuid if dom else None),
        uid=uid,
        decision=decision,
        domain=dom,
        domain_source=src,
        unreadable=tuple(unreadable),
        identity=identity,
        gids=gids,
    )


def qemu_processes(ctx: Context) -> list[QemuProcess]:
    def compute(c: Context) -> list[QemuProcess]:
        out = []
        for p in processes(c, "qemu"):
            argv = _argv(p)
            if argv.machine == "none":
                # runs no guest: libvirt probing QEMU's capabilities (src/qemu/qemu_process.c
                # qemuProcessQMPLaunch: "-machine none,accel=kvm:tcg"), which it does on every
                # capabilities request while /dev/kvm is unusable; nothing more of it is read
                continue
            q = scan_process(c, p, argv)
            if q is not None:
                out.append(q)
        return out

    return ctx.fact("qemu_processes", compute)


def _argv(p: ProcInfo) -> QemuArgv:
    return parse_qemu_argv(p.argv) if p.argv else parse_qemu_argv([p.comm])


def acceleration(procs: list[QemuProcess], incomplete: Optional[str] = None) -> str:
    """verdict.acceleration: kvm | tcg | mixed | none | unknown. ``incomplete``: why the
    process table may lack instances (:attr:`Discovery.incomplete`): then "unknown" unless
    what is seen is already mixed. A QEMU still starting runs no accelerator yet: it does
    not count, unless it is all there is ("unknown")."""
    running = [q for q in procs if q.decision.starting is None]
    if not procs:
        return "unknown" if incomplete else "none"
    if not running:
        return "unknown"
    kinds = {q.decision.accel for q in running}
    if incomplete and not {"kvm", "tcg"} <= kinds:
        return "unknown"
    if kinds == {"kvm"}:
        return "kvm"
    if kinds == {"tcg"}:
        return "tcg"
    if {"kvm", "tcg"} <= kinds:
        return "mixed"
    return "unknown"
