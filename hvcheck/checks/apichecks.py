"""What the APIs say — Nova's os-hypervisors and libvirt's capabilities — set against the
local evidence.

Operators run ``openstack hypervisor show`` on a KVM cloud, read ``hypervisor_type: QEMU`` and
doubt everything. That field is libvirt's ``virConnectGetType()``, ``"QEMU"`` for the QEMU
driver whether guests get KVM or TCG; libvirt's capabilities, likewise, say what libvirt
*offers*, which can disagree with what the QEMU user can actually open. So both checks explain
what the API says and let the local evidence (the /dev/kvm probe, the QEMU user's access, each
QEMU process's file descriptors) decide.

Reads: the Nova API through :mod:`hvcheck.openstack` (credentials from ``OS_CLOUD`` /
``clouds.yaml`` / ``OS_*``; live only, replayed from ``probes.nova_api`` in snapshots); libvirt's
capabilities through ``LiveHost.libvirt_capabilities`` (``probes.libvirt_caps``); nova.conf's
``[DEFAULT] host``; ``/etc/libvirt/qemu/*.xml`` (Nova domains defined but not running); the
QEMU processes (:mod:`hvcheck.processes`).
"""

import posixpath
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from hvcheck import facts, novaconfig
from hvcheck.check import Check, Context
from hvcheck.model import CRITICAL, OK, SKIP, UNKNOWN, WARNING, Result, Status
from hvcheck.parsers.nova_api import HostNames, Hypervisor
from hvcheck.processes import acceleration, discovery, qemu_processes
from hvcheck.services import LIBVIRT_RO_SOCKETS

if TYPE_CHECKING:  # hvcheck.parsers.libvirt_caps is imported where libvirt is there to judge
    from hvcheck.parsers.libvirt_caps import Capabilities, CapsCache, DomainCapabilities

# Leave this much of the run's time for the check to report its own UNKNOWN
MARGIN = 0.3

QEMU_MEANS = (
    "hypervisor_type 'QEMU' is what Nova's libvirt driver reports for KVM and TCG alike "
    "(libvirt's virConnectGetType), so acceleration is judged from local evidence"
)
_ERROR_HINTS = {
    "tls": None,  # the reason already names --os-cacert / --insecure
    "auth": "check the credentials (`openstack token issue` with the same OS_CLOUD / OS_* "
    "settings); listing hypervisors needs an admin role",
    "config": "fix the OpenStack client configuration, or pass --no-api to skip this check",
    "connect": "check that the auth URL and the compute endpoint are reachable from this host, "
    "or pass --no-api",
    "timeout": "raise -t/--timeout, or pass --no-api where the API is slow or unreachable",
    "endpoint": "set OS_REGION_NAME / OS_INTERFACE (region_name / interface in clouds.yaml) "
    "to where the compute endpoint is",
    "http": "see the API's message; `openstack hypervisor list --long` with the same "
    "credentials shows the same answer",
}


def nova_host_option(ctx: Context) -> Optional[str]:
    """nova.conf's ``[DEFAULT] host`` (the service's host name) when set, newest file first."""
    conf = novaconfig.nova_conf(ctx)
    if conf is None:
        return None
    for path in reversed(conf.resolved.files):
        try:
            text = ctx.host.read_opt(path)
        except OSError:
            continue
        if text is None:
            continue
        from hvcheck.parsers.novaconf import parse_oslo_ini

        value: Optional[str] = None
        for e in parse_oslo_ini(text, path).entries:
            if e.section == "DEFAULT" and e.key == "host":
                value = e.value.strip() or None
        if value:
            return value
    return None


def _libvirt_host(ctx: Context) -> bool:
    """Nova here drives libvirt (or libvirt is all there is): 'QEMU' is the expected type."""
    conf = novaconfig.nova_conf(ctx)
    if conf is not None:
        drv = (conf.resolved.compute_driver.value or "libvirt.LibvirtDriver").lower()
        return "libvirt" in drv
    return facts.qemu_user(ctx) is not None


def _stopped_nova_domains(ctx: Context, running: set[str]) -> list[str]:
    """Nova guests libvirt has defined but not running (SHUTOFF instances keep their domain)."""
    from hvcheck.parsers.libvirt_xml import parse_domain_xml

    out = []
    for path in ctx.host.glob("/etc/libvirt/qemu/*.xml"):
        try:
            text = ctx.host.read_once(path)  # one file per domain: not kept for the run
        except OSError:
            continue
        dom = parse_domain_xml(text) if text else None
        if dom is None or dom.nova is None or not dom.name or dom.name in running:
            continue
        out.append(dom.name)
    return out


