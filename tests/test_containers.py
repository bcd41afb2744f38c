"""Processes in other mount namespaces (containers, snaps, libvirt's own namespace) read as
they see their files, and the QEMU user taken from the running QEMU processes first (issue 13),
on composed snapshots in the contract's layout and on this machine's own namespaces."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Any

from hvcheck import facts, mountns, novaconfig
from hvcheck.check import Context
from hvcheck.host import LiveHost, RecordingHost, SnapshotHost
from hvcheck.processes import qemu_processes
from snap import healthy_host, run_json

HOST_NS = "mnt:[4026531841]"
CONTAINER_NS = "mnt:[4026532612]"


def _cmdline(*argv: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in argv)


def _status(name: str, uid: int, gid: int, groups: tuple[int, ...] = ()) -> str:
    g = "".join(f"{x} " for x in groups) or " "
    return (
        f"Name:\t{name}\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}\nGroups:\t{g}\n"
    )


def _write(root: Path, files: dict[str, str | bytes], marker: dict[str, Any]) -> Path:
    for path, content in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    m = json.loads((root / "hvcheck-snapshot.json").read_text())
    m.update(marker)
    (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
    return root


def _ns(**pids: str) -> dict[str, Any]:
    return {"mount_ns": {"self": HOST_NS, "processes": {k.lstrip("p"): v for k, v in pids.items()}}}


NOVA_XML = """<domstatus state='paused' reason='user' pid='{pid}'>
<domain type='kvm'>
  <name>instance-0000002a</name>
  <uuid>5f4f3a1c-2b0b-4b8e-9a51-3c1d2e0f4a2a</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-1</nova:name>
      <nova:flavor name="m1.small"/>
      <nova:owner><nova:user uuid="u1">alice</nova:user>
      <nova:project uuid="p1">demo</nova:project></nova:owner>
    </nova:instance>
  </metadata>
