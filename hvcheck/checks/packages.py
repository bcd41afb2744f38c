"""The manual checklist's "have I installed the right packages?": QEMU, libvirt and nova-compute
as the package databases record them, with their versions.

Reads (through the host layer and hvcheck.facts): /var/lib/dpkg/status,
/usr/lib/sysimage/rpm/rpmdb.sqlite, /var/lib/rpm/rpmdb.sqlite (``rpm -qa`` for a Berkeley DB
or ndb database, live host only), /snap/*/current/meta/snap.yaml; the nova config
(hvcheck.novaconfig), the libvirtd/virtqemud and nova-compute processes and whether their
executables exist on the host; whether a QEMU or libvirtd binary exists in /usr/bin,
/usr/local/bin, /usr/libexec, /usr/sbin, /usr/local/sbin (installed outside the package
manager).
"""

import posixpath
from typing import Any, NamedTuple, Optional

from hvcheck import facts, novaconfig
from hvcheck.check import Check, Context
from hvcheck.model import OK, SKIP, UNKNOWN, WARNING, Result
from hvcheck.parsers.pkgdb import Package, upstream_release
from hvcheck.processes import processes

# nova config found here means nova-compute runs in a container (kolla-ansible's host copy,
# TripleO's puppet-generated config, a running nova-compute's own root): its QEMU and libvirt
# come from the container images, not from the host's packages
CONTAINER_CONFIG_PREFIXES = ("/etc/kolla/", "/var/lib/kolla/", "/var/lib/config-data/", "/proc/")
SNAP_PREFIXES = ("/snap/", "/var/snap/")
# the host-architecture QEMU binary each family's packages install (the RHEL family's is
# /usr/libexec/qemu-kvm on every architecture)
QEMU_BINARY = {
    "x86": "qemu-system-x86_64",
    "arm": "qemu-system-aarch64",
    "ppc": "qemu-system-ppc64",
    "s390": "qemu-system-s390x",
    "riscv": "qemu-system-riscv64",
}
BIN_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/libexec", "/usr/local/libexec")
LIBVIRT_BINARIES = (
    "/usr/sbin/libvirtd",
    "/usr/sbin/virtqemud",
    "/usr/local/sbin/libvirtd",
    "/usr/local/sbin/virtqemud",
)
DAEMON_NAMES = ("libvirtd", "virtqemud", "nova-compute")
OTHER_QEMU_PREFIXES = ("qemu-system-", "qemu-kvm")


class Node(NamedTuple):
    """Is this a compute node, and where would its QEMU and libvirt come from?"""

    compute: bool
    evidence: tuple[str, ...]  # why it is one
    deployment: str  # packages | containers | snap
    why: str  # why that deployment ("" for packages)
    snap: Optional[str]  # the snap named by its paths
    needs_qemu: bool  # virt_type kvm/qemu (nova's default), or a libvirt daemon runs
    needs_libvirt: bool  # nova's compute_driver is libvirt's
    driver: str  # nova's compute_driver as configured ("" without nova config)


def _snap_name(path: str) -> Optional[str]:
    parts = path.split("/")
    if path.startswith("/snap/") and len(parts) > 2:
        return parts[2] or None
    if path.startswith("/var/snap/") and len(parts) > 3:
        return parts[3] or None
    return None


def _daemon_exe(argv: tuple[str, ...]) -> str:
    """The libvirtd/virtqemud/nova-compute executable a process runs ("" when not told):
    argv[0], or the script a python interpreter runs."""
    for a in argv[:3]:
        if posixpath.basename(a) in DAEMON_NAMES:
            return a
    return ""


