"""Pure readings of what tells how a host is deployed: cgroup membership
(``/proc/<pid>/cgroup``), a cgroup v1 device whitelist (``devices.list``), snap paths, Juju
unit directories and Proxmox VE's QEMU command lines. No I/O.

``/proc/<pid>/cgroup`` (cgroups(7)): one ``hierarchy-ID:controller-list:cgroup-path`` line per
hierarchy; cgroup v2's unified hierarchy is ``0::/path``. A Docker container on a cgroup v1
host, as the kernel prints it:

>>> lines = parse_proc_cgroup('''12:devices:/docker/3f0c3e9b8a1d
... 11:memory:/docker/3f0c3e9b8a1d
... 1:name=systemd:/docker/3f0c3e9b8a1d
... ''')
>>> [(c.controllers, c.path) for c in lines][0]
(('devices',), '/docker/3f0c3e9b8a1d')
>>> devices_cgroup(lines)
'/docker/3f0c3e9b8a1d'

A container's device whitelist (Documentation/admin-guide/cgroup-v1/devices.rst: ``type
major:minor access``, ``a *:* rwm`` when everything is allowed) that leaves /dev/kvm out:

>>> rules = parse_devices_list("c 1:3 rwm\\nc 1:5 rwm\\nc 136:* rwm\\nc 10:200 rwm\\n")
>>> device_allowed(rules, "c", 10, 232)
False
>>> device_allowed(parse_devices_list("a *:* rwm\\n"), "c", 10, 232)
True
"""

import posixpath
import re
from collections.abc import Sequence
from typing import NamedTuple, Optional

__all__ = [
    "CgroupLine",
    "DeviceRule",
    "cgroup_paths",
    "device_allowed",
    "devices_cgroup",
    "juju_unit",
    "parse_devices_list",
    "parse_proc_cgroup",
    "pve_vmid",
    "snap_name",
]


class CgroupLine(NamedTuple):
    hierarchy: int
    controllers: tuple[str, ...]  # () for cgroup v2's unified hierarchy
    path: str


def parse_proc_cgroup(text: str) -> list[CgroupLine]:
    """The lines of ``/proc/<pid>/cgroup``; malformed ones are left out. Never raises."""
    out: list[CgroupLine] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()):
            continue
        controllers = tuple(c for c in parts[1].split(",") if c)
        out.append(CgroupLine(int(parts[0]), controllers, parts[2]))
    return out


def devices_cgroup(lines: Sequence[CgroupLine]) -> Optional[str]:
    """The path of the cgroup v1 ``devices`` hierarchy, or None (cgroup v2 only, where the
    device filter is an eBPF program attached to the cgroup and has no file to read)."""
    for c in lines:
        if "devices" in c.controllers:
            return c.path
    return None


def cgroup_paths(lines: Sequence[CgroupLine]) -> list[str]:
    """Every distinct cgroup path of the process, the unified (v2) one first."""
    paths = [c.path for c in lines if not c.controllers] + [c.path for c in lines]
    return list(dict.fromkeys(paths))


class DeviceRule(NamedTuple):
    """One whitelist entry: ``type`` a (all), c or b; major/minor None for ``*``."""

    type: str
    major: Optional[int]
    minor: Optional[int]
    access: str  # r, w, m


_RULE = r"([abc]) (\*|\d+):(\*|\d+) ([rwm]+)"  # compiled where a devices.list is read


def parse_devices_list(text: str) -> list[DeviceRule]:
    """``devices.list`` of a cgroup v1 device cgroup (the kernel's devcgroup_seq_show:
    ``a *:* rwm`` for a cgroup that allows everything)."""
    out: list[DeviceRule] = []
    rule = re.compile(_RULE)
    for line in text.splitlines():
        m = rule.fullmatch(line.strip())
        if not m:
            continue
        major = None if m.group(2) == "*" else int(m.group(2))
        minor = None if m.group(3) == "*" else int(m.group(3))
        out.append(DeviceRule(m.group(1), major, minor, m.group(4)))
    return out


def device_allowed(rules: Sequence[DeviceRule], kind: str, major: int, minor: int) -> bool:
    """Whether the whitelist lets a process open the device read-write (``r`` and ``w``)."""
    for r in rules:
        if r.type != "a" and r.type != kind:
            continue
        if r.type != "a" and r.major is not None and r.major != major:
            continue
        if r.type != "a" and r.minor is not None and r.minor != minor:
            continue
        if "r" in r.access and "w" in r.access:
            return True
    return False


def snap_name(path: Optional[str]) -> Optional[str]:
    """The snap a path belongs to: ``/snap/<name>/<revision|current>/...`` (what snapd mounts
    each snap's squashfs at) or ``/var/snap/<name>/...`` (``$SNAP_DATA``/``$SNAP_COMMON``).

    >>> snap_name("/snap/openstack-hypervisor/211/usr/sbin/libvirtd")
    'openstack-hypervisor'
    >>> snap_name("/var/snap/microstack/common/etc/nova/nova.conf.d/nova-snap.conf")
    'microstack'
    >>> snap_name("/usr/sbin/libvirtd") is None
    True
    """
    if not path:
        return None
    parts = posixpath.normpath(path).split("/")
    if len(parts) > 3 and parts[1] == "snap" and parts[2]:
        return parts[2]
    if len(parts) > 4 and parts[1] == "var" and parts[2] == "snap" and parts[3]:
        return parts[3]
    return None


def juju_unit(name: str) -> Optional[tuple[str, int]]:
    """``(application, unit number)`` of a Juju agent directory name
    (``/var/lib/juju/agents/unit-<application>-<n>``).

    >>> juju_unit("unit-nova-compute-0")
    ('nova-compute', 0)
    >>> juju_unit("machine-3") is None
    True
    """
    m = re.fullmatch(r"unit-([a-z][a-z0-9-]*?)-(\d+)", name)
    return (m.group(1), int(m.group(2))) if m else None


def pve_vmid(argv: Sequence[str]) -> Optional[int]:
    """The VM id of a QEMU started by Proxmox VE's qemu-server: ``-id <vmid>``
    (PVE::QemuServer config_to_command, before ``-name``), confirmed by its QMP socket
    ``/var/run/qemu-server/<vmid>.qmp``; None for any other QEMU.

    >>> pve_vmid(["/usr/bin/kvm", "-id", "8006", "-name", "simple", "-chardev",
    ...           "socket,id=qmp,path=/var/run/qemu-server/8006.qmp,server=on,wait=off"])
    8006
    >>> pve_vmid(["qemu-system-x86_64", "-id", "7"]) is None
    True
    """
    for i, a in enumerate(argv[:-1]):
        if a == "-id" and argv[i + 1].isascii() and argv[i + 1].isdigit():
            vmid = argv[i + 1]
            if any(f"/qemu-server/{vmid}.qmp" in x for x in argv):
                return int(vmid)
    return None
