"""Each QEMU's libvirt domain XML looked up in the directories libvirt keeps it in, as the
process and then each libvirtd see them: the directories of hvcheck's tree and of each
libvirtd's root are listed once per run, whatever the number of instances; only those under
a process's own ``/proc/<pid>/root`` are listed per process."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from hvcheck.check import Context
from hvcheck.host import SnapshotHost
from hvcheck.processes import qemu_processes
from snap import healthy_host

HOST_NS = "mnt:[4026531841]"
CONTAINER_NS = "mnt:[4026532612]"

XML = "<domstatus state='running' pid='{pid}'><domain type='{kind}'><name>{name}</name>" + (
    "</domain></domstatus>"
)


def _qemu(root: Path, pid: int, name: str) -> None:
    d = root / f"proc/{pid}"
    d.mkdir(parents=True)
    argv = ["/usr/bin/qemu-system-x86_64", "-name", f"guest={name}", "-accel", "kvm", "-S"]
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    (d / "comm").write_text("qemu-system-x86\n")
    (d / "status").write_text("Name:\tqemu\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n")
    os.symlink("/", d / "root")  # as collect records a process in its own root


def _snapshot(tmp_path: Path) -> Path:
    root = healthy_host(tmp_path / "s")
    # a containerised libvirtd (pid 4000): its status XML is in its own tree
    lv = root / "proc/4000"
    (lv / "root/run/libvirt/qemu").mkdir(parents=True)
    (lv / "cmdline").write_bytes(b"/usr/sbin/libvirtd\0")
    (lv / "comm").write_text("libvirtd\n")
    (lv / "status").write_text("Name:\tlibvirtd\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n")
    (root / "run/libvirt/qemu").mkdir(parents=True, exist_ok=True)
    for i in range(6):
        pid, name = 5100 + i, f"instance-{i}"
        _qemu(root, pid, name)
        if i == 0:  # in hvcheck's own tree
            (root / f"run/libvirt/qemu/{name}.xml").write_text(
                XML.format(pid=pid, kind="qemu", name=name)
            )
        elif i == 1:  # a stale one in hvcheck's tree (another pid), the live one libvirtd's
            (root / f"run/libvirt/qemu/{name}.xml").write_text(
                XML.format(pid=1, kind="qemu", name=name)
            )
            (lv / f"root/run/libvirt/qemu/{name}.xml").write_text(
                XML.format(pid=pid, kind="kvm", name=name)
            )
        elif i < 5:
            (lv / f"root/run/libvirt/qemu/{name}.xml").write_text(
                XML.format(pid=pid, kind="kvm", name=name)
            )
    m = json.loads((root / "hvcheck-snapshot.json").read_text())
    m["mount_ns"] = {"self": HOST_NS, "processes": {"4000": CONTAINER_NS}}
    (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
    return root


def test_domain_xml_found_in_order_and_shared_directories_listed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = SnapshotHost(str(_snapshot(tmp_path)))
    listed: Counter[str] = Counter()
    real = SnapshotHost._listdir

    def counting(self: SnapshotHost, path: str) -> list[str]:
        listed[path] += 1
        return real(self, path)

    monkeypatch.setattr(SnapshotHost, "_listdir", counting)
    qs = {q.pid: q for q in qemu_processes(Context(host))}
    assert qs[5100].domain_source == "/run/libvirt/qemu/instance-0.xml"
    assert qs[5100].domain is not None and qs[5100].domain.domain_type == "qemu"
    # the stale file of another pid in hvcheck's tree is passed over for libvirtd's
    assert qs[5101].domain_source == "/proc/4000/root/run/libvirt/qemu/instance-1.xml"
    assert qs[5101].domain is not None and qs[5101].domain.domain_type == "kvm"
    for pid in (5102, 5103, 5104):
        assert qs[pid].domain_source == (
            f"/proc/4000/root/run/libvirt/qemu/instance-{pid - 5100}.xml"
        )
    assert qs[5105].domain is None and qs[5105].domain_source is None
    shared = {p: n for p, n in listed.items() if not p.startswith("/proc/51")}
    assert "/run/libvirt/qemu" in shared and "/proc/4000/root/run/libvirt/qemu" in shared
    assert all(n == 1 for n in shared.values()), shared
    # per process, at most its own root's directories (each once)
    own = [p for p in listed if p.startswith("/proc/51")]
    assert all(listed[p] == 1 for p in own)
    assert not any(p.startswith("/proc/5100/") for p in own)  # found before its own root
