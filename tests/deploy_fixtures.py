"""Compose the fixtures of issue 13: hosts whose nova, libvirt and QEMU run in containers,
pods, snaps or packaged deployments, each with its right answer (``expected.json``).

Composed, not captured: no such deployment runs on this project's machines. Each process
table follows what the deployment's own source starts (cited in each fixture's
``source``); the host parts (cpuinfo, modules, the /dev/kvm probe) are those of a healthy
Intel KVM host, the same as ``tests/snap.py``'s. Run ``python tests/deploy_fixtures.py`` to
(re)write them under ``fixtures/``; ``tests/test_deployments.py`` checks that the committed
fixtures are what this module writes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Optional

PROJECT = Path(__file__).resolve().parent.parent

HOST_NS = "mnt:[4026531841]"

FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr "
    "pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 "
    "ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx "
    "est tm2 ssse3 fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic "
    "movbe popcnt aes xsave avx f16c rdrand lahf_lm abm ept vpid fsgsbase "
    "bmi1 avx2 smep bmi2 erms invpcid"
)
CPUINFO = "".join(
    f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 63\n"
    f"model name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz\nflags\t\t: {FLAGS}\n\n"
    for n in range(2)
)
MODULES = (
    "kvm_intel 380928 4 - Live 0x0000000000000000\n"
    "kvm 1146880 1 kvm_intel, Live 0x0000000000000000\n"
    "vhost_net 32768 2 - Live 0x0000000000000000\n"
    "tun 61440 5 vhost_net, Live 0x0000000000000000\n"
)

UBUNTU_2204 = (
    'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
    'VERSION="22.04.4 LTS (Jammy Jellyfish)"\nVERSION_CODENAME=jammy\nID=ubuntu\n'
    "ID_LIKE=debian\nUBUNTU_CODENAME=jammy\n"
)
UBUNTU_2004 = (
    'NAME="Ubuntu"\nVERSION="20.04.6 LTS (Focal Fossa)"\nID=ubuntu\nID_LIKE=debian\n'
    'PRETTY_NAME="Ubuntu 20.04.6 LTS"\nVERSION_ID="20.04"\nVERSION_CODENAME=focal\n'
    "UBUNTU_CODENAME=focal\n"
)
DEBIAN_12 = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
    'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
)
RHEL_94 = (
    'NAME="Red Hat Enterprise Linux"\nVERSION="9.4 (Plow)"\nID="rhel"\nID_LIKE="fedora"\n'
    'VERSION_ID="9.4"\nPLATFORM_ID="platform:el9"\n'
    'PRETTY_NAME="Red Hat Enterprise Linux 9.4 (Plow)"\n'
)

UBUNTU_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"
)
UBUNTU_GROUP = "root:x:0:\ndaemon:x:1:\nkvm:x:108:\nnogroup:x:65534:\nubuntu:x:1000:\n"

# the monitor of a libvirt-started QEMU (qemuBuildMonitorCommandLine): what marks it as libvirt's
LIBVIRT_MONITOR = ["-chardev", "socket,id=charmonitor,fd=30,server=on,wait=off"]
LIBVIRT_MONITOR += ["-mon", "chardev=charmonitor,id=monitor,mode=control"]

KVM_FDS = {
    "0": "/dev/null",
    "1": "pipe:[61234]",
    "2": "pipe:[61234]",
    "3": "socket:[61240]",
    "11": "/dev/kvm",
    "12": "anon_inode:kvm-vm",
    "13": "anon_inode:kvm-vcpu:0",
    "14": "anon_inode:kvm-vcpu:1",
}
TCG_FDS = {
    "0": "/dev/null",
    "1": "pipe:[71234]",
    "2": "pipe:[71234]",
    "3": "socket:[71240]",
    "4": "anon_inode:[eventfd]",
    "5": "anon_inode:[signalfd]",
}


class Fixture(NamedTuple):
    name: str
    files: dict[str, str | bytes]
    links: dict[str, str]
    marker: dict[str, Any]
    expected: dict[str, Any]


class Host:
    """A snapshot being composed."""

    def __init__(
        self,
        os_release: str,
        *,
        hostname: str,
        kernel: str = "5.15.0-105-generic",
        kvm_gid: int = 108,
        kvm_group: Optional[str] = "kvm",
        passwd: str = UBUNTU_PASSWD,
        group: str = UBUNTU_GROUP,
    ) -> None:
        self.files: dict[str, str | bytes] = {
            "proc/cpuinfo": CPUINFO,
            "proc/modules": MODULES,
            "proc/cmdline": f"BOOT_IMAGE=/vmlinuz-{kernel} root=/dev/sda1 ro quiet\n",
            "sys/module/kvm_intel/parameters/nested": "Y\n",
            "dev/kmsg": f"6,1,0,-;Linux version {kernel}\n",
            "etc/os-release": os_release,
            "etc/passwd": passwd,
            "etc/group": group,
        }
        self.links: dict[str, str] = {}
        self.ns: dict[str, str] = {}

        def node(minor: int, mode: str, gid: int, grp: Optional[str]) -> dict[str, Any]:
            return {
                "type": "char",
                "major": 10,
                "minor": minor,
                "mode": mode,
                "uid": 0,
                "gid": gid,
                "owner": "root",
                "group": grp,
            }

        self.marker: dict[str, Any] = {
            "hostname": hostname,
            "arch": "x86_64",
            "kernel": kernel,
            "taken_as_uid": 0,
            "taken_at": "2026-12-01T10:00:00Z",
            "devices": {
                "/dev/kvm": node(232, "0660", kvm_gid, kvm_group),
                "/dev/vhost-net": node(238, "0660", kvm_gid, kvm_group),
                "/dev/net/tun": node(200, "0666", 0, "root"),
            },
            "probes": {"kvm": {"ok": True, "stage": "done", "api_version": 12, "uid": 0}},
        }

    def put(self, path: str, content: str | bytes) -> None:
        self.files[path.lstrip("/")] = content

    def proc(
        self,
        pid: int,
        argv: list[str],
        *,
        exe: str,
        uid: int = 0,
        gid: int = 0,
        groups: tuple[int, ...] = (),
        cgroup: Optional[str] = None,
        ns: Optional[str] = None,
        fds: Optional[dict[str, str]] = None,
        threads: Optional[list[str]] = None,
        root: Optional[dict[str, str | bytes]] = None,
        dev_kvm: bool = False,
    ) -> None:
        """One process: cmdline, comm, status, exe, and as much of the rest as is given;
        ``root``: files in its own tree (``proc/<pid>/root/<path>``); ``dev_kvm``: its tree
        has the host's /dev/kvm (a bind-mounted /dev), recorded as collect records a node
        stat'ed through ``/proc/<pid>/root``."""
        comm = os.path.basename(exe)[:15]
        base = f"proc/{pid}"
        self.files[f"{base}/cmdline"] = b"".join(a.encode() + b"\0" for a in argv)
        self.files[f"{base}/comm"] = comm + "\n"
        grp = "".join(f"{g} " for g in groups) or " "
        self.files[f"{base}/status"] = (
            f"Name:\t{comm}\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
            f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\nGroups:\t{grp}\n"
        )
        self.links[f"{base}/exe"] = exe
        if cgroup is not None:
            self.files[f"{base}/cgroup"] = cgroup
        if ns is not None:
            self.ns[str(pid)] = ns
        for n, target in (fds or {}).items():
            self.links[f"{base}/fd/{n}"] = target
        for i, name in enumerate(threads or []):
            self.files[f"{base}/task/{pid + i}/comm"] = name + "\n"
        for path, content in (root or {}).items():
            self.files[f"{base}/root/{path.lstrip('/')}"] = content
        if dev_kvm:
            self.marker["devices"][f"/{base}/root/dev/kvm"] = dict(
                self.marker["devices"]["/dev/kvm"]
            )

    def fixture(self, name: str, expected: dict[str, Any]) -> Fixture:
        marker = dict(self.marker)
        if self.ns:
            marker["mount_ns"] = {"self": HOST_NS, "processes": dict(self.ns)}
        return Fixture(name, dict(self.files), dict(self.links), marker, expected)


