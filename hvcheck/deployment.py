"""How this host runs its QEMU, libvirt and nova — recognised from evidence, once per run —
and the setting that lasts there: the knob every hint must name.

An edit to the nova.conf a container, a charm or a snap renders is lost at its next start or
hook; the operator must change what it is rendered from. Kinds (``Deployment.kind``) and the
evidence for each:

``kubevirt``
    KubeVirt's ``virt-launcher``/``virt-launcher-monitor`` (the pod entry point that starts
    libvirt and one VMI's QEMU), or a QEMU using ``/var/run/kubevirt`` paths.
``proxmox``
    Proxmox VE's qemu-server: QEMU with ``-id <vmid>`` and its QMP socket
    ``/var/run/qemu-server/<vmid>.qmp`` (PVE::QemuServer ``config_to_command``), or ``/etc/pve``.
``snap``
    nova-compute, libvirtd or QEMU running from ``/snap/<name>/`` (or in a ``snap.<name>.``
    cgroup): Sunbeam/MicroStack's ``openstack-hypervisor``, the older ``microstack``.
``tripleo``
    containers of kolla images (``/var/lib/kolla/config_files/config.json`` in their tree) on a
    host with TripleO's ``/var/lib/config-data/puppet-generated/``.
``kolla``
    kolla-ansible: kolla images (that file, or nova under ``/var/lib/kolla/venv``) or the
    host's ``/etc/kolla/nova-compute/`` and ``/etc/kolla/nova-libvirt/``.
``openstack-helm``
    nova-compute with openstack-helm's ``/tmp/pod-shared/`` config files, or libvirtd moved to
    its ``/osh-libvirt`` cgroup (openstack-helm ``libvirt/templates/bin/_libvirt.sh.tpl``).
``kubernetes``
    other pods: a process in a ``kubepods`` cgroup.
``juju``
    the nova-compute charm: an agent directory ``/var/lib/juju/agents/unit-<app>-<n>`` on the
    host or in the container nova runs in; ``lxd`` names that LXD container when there is one.
``lxd``
    an LXD container (``lxc.payload.<name>`` or ``/lxc/<name>`` cgroup) without Juju.
``devstack``
    ``nova-compute --config-file /etc/nova/nova-cpu.conf`` (devstack ``lib/nova``
    ``NOVA_CPU_CONF``) or a ``devstack@`` systemd unit's cgroup.
``container``
    another container (docker, podman, containerd cgroups; another mount namespace).
``libvirt``
    libvirt (and nova) from the distribution's packages, in hvcheck's own tree.
``qemu``
    QEMU processes without libvirt or nova.
``none``
    none of these.

Reads (through the host layer): the process walk (``hvcheck.processes`` groups),
``/proc/<pid>/cgroup`` of nova-compute, libvirtd, virt-launcher and the first QEMU, their mount
namespaces and trees (``hvcheck.mountns``: ``/proc/<pid>/root/var/lib/kolla/config_files/
config.json``, ``/proc/<pid>/root/var/lib/juju/agents``), and the host's ``/etc/kolla/
nova-compute``, ``/etc/kolla/nova-libvirt``, ``/var/lib/config-data/puppet-generated``,
``/var/lib/juju/agents`` and ``/etc/pve``.

The knobs, as each project names them: kolla-ansible ``nova_compute_virt_type`` (``ansible/
group_vars/all/nova.yml``, rendered by ``nova-cell/templates/nova.conf.d/libvirt.conf.j2``;
overrides ``/etc/kolla/config/nova.conf``, ``/etc/kolla/config/nova/nova-compute.conf``,
``nova-cell/tasks/config.yml``); TripleO ``NovaComputeLibvirtType``
(``deployment/nova/nova-libvirt-container-puppet.yaml``); openstack-helm
``conf.nova.libvirt.virt_type`` (nova chart values, ``tools/deployment/component/compute-kit/
compute-kit.sh``); charm-nova-compute ``virt-type`` (``config.yaml``); snap-openstack-hypervisor
``compute.virt-type`` (``openstack_hypervisor/hooks.py``); MicroStack ``config.nova.virt-type``;
devstack ``LIBVIRT_TYPE`` (``lib/nova_plugins/hypervisor-libvirt``: ``iniset $NOVA_CONF libvirt
virt_type "$LIBVIRT_TYPE"``); KubeVirt ``spec.configuration.developerConfiguration.useEmulation``
(``DeveloperConfiguration.UseEmulation``); Proxmox VE ``qm set <vmid> --kvm 1`` (qemu-server's
``kvm`` option: ``-accel tcg``/``accel=tcg`` without it).

A facts-level module: ``hvcheck.facts`` re-exports :func:`deployment`; it imports neither facts
nor a check.
"""