def _local_evidence(ctx: Context, accel: str, count: int) -> str:
    state = facts.kvm_state(ctx)
    kvm = {True: "KVM usable", False: "KVM NOT usable", None: "KVM usability unknown"}[state.usable]
    inst = {
        "none": "no instance running",
        "kvm": f"{count} instance(s), all with KVM",
        "tcg": f"{count} instance(s), all emulated (TCG, see instances.accel)",
        "mixed": f"{count} instance(s), some emulated (TCG, see instances.accel)",
    }.get(accel, f"{count} instance(s), accelerator not proven (see instances.accel)")
    return f"{kvm}, {inst}"


class NovaApi(Check):
    id = "nova.api"
    title = "Nova API: this host's hypervisor record"
    waits = True  # Keystone and Nova over HTTP
    reads = (
        "OS_CLOUD / OS_* environment, clouds.yaml (./, ~/.config/openstack/, /etc/openstack/)",
        "Keystone: POST /v3/auth/tokens; Nova: GET /os-hypervisors/detail",
        "nova.conf [DEFAULT] host",
        "/etc/libvirt/qemu/*.xml",
        "QEMU processes (see instances.accel)",
    )

    def run(self, ctx: Context) -> Result:
        if ctx.options.get("no_api"):
            return self.result(SKIP, "--no-api: the Nova API was not asked", code="no-api")
        names = HostNames(
            nodename=ctx.host.uname().hostname, fqdn=None, nova_host=nova_host_option(ctx)
        )
        from hvcheck.novaquery import NovaQuery

        budget = ctx.remaining() - MARGIN
        if budget <= 0.1:
            return self.result(
                UNKNOWN, "no time left in the run to ask the Nova API", code="timeout"
            )
        query = NovaQuery(
            names=names,
            insecure=bool(ctx.options.get("insecure")),
            cacert=ctx.options.get("os_cacert") or None,
            timeout=budget,
        )
        ans = ctx.host.nova_hypervisors(query)
        if ans is None:
            return self.result(
                SKIP,
                "the snapshot holds no Nova API answer (probes.nova_api)",
                code="not-recorded",
            )
        d: dict[str, Any] = {
            k: v
            for k, v in {
                "cloud": ans.cloud,
                "auth_url": ans.auth_url,
                "compute_endpoint": ans.endpoint,
                "region": ans.region,
                "interface": ans.interface,
                "tls_verify": ans.verify,
                "microversion": ans.microversion,
                "max_microversion": ans.max_microversion,
                "elapsed_s": round(ans.elapsed, 3),
            }.items()
            if v is not None
        }
        if ans.outcome == "skip":
            return self.result(SKIP, ans.reason, code="no-credentials", details=d)
        if ans.outcome != "ok":
            kind = ans.error_kind or "error"
            return self.result(
                UNKNOWN,
                f"Nova API: {ans.reason}",
                hint=_ERROR_HINTS.get(kind, "pass --no-api to skip this check"),
                code=f"api-{kind}",
                details=d,
            )
        full = ans.names or names
        d["looked_for"] = full.describe()
        d["records_scanned"] = ans.scanned
        if ans.pattern:
            d["hypervisor_hostname_pattern"] = ans.pattern
        ev = [
            f"{ans.cloud}: GET {ans.endpoint}/os-hypervisors/detail"
            + (f" (microversion {ans.microversion})" if ans.microversion else "")
        ]
        if not ans.records:
            where = (
                f"hypervisor_hostname_pattern '{ans.pattern}'"
                if ans.pattern
                else f"{ans.scanned} record(s)"
            )
            msg = f"no Nova hypervisor record matches this host ({full.describe()}; {where})"
            if novaconfig.nova_conf(ctx) is None and facts.qemu_user(ctx) is None:
                return self.result(
                    OK,
                    msg + "; no nova-compute or libvirt here either: not a compute node",
                    code="not-a-hypervisor",
                    evidence=ev,
                    details=d,
                )
            return self.result(
                WARNING,
                msg,
                hint="nova-compute registers the node under libvirt's hostname (usually the "
                "FQDN) and the service under nova.conf's [DEFAULT] host: compare with "
                "`openstack hypervisor list`; a renamed host leaves its old record behind",
                code="not-found",
                evidence=ev,
                details=d,
            )
        d["records"] = [r.to_json() for r in ans.records]
        d["matched_by"] = list(ans.matched_how)
        if len(ans.records) > 1:
            listed = ", ".join(
                f"{r.hypervisor_hostname} (id {r.id}, {r.state}/{r.status})"
                for r in ans.records[:4]
            )
            return self.result(
                WARNING,
                f"{len(ans.records)} Nova hypervisor records match this host: {listed}",
                hint="a renamed host or a changed [DEFAULT] host leaves a stale compute node "
                "and service: remove the stale one (`openstack compute service delete ID`)",
                code="duplicate",
                evidence=ev,
                details=d,
            )
        return self._judge(ctx, ans.records[0], ans.matched_how[0], ans.microversion, ev, d)

    def _judge(
        self,
        ctx: Context,
        r: Hypervisor,
        how: str,
        microversion: Optional[str],
        ev: list[str],
        d: dict[str, Any],
    ) -> Result:
        procs = qemu_processes(ctx)
        accel = acceleration(procs)
        name = r.hypervisor_hostname or r.service_host or "?"
        htype = r.hypervisor_type or "?"
        version = f" {r.version_text}" if r.version_text and htype == "QEMU" else ""
        ev.append(f"record {name} (id {r.id or '?'}) matched by {how}")
        d["local_acceleration"] = accel
        problems: list[tuple[Status, str, str, str]] = []  # status, text, hint, code
        if htype != "QEMU" and _libvirt_host(ctx):
            what = " (Nova's fake test driver)" if htype.lower() == "fake" else ""
            problems.append(
                (
                    WARNING,
                    f"hypervisor_type is '{htype}'{what}, not 'QEMU' as Nova's libvirt "
                    "driver reports on a libvirt host",
                    "this record was not written by a libvirt nova-compute on this host: "
                    "check [DEFAULT] compute_driver in nova.conf and whether another node "
                    "shares this name (`openstack hypervisor show`)",
                    "type-mismatch",
                )
            )
        if (r.state or "").lower() == "down":
            problems.append(
                (
                    CRITICAL,
                    "Nova sees this host's nova-compute as down (it has not reported "
                    "within service_down_time)",
                    "check nova-compute here (its log, the message queue connection) and "
                    f"`openstack compute service list --host {r.service_host or name}`",
                    "down",
                )
            )
        if (r.status or "").lower() == "disabled":
            reason = r.disabled_reason or "no reason given"
            problems.append(
                (
                    WARNING,
                    f"the nova-compute service is disabled ({reason}): the scheduler "
                    "places no new instances here",
                    "when the maintenance is over: `openstack compute service set --enable "
                    f"{r.service_host or name} nova-compute`",
                    "disabled",
                )
            )
        local = len(procs)
        with_meta = [q for q in procs if q.domain is not None and q.domain.nova is not None]
        running_names = {q.name for q in procs if q.name}
        count_text: str
        if r.running_vms is None:
            count_text = (
                f"no running_vms at microversion {microversion or '?'} (Nova dropped it in "
                f"2.88); {local} QEMU process(es) here"
            )
        else:
            stopped = _stopped_nova_domains(ctx, running_names)
            d["local_qemu_processes"] = local
            d["local_with_nova_metadata"] = len(with_meta)
            d["nova_domains_defined_not_running"] = len(stopped)
            rv = r.running_vms
            # running_vms counts every instance Nova placed here, stopped (SHUTOFF) ones too
            # (nova/compute/resource_tracker.py: cn.running_vms = stats.num_instances), and
            # a stopped Nova instance keeps its libvirt definition: those explain a surplus
            explained = rv == local or (local < rv <= local + len(stopped))
            extra = f" + {rv - local} stopped Nova domain(s)" if rv > local else ""
            count_text = f"running_vms {rv} = {local} local QEMU process(es){extra}"
            if not explained:
                no_meta = len([q for q in procs if q.domain is not None and q.domain.nova is None])
                meta = f", {no_meta} without Nova metadata" if no_meta else ""
                stop = f", {len(stopped)} Nova domain(s) defined but not running" if stopped else ""
                count_text = f"running_vms {rv} but {local} local QEMU process(es){meta}{stop}"
                if rv > local:
                    hint = (
                        "Nova counts instances here that do not run: stopped (SHUTOFF) "
                        "instances count in running_vms, others may have been evacuated or "
                        "crashed; compare `openstack server list --all-projects --host "
                        f"{r.service_host or name} --long` with `virsh list --all`"
                    )
                else:
                    hint = (
                        "QEMU processes run here that Nova does not count: guests started "
                        "outside Nova, or orphans of a failed migration or delete; see "
                        "`virsh list --all` and nova-compute's log"
                    )
                problems.append(
                    (
                        WARNING,
                        f"Nova counts {rv} VM(s) on this hypervisor, but {local} QEMU "
                        f"process(es) run here{meta}{stop}",
                        hint,
                        "count-mismatch",
                    )
                )
        d["explanation"] = QEMU_MEANS
        local_ev = _local_evidence(ctx, accel, local)
        head = (
            f"Nova hypervisor {name}: {htype}{version}, "
            f"{r.state or '?'}/{r.status or '?'}, {count_text}"
        )
        if not problems:
            return self.result(
                OK,
                f"{head}. {QEMU_MEANS}: {local_ev}",
                code="ok",
                evidence=ev,
                details=d,
            )
        problems.sort(key=lambda p: -p[0].rank)
        worst = problems[0]
        text = "; ".join(p[1] for p in problems)
        hint = " | ".join(p[2] for p in problems)
        d["problems"] = [p[3] for p in problems]
        return self.result(
            worst[0],
            f"{text} — {head}. {QEMU_MEANS}: {local_ev}",
            hint=hint,
            code=worst[3],
            evidence=ev,
            details=d,
        )