</domain>
</domstatus>
"""

QEMU_ARGV = (
    "/usr/libexec/qemu-kvm",
    "-name",
    "guest=instance-0000002a,debug-threads=on",
    "-S",
    "-accel",
    "kvm",
    "-chardev",
    "socket,id=charmonitor,fd=30,server=on,wait=off",
    "-mon",
    "chardev=charmonitor,id=monitor,mode=control",
)


def _pivoted_qemu(root: Path, ns: str) -> Path:
    """A QEMU (pid 5100) whose status XML, passwd and group are only in its own tree."""
    return _write(
        healthy_host(root),
        {
            "proc/5100/cmdline": _cmdline(*QEMU_ARGV),
            "proc/5100/comm": "qemu-kvm\n",
            "proc/5100/status": _status("qemu-kvm", 42436, 42436, (42427, 42436)),
            "proc/5100/fd/0": b"",
            "proc/5100/root/run/libvirt/qemu/instance-0000002a.xml": NOVA_XML.format(pid=5100),
            "proc/5100/root/etc/passwd": "root:x:0:0::/root:/bin/bash\n"
            "nova:x:42436:42436::/var/lib/nova:/usr/sbin/nologin\n",
            "proc/5100/root/etc/group": "root:x:0:\nnova:x:42436:\nqemu:x:42427:nova\n",
            # the host's own files name other users, and an unrelated domain of the same name
            "run/libvirt/qemu/instance-0000002a.xml": NOVA_XML.format(pid=5100).replace(
                "web-1", "the host's"
            ),
        },
        _ns(p5100=ns),
    )


def test_snapshot_mount_namespace_is_read_from_the_marker(tmp_path: Path) -> None:
    root = _pivoted_qemu(tmp_path / "s", CONTAINER_NS)
    host = SnapshotHost(str(root))
    assert host.mount_namespace(None) == HOST_NS
    assert host.mount_namespace(5100) == CONTAINER_NS
    assert host.mount_namespace(1) is None
    ctx = Context(host)
    r = mountns.process_root(ctx, 5100)
    assert r.other_ns is True and r.roots == ("/proc/5100/root",)
    assert "mnt:[4026532612]" in r.why


def test_a_marker_of_the_wrong_shape_reads_as_unknown(tmp_path: Path) -> None:
    root = _pivoted_qemu(tmp_path / "s", CONTAINER_NS)
    _write(root, {}, {"mount_ns": {"self": 7, "processes": ["5100"]}})
    ctx = Context(SnapshotHost(str(root)))
    r = mountns.process_root(ctx, 5100)
    assert r.other_ns is None and r.roots == ("", "/proc/5100/root")


def test_same_namespace_reads_the_hosts_tree(tmp_path: Path) -> None:
    root = _pivoted_qemu(tmp_path / "s", HOST_NS)
    ctx = Context(SnapshotHost(str(root)))
    r = mountns.process_root(ctx, 5100)
    assert r.other_ns is False and r.roots == ("",)
    (q,) = qemu_processes(ctx)
    assert q.domain_source == "/run/libvirt/qemu/instance-0000002a.xml"
    assert q.domain is not None and q.domain.nova is not None
    assert q.domain.nova.name == "the host's"


def test_pivoted_qemu_domain_xml_and_nova_metadata_read_through_its_root(tmp_path: Path) -> None:
    root = _pivoted_qemu(tmp_path / "s", CONTAINER_NS)
    ctx = Context(SnapshotHost(str(root)))
    (q,) = qemu_processes(ctx)
    assert q.domain_source == "/proc/5100/root/run/libvirt/qemu/instance-0000002a.xml"
    assert q.domain is not None and q.domain.nova is not None
    assert q.domain.nova.name == "web-1" and q.domain.nova.flavor == "m1.small"
    assert q.gids == (42436, 42427)


def test_qemu_user_from_the_running_process_named_in_its_own_passwd(tmp_path: Path) -> None:
    root = _pivoted_qemu(tmp_path / "s", CONTAINER_NS)
    m = json.loads((root / "hvcheck-snapshot.json").read_text())
    m["devices"]["/dev/kvm"].update(gid=42427, group=None)
    # the container's /dev is the host's (kolla bind-mounts it): the node as QEMU sees it
    m["devices"]["/proc/5100/root/dev/kvm"] = dict(m["devices"]["/dev/kvm"])
    (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
    ctx = Context(SnapshotHost(str(root)))
    qu = facts.qemu_user(ctx)
    assert qu is not None
    assert (qu.user, qu.group, qu.uid, qu.gids, qu.pid) == (
        "nova",
        "nova",
        42436,
        (42436, 42427),
        5100,
    )
    a = facts.qemu_kvm_access(ctx)
    assert a is not None and a.ok is True and a.groups == ("nova", "qemu")
    _, doc = run_json("--root", str(root), "--only", "libvirt.qemu_user")
    (c,) = doc["checks"]
    assert c["status"] == "OK" and c["details"]["from_process"] is True
    assert c["summary"].startswith("nova (uid 42436) can open /dev/kvm")


def test_a_container_without_dev_kvm_in_its_tree_cannot_open_it(tmp_path: Path) -> None:
    root = _pivoted_qemu(tmp_path / "s", CONTAINER_NS)
    ctx = Context(SnapshotHost(str(root)))
    assert facts.kvm_device_seen_by(ctx, 5100) == (None, "/proc/5100/root/dev/kvm")
    a = facts.qemu_kvm_access(ctx)
    assert a is not None and a.ok is False and a.missing is not None
    assert "/proc/5100/root/dev/kvm does not exist" in a.hint


def test_qemu_conf_is_read_as_the_containerised_libvirtd_reads_it(tmp_path: Path) -> None:
    # no QEMU runs: the user comes from qemu.conf, the container's, resolved in its passwd
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "proc/4000/cmdline": _cmdline("/usr/sbin/libvirtd", "--listen"),
            "proc/4000/comm": "libvirtd\n",
            "proc/4000/status": _status("libvirtd", 0, 0),
            "proc/4000/root/etc/libvirt/qemu.conf": 'user = "nova"\ngroup = "nova"\n',
            "proc/4000/root/etc/passwd": "nova:x:42436:42436::/var/lib/nova:/sbin/nologin\n",
            "proc/4000/root/etc/group": "nova:x:42436:\nqemu:x:42427:nova\n",
            "etc/libvirt/qemu.conf": 'user = "libvirt-qemu"\n',
        },
        _ns(p4000=CONTAINER_NS),
    )
    ctx = Context(SnapshotHost(str(root)))
    qu = facts.qemu_user(ctx)
    assert qu is not None and qu.user == "nova" and qu.uid is None
    assert qu.source == "/proc/4000/root/etc/libvirt/qemu.conf:1"
    assert facts.passwd_seen_by(ctx, qu.seen_by) == "/proc/4000/root/etc/passwd"
    a = facts.qemu_kvm_access(ctx)
    assert a is not None and a.uid == 42436 and a.groups == ("nova", "qemu")


def test_unresolvable_user_is_ok_while_virt_type_is_qemu(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "proc/4000/cmdline": _cmdline("/usr/sbin/libvirtd"),
            "proc/4000/comm": "libvirtd\n",
            "etc/libvirt/qemu.conf": 'user = "ldap-qemu"\n',
            "etc/passwd": "root:x:0:0::/root:/bin/bash\n",
            "etc/nova/nova.conf": "[libvirt]\nvirt_type = qemu\n",
        },
        {},
    )
    _, doc = run_json("--root", str(root), "--only", "libvirt.qemu_user")
    (c,) = doc["checks"]
    assert c["status"] == "OK" and c["code"] == "no-user-unused", c
    (root / "etc/nova/nova.conf").write_text("[libvirt]\nvirt_type = kvm\n")
    _, doc = run_json("--root", str(root), "--only", "libvirt.qemu_user")
    assert doc["checks"][0]["status"] == "UNKNOWN"


def test_nova_conf_of_a_container_is_its_own_not_the_hosts(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "proc/777/cmdline": _cmdline(
                "/var/lib/kolla/venv/bin/python3", "/var/lib/kolla/venv/bin/nova-compute"
            ),
            "proc/777/comm": "nova-compute\n",
            "proc/777/root/etc/nova/nova.conf": "[libvirt]\nvirt_type = qemu\n",
            # the host's /etc/nova/nova.conf is another file: nova-compute never reads it
            "etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\n",
        },
        _ns(p777=CONTAINER_NS),
    )
    ctx = Context(SnapshotHost(str(root)))
    conf = novaconfig.nova_conf(ctx)
    assert conf is not None and conf.virt_type.value == "qemu"
    assert conf.virt_type.file == "/proc/777/root/etc/nova/nova.conf"


def test_live_own_namespace_and_a_process_of_ours() -> None:
    host = LiveHost()
    own = host.mount_namespace(None)
    assert own is not None and own.startswith("mnt:[")
    assert host.mount_namespace(os.getpid()) == own
    r = mountns.process_root(Context(host), os.getpid())
    assert r.other_ns is False and r.roots == ("",)


def test_collect_records_mount_namespaces_in_the_marker(tmp_path: Path) -> None:
    host = RecordingHost()
    own = host.mount_namespace(None)
    host.mount_namespace(os.getpid())
    out = tmp_path / "snap.tar.gz"
    host.write_snapshot(str(out), "2026-01-01T00:00:00Z")
    with tarfile.open(out) as tf:
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        marker = json.load(f)
    assert marker["mount_ns"] == {"self": own, "processes": {str(os.getpid()): own}}
    replay = SnapshotHost(str(out))
    assert replay.mount_namespace(os.getpid()) == replay.mount_namespace(None) == own


def test_fallback_in_a_container_names_its_device_cgroup(tmp_path: Path) -> None:
    """A QEMU in a docker container (cgroup v1) whose device whitelist leaves out c 10:232:
    its user is in /dev/kvm's group, yet it fell back to TCG; the hint names the cgroup."""
    cg = "/docker/3f0c3e9b8a1d"
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "proc/5200/cmdline": _cmdline(
                "qemu-system-x86_64", "-name", "guest=ci-vm", "-machine", "pc,accel=kvm:tcg"
            ),
            "proc/5200/comm": "qemu-system-x86\n",
            "proc/5200/status": _status("qemu-system-x86", 1500, 1500, (108, 1500)),
            "proc/5200/fd/0": b"",
            "proc/5200/cgroup": f"12:devices:{cg}\n11:memory:{cg}\n0::{cg}\n",
            "proc/5200/root/etc/passwd": "builder:x:1500:1500::/home/builder:/bin/sh\n",
            "proc/5200/root/etc/group": "kvm:x:108:builder\nbuilder:x:1500:\n",
            f"sys/fs/cgroup/devices{cg}/devices.list": "c 1:3 rwm\nc 1:5 rwm\nc 136:* rwm\n",
        },
        {**_ns(p5200=CONTAINER_NS)},
    )
    (root / "proc/5200/fd/0").unlink()
    (root / "proc/5200/fd/0").symlink_to("/dev/null")
    m = json.loads((root / "hvcheck-snapshot.json").read_text())
    m["devices"]["/proc/5200/root/dev/kvm"] = dict(m["devices"]["/dev/kvm"])
    (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
    ctx = Context(SnapshotHost(str(root)))
    cgroup = facts.device_cgroup(ctx, 5200)
    assert cgroup.allowed is False
    assert cgroup.path == f"/sys/fs/cgroup/devices{cg}/devices.list"
    _, doc = run_json("--root", str(root), "--only", "instances.accel")
    (c,) = doc["checks"]
    assert c["status"] == "CRITICAL" and c["code"] == "silent-fallback"
    assert (
        "builder (uid 1500, groups kvm, builder)" in c["hint"] or "builder (uid 1500" in c["hint"]
    )
    assert f"/sys/fs/cgroup/devices{cg}/devices.list" in c["hint"]
    assert "--device /dev/kvm" in c["hint"]