def nova_domain_xml(
    name: str, uuid: str, pid: int, *, domain_type: str, display: str, emulator: str
) -> str:
    """A running domain's status XML as libvirt writes it (qemuDomainSaveStatus:
    <domstatus> around the live <domain>), with the metadata nova's libvirt driver puts in
    every guest it defines (nova/virt/libvirt/config.py LibvirtConfigGuestMetaNovaInstance,
    namespace http://openstack.org/xmlns/libvirt/nova/1.1)."""
    return f"""<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit {name}
or other application using the libvirt API.
-->

<domstatus state='running' reason='booted' pid='{pid}'>
  <monitor path='/var/lib/libvirt/qemu/domain-1-{name}/monitor.sock' type='unix'/>
  <domain type='{domain_type}' id='1'>
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:package version="27.1.0"/>
        <nova:name>{display}</nova:name>
        <nova:creationTime>2026-11-30 09:12:44</nova:creationTime>
        <nova:flavor name="m1.small">
          <nova:memory>2048</nova:memory>
          <nova:disk>20</nova:disk>
          <nova:swap>0</nova:swap>
          <nova:ephemeral>0</nova:ephemeral>
          <nova:vcpus>2</nova:vcpus>
        </nova:flavor>
        <nova:owner>
          <nova:user uuid="6d2f3b5f4b1b4f7c9a4e2f1c0d9b8a71">alice</nova:user>
          <nova:project uuid="0c7a8e7a2f6b4d5e8c1a9b3d4e5f6a7b">web</nova:project>
        </nova:owner>
      </nova:instance>
    </metadata>
    <memory unit='KiB'>2097152</memory>
    <vcpu placement='static'>2</vcpu>
    <os>
      <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
      <boot dev='hd'/>
    </os>
    <devices>
      <emulator>{emulator}</emulator>
    </devices>
  </domain>
</domstatus>
"""


def libvirt_qemu_argv(
    binary: str, name: str, uuid: str, accel: str, state_dir: str = "/var/lib/libvirt/qemu"
) -> list[str]:
    """A QEMU command line as libvirt builds it for a nova guest (qemuBuildCommandLine)."""
    return [
        binary,
        "-name",
        f"guest={name},debug-threads=on",
        "-S",
        "-object",
        '{"qom-type":"secret","id":"masterKey0","format":"raw",'
        f'"file":"{state_dir}/domain-1-{name}/master-key.aes"}}',
        "-machine",
        "pc-q35-8.2,usb=off,dump-guest-core=off,memory-backend=pc.ram",
        "-accel",
        accel,
        "-cpu",
        "host" if accel == "kvm" else "qemu64",
        "-m",
        "2048",
        "-smp",
        "2,sockets=2,cores=1,threads=1",
        "-uuid",
        uuid,
        "-no-user-config",
        "-nodefaults",
        *LIBVIRT_MONITOR,
        "-rtc",
        "base=utc,driftfix=slew",
        "-no-shutdown",
        "-boot",
        "strict=on",
        "-msg",
        "timestamp=on",
    ]


# ---------------------------------------------------------------------------------- kolla
KOLLA_LIBVIRT_NS = "mnt:[4026532901]"
KOLLA_NOVA_NS = "mnt:[4026532950]"
KOLLA_QEMU_NS = "mnt:[4026533012]"
KOLLA_PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "kolla:x:42400:42400::/home/kolla:/usr/sbin/nologin\n"
    "qemu:x:42427:42427:qemu user:/:/sbin/nologin\n"
    "nova:x:42436:42436::/var/lib/nova:/usr/sbin/nologin\n"
)
KOLLA_GROUP = "root:x:0:\nkolla:x:42400:nova\nqemu:x:42427:nova\nnova:x:42436:\n"
# kolla-ansible ansible/roles/nova-cell/templates/qemu.conf.j2, rendered
KOLLA_QEMU_CONF = (
    'stdio_handler = "logd"\n\nuser = "nova"\ngroup = "nova"\n\n'
    "max_files =  32768\nmax_processes =  131072\n"
)
KOLLA_UUID = "9d8f7a2e-3c4b-4e5f-8a1b-2c3d4e5f6a7b"