# ============================================================================================
# libvirt capabilities
# ============================================================================================
CACHE_HINT = (
    "libvirt answers from its capability cache: restart libvirtd (or virtqemud) to make it "
    "probe QEMU again (or remove /var/cache/libvirt/qemu/capabilities/*.xml first)"
)
CACHE_DIR = "/var/cache/libvirt/qemu/capabilities"
LIBVIRT_BUDGET = 1.0
"""Seconds libvirt is given to answer when its cache cannot (``options["libvirt_timeout"]``)."""
# QEMU_MODDIR is the build's libdir + "/qemu": Debian's multiarch libdir, lib64 on
# RHEL/SUSE, lib elsewhere (QEMU's meson.build: qemu_moddir = get_option('libdir') / 'qemu')
_MULTIARCH = {
    "x86_64": "x86_64-linux-gnu",
    "aarch64": "aarch64-linux-gnu",
    "ppc64le": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
    "riscv64": "riscv64-linux-gnu",
}


def _qemu_user_access(ctx: Context) -> tuple[Optional[bool], str]:
    """Can libvirt's QEMU user open /dev/kvm? (None: cannot tell), and a description."""
    a = facts.qemu_kvm_access(ctx)
    if a is None:
        return None, ""
    if a.uid is None:
        return None, f"QEMU user {a.user.user} is unknown"
    if a.ok is None:
        return None, f"whether {a.user.user} can open /dev/kvm ({a.mode}) cannot be told"
    return a.ok, f"{a.user.user} {'can' if a.ok else 'cannot'} open /dev/kvm {a.mode}"