import re
from collections.abc import Sequence
from typing import Any, NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import ProcInfo
from hvcheck.mountns import ProcRoot, process_root
from hvcheck.parsers.deployment import juju_unit, pve_vmid, snap_name
from hvcheck.processes import processes

__all__ = [
    "KINDS",
    "Deployment",
    "deployment",
    "device_fix",
    "instance_kvm_fix",
    "restart_instances",
    "virt_type_fix",
]

KINDS = (
    "kubevirt",
    "proxmox",
    "snap",
    "tripleo",
    "kolla",
    "openstack-helm",
    "kubernetes",
    "juju",
    "lxd",
    "devstack",
    "container",
    "libvirt",
    "qemu",
    "none",
)

KOLLA_CONFIG = "/var/lib/kolla/config_files/config.json"  # kolla_start's (kolla images)
TRIPLEO_CONFIG = "/var/lib/config-data/puppet-generated"
KOLLA_HOST_DIRS = ("/etc/kolla/nova-compute", "/etc/kolla/nova-libvirt")
JUJU_AGENTS = "/var/lib/juju/agents"


class Deployment(NamedTuple):
    """What runs this host's guests, and how it was recognised.

    ``containerised``: nova-compute or libvirtd (else the QEMU) runs in another mount
    namespace than hvcheck (None: cannot be told; libvirt's per-domain namespace for each
    QEMU does not count). ``snap``, ``juju_application``, ``lxd`` (the LXD container's
    name) and ``vmids`` (Proxmox: pid -> VM id) where they apply.
    """

    kind: str
    name: str
    containerised: Optional[bool]
    evidence: tuple[str, ...]
    snap: Optional[str] = None
    juju_application: Optional[str] = None
    lxd: Optional[str] = None
    vmids: tuple[tuple[int, int], ...] = ()

    def vmid(self, pid: int) -> Optional[int]:
        return dict(self.vmids).get(pid)

    def virt_type_fix(self, value: str, current: Optional[str]) -> str:
        """See :func:`virt_type_fix`."""
        return virt_type_fix(self, value, current)

    def instance_kvm_fix(self, pid: Optional[int]) -> Optional[str]:
        """See :func:`instance_kvm_fix`."""
        return instance_kvm_fix(self, pid)

    def restart_instances(self) -> str:
        """See :func:`restart_instances`."""
        return restart_instances(self)

    def device_fix(self) -> str:
        """See :func:`device_fix`."""
        return device_fix(self)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "containerised": self.containerised,
            "evidence": list(self.evidence),
            "knobs": {"virt_type": virt_type_fix(self, "kvm", None)},
        }
        if self.snap:
            out["snap"] = self.snap
        if self.juju_application:
            out["juju_application"] = self.juju_application
        if self.lxd:
            out["lxd_container"] = self.lxd
        if self.vmids:
            out["vmids"] = {str(p): v for p, v in self.vmids}
        if self.kind in ("proxmox", "kubevirt"):
            out["knobs"]["instance_kvm"] = instance_kvm_fix(self, None) or ""
        return out


def deployment(ctx: Context) -> Deployment:
    """This host's deployment (see the module's kinds), once per run."""
    return ctx.fact("deployment", _detect)


# ---------------------------------------------------------------------------------- evidence
def _cgroup(ctx: Context, pid: int) -> str:
    try:
        return ctx.host.read_opt(f"/proc/{pid}/cgroup") or ""
    except OSError:
        return ""


def _in_tree(ctx: Context, root: ProcRoot, path: str) -> Optional[str]:
    """``path`` as the process sees it, where it exists there (the path read)."""
    for prefix in root.roots:
        if ctx.host.exists(f"{prefix}{path}"):
            return f"{prefix}{path}"
    return None


def _snap_of(p: ProcInfo, cgroup: str) -> Optional[str]:
    name = snap_name(p.exe) or snap_name(p.argv[0] if p.argv else None)
    if name is None and len(p.argv) > 1:
        name = snap_name(p.argv[1])  # an interpreter running the snap's script
    if name is None:
        m = re.search(r"/snap\.([a-z0-9][a-z0-9-]*)\.", cgroup)
        name = m.group(1) if m else None
    return name


def _lxd_container(cgroup: str) -> Optional[str]:
    """The LXD container of a cgroup path: ``/lxc.payload.<name>`` (LXD 4.0+) or
    ``/lxc/<name>`` (older liblxc layouts)."""
    m = re.search(r"/lxc\.payload\.([^/\s]+)", cgroup) or re.search(r"/lxc/([^/\s]+)", cgroup)
    return m.group(1) if m else None