def _kolla(virt_type: str) -> Host:
    h = Host(UBUNTU_2204, hostname="compute-01", kvm_gid=42427, kvm_group=None)
    docker = "0::/system.slice/docker-{}.scope\n"
    # kolla-ansible nova-cell/tasks/config-host.yml: 99-kolla-kvm.rules.j2 with qemu_user_gid
    h.put(
        "etc/udev/rules.d/99-kolla-kvm.rules",
        "# Part of Kolla Ansible OpenStack Nova deployment.\n\n"
        "# This ensures the /dev/kvm has proper permissions.\n"
        'KERNEL=="kvm", GROUP="42427", MODE="0660"\n',
    )
    nova_conf = (
        "[DEFAULT]\ndebug = False\nstate_path = /var/lib/nova\n\n"
        "[libvirt]\nconnection_uri = qemu+tcp://10.0.0.11/system\n"
        "live_migration_inbound_addr = 10.0.0.11\n"
        f"virt_type = {virt_type}\nnum_pcie_ports = 16\n"
    )
    # the host's copies kolla-ansible renders (node_config_directory /etc/kolla)
    h.put("etc/kolla/nova-compute/nova.conf", nova_conf)
    h.put("etc/kolla/nova-libvirt/qemu.conf", KOLLA_QEMU_CONF)
    h.proc(
        2101,
        ["/usr/sbin/libvirtd", "--listen"],
        exe="/usr/sbin/libvirtd",
        cgroup=docker.format("5b0c" * 16),
        ns=KOLLA_LIBVIRT_NS,
        root={
            "var/lib/kolla/config_files/config.json": json.dumps(
                {"command": "/usr/local/bin/kolla_nova_libvirt_start"}
            ),
            "etc/libvirt/qemu.conf": KOLLA_QEMU_CONF,
            "etc/passwd": KOLLA_PASSWD,
            "etc/group": KOLLA_GROUP,
        },
    )
    h.proc(
        2201,
        ["/var/lib/kolla/venv/bin/python3", "/var/lib/kolla/venv/bin/nova-compute"],
        exe="/usr/bin/python3.12",
        uid=42436,
        gid=42436,
        groups=(42400, 42427, 42436),
        cgroup=docker.format("7a1e" * 16),
        ns=KOLLA_NOVA_NS,
        root={
            "var/lib/kolla/config_files/config.json": json.dumps({"command": "nova-compute"}),
            "etc/nova/nova.conf": nova_conf,
        },
    )
    tcg = virt_type == "qemu"
    name = "instance-00000001"
    h.proc(
        3301,
        libvirt_qemu_argv("/usr/bin/qemu-system-x86_64", name, KOLLA_UUID, "tcg" if tcg else "kvm"),
        exe="/usr/bin/qemu-system-x86_64",
        uid=42436,
        gid=42436,
        groups=(42400, 42427, 42436),
        cgroup="0::/machine.slice/machine-qemu\\x2d1\\x2dinstance\\x2d00000001.scope/libvirt\n",
        ns=KOLLA_QEMU_NS,
        dev_kvm=True,
        fds=TCG_FDS if tcg else KVM_FDS,
        threads=[
            "qemu-system-x86",
            "CPU 0/TCG" if tcg else "CPU 0/KVM",
            "CPU 1/TCG" if tcg else "CPU 1/KVM",
        ],
        root={
            f"run/libvirt/qemu/{name}.xml": nova_domain_xml(
                name,
                KOLLA_UUID,
                3301,
                domain_type="qemu" if tcg else "kvm",
                display="web-1",
                emulator="/usr/bin/qemu-system-x86_64",
            ),
            "etc/passwd": KOLLA_PASSWD,
            "etc/group": KOLLA_GROUP,
        },
    )
    return h


KOLLA_SOURCE = (
    "composed (tests/deploy_fixtures.py) from kolla-ansible: nova-cell/templates/qemu.conf.j2 "
    "(user = nova), 99-kolla-kvm.rules.j2 (GROUP=qemu_user_gid 42427), nova.conf.d/"
    "libvirt.conf.j2 (virt_type = nova_compute_virt_type); kolla kolla/common/users.py (nova "
    "42436, qemu 42427) and docker/nova/nova-libvirt/Dockerfile.j2 (nova in group qemu)"
)


def kolla_ok() -> Fixture:
    h = _kolla("kvm")
    return h.fixture(
        "kolla-pivot-root-qemu-user-ok",
        {
            "description": "Issue 13 input 1: a kolla-ansible compute node. libvirtd and QEMU "
            "run in the nova_libvirt container, which pivot_root'ed into its own root: "
            "readlink /proc/PID/root prints '/', yet /proc/PID/ns/mnt differs from hvcheck's "
            "(the marker's mount_ns), so the domain's status XML (with Nova metadata) is read "
            "at /proc/3301/root/run/libvirt/qemu/instance-00000001.xml and the QEMU user in "
            "the container's /etc/passwd (nova, uid 42436; the host's passwd has no such "
            "user). /dev/kvm is 0660 root:42427 (kolla's udev rule); the running QEMU has "
            "uid 42436 and supplementary group 42427, so the QEMU user can open /dev/kvm.",
            "source": KOLLA_SOURCE,
            "status": "OK",
            "kvm_usable": True,
            "acceleration": "kvm",
            "virt_type": "kvm",
            "instances": {"instance-00000001": "kvm"},
            "checks": {
                "libvirt.qemu_user": "OK",
                "instances.accel": "OK",
                "nova.virt_type": "OK",
            },
            "summary_contains": {"libvirt.qemu_user": "nova (uid 42436) can open /dev/kvm"},
            "deployment": "kolla",
            "nova_display_names": {"instance-00000001": "web-1"},
        },
    )


def kolla_qemu() -> Fixture:
    h = _kolla("qemu")
    return h.fixture(
        "kolla-virt-type-qemu-on-kvm-host",
        {
            "description": "kolla-pivot-root-qemu-user-ok with virt_type = qemu in the "
            "nova_compute container's /etc/nova/nova.conf (nova_compute_virt_type: qemu): KVM "
            "is usable but every instance is emulated. The hint names what lasts: "
            "nova_compute_virt_type in kolla-ansible's globals.yml, which renders "
            "/etc/kolla/nova-compute/nova.conf, copied into the container at every start "
            "(an edit of the container's file is lost).",
            "source": KOLLA_SOURCE,
            "status": "WARNING",
            "kvm_usable": True,
            "acceleration": "tcg",
            "virt_type": "qemu",
            "instances": {"instance-00000001": "tcg"},
            "checks": {
                "nova.virt_type": "WARNING",
                "instances.accel": "OK",
                "libvirt.qemu_user": "OK",
            },
            "hint_contains": {"nova.virt_type": "nova_compute_virt_type"},
            "hint_contains_all": {
                "nova.virt_type": ["nova_compute_virt_type", "/etc/kolla/nova-compute/nova.conf"]
            },
            "deployment": "kolla",
            "nova_display_names": {"instance-00000001": "web-1"},
        },
    )