def _qemu_user_hint(ctx: Context) -> str:
    """The fix for a QEMU user who cannot open /dev/kvm (the same as libvirt.qemu_user's)."""
    a = facts.qemu_kvm_access(ctx)
    if a is not None:
        return a.hint
    qu = facts.qemu_user(ctx)
    return facts.UDEV_HINT.format(user=qu.user if qu else "qemu")


class CachedCaps(NamedTuple):
    """libvirt's cache file for the host's QEMU (``path``, read under ``root``: "" or the
    daemon's ``/proc/PID/root``), and the caches of its other binaries."""

    cache: "CapsCache"
    path: str
    root: str
    others: "tuple[CapsCache, ...]" = ()


def _daemon_root(ctx: Context) -> str:
    """Where libvirt's files are as its daemon sees them: "" (the host's), or the first
    trusted daemon's ``/proc/PID/root`` when it runs in another mount namespace (kolla's
    nova_libvirt; after pivot_root the root link reads "/" though the tree differs, so the
    namespaces are compared)."""
    host = ctx.host
    mine = host.readlink("/proc/self/ns/mnt")
    for p in facts.libvirt_daemons(ctx):
        theirs = host.readlink(f"/proc/{p.pid}/ns/mnt")
        if mine and theirs and theirs != mine:
            return f"/proc/{p.pid}/root"
    return ""