def _node(ctx: Context) -> Node:
    try:
        conf = novaconfig.nova_conf(ctx)
        conf_error = ""
    except OSError as e:
        conf, conf_error = None, f"nova config unreadable ({e.strerror or e})"
    daemons = facts.libvirt_daemons(ctx)
    novas = processes(ctx, "nova-compute")
    evidence: list[str] = []
    if conf is not None and not novas:
        # every OpenStack node has a nova.conf (nova-common ships one; controllers run
        # nova-api and the scheduler from it): a compute node's is nova-compute's own file
        # (Ubuntu's nova-compute.conf, kolla's nova-compute/, TripleO's nova_libvirt/), sets
        # the virt driver, or the host has nova-compute installed
        r = conf.resolved
        set_here = [s.spelling for s in (r.compute_driver, r.virt_type) if not s.default]
        own = [f for f in r.files if "nova-compute" in f or "nova_libvirt" in f]
        if own:
            evidence.append(f"nova-compute's config {', '.join(own)}")
        elif set_here:
            evidence.append(f"nova config {', '.join(r.files)} sets {', '.join(set_here)}")
        elif facts.nova_compute_package(ctx) is not None:
            evidence.append(f"nova config {', '.join(r.files)} and nova-compute installed")
        else:
            conf = None  # a controller's, or the packaged sample
    elif conf is not None:
        evidence.append(f"nova config {', '.join(conf.resolved.files) or conf.how}")
    elif conf_error:
        evidence.append(conf_error)
    evidence += [f"nova-compute runs (pid {p.pid})" for p in novas]
    evidence += [f"{p.comm or 'libvirtd'} runs (pid {p.pid})" for p in daemons]
    deployment, why, snap = "packages", "", None
    for f in conf.resolved.files if conf is not None else ():
        if f.startswith(CONTAINER_CONFIG_PREFIXES):
            deployment, why = "containers", f"nova config {f}"
            break
        if f.startswith(SNAP_PREFIXES):
            deployment, why, snap = "snap", f"nova config {f}", _snap_name(f)
            break
    if deployment == "packages":
        for p in [*daemons, *novas]:
            exe = _daemon_exe(p.argv)
            if exe.startswith("/snap/"):
                deployment, why, snap = "snap", f"pid {p.pid} runs {exe}", _snap_name(exe)
                break
            if exe.startswith("/") and not ctx.host.exists(exe):
                deployment = "containers"
                why = (
                    f"pid {p.pid} runs {exe}, which is not on this host's filesystem "
                    "(a container's, or removed since it started)"
                )
                break
    virt_type = ((conf.virt_type.value if conf else None) or "kvm").strip().lower()
    driver = (conf.resolved.compute_driver.value or "") if conf is not None else ""
    nova = conf is not None or bool(novas) or bool(conf_error)
    return Node(
        compute=bool(evidence),
        evidence=tuple(evidence),
        deployment=deployment,
        why=why,
        snap=snap,
        needs_qemu=(virt_type in ("kvm", "qemu")) if nova else bool(daemons),
        # nova has no default compute_driver; unset is judged as libvirt's, the usual one
        needs_libvirt=nova and "libvirt" in (driver or "libvirt.LibvirtDriver").lower(),
        driver=driver,
    )


def _pkg(p: Optional[Package]) -> Optional[dict[str, Any]]:
    if p is None:
        return None
    return {**p.to_json(), "short_version": upstream_release(p.version) or None}


def _show(p: Package) -> str:
    return f"{p.name} {p.evr}" if p.evr else p.name


def _unreadable_hint(dbs: list[facts.PackageDb]) -> str:
    errors = " ".join(d.error or "" for d in dbs).lower()
    if "permission" in errors:
        return "re-run as root (sudo hvcheck): the package database is not readable to this user"
    if any(d.status == "timeout" for d in dbs):
        return "re-run with a longer --timeout: rpm -qa did not finish"
    if any(d.status == "unavailable" for d in dbs):
        return (
            "take the snapshot with `hvcheck collect` on the host itself: it records what "
            "`rpm -qa` says of a Berkeley DB/ndb database"
        )
    return "check the database with the package manager itself (dpkg -l, rpm -qa, snap list)"


