"""Nova's effective [libvirt] virt_type, found the way nova-compute found it, and held against
the host: the verdicts of the instances issue, on composed snapshots in the real formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from snap import healthy_host, run_json

NO_KVM = {"devices": {}, "probes": {"kvm": {"ok": False, "stage": "open", "errno": "ENOENT"}}}


def _cmdline(*argv: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in argv)


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for path, content in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _nova(doc: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == "nova.virt_type")


def test_running_nova_compute_config_files_later_wins(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "proc/4242/cmdline": _cmdline(
                "/usr/bin/python3",
                "/usr/bin/nova-compute",
                "--config-file=/etc/nova/nova.conf",
                "--config-file",
                "/etc/nova/nova-compute.conf",
                "--log-file=/var/log/nova/nova-compute.log",
            ),
            "proc/4242/comm": "nova-compute\n",
            "etc/nova/nova.conf": "[DEFAULT]\ndebug = False\n[libvirt]\nvirt_type = kvm\n",
            "etc/nova/nova-compute.conf": "[DEFAULT]\ncompute_driver=libvirt.LibvirtDriver\n"
            "[libvirt]\nvirt_type=qemu\n",
        },
    )
    rc, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert doc["verdict"]["virt_type"] == "qemu"
    assert c["details"]["source"]["file"] == "/etc/nova/nova-compute.conf"
    assert c["details"]["source"]["line"] == 4
    assert c["details"]["nova_compute_pid"] == 4242
    assert c["status"] == "WARNING" and c["code"] == "capable-but-unused"
    assert "virt_type = kvm" in c["hint"]
    assert rc == 1


def test_kolla_container_config_read_through_proc_root(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "proc/777/cmdline": _cmdline(
                "/var/lib/kolla/venv/bin/python3", "/var/lib/kolla/venv/bin/nova-compute"
            ),
            "proc/777/root/etc/nova/nova.conf": (
                "[libvirt]\nvirt_type = kvm\ncpu_mode = host-model\n"
            ),
            # a stale host-side file that nova-compute does not read
            "etc/kolla/nova-compute/nova.conf": "[libvirt]\nvirt_type = qemu\n",
        },
    )
    _, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert doc["verdict"]["virt_type"] == "kvm"
    assert c["details"]["source"]["file"] == "/proc/777/root/etc/nova/nova.conf"
    assert c["details"]["cpu_mode"]["value"] == "host-model"
    assert c["status"] == "OK"


def test_known_locations_when_nova_compute_is_not_running(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf": (
                "[DEFAULT]\n[libvirt]\nvirt_type=kvm\n"
            ),
        },
    )
    _, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert c["details"]["source"]["file"].startswith("/var/lib/config-data/puppet-generated")
    assert c["status"] == "OK" and "known locations" in c["details"]["found_by"]


def test_old_option_name_is_ignored_by_a_current_nova(tmp_path: Path) -> None:
    # nova's version unknown: the newest schema, where [DEFAULT] libvirt_type is no option
    root = _write(
        healthy_host(tmp_path / "s"), {"etc/nova/nova.conf": "[DEFAULT]\nlibvirt_type = qemu\n"}
    )
    _, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert doc["verdict"]["virt_type"] == "kvm"
    assert c["details"]["source"]["default"] is True and c["status"] == "OK"
    assert c["details"]["ignored"][0]["key"] == "libvirt_type"
    assert "libvirt_type = qemu at /etc/nova/nova.conf:2 is not read" in c["summary"]
    assert c["details"]["release"]["newest_assumed"] is True


def test_old_option_name_is_recognised_and_named_by_icehouse(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {
            "etc/nova/nova.conf": "[DEFAULT]\nlibvirt_type = qemu\n",
            "usr/lib/python2.7/dist-packages/nova-2014.1.5.egg-info/PKG-INFO": (
                "Metadata-Version: 1.1\nName: nova\nVersion: 2014.1.5\n"
            ),
        },
    )
    _, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert doc["verdict"]["virt_type"] == "qemu"
    assert "libvirt_type" in c["details"]["source"]["spelling"]
    assert "deprecated" in c["summary"]
    assert c["details"]["release"]["nova"] == "2014.1.5"


def test_unset_means_kvm(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s"),
        {"etc/nova/nova.conf": "[DEFAULT]\nmy_ip = 192.0.2.1\n[libvirt]\n"},
    )
    _, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert doc["verdict"]["virt_type"] == "kvm"
    assert c["details"]["source"]["default"] is True and c["status"] == "OK"


def test_garbage_config_stops_nova_compute(tmp_path: Path) -> None:
    # oslo.config refuses the file (ConfigFileParseError): nova-compute does not start
    root = _write(
        healthy_host(tmp_path / "s"),
        {"etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\nthis is not ini\n"},
    )
    rc, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert c["status"] == "CRITICAL" and "line 3" in c["summary"]
    assert c["summary"].startswith("nova-compute will not start: /etc/nova/nova.conf: line 3")
    assert c["hint"].startswith("fix line 3 of /etc/nova/nova.conf")
    assert doc["verdict"]["virt_type"] is None
    assert rc == 2
    # bytes that are not UTF-8: Python cannot decode the file before oslo parses a line
    root = _write(
        healthy_host(tmp_path / "t"),
        {"etc/nova/nova.conf": b"[libvirt]\nvirt_type = kvm\nthis is not ini\n\xff\x00"},
    )
    rc, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert c["status"] == "CRITICAL" and "line 4: not UTF-8 (byte 0xff)" in c["summary"]
    assert doc["verdict"]["virt_type"] is None and rc == 2


def test_virt_type_kvm_without_usable_kvm_is_critical(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s", **NO_KVM),
        {"etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\n"},
    )
    rc, doc = run_json("--root", str(root))
    c = _nova(doc)
    assert c["status"] == "CRITICAL" and "cannot start" in c["summary"]
    assert doc["verdict"]["kvm_usable"] is False and rc == 2


def test_virt_type_qemu_without_kvm_is_a_nested_lab_not_a_failure(tmp_path: Path) -> None:
    root = _write(
        healthy_host(tmp_path / "s", **NO_KVM),
        {"etc/nova/nova.conf": "[libvirt]\nvirt_type = qemu\n"},
    )
    rc, doc = run_json("--root", str(root))
    states = {c["id"]: c["status"] for c in doc["checks"]}
    assert states["nova.virt_type"] == "OK"
    assert states["kvm.device"] == "OK"
    dev = next(c for c in doc["checks"] if c["id"] == "kvm.device")
    assert "virt_type = qemu" in dev["summary"]
    assert doc["verdict"]["kvm_usable"] is False
    assert "CRITICAL" not in states.values() and rc in (0, 1)


def test_qemu_user_is_not_critical_when_virt_type_cannot_be_read(tmp_path: Path) -> None:
    """nova.conf that cannot be read (a link leaving the snapshot): virt_type unknown, so
    whether the QEMU user needs /dev/kvm depends on what could not be read -- with virt_type =
    qemu the same check is OK. It said CRITICAL. The summary keeps the node's "root:root" (it
    was cut at that colon, leaving a parenthesis open)."""
    root = healthy_host(tmp_path / "s")
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["devices"]["/dev/kvm"].update(mode="0600", gid=0, group="root")
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    (root / "etc/libvirt").mkdir(parents=True)
    (root / "etc/libvirt/qemu.conf").write_text('user = "libvirt-qemu"\n')
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\n"
        "libvirt-qemu:x:64055:108:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\nkvm:x:108:libvirt-qemu\n")
    (root / "etc/nova").mkdir(parents=True)
    (root / "etc/nova/nova.conf").symlink_to("/etc/shadow")
    _, doc = run_json("--root", str(root), "--only", "libvirt.qemu_user", "--only", "nova")
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["nova.virt_type"]["status"] == "UNKNOWN", checks["nova.virt_type"]
    user = checks["libvirt.qemu_user"]
    assert user["status"] == "UNKNOWN" and user["code"] == "cannot-open-virt-type-unknown", user
    assert "(mode 0600 root:root) — whether nova needs it" in user["summary"], user["summary"]