def read_cache(ctx: Context, arch: str) -> tuple[Optional[CachedCaps], str]:
    """libvirt's capability cache for ``arch``'s QEMU (``CACHE_DIR/*.xml``, one file per
    binary named by the SHA-256 of its path, virFileCacheGetFileName), and why there is none
    ("" when found). The binary libvirt uses for the host's guests is preferred:
    ``qemu-system-ARCH``, then any with that ``<arch>`` (``qemu-kvm``)."""
    from hvcheck.parsers.libvirt_caps import parse_caps_cache

    host = ctx.host
    root = _daemon_root(ctx)
    found: list[tuple[CapsCache, str]] = []
    refused = ""
    for path in host.glob(f"{root}{CACHE_DIR}/*.xml"):
        try:
            text = host.read_text(path, 4 * 1024 * 1024)
        except PermissionError:
            refused = f"{path} is root's (mode 0600): not readable without root"
            continue
        except OSError as e:
            refused = f"{path}: {e.strerror or e}"
            continue
        c = parse_caps_cache(text)
        if c is not None:
            found.append((c, path))
    mine = [(c, p) for c, p in found if c.arch == arch]
    mine.sort(key=lambda cp: posixpath.basename(cp[0].emulator or "") != f"qemu-system-{arch}")
    if not mine:
        return None, refused or f"no capability cache for {arch} in {root}{CACHE_DIR}"
    c, path = mine[0]
    return CachedCaps(c, path, root, tuple(x for x, p in found if p != path)), ""


def cache_stale(ctx: Context, cc: CachedCaps) -> Optional[str]:
    """Why libvirt would not use this cache file and probe QEMU again, as virQEMUCapsIsValid
    (src/qemu/qemu_capabilities.c) decides — the checks that need no probe of our own:

    * the QEMU binary's ctime is not ``qemuctime`` ("QEMU binary changed");
    * QEMU's module directory's mtime is not ``qemumoddirmtime`` (when it exists);
    * the running daemon's executable is newer than ``selfctime`` ("libvirt changed");
    * the kernel (``uname -r`` and ``-v``, ``/proc/sys/kernel/{osrelease,version}``) is not
      ``kernelVersion``.

    The KVM check ("KVM was enabled when probing ..., but it is not available now") is the
    caller's: it depends on the QEMU user's access to /dev/kvm. Not checked: the host CPU
    signature, microcode and cpuid (a new CPU or microcode means a reboot, which the kernel
    check mostly catches). None: fresh as far as these tell.
    """
    host = ctx.host
    c, r = cc.cache, cc.root
    if c.emulator is None or c.qemuctime is None or c.selfctime is None:
        return f"{cc.path} lacks <emulator>, <qemuctime> or <selfctime>"
    try:
        st = host.stat(r + c.emulator)
    except OSError as e:
        return f"{c.emulator} cannot be looked at ({e.strerror or e})"
    if st is None:
        return f"{c.emulator} no longer exists"
    if st.ctime != c.qemuctime:
        return (
            f"QEMU binary changed since libvirt probed it ({c.emulator} ctime {st.ctime} "
            f"vs {c.qemuctime})"
        )
    if c.qemumoddirmtime is not None:
        multi = _MULTIARCH.get(c.arch or "", "")
        for d in ([f"/usr/lib/{multi}/qemu"] if multi else []) + [
            "/usr/lib64/qemu",
            "/usr/lib/qemu",
        ]:
            try:
                md = host.stat(r + d)
            except OSError:
                continue
            if md is None:
                continue
            if md.mtime != c.qemumoddirmtime:
                return (
                    f"QEMU's module directory {d} changed (mtime {md.mtime} vs {c.qemumoddirmtime})"
                )
            break
    for p in facts.libvirt_daemons(ctx):
        try:
            exe = host.stat(f"/proc/{p.pid}/exe")
        except OSError:
            continue
        if exe is not None and exe.ctime > c.selfctime:
            return (
                f"libvirt changed since it probed QEMU (pid {p.pid}'s executable ctime "
                f"{exe.ctime} vs {c.selfctime})"
            )
    if c.kernel_version:
        try:
            rel = host.read_text("/proc/sys/kernel/osrelease", 4096).strip()
            ver = host.read_text("/proc/sys/kernel/version", 4096).strip()
        except OSError:
            rel = ver = ""
        if rel and ver and f"{rel} {ver}" != c.kernel_version:
            return (
                f"the kernel changed since libvirt probed QEMU ({rel} {ver} vs {c.kernel_version})"
            )
    return None