def _juju_units(ctx: Context, roots: Sequence[ProcRoot]) -> list[tuple[str, str]]:
    """``(application, agent directory)`` of the Juju units on the host and in the trees of
    the processes (a unit in an LXD container), nova-compute charms first."""
    found: list[tuple[str, str]] = []
    prefixes = [""] + [p for r in roots for p in r.roots if p]
    for prefix in dict.fromkeys(prefixes):
        base = f"{prefix}{JUJU_AGENTS}"
        try:
            names = ctx.host.listdir(base)
        except OSError:
            continue
        for n in names:
            unit = juju_unit(n)
            if unit is not None:
                found.append((unit[0], f"{base}/{n}"))
    found.sort(key=lambda u: ("nova-compute" not in u[0], u[0]))
    return found


def _detect(ctx: Context) -> Deployment:
    host = ctx.host
    nova = processes(ctx, "nova-compute")
    daemons = processes(ctx, "libvirtd")
    qemus = processes(ctx, "qemu")
    launchers = processes(ctx, "virt-launcher")
    services = nova[:1] + daemons[:1]
    subjects = services + launchers[:1] + qemus[:1]
    cg = {p.pid: _cgroup(ctx, p.pid) for p in subjects}
    roots = {p.pid: process_root(ctx, p.pid) for p in subjects}
    judged = [roots[p.pid] for p in (services or qemus[:1])]
    containerised: Optional[bool] = None
    if any(r.other_ns for r in judged):
        containerised = True
    elif judged and all(r.other_ns is False for r in judged):
        containerised = False
    ev: list[str] = [
        f"{_role(p)} pid {p.pid}: {roots[p.pid].why}"
        for p in services
        if roots[p.pid].other_ns is not None
    ]

    def made(kind: str, name: str, more: Sequence[str] = (), **kw: Any) -> Deployment:
        return Deployment(kind, name, containerised, tuple([*more, *ev]), **kw)

    # KubeVirt: one pod per VM, its own launcher
    # argv joined on NUL (no token holds one, nor does the path): one search per QEMU
    kv_args = [q for q in qemus if "/var/run/kubevirt" in "\0".join(q.argv)]
    if launchers or kv_args:
        why = (
            [f"virt-launcher pid {launchers[0].pid}: {' '.join(launchers[0].argv[:1])}"]
            if launchers
            else [f"QEMU pid {kv_args[0].pid} uses /var/run/kubevirt paths"]
        )
        return made("kubevirt", "KubeVirt (virt-launcher pods)", why)

    # Proxmox VE
    vmids = tuple((q.pid, v) for q in qemus if (v := pve_vmid(q.argv)) is not None)
    if vmids or (not nova and not daemons and host.exists("/etc/pve")):
        why = [
            f"QEMU pid {p} runs VM {v} (-id {v}, /var/run/qemu-server/{v}.qmp)" for p, v in vmids
        ]
        return made("proxmox", "Proxmox VE (qemu-server)", why or ["/etc/pve exists"], vmids=vmids)

    # snaps
    for p in subjects:
        snap = _snap_of(p, cg[p.pid])
        if snap is not None:
            label = {
                "openstack-hypervisor": "snap openstack-hypervisor (Sunbeam / MicroStack)",
                "microstack": "snap microstack (MicroStack)",
            }.get(snap, f"snap {snap}")
            return made("snap", label, [f"{_role(p)} pid {p.pid} runs from snap {snap}"], snap=snap)

    # kolla images: kolla-ansible or TripleO
    kolla_image: list[str] = []
    for p in services:
        where = _in_tree(ctx, roots[p.pid], KOLLA_CONFIG) if roots[p.pid].prefix else None
        if where:
            kolla_image.append(f"{_role(p)} pid {p.pid} runs kolla_start's {where}")
        elif any(a.startswith("/var/lib/kolla/") for a in p.argv[:2]):
            kolla_image.append(f"{_role(p)} pid {p.pid} runs from /var/lib/kolla/venv")
    if host.exists(TRIPLEO_CONFIG) and (kolla_image or containerised):
        return made("tripleo", "TripleO (containers)", [*kolla_image, f"{TRIPLEO_CONFIG} exists"])
    kolla_dirs = [d for d in KOLLA_HOST_DIRS if host.exists(d)]
    if kolla_image or kolla_dirs:
        return made(
            "kolla",
            "kolla-ansible (containers)",
            [*kolla_image, *(f"{d} exists" for d in kolla_dirs)],
        )

    # Kubernetes pods
    pod_args = [a for p in nova for a in p.argv if a.startswith("/tmp/pod-shared/")]
    osh = [p for p in subjects if "/osh-libvirt" in cg[p.pid]]
    if pod_args or osh:
        why = [f"nova-compute reads {pod_args[0]}"] if pod_args else []
        why += [f"{_role(p)} pid {p.pid} is in openstack-helm's /osh-libvirt cgroup" for p in osh]
        return made("openstack-helm", "openstack-helm (Kubernetes pods)", why)
    pods = [p for p in subjects if "kubepods" in cg[p.pid]]
    if pods:
        return made(
            "kubernetes",
            "Kubernetes pods",
            [f"{_role(p)} pid {p.pid} is in a kubepods cgroup" for p in pods],
        )

    # Juju, LXD
    lxd = next((n for p in services for n in [_lxd_container(cg[p.pid])] if n), None)
    units = _juju_units(ctx, [roots[p.pid] for p in services])
    if units:
        app, where = units[0]
        why = [f"Juju unit {where}"] + ([f"in LXD container {lxd}"] if lxd else [])
        return made("juju", f"Juju (charm {app})", why, juju_application=app, lxd=lxd)
    if lxd:
        return made(
            "lxd", f"LXD container {lxd}", [f"libvirt/nova in LXD container {lxd}"], lxd=lxd
        )

    # DevStack
    cpu_conf = [a for p in nova for a in p.argv if a.endswith("/nova-cpu.conf")]
    units_dev = [p for p in subjects if "devstack@" in cg[p.pid]]
    if cpu_conf or units_dev:
        why = [f"nova-compute reads {cpu_conf[0]}"] if cpu_conf else []
        why += [f"{_role(p)} pid {p.pid} runs in a devstack@ unit" for p in units_dev]
        return made("devstack", "DevStack", why)

    if containerised:
        engines = [
            k for p in services for k in ("docker", "libpod", "containerd") if k in cg[p.pid]
        ]
        return made(
            "container",
            f"a container ({engines[0]})" if engines else "a container",
            [f"cgroup mentions {engines[0]}"] if engines else [],
        )
    if nova or daemons or host.exists("/etc/libvirt/qemu.conf"):
        what = "libvirt and nova-compute" if nova else "libvirt"
        return made("libvirt", f"{what} from the distribution's packages")
    if qemus:
        return made("qemu", "QEMU without libvirt", [f"{len(qemus)} QEMU process(es)"])
    return made("none", "no QEMU, libvirt or nova found")