# ---------------------------------------------------------------------------------- sandbox
def build_sandbox() -> Fixture:
    h = Host(
        UBUNTU_2204,
        hostname="ci-runner-07",
        passwd=UBUNTU_PASSWD
        + "gitlab-runner:x:998:998:GitLab Runner:/home/gitlab-runner:/bin/bash\n",
        group=UBUNTU_GROUP + "gitlab-runner:x:998:\n",
    )
    # Ubuntu's systemd builds 50-udev-default.rules with -Ddev-kvm-mode=0660
    h.put(
        "usr/lib/udev/rules.d/50-udev-default.rules",
        'SUBSYSTEM=="misc", KERNEL=="tun", MODE="0666", OPTIONS+="static_node=net/tun"\n'
        'KERNEL=="kvm", GROUP="kvm", MODE="0660", OPTIONS+="static_node=kvm"\n',
    )
    h.proc(
        6100,
        [
            "qemu-system-x86_64",
            "-name",
            "ci-image-build",
            "-machine",
            "q35,accel=kvm:tcg",
            "-cpu",
            "max",
            "-m",
            "2048",
            "-smp",
            "2",
            "-display",
            "none",
            "-no-reboot",
            "-drive",
            "file=/builds/platform/image/disk.qcow2,if=virtio,format=qcow2",
            "-serial",
            "file:/builds/platform/image/serial.log",
        ],
        exe="/usr/bin/qemu-system-x86_64",
        uid=998,
        gid=998,
        groups=(998,),
        cgroup="0::/system.slice/gitlab-runner.service\n",
        ns=HOST_NS,
        fds=TCG_FDS,
    )
    return h.fixture(
        "qemu-default-accel-build-sandbox-user",
        {
            "description": "Issue 13 input 2: a CI build sandbox boots an image with QEMU's "
            "usual request -machine accel=kvm:tcg, as the runner's user gitlab-runner (uid "
            "998), who is not in group kvm; /dev/kvm is 0660 root:kvm. QEMU cannot open "
            "/dev/kvm and falls back to TCG silently: no KVM fd. The hint names the user, "
            "the group it lacks and the lasting fix.",
            "source": "composed (tests/deploy_fixtures.py); Ubuntu's 50-udev-default.rules "
            "kvm line; the accel=kvm:tcg request as CI scripts write it",
            "status": "CRITICAL",
            "kvm_usable": True,
            "acceleration": "tcg",
            "instances": {"ci-image-build": "tcg"},
            "checks": {"instances.accel": "CRITICAL"},
            "summary_contains": {"instances.accel": "silent fallback to TCG"},
            "hint_contains_all": {
                "instances.accel": [
                    "gitlab-runner",
                    "not in group kvm",
                    "usermod -aG kvm gitlab-runner",
                ]
            },
            "deployment": "qemu",
        },
    )


# ---------------------------------------------------------------------------------- helm
def openstack_helm() -> Fixture:
    h = Host(UBUNTU_2204, hostname="k8s-worker-3")
    pod = (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/"
        "cri-containerd-{}.scope\n"
    )
    nova_ns, libvirt_ns = "mnt:[4026533201]", "mnt:[4026533150]"
    loci_passwd = "root:x:0:0:root:/root:/bin/bash\nnova:x:42424:42424::/var/lib/nova:/bin/false\n"
    h.proc(
        7000,
        ["libvirtd", "--listen"],
        exe="/usr/sbin/libvirtd",
        cgroup="0::/system.slice/run-r0b1c2d3e4f5.scope\n",
        ns=libvirt_ns,
        dev_kvm=True,
        root={
            # openstack-helm libvirt/values.yaml conf.qemu
            "etc/libvirt/qemu.conf": 'stdio_handler = "file"\nuser = "nova"\ngroup = "kvm"\n',
            "etc/passwd": loci_passwd,
            "etc/group": "root:x:0:\nkvm:x:108:nova\nnova:x:42424:\n",
        },
    )
    h.proc(
        7100,
        [
            "/var/lib/openstack/bin/python3",
            "/var/lib/openstack/bin/nova-compute",
            "--config-file",
            "/etc/nova/nova.conf",
            "--config-file",
            "/tmp/pod-shared/nova-console.conf",
            "--config-file",
            "/tmp/pod-shared/nova-libvirt.conf",
            "--config-file",
            "/tmp/pod-shared/nova-hypervisor.conf",
            "--config-dir",
            "/etc/nova/nova.conf.d",
        ],
        exe="/usr/bin/python3.10",
        uid=42424,
        gid=42424,
        groups=(42424,),
        cgroup=pod.format("3f2e1d0c_9b8a_4765_8432_10fedcba9876", "c0ffee" * 10 + "abcd"),
        ns=nova_ns,
        root={
            # tools/deployment/component/compute-kit/compute-kit.sh: conf.nova.libvirt
            "etc/nova/nova.conf": "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n\n"
            "[libvirt]\nconnection_uri = qemu+unix:///system?socket=/run/libvirt/libvirt-sock\n"
            "virt_type = qemu\ncpu_mode = none\n",
            "tmp/pod-shared/nova-console.conf": "[vnc]\nserver_proxyclient_address = 10.0.2.13\n",
            "tmp/pod-shared/nova-libvirt.conf": (
                "[libvirt]\nlive_migration_inbound_addr = 10.0.2.13\n"
            ),
            "tmp/pod-shared/nova-hypervisor.conf": "[DEFAULT]\nmy_ip = 10.0.2.13\n",
            "etc/nova/nova.conf.d/.keep": "",
        },
    )
    return h.fixture(
        "openstack-helm-virt-type-qemu",
        {
            "description": "openstack-helm's nova and libvirt charts on a Kubernetes worker "
            "that has KVM: the nova-compute pod's nova.conf, rendered from the chart's values "
            "(compute-kit.sh sets conf.nova.libvirt.virt_type: qemu for its gate), makes every "
            "instance emulated. The hint names the chart value, not the pod's file.",
            "source": "composed (tests/deploy_fixtures.py) from openstack-helm "
            "nova/templates/bin/_nova-compute.sh.tpl (the /tmp/pod-shared config files), "
            "libvirt/values.yaml (conf.qemu user nova, group kvm), "
            "tools/deployment/component/compute-kit/compute-kit.sh",
            "status": "WARNING",
            "kvm_usable": True,
            "virt_type": "qemu",
            "checks": {"nova.virt_type": "WARNING", "libvirt.qemu_user": "OK"},
            "hint_contains": {"nova.virt_type": "conf.nova.libvirt.virt_type: kvm"},
            "deployment": "openstack-helm",
        },
    )