class HostPackages(Check):
    id = "host.packages"
    title = "QEMU, libvirt and nova packages"
    reads = (
        facts.DPKG_STATUS,
        "/usr/lib/sysimage/rpm/rpmdb.sqlite",
        "/var/lib/rpm/rpmdb.sqlite",
        "rpm -qa (Berkeley DB/ndb /var/lib/rpm/Packages[.db]; live host only)",
        "/snap/*/current/meta/snap.yaml",
        "nova config (hvcheck.novaconfig)",
        "libvirtd/virtqemud/nova-compute processes",
        "/usr/bin/qemu-system-*, /usr/libexec/qemu-kvm, /usr/sbin/libvirtd (exists)",
    )

    def run(self, ctx: Context) -> Result:
        installed = facts.installed_packages(ctx)
        dbs = list(installed.databases)
        if not dbs:
            return self.result(
                SKIP,
                "no package database here (no dpkg status file, RPM database or snap)",
                code="no-database",
            )
        d: dict[str, Any] = {
            "databases": [db.to_json() for db in dbs],
            "installed": len(installed.packages),
        }
        ev = [f"{db.kind} {db.path}: {db.found} packages ({db.status})" for db in dbs]
        bad = [db for db in dbs if db.status != "ok"]
        if bad and not installed.packages:
            return self.result(
                UNKNOWN,
                "package database unreadable: "
                + "; ".join(f"{db.path}: {db.error or db.status}" for db in bad),
                hint=_unreadable_hint(bad),
                code="unreadable",
                evidence=ev,
                details=d,
            )
        machine = facts.arch(ctx).machine
        fam = facts.arch(ctx).family or ""
        qemu = facts.qemu_package(ctx)
        libvirt = facts.libvirt_package(ctx)
        nova = facts.nova_compute_package(ctx)
        snap = facts.hypervisor_snap(ctx)
        node = _node(ctx)
        wanted = (
            *facts.QEMU_SYSTEM_PACKAGES.get(fam, ()),
            *facts.LIBVIRT_DAEMON_PACKAGES,
            *facts.NOVA_COMPUTE_PACKAGES,
        )
        listed = [
            p
            for p in installed.packages
            if p.name in wanted
            or p.name.startswith(OTHER_QEMU_PREFIXES)
            or (p.db == "snap" and p.name in facts.HYPERVISOR_SNAPS)
        ]
        d.update(
            packages=[p.to_json() for p in listed],
            qemu=_pkg(qemu),
            libvirt=_pkg(libvirt),
            nova_compute=_pkg(nova),
            snap=_pkg(snap),
            arch=machine,
            compute_node=node.compute,
            compute_evidence=list(node.evidence),
            deployment=node.deployment,
            deployment_evidence=node.why or None,
        )
        parts = []
        if qemu is not None:
            line = upstream_release(qemu.version)
            parts.append(_show(qemu) + (f" (QEMU {line})" if line else ""))
        if libvirt is not None:
            parts.append(_show(libvirt))
        if nova is not None:
            parts.append(_show(nova))
        if snap is not None:
            parts.append(f"snap {_show(snap)}")
        found = ", ".join(parts) or "no QEMU, libvirt or nova package"
        kinds = ", ".join(dict.fromkeys(db.kind for db in dbs))
        if not node.compute:
            return self.result(
                OK,
                f"{found} ({kinds}); not a compute node (no nova config, no libvirtd or "
                "nova-compute running)",
                code="not-compute",
                evidence=ev,
                details=d,
            )
        if node.deployment == "containers":
            return self.result(
                OK,
                f"nova runs in containers ({node.why}): QEMU and libvirt come from their "
                f"images, not from this host's packages; host: {found}",
                code="containers",
                evidence=[*ev, node.why],
                details=d,
            )
        if node.deployment == "snap":
            which = snap if snap is not None and (node.snap in (None, snap.name)) else None
            brought = f"snap {_show(which)}" if which else f"the {node.snap or ''} snap".strip()
            return self.result(
                OK,
                f"QEMU, libvirt and nova come from {brought} ({node.why}); host: {found}",
                code="snap",
                evidence=[*ev, node.why],
                details=d,
            )
        return self._compute_node(ctx, node, installed, d, ev, found, kinds)

    def _compute_node(
        self,
        ctx: Context,
        node: Node,
        installed: facts.InstalledPackages,
        d: dict[str, Any],
        ev: list[str],
        found: str,
        kinds: str,
    ) -> Result:
        h = ctx.host
        machine = facts.arch(ctx).machine
        fam = facts.arch(ctx).family or ""
        qemu = facts.qemu_package(ctx)
        libvirt = facts.libvirt_package(ctx)
        notes: list[str] = []
        missing: list[str] = []
        if node.needs_qemu and qemu is None:
            names = [f"{b}/{QEMU_BINARY[fam]}" for b in BIN_DIRS if fam in QEMU_BINARY]
            names += ["/usr/libexec/qemu-kvm", "/usr/bin/qemu-kvm"]
            binary = next((b for b in names if h.exists(b)), None)
            if binary is not None:
                notes.append(f"QEMU {binary} is installed outside the package manager")
            else:
                missing.append("qemu")
        if node.needs_libvirt and libvirt is None:
            binary = next((b for b in LIBVIRT_BINARIES if h.exists(b)), None)
            if binary is not None:
                notes.append(f"libvirt {binary} is installed outside the package manager")
            else:
                missing.append("libvirt")
        d["outside_package_manager"] = notes
        d["missing"] = missing
        why = "; ".join(node.evidence)
        if not missing:
            tail = f"; {'; '.join(notes)}" if notes else ""
            return self.result(
                OK,
                f"{found} ({kinds}){tail}",
                code="ok",
                evidence=[*ev, why],
                details=d,
            )
        what: list[str] = []
        hints: list[str] = []
        if "qemu" in missing:
            others = [
                p.name
                for p in installed.packages
                if p.name.startswith(OTHER_QEMU_PREFIXES)
                and p.name not in ("qemu-system-common", "qemu-system-data", "qemu-system-gui")
            ]
            also = (
                f" ({', '.join(sorted(set(others)))} installed: not an emulator for "
                f"{machine or 'this architecture'})"
                if others
                else ""
            )
            what.append(f"no QEMU system emulator for {machine or 'this host'} installed{also}")
            hints.append(
                f"{facts.install_command(ctx)} (QEMU for {machine or 'this host'}), then "
                "restart libvirtd (or virtqemud) and nova-compute so they find it"
            )
        if "libvirt" in missing:
            drv = node.driver or "libvirt.LibvirtDriver (unset: judged as libvirt's)"
            what.append(f"no libvirt daemon package installed while nova's compute_driver is {drv}")
            hints.append(f"{facts.libvirt_install_command(ctx)}, then restart nova-compute")
        if not installed.complete:
            unread = [db for db in installed.databases if db.status != "ok"]
            return self.result(
                UNKNOWN,
                f"compute node ({why}): {'; '.join(what)} in what could be read, but "
                + "; ".join(f"{db.path}: {db.error or db.status}" for db in unread),
                hint=_unreadable_hint(unread),
                code="incomplete",
                evidence=[*ev, why],
                details=d,
            )
        code = "no-" + "-".join(missing)
        return self.result(
            WARNING,
            f"compute node ({why}) but {' and '.join(what)} ({kinds})",
            hint="; ".join(hints),
            code=code,
            evidence=[*ev, why],
            details=d,
        )