def _libvirt_running(ctx: Context) -> Optional[bool]:
    """Is libvirt running? True with a libvirtd/virtqemud process or one of its read-only
    sockets (:data:`hvcheck.services.LIBVIRT_RO_SOCKETS`; a socket-activated daemon may have no
    process yet), False with neither, None when a socket's presence cannot be told: a
    snapshot that did not record its ``lstat`` (``collect`` records it, so that a replay
    answers as the live run did), or a directory on the way refused."""
    if facts.libvirt_daemons(ctx):
        return True
    told = True
    for s in LIBVIRT_RO_SOCKETS:
        try:
            if ctx.host.stat(s, follow=False) is not None:
                return True
        except OSError:  # not recorded (ENODATA), or refused
            told = False
    return False if told else None


def _from_cache(cc: CachedCaps, arch: str) -> "tuple[Capabilities, Optional[DomainCapabilities]]":
    """The capabilities libvirt answers from this cache: a guest per cached binary
    (virQEMUCapsInitGuestFromBinary: ``qemu`` with TCG, ``kvm`` with KVM), and, when it has
    KVM, the kvm domain capabilities' machine (the preferred one), vCPU limit and
    host-passthrough (supported for KVM on the host's own architecture,
    virQEMUCapsIsCPUModeSupported)."""
    from hvcheck.parsers.libvirt_caps import Capabilities, DomainCapabilities, Guest

    guests = []
    for c in (cc.cache, *cc.others):
        guests.append(
            Guest(
                os_type="hvm",
                arch=c.arch,
                emulator=c.emulator,
                domain_types=c.domain_types(),
                machines=tuple(m.name for m in c.machines if m.accel in ("kvm", "tcg"))[:64],
            )
        )
    caps = Capabilities(host_arch=arch, host_cpu_model=None, guests=tuple(guests))
    c = cc.cache
    if not c.kvm:
        return caps, None
    m = c.default_machine("kvm")
    dc = DomainCapabilities(
        emulator=c.emulator,
        domain="kvm",
        machine=m.name if m else None,
        arch=c.arch,
        vcpu_max=m.max_cpus if m else None,
        host_passthrough=c.arch == arch,
    )
    return caps, dc