def _role(p: ProcInfo) -> str:
    from hvcheck.processes import is_libvirtd, is_nova_compute, is_virt_launcher

    if is_nova_compute(p):
        return "nova-compute"
    if is_libvirtd(p):
        return "libvirtd"
    if is_virt_launcher(p):
        return "virt-launcher"
    return "QEMU"


# ---------------------------------------------------------------------------------- knobs
def virt_type_fix(dep: Deployment, value: str, current: Optional[str]) -> str:
    """The lasting way to set nova's ``[libvirt] virt_type`` to ``value`` on this deployment;
    ``current``: the file (``path:line``) it is set in now, named for a packaged install."""
    k = dep.kind
    if k == "kolla":
        return (
            f'set nova_compute_virt_type: "{value}" in kolla-ansible\'s /etc/kolla/globals.yml '
            "(an override setting [libvirt] virt_type in /etc/kolla/config/nova.conf or "
            "/etc/kolla/config/nova/nova-compute.conf wins over it: change that instead) and "
            "run kolla-ansible reconfigure: it rewrites /etc/kolla/nova-compute/nova.conf, "
            "which the nova_compute container copies to /etc/nova/nova.conf at every start "
            "(an edit inside the container is lost)"
        )
    if k == "tripleo":
        return (
            f"set NovaComputeLibvirtType: {value} under parameter_defaults in an environment "
            "file and re-run openstack overcloud deploy with it: puppet regenerates "
            f"{TRIPLEO_CONFIG}/nova_libvirt/etc/nova/nova.conf, which the nova_compute "
            "container reads (an edit there is lost at the next deploy)"
        )
    if k == "openstack-helm":
        return (
            f"set conf.nova.libvirt.virt_type: {value} in the nova chart's values and upgrade "
            f"the release (helm upgrade ... --set conf.nova.libvirt.virt_type={value}): the "
            "pod's /etc/nova/nova.conf is rendered from the chart at every start"
        )
    if k == "kubernetes":
        return (
            f"set [libvirt] virt_type = {value} in the ConfigMap or Secret the nova-compute "
            "pod's nova.conf comes from (an edit inside the running pod is lost when it is "
            "replaced) and restart the pod"
        )
    if k == "juju":
        app = dep.juju_application or "nova-compute"
        return (
            f"juju config {app} virt-type={value} (the charm rewrites nova's configuration at "
            "every hook: a hand edit is lost)"
        )
    if k == "snap":
        snap = dep.snap or "<snap>"
        setting = {
            "openstack-hypervisor": "compute.virt-type",
            "microstack": "config.nova.virt-type",
        }.get(snap)
        if setting:
            return (
                f"snap set {snap} {setting}={value} (the snap renders nova's configuration "
                f"under /var/snap/{snap}/common from its settings: a hand edit is lost)"
            )
        return (
            f"change the {snap} snap's own setting for it (snap get {snap}): nova's "
            f"configuration under /var/snap/{snap}/common is the snap's to render"
        )
    if k == "devstack":
        return (
            f"set LIBVIRT_TYPE={value} in devstack's local.conf ([[local|localrc]]), which the "
            "next stack.sh writes to /etc/nova/nova-cpu.conf; for the running stack set "
            f"[libvirt] virt_type = {value} in /etc/nova/nova-cpu.conf and restart "
            "devstack@n-cpu"
        )
    where = current or "/etc/nova/nova.conf"
    if k in ("lxd", "container"):
        return (
            f"set [libvirt] virt_type = {value} in {where} as the container sees it (and in "
            "whatever builds the container, or the next one starts without it), then restart "
            "nova-compute"
        )
    return f"set [libvirt] virt_type = {value} in {where} and restart nova-compute"