# ---------------------------------------------------------------------------------- juju
JUJU_NOVA_CONF = (
    "###############################################################################\n"
    "# [ WARNING ]\n"
    "# Configuration file maintained by Juju. Local changes may be overwritten.\n"
    "###############################################################################\n"
    "[DEFAULT]\nverbose=False\ndebug=False\nstate_path=/var/lib/nova\n"
)
# Ubuntu's nova-compute-qemu package (the charm installs it for virt-type=qemu)
COMPUTE_QEMU_CONF = "[DEFAULT]\ncompute_driver=libvirt.LibvirtDriver\n[libvirt]\nvirt_type=qemu\n"
UBUNTU_NOVA_ARGV = [
    "/usr/bin/python3",
    "/usr/bin/nova-compute",
    "--config-file=/etc/nova/nova.conf",
    "--config-file=/etc/nova/nova-compute.conf",
    "--log-file=/var/log/nova/nova-compute.log",
]
UBUNTU_QEMU_PASSWD = (
    UBUNTU_PASSWD
    + "nova:x:64060:64060::/var/lib/nova:/bin/sh\n"
    + "libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n"
)
UBUNTU_QEMU_GROUP = UBUNTU_GROUP.replace("kvm:x:108:", "kvm:x:108:nova") + (
    "libvirt:x:119:nova\nlibvirt-qemu:x:64055:nova\nnova:x:64060:\n"
)


def juju() -> Fixture:
    h = Host(UBUNTU_2204, hostname="node-07", passwd=UBUNTU_QEMU_PASSWD, group=UBUNTU_QEMU_GROUP)
    h.put("var/lib/juju/agents/machine-7/agent.conf", "tag: machine-7\n")
    h.put("var/lib/juju/agents/unit-nova-compute-0/agent.conf", "tag: unit-nova-compute-0\n")
    h.put("etc/nova/nova.conf", JUJU_NOVA_CONF)
    h.put("etc/nova/nova-compute.conf", COMPUTE_QEMU_CONF)
    h.put("etc/libvirt/qemu.conf", 'cgroup_device_acl = [\n   "/dev/null", "/dev/kvm",\n]\n')
    h.proc(
        1500,
        ["/usr/sbin/libvirtd"],
        exe="/usr/sbin/libvirtd",
        cgroup="0::/system.slice/libvirtd.service\n",
        ns=HOST_NS,
    )
    h.proc(
        1600,
        UBUNTU_NOVA_ARGV,
        exe="/usr/bin/python3.10",
        uid=64060,
        gid=64060,
        groups=(108, 119, 64055, 64060),
        cgroup="0::/system.slice/nova-compute.service\n",
        ns=HOST_NS,
    )
    return h.fixture(
        "juju-nova-compute-virt-type-qemu",
        {
            "description": "The nova-compute charm on bare metal deployed with virt-type=qemu "
            "(charm-nova-compute installs nova-compute-qemu, whose /etc/nova/nova-compute.conf "
            "sets [libvirt] virt_type=qemu) on a host with KVM. The hint names the charm's "
            "option: juju config nova-compute virt-type=kvm.",
            "source": "composed (tests/deploy_fixtures.py) from charm-nova-compute config.yaml "
            "(virt-type) and templates (the 'maintained by Juju' header)",
            "status": "WARNING",
            "kvm_usable": True,
            "virt_type": "qemu",
            "checks": {"nova.virt_type": "WARNING", "libvirt.qemu_user": "OK"},
            "hint_contains": {"nova.virt_type": "juju config nova-compute virt-type=kvm"},
            "deployment": "juju",
        },
    )


LXD_NAME = "juju-4f1a2b-0-lxd-1"
# LXD's default device whitelist for a container (lxd/instance/drivers/driver_lxc.go
# initLXC: "c *:* m", "b *:* m" and the standard character devices); no c 10:232
LXD_DEVICES = (
    "c *:* m\nb *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\n"
    "c 5:1 rwm\nc 5:2 rwm\nc 136:* rwm\nc 10:229 rwm\nc 10:200 rwm\n"
)


def lxd_device_cgroup() -> Fixture:
    h = Host(UBUNTU_2004, hostname="node-02", kernel="5.4.0-182-generic")
    ns = "mnt:[4026532377]"

    def cg(unit: str) -> str:
        path = f"/lxc.payload.{LXD_NAME}/system.slice/{unit}"
        return (
            f"12:devices:{path}\n11:memory:{path}\n4:cpu,cpuacct:{path}\n"
            f"1:name=systemd:{path}\n0::{path}\n"
        )

    h.put(
        f"sys/fs/cgroup/devices/lxc.payload.{LXD_NAME}/system.slice/libvirtd.service/devices.list",
        LXD_DEVICES,
    )
    container = {
        "etc/passwd": UBUNTU_QEMU_PASSWD,
        "etc/group": UBUNTU_QEMU_GROUP,
        "var/lib/juju/agents/unit-nova-compute-0/agent.conf": "tag: unit-nova-compute-0\n",
    }
    h.proc(
        8000,
        ["/usr/sbin/libvirtd"],
        exe="/usr/sbin/libvirtd",
        cgroup=cg("libvirtd.service"),
        ns=ns,
        root={
            **container,
            "etc/libvirt/qemu.conf": 'cgroup_device_acl = [\n   "/dev/null", "/dev/kvm",\n]\n',
        },
    )
    h.proc(
        8100,
        UBUNTU_NOVA_ARGV,
        exe="/usr/bin/python3.8",
        uid=64060,
        gid=64060,
        groups=(108, 119, 64055, 64060),
        cgroup=cg("nova-compute.service"),
        ns=ns,
        root={
            **container,
            "etc/nova/nova.conf": JUJU_NOVA_CONF,
            "etc/nova/nova-compute.conf": COMPUTE_QEMU_CONF.replace("qemu", "kvm"),
        },
    )
    return h.fixture(
        "lxd-container-device-cgroup-denies-kvm",
        {
            "description": "A nova-compute charm unit placed in a (privileged) LXD container, "
            f"{LXD_NAME}, without /dev/kvm added to it: the container's cgroup v1 device "
            "whitelist (devices.list of libvirtd's cgroup) has no c 10:232, so its QEMU cannot "
            "open /dev/kvm whatever the node's mode: KVM guests fail to start. The reason "
            "named is the device cgroup, the fix LXD's device for the container.",
            "source": "composed (tests/deploy_fixtures.py); cgroup v1 devices.list format "
            "(Documentation/admin-guide/cgroup-v1/devices.rst), LXD's default whitelist",
            "status": "CRITICAL",
            "kvm_usable": True,
            "virt_type": "kvm",
            "checks": {"libvirt.qemu_user": "CRITICAL", "nova.virt_type": "OK"},
            "summary_contains": {"libvirt.qemu_user": "device cgroup refuses c 10:232"},
            "hint_contains_all": {
                "libvirt.qemu_user": [
                    "devices.list",
                    f"lxc config device add {LXD_NAME} kvm unix-char source=/dev/kvm",
                ]
            },
            "deployment": "juju",
        },
    )