class LibvirtCaps(Check):
    id = "libvirt.caps"
    title = "libvirt's capabilities: does it offer KVM guests?"
    waits = True  # libvirtd's socket, when its cache cannot answer
    reads = (
        f"{CACHE_DIR}/*.xml (libvirt's capability cache; the daemon's own root in a container)",
        "the QEMU binary's, QEMU's module directory's and the libvirt daemon's stat (ctimes)",
        "/proc/sys/kernel/osrelease, /proc/sys/kernel/version",
        "only when the cache is missing or stale, within 1 s: virsh -r capabilities (or "
        "virConnectGetCapabilities) and virsh domcapabilities --virttype kvm (root)",
        "/dev/kvm (stat, POSIX ACL), /etc/libvirt/qemu.conf, /etc/passwd, /etc/group",
        "libvirtd/virtqemud processes; libvirt's read-only sockets in /run/libvirt (lstat)",
        *facts.ACCESS_READS,
    )

    def run(self, ctx: Context) -> Result:
        host = ctx.host
        if _libvirt_running(ctx) is False:
            incomplete = discovery(ctx).incomplete
            if incomplete:  # a daemon may run unseen: only that it cannot be asked is known
                return self.result(
                    SKIP,
                    "no libvirtd or virtqemud visible and no socket in /run/libvirt: libvirt "
                    f"cannot be asked from here (the process table may lack some: {incomplete})",
                    code="no-libvirt",
                    incomplete=incomplete,
                )
            return self.result(
                SKIP,
                "libvirt is not running (no libvirtd or virtqemud, no socket in /run/libvirt)",
                code="no-libvirt",
            )
        arch = facts.arch(ctx).machine or ""
        access, access_text = _qemu_user_access(ctx)
        cc, no_cache = read_cache(ctx, arch)
        stale = cache_stale(ctx, cc) if cc is not None else None
        d: dict[str, Any] = {
            "cache": cc.path if cc is not None else None,
            "cache_stale": stale,
            "cache_missing": no_cache or None,
        }
        if access is False:
            # libvirt's QEMU user cannot open /dev/kvm: what libvirt will answer is known
            # without asking (it re-probes QEMU on every request while its cache says KVM,
            # seconds each), and so is the cause: the same WARNING on every run. A snapshot
            # without the cache replays what libvirt answered when it was taken.
            if cc is None and not host.live:
                return self._ask(ctx, d, no_cache)
            return self._qemu_user_cannot(ctx, cc, arch, access_text, d)
        if cc is not None and stale is None and access is True and not cc.cache.kvm:
            stale = (
                f"KVM was not enabled when libvirt probed {cc.cache.emulator}, but libvirt's "
                "QEMU user can open /dev/kvm now: libvirt probes it again"
            )
            d["cache_stale"] = stale
        if cc is not None and stale is None:
            caps, dc = _from_cache(cc, arch)
            d.update(via="cache", uri="qemu:///system", elapsed_s=0.0)
            return self._judge(ctx, caps, dc, None, 0.0, d, [f"libvirt's cache {cc.path}"])
        return self._ask(ctx, d, stale or no_cache)

    def _ask(self, ctx: Context, d: dict[str, Any], why: str) -> Result:
        """The cache cannot answer (``why``): ask libvirt within its sub-budget."""
        budget = ctx.remaining() - MARGIN
        if ctx.host.live:
            budget = min(budget, float(ctx.options.get("libvirt_timeout") or LIBVIRT_BUDGET))
        if budget <= 0.1:
            return self.result(
                UNKNOWN, "no time left in the run to ask libvirt", code="timeout", details=d
            )
        cr = ctx.host.libvirt_capabilities(budget)
        if cr is None:
            return self.result(
                SKIP,
                "the snapshot holds no libvirt capabilities (probes.libvirt_caps)",
                code="not-recorded",
                details=d,
            )
        d.update(via=cr.via, uri=cr.uri, elapsed_s=round(cr.elapsed, 3))
        if cr.status == "unavailable":
            return self.result(
                SKIP, cr.error or "libvirt is not available", code="no-libvirt", details=d
            )
        if cr.status == "timeout":
            hint = (
                f"libvirt is probing QEMU ({why}): it caches what it finds, so the next run "
                "answers from its cache; raise -t/--timeout if this persists"
                if why
                else "libvirt re-probes QEMU when /dev/kvm's ctime changes (seconds per QEMU "
                "binary): run again, or raise -t/--timeout"
            )
            return self.result(
                UNKNOWN,
                cr.error or "libvirt did not answer in time",
                hint=hint,
                code="timeout",
                details=d,
            )
        from hvcheck.parsers.libvirt_caps import parse_capabilities, parse_domain_capabilities

        caps = parse_capabilities(cr.capabilities or "") if cr.status == "ok" else None
        if caps is None:
            return self.result(
                UNKNOWN,
                (
                    f"libvirt's capabilities could not be read: {cr.error}"
                    if cr.error
                    else "libvirt's capabilities XML does not parse"
                ),
                code="error",
                details=d,
            )
        dc = parse_domain_capabilities(cr.domcapabilities) if cr.domcapabilities else None
        ev = [f"{cr.via} {cr.uri}: capabilities" + (", domcapabilities kvm" if dc else "")]
        return self._judge(ctx, caps, dc, cr.domcaps_error, cr.elapsed, d, ev)

    def _qemu_user_cannot(
        self,
        ctx: Context,
        cc: Optional[CachedCaps],
        arch: str,
        access_text: str,
        d: dict[str, Any],
    ) -> Result:
        state = facts.kvm_state(ctx)
        d.update(qemu_user_can_open=False, kvm_usable=state.usable, via="cache" if cc else None)
        effect = (
            "a type='kvm' domain fails to start, and a QEMU asked for kvm:tcg silently runs TCG"
        )
        if cc is not None and cc.cache.kvm:
            c = cc.cache
            d["offers_kvm"] = True
            summary = (
                f"libvirt offers kvm domains for {arch} ({c.emulator}; its capability cache), "
                f"but {access_text}: libvirt re-probes QEMU on every request while that lasts "
                f"(\"KVM was enabled when probing '{c.emulator}', but it is not available "
                f'now"; seconds each, not waited for), {effect}'
            )
            code = "contradiction"
        elif cc is not None:
            d["offers_kvm"] = False
            summary = (
                f"libvirt offers no kvm domains for {arch} ({cc.cache.emulator}; its capability "
                f"cache): {access_text}, so {effect}"
            )
            code = "qemu-user-no-kvm"
        else:
            summary = (
                f"{access_text}: libvirt cannot give its QEMU processes KVM — {effect}; "
                "libvirt was not asked (it re-probes QEMU on every request while its cache "
                "says KVM)"
            )
            code = "qemu-user-no-kvm"
        return self.result(
            WARNING,
            summary,
            hint=_qemu_user_hint(ctx),
            code=code,
            evidence=[access_text] + ([f"libvirt's cache {cc.path}"] if cc else []),
            details=d,
        )

    def _judge(
        self,
        ctx: Context,
        caps: "Capabilities",
        dc: "Optional[DomainCapabilities]",
        domcaps_error: Optional[str],
        elapsed: float,
        d: dict[str, Any],
        ev: list[str],
    ) -> Result:
        arch = facts.arch(ctx).machine or caps.host_arch or ""
        guest = caps.guest_for(arch)
        offers = caps.offers_kvm(arch)
        d.update(
            arch=arch,
            host_arch=caps.host_arch,
            offers_kvm=offers,
            domain_types=list(guest.domain_types) if guest else [],
            emulator=guest.emulator if guest else None,
        )
        if dc is not None:
            d["domcaps"] = {
                "emulator": dc.emulator,
                "domain": dc.domain,
                "machine": dc.machine,
                "vcpu_max": dc.vcpu_max,
                "host_passthrough": dc.host_passthrough,
            }
        if domcaps_error:
            d["domcaps_error"] = domcaps_error
        if guest is None:
            return self.result(
                WARNING,
                f"libvirt knows no hvm guest for {arch}: no QEMU emulator for this "
                "architecture is installed, so libvirt can run no guest",
                hint="install QEMU for this architecture (Debian/Ubuntu: qemu-system-x86 "
                "on x86_64; RHEL: qemu-kvm), then restart libvirtd",
                code="no-guest",
                evidence=ev,
                details=d,
            )
        slow = f" (libvirt took {elapsed:.1f} s: it re-probed QEMU)" if elapsed >= 3 else ""
        what = (
            f"libvirt offers {', '.join(guest.domain_types) or 'no'} domains for {arch} "
            f"({guest.emulator or '?'})"
        )
        if dc is not None:
            what += f"; kvm domain caps: machine {dc.machine or '?'}, " + (
                "host-passthrough CPU supported"
                if dc.host_passthrough
                else "host-passthrough CPU NOT supported"
            )
        elif domcaps_error and "did not answer" in domcaps_error:
            what += "; kvm domain caps: no answer in time"
        state = facts.kvm_state(ctx)
        access, access_text = _qemu_user_access(ctx)
        d["kvm_usable"] = state.usable
        d["qemu_user_can_open"] = access
        if offers:
            if access is False:
                return self.result(
                    WARNING,
                    f"{what}, but {access_text}: libvirt offers KVM that its own QEMU "
                    "processes cannot use — a type='kvm' domain fails to start, and a QEMU "
                    f"asked for kvm:tcg silently runs TCG{slow}",
                    hint=_qemu_user_hint(ctx),
                    code="contradiction",
                    evidence=[*ev, access_text],
                    details=d,
                )
            if state.usable is False:
                return self.result(
                    WARNING,
                    f"{what}, but KVM is not usable on this host ({state.reason}): libvirt's "
                    f"capabilities are stale{slow}",
                    hint=CACHE_HINT,
                    code="stale-kvm",
                    evidence=[*ev, *state.evidence],
                    details=d,
                )
            refused = (domcaps_error or "").lower()
            if dc is None and "kvm" in refused and "did not answer" not in refused:
                return self.result(
                    WARNING,
                    f"{what}, yet libvirt refuses kvm domain capabilities: {domcaps_error}",
                    hint=CACHE_HINT,
                    code="domcaps-refused",
                    evidence=ev,
                    details=d,
                )
            local = (
                "consistent with the local evidence"
                if state.usable is True
                else f"local evidence: {state.reason}"
            )
            return self.result(
                OK, f"{what}; {local}{slow}", code="kvm-offered", evidence=ev, details=d
            )
        if access is False and state.usable is not False:
            return self.result(
                WARNING,
                f"{what}: no kvm, because {access_text}: a type='kvm' domain fails to start, "
                f"and a QEMU asked for kvm:tcg silently runs TCG{slow}",
                hint=_qemu_user_hint(ctx),
                code="qemu-user-no-kvm",
                evidence=[*ev, access_text],
                details=d,
            )
        if state.usable is True:
            return self.result(
                WARNING,
                f"{what}: no kvm, although KVM works on this host ({state.reason})"
                + (f" and {access_text}" if access_text else "")
                + f"{slow}",
                hint=CACHE_HINT + "; if it persists, the QEMU binary lacks KVM support",
                code="stale-no-kvm",
                evidence=[*ev, *state.evidence],
                details=d,
            )
        return self.result(
            OK,
            f"{what}: no kvm, consistent with the local evidence "
            f"({state.reason}); guests can only be emulated (TCG){slow}",
            code="kvm-not-offered",
            evidence=ev,
            details=d,
        )