def instance_kvm_fix(dep: Deployment, pid: Optional[int]) -> Optional[str]:
    """For a guest running under TCG where no nova asks for it: the setting of the tool that
    started it (Proxmox VE's per-VM ``kvm`` option, KubeVirt's ``useEmulation``); None for
    other deployments."""
    if dep.kind == "proxmox":
        vmid = dep.vmid(pid) if pid is not None else None
        v = str(vmid) if vmid is not None else "<vmid>"
        return (
            f"qm set {v} --kvm 1 (the VM's kvm option; qemu-server starts it with accel=tcg "
            f"without), then qm stop {v} && qm start {v}: the QEMU process must be restarted"
        )
    if dep.kind == "kubevirt":
        return (
            "KubeVirt runs a VMI emulated only when "
            "spec.configuration.developerConfiguration.useEmulation allows it and its "
            "virt-launcher pod has no /dev/kvm: make /dev/kvm usable on this node (virt-handler "
            "then offers devices.kubevirt.io/kvm), set useEmulation: false in the KubeVirt CR "
            "(kubectl edit kubevirt kubevirt -n kubevirt) so that no VMI starts emulated, and "
            "restart the VMI (virtctl restart <vm>)"
        )
    return None


def restart_instances(dep: Deployment) -> str:
    """How to restart a guest's QEMU process here (a reboot inside the guest keeps it)."""
    if dep.kind == "proxmox":
        return "qm stop <vmid> && qm start <vmid> for each (a reboot inside the guest keeps QEMU)"
    if dep.kind == "kubevirt":
        return "virtctl restart <vm> for each (a reboot inside the guest keeps QEMU)"
    if dep.kind == "qemu":
        return "stop and start each QEMU again (a reboot inside the guest keeps QEMU)"
    return (
        "nova: stop/start or cold-migrate them; plain libvirt: virsh destroy/start (a reboot "
        "inside the guest is not enough: the QEMU process must be restarted)"
    )


def device_fix(dep: Deployment) -> str:
    """How to give this deployment's container /dev/kvm for good (its definition, not a
    write to the cgroup's devices.allow, which the next start forgets)."""
    if dep.lxd:
        return (
            f"lxc config device add {dep.lxd} kvm unix-char source=/dev/kvm, then restart the "
            "container"
        )
    if dep.kind in ("kubevirt", "openstack-helm", "kubernetes"):
        return (
            "give the pod the device (a device plugin resource such as KubeVirt's "
            "devices.kubevirt.io/kvm, or a privileged container with /dev mounted) and "
            "recreate it"
        )
    if dep.kind in ("kolla", "tripleo", "container"):
        return (
            "run the container with the device (docker/podman --device /dev/kvm, or privileged "
            "with /dev mounted as kolla's nova_libvirt is) and recreate it"
        )
    return "give the container the device in its definition and restart it"