# ---------------------------------------------------------------------------------- snap
SNAP = "/snap/openstack-hypervisor/211"
SNAP_COMMON = "/var/snap/openstack-hypervisor/common"


def snap_hypervisor() -> Fixture:
    h = Host(UBUNTU_2204, hostname="sunbeam-1")
    ns = "mnt:[4026532301]"
    uuid = "1b2c3d4e-5f60-4718-92a3-b4c5d6e7f809"
    name = "instance-00000003"
    h.proc(
        9000,
        [
            f"{SNAP}/usr/sbin/libvirtd",
            "--pid",
            "/var/snap/openstack-hypervisor/211/libvirt.pid",
            "--listen",
        ],
        exe=f"{SNAP}/usr/sbin/libvirtd",
        cgroup="0::/system.slice/snap.openstack-hypervisor.libvirtd.service\n",
        ns=ns,
        root={f"{SNAP_COMMON}/etc/libvirt/qemu.conf": "remember_owner = 0\n"},
    )
    h.proc(
        9100,
        [
            f"{SNAP}/usr/bin/python3",
            f"{SNAP}/usr/bin/nova-compute",
            "--config-file",
            f"{SNAP_COMMON}/etc/nova/nova.conf",
            "--config-dir",
            f"{SNAP_COMMON}/etc/nova/nova.conf.d",
        ],
        exe=f"{SNAP}/usr/bin/python3.10",
        cgroup="0::/system.slice/snap.openstack-hypervisor.nova-compute.service\n",
        ns=ns,
        root={
            f"{SNAP_COMMON}/etc/nova/nova.conf": "[DEFAULT]\ncompute_driver = "
            "libvirt.LibvirtDriver\n\n[libvirt]\nvirt_type = qemu\ncpu_mode = host-model\n",
            f"{SNAP_COMMON}/etc/nova/nova.conf.d/.keep": "",
        },
    )
    h.proc(
        9300,
        libvirt_qemu_argv(
            f"{SNAP}/usr/bin/qemu-system-x86_64",
            name,
            uuid,
            "tcg",
            f"{SNAP_COMMON}/lib/libvirt/qemu",
        ),
        exe=f"{SNAP}/usr/bin/qemu-system-x86_64",
        cgroup="0::/machine.slice/machine-qemu\\x2d1\\x2dinstance\\x2d00000003.scope/libvirt\n",
        ns="mnt:[4026532388]",
        dev_kvm=True,
        fds=TCG_FDS,
        threads=["qemu-system-x86", "CPU 0/TCG", "CPU 1/TCG"],
        root={
            f"{SNAP_COMMON}/run/libvirt/qemu/{name}.xml": nova_domain_xml(
                name,
                uuid,
                9300,
                domain_type="qemu",
                display="db-2",
                emulator=f"{SNAP}/usr/bin/qemu-system-x86_64",
            ),
            # the snap's mount namespace keeps the host's /etc
            "etc/passwd": UBUNTU_PASSWD,
            "etc/group": UBUNTU_GROUP,
        },
    )
    return h.fixture(
        "snap-openstack-hypervisor-virt-type-qemu",
        {
            "description": "Sunbeam (MicroStack) on a host with KVM: nova-compute, libvirtd "
            "and QEMU run from the openstack-hypervisor snap, in its mount namespace; libvirt "
            "keeps its run directory and qemu.conf under /var/snap/openstack-hypervisor/common "
            "(the snap's libvirt is built with that localstatedir and sysconfdir), where the "
            "instance's status XML is read through the QEMU's root. The snap rendered "
            "virt_type = qemu: the hint names the snap's setting compute.virt-type.",
            "source": "composed (tests/deploy_fixtures.py) from canonical/snap-openstack-"
            "hypervisor snap/snapcraft.yaml (libvirt -Dlocalstatedir, -Dsysconfdir), "
            "openstack_hypervisor/services.py (nova-compute --config-file/--config-dir), "
            "hooks.py (compute.virt-type)",
            "status": "WARNING",
            "kvm_usable": True,
            "virt_type": "qemu",
            "acceleration": "tcg",
            "instances": {name: "tcg"},
            "checks": {"nova.virt_type": "WARNING", "instances.accel": "OK"},
            "hint_contains": {
                "nova.virt_type": "snap set openstack-hypervisor compute.virt-type=kvm"
            },
            "deployment": "snap",
            "nova_display_names": {name: "db-2"},
        },
    )


# ---------------------------------------------------------------------------------- devstack
def devstack() -> Fixture:
    h = Host(
        UBUNTU_2204,
        hostname="devstack",
        passwd=UBUNTU_PASSWD + "stack:x:1001:1001::/opt/stack:/bin/bash\n",
        group=UBUNTU_GROUP.replace("kvm:x:108:", "kvm:x:108:stack") + "stack:x:1001:\n",
    )
    h.put(
        "etc/nova/nova-cpu.conf",
        "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n\n[libvirt]\n"
        "live_migration_uri = qemu+ssh://stack@%s/system\ncpu_mode = none\nvirt_type = qemu\n",
    )
    h.put("etc/libvirt/qemu.conf", "")
    h.proc(
        1400,
        ["/usr/sbin/libvirtd", "--timeout", "120"],
        exe="/usr/sbin/libvirtd",
        cgroup="0::/system.slice/libvirtd.service\n",
        ns=HOST_NS,
    )
    h.proc(
        5100,
        [
            "/opt/stack/data/venv/bin/python3.10",
            "/opt/stack/data/venv/bin/nova-compute",
            "--config-file",
            "/etc/nova/nova-cpu.conf",
        ],
        exe="/usr/bin/python3.10",
        uid=1001,
        gid=1001,
        groups=(108, 1001),
        cgroup="0::/system.slice/system-devstack.slice/devstack@n-cpu.service\n",
        ns=HOST_NS,
    )
    return h.fixture(
        "devstack-nova-cpu-conf-virt-type-qemu",
        {
            "description": "A DevStack compute node with KVM whose local.conf kept the gate's "
            "LIBVIRT_TYPE=qemu: stack.sh wrote virt_type = qemu to /etc/nova/nova-cpu.conf, "
            "which the devstack@n-cpu unit's nova-compute reads. The hint names LIBVIRT_TYPE.",
            "source": "composed (tests/deploy_fixtures.py) from devstack lib/nova "
            "(NOVA_CPU_CONF, run_process n-cpu) and lib/nova_plugins/hypervisor-libvirt "
            "(iniset $NOVA_CONF libvirt virt_type $LIBVIRT_TYPE)",
            "status": "WARNING",
            "kvm_usable": True,
            "virt_type": "qemu",
            "checks": {"nova.virt_type": "WARNING"},
            "hint_contains": {"nova.virt_type": "LIBVIRT_TYPE=kvm"},
            "deployment": "devstack",
        },
    )


# ---------------------------------------------------------------------------------- tripleo
def tripleo() -> Fixture:
    h = Host(
        RHEL_94,
        hostname="overcloud-novacompute-0",
        kernel="5.14.0-427.13.1.el9_4.x86_64",
        kvm_gid=36,
        passwd="root:x:0:0:root:/root:/bin/bash\nqemu:x:107:107:qemu user:/:/sbin/nologin\n",
        group="root:x:0:\nkvm:x:36:qemu\nqemu:x:107:\n",
    )
    generated = "var/lib/config-data/puppet-generated/nova_libvirt"
    conf = (
        "[DEFAULT]\ncompute_driver=libvirt.LibvirtDriver\n[libvirt]\nvirt_type=qemu\n"
        "cpu_mode=none\n"
    )
    h.put(f"{generated}/etc/nova/nova.conf", conf)
    libpod = "0::/machine.slice/libpod-{}.scope/container\n"
    kolla_cfg = {
        "var/lib/kolla/config_files/config.json": json.dumps({"command": "/usr/bin/nova-compute"})
    }
    h.proc(
        4000,
        ["/usr/sbin/virtqemud", "--config", "/etc/libvirt/virtqemud.conf"],
        exe="/usr/sbin/virtqemud",
        cgroup=libpod.format("9e8d" * 16),
        ns="mnt:[4026532600]",
        dev_kvm=True,
        root={
            "var/lib/kolla/config_files/config.json": json.dumps(
                {"command": "/usr/sbin/virtqemud --config /etc/libvirt/virtqemud.conf"}
            ),
            "etc/libvirt/qemu.conf": 'user = "qemu"\ngroup = "qemu"\n',
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nqemu:x:107:107::/:/sbin/nologin\n",
            "etc/group": "root:x:0:\nkvm:x:36:qemu\nqemu:x:107:\n",
        },
    )
    h.proc(
        4100,
        ["/usr/bin/python3", "/usr/bin/nova-compute"],
        exe="/usr/bin/python3.9",
        uid=42436,
        gid=42436,
        groups=(42436,),
        cgroup=libpod.format("4c3b" * 16),
        ns="mnt:[4026532650]",
        root={**kolla_cfg, "etc/nova/nova.conf": conf},
    )
    return h.fixture(
        "tripleo-nova-compute-virt-type-qemu",
        {
            "description": "A TripleO overcloud compute node with KVM: nova_compute and "
            "nova_virtqemud run in podman containers of kolla images; nova.conf is puppet's, "
            "generated under /var/lib/config-data/puppet-generated/nova_libvirt from the "
            "heat parameter NovaComputeLibvirtType (here qemu). The hint names that parameter.",
            "source": "composed (tests/deploy_fixtures.py) from tripleo-heat-templates "
            "deployment/nova/nova-libvirt-container-puppet.yaml (NovaComputeLibvirtType) and "
            "nova-compute-container-puppet.yaml (the puppet-generated bind mounts)",
            "status": "WARNING",
            "kvm_usable": True,
            "virt_type": "qemu",
            "checks": {"nova.virt_type": "WARNING", "libvirt.qemu_user": "OK"},
            "hint_contains": {"nova.virt_type": "NovaComputeLibvirtType: kvm"},
            "deployment": "tripleo",
        },
    )


# ---------------------------------------------------------------------------------- kubevirt
def kubevirt() -> Fixture:
    h = Host(UBUNTU_2204, hostname="k8s-worker-5")
    pod = (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        "0a1b2c3d_4e5f_6071_8293_a4b5c6d7e8f9.slice/cri-containerd-{}.scope\n"
    )
    ns = "mnt:[4026533400]"
    launcher = [
        "--qemu-timeout",
        "321s",
        "--name",
        "vm-cirros",
        "--uid",
        "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
        "--namespace",
        "default",
        "--kubevirt-share-dir",
        "/var/run/kubevirt",
        "--ephemeral-disk-dir",
        "/var/run/kubevirt-ephemeral-disks",
        "--container-disk-dir",
        "/var/run/kubevirt/container-disks",
        "--grace-period-seconds",
        "45",
        "--hook-sidecars",
        "0",
        "--ovmf-path",
        "/usr/share/OVMF",
        "--run-as-nonroot",
    ]
    cid = "beef" * 16
    h.proc(
        6000,
        ["/usr/bin/virt-launcher-monitor", *launcher],
        exe="/usr/bin/virt-launcher-monitor",
        uid=107,
        gid=107,
        groups=(107,),
        cgroup=pod.format(cid),
        ns=ns,
    )
    h.proc(
        6010,
        ["/usr/bin/virt-launcher", *launcher, "--no-fork", "true"],
        exe="/usr/bin/virt-launcher",
        uid=107,
        gid=107,
        groups=(107,),
        cgroup=pod.format(cid),
        ns=ns,
    )
    h.proc(
        6020,
        ["/usr/sbin/virtqemud", "-f", "/var/run/libvirt/virtqemud.conf"],
        exe="/usr/sbin/virtqemud",
        uid=107,
        gid=107,
        groups=(107,),
        cgroup=pod.format(cid),
        ns=ns,
    )
    name = "default_vm-cirros"
    uuid = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
    argv = libvirt_qemu_argv(
        "/usr/libexec/qemu-kvm", name, uuid, "tcg", "/var/run/kubevirt-private/libvirt/qemu/lib"
    )
    h.proc(
        6100,
        argv,
        exe="/usr/libexec/qemu-kvm",
        uid=107,
        gid=107,
        groups=(107,),
        cgroup=pod.format(cid),
        ns=ns,
        fds=TCG_FDS,
        threads=["qemu-kvm", "CPU 0/TCG"],
        root={
            "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nqemu:x:107:107:qemu user:/:"
            "/sbin/nologin\n",
            "etc/group": "root:x:0:\nqemu:x:107:\n",
        },
    )
    return h.fixture(
        "kubevirt-vmi-emulated",
        {
            "description": "A KubeVirt node whose virt-launcher pod runs a VMI under TCG "
            "(<domain type='qemu'>, -accel tcg) although this node's /dev/kvm works: KubeVirt "
            "emulated it because useEmulation allowed it and the pod got no /dev/kvm. No "
            "nova. The hint names spec.configuration.developerConfiguration.useEmulation.",
            "source": "composed (tests/deploy_fixtures.py) from kubevirt "
            "staging/src/kubevirt.io/api/core/v1/types.go (DeveloperConfiguration.UseEmulation)"
            " and docs/software-emulation.md",
            "status": "WARNING",
            "kvm_usable": True,
            "acceleration": "tcg",
            "instances": {name: "tcg"},
            "checks": {"instances.accel": "WARNING"},
            "hint_contains": {
                "instances.accel": "spec.configuration.developerConfiguration.useEmulation"
            },
            "deployment": "kubevirt",
        },
    )


# ---------------------------------------------------------------------------------- proxmox
def proxmox() -> Fixture:
    h = Host(DEBIAN_12, hostname="pve1", kernel="6.8.12-4-pve")
    h.put("etc/pve/.version", "")
    # qemu-server src/test/cfg2cmd/simple1.conf.cmd, for VM 100 with kvm: 0 (its -vnc
    # unix:...,password=on left out: collect's redaction takes password=on for a secret)
    argv = [
        "/usr/bin/kvm",
        "-id",
        "100",
        "-name",
        "web01,debug-threads=on",
        "-no-shutdown",
        "-chardev",
        "socket,id=qmp,path=/var/run/qemu-server/100.qmp,server=on,wait=off",
        "-mon",
        "chardev=qmp,mode=control",
        "-chardev",
        "socket,id=qmp-event,path=/var/run/qmeventd.sock,reconnect-ms=5000",
        "-mon",
        "chardev=qmp-event,mode=control",
        "-pidfile",
        "/var/run/qemu-server/100.pid",
        "-daemonize",
        "-smbios",
        "type=1,uuid=7b10d7af-b932-4c66-b2c3-3996152ec465",
        "-smp",
        "2,sockets=1,cores=2,maxcpus=2",
        "-nodefaults",
        "-cpu",
        "kvm64,enforce,+kvm_pv_eoi,+kvm_pv_unhalt,+lahf_lm,+sep",
        "-m",
        "2048",
        "-machine",
        "accel=tcg,type=pc+pve0",
    ]
    h.proc(
        3100,
        argv,
        exe="/usr/bin/qemu-system-x86_64",
        cgroup="0::/qemu.slice/100.scope\n",
        ns=HOST_NS,
        fds=TCG_FDS,
        threads=["kvm", "CPU 0/TCG", "CPU 1/TCG"],
    )
    return h.fixture(
        "proxmox-vm-kvm-disabled",
        {
            "description": "A Proxmox VE 8 node with KVM where VM 100 has kvm: 0 in its "
            "config: qemu-server starts it with -machine accel=tcg (emulated, 10-50x "
            "slower). No nova. The hint names the VM's option: qm set 100 --kvm 1.",
            "source": "composed (tests/deploy_fixtures.py) from proxmox/qemu-server "
            "src/PVE/QemuServer.pm (kvm option; accel=tcg without it) and "
            "src/test/cfg2cmd/simple1.conf.cmd",
            "status": "WARNING",
            "kvm_usable": True,
            "acceleration": "tcg",
            "instances": {"web01": "tcg"},
            "checks": {"instances.accel": "WARNING"},
            "hint_contains": {"instances.accel": "qm set 100 --kvm 1"},
            "deployment": "proxmox",
        },
    )


# ---------------------------------------------------------------------------------- plain
def plain_libvirt() -> Fixture:
    h = Host(
        DEBIAN_12,
        hostname="compute-9",
        kernel="6.1.0-27-amd64",
        passwd=UBUNTU_QEMU_PASSWD,
        group=UBUNTU_QEMU_GROUP,
    )
    h.put(
        "etc/nova/nova.conf", "[DEFAULT]\nstate_path = /var/lib/nova\n[libvirt]\nvirt_type = qemu\n"
    )
    h.put("etc/libvirt/qemu.conf", "")
    h.proc(
        1300,
        ["/usr/sbin/libvirtd"],
        exe="/usr/sbin/libvirtd",
        cgroup="0::/system.slice/libvirtd.service\n",
        ns=HOST_NS,
    )
    h.proc(
        1350,
        ["/usr/bin/python3", "/usr/bin/nova-compute", "--config-file=/etc/nova/nova.conf"],
        exe="/usr/bin/python3.11",
        uid=64060,
        gid=64060,
        groups=(108, 64060),
        cgroup="0::/system.slice/nova-compute.service\n",
        ns=HOST_NS,
    )
    return h.fixture(
        "plain-libvirt-nova-virt-type-qemu",
        {
            "description": "nova-compute and libvirt from Debian's packages, in the host's own "
            "tree, with virt_type = qemu on a host with KVM: the file to change is the host's "
            "/etc/nova/nova.conf itself.",
            "source": "composed (tests/deploy_fixtures.py)",
            "status": "WARNING",
            "kvm_usable": True,
            "virt_type": "qemu",
            "checks": {"nova.virt_type": "WARNING"},
            "hint_contains": {
                "nova.virt_type": "set [libvirt] virt_type = kvm in /etc/nova/nova.conf and restart"
            },
            "deployment": "libvirt",
        },
    )


BUILDERS: tuple[Callable[[], Fixture], ...] = (
    kolla_ok,
    kolla_qemu,
    build_sandbox,
    openstack_helm,
    juju,
    lxd_device_cgroup,
    snap_hypervisor,
    devstack,
    tripleo,
    kubevirt,
    proxmox,
    plain_libvirt,
)


def write(fx: Fixture, dest: Path) -> Path:
    """Write one fixture as a snapshot directory (replacing what is there)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    marker = {"format": 1, **fx.marker}
    (dest / "hvcheck-snapshot.json").write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
    (dest / "expected.json").write_text(json.dumps(fx.expected, indent=2) + "\n")
    for path, content in sorted(fx.files.items()):
        p = dest / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    for path, target in sorted(fx.links.items()):
        p = dest / path
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
    return dest


def main(argv: list[str]) -> int:
    names = set(argv)
    for build in BUILDERS:
        fx = build()
        if names and fx.name not in names:
            continue
        print(write(fx, PROJECT / "fixtures" / fx.name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
