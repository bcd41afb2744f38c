"""Smaller scenarios on composed snapshots: MSR evidence, a failing /dev/kvm, nested settings
from the kernel command line, and libvirt XML found through a kolla container's root."""

from __future__ import annotations

import doctest
import json
import shutil
from pathlib import Path
from typing import Any

from hvcheck import processes
from snap import healthy_host, run_json

NO_VMX_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep lm constant_tsc nx

"""


def _check(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == cid)


def test_feature_control_msr_locked_with_vmx_off_is_firmware(tmp_path: Path) -> None:
    root = healthy_host(
        tmp_path / "s",
        devices={},
        probes={"kvm": {"ok": False, "stage": "open", "errno": "ENOENT"}, "msr": {"0:0x3a": 1}},
    )  # IA32_FEATURE_CONTROL: lock bit set, VMX-outside-SMX clear
    (root / "proc/cpuinfo").write_text(NO_VMX_CPUINFO)
    (root / "proc/modules").write_text("kvm 1146880 0 - Live 0x0000000000000000\n")
    shutil.rmtree(root / "sys/module/kvm_intel")
    rc, doc = run_json("--root", str(root))
    fw = _check(doc, "firmware.virt")
    assert fw["status"] == "CRITICAL" and fw["code"] == "msr-vmx-locked-off"
    assert "firmware" in fw["hint"] and "MSR IA32_FEATURE_CONTROL = 0x1" in fw["evidence"]
    assert rc == 2


def test_present_but_failing_dev_kvm_is_critical_with_the_errno(tmp_path: Path) -> None:
    root = healthy_host(
        tmp_path / "s",
        probes={
            "kvm": {
                "ok": False,
                "stage": "create_vm",
                "errno": "EBUSY",
                "api_version": 12,
                "error": "KVM_CREATE_VM: Device or resource busy",
                "uid": 0,
            }
        },
    )
    rc, doc = run_json("--root", str(root))
    dev = _check(doc, "kvm.device")
    assert dev["status"] == "CRITICAL" and dev["code"] == "failing"
    assert "EBUSY" in dev["summary"] and dev["hint"]
    assert doc["verdict"]["kvm_usable"] is False and rc == 2


def test_nested_from_kernel_cmdline_disagreeing_with_runtime(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "proc/cmdline").write_text("BOOT_IMAGE=/vmlinuz ro kvm-intel.nested=0 quiet\n")
    _, doc = run_json("--root", str(root))
    n = _check(doc, "nested.runtime")
    assert n["status"] == "WARNING" and "kernel command line" in n["summary"]
    assert "/sys/module/kvm_intel/parameters/nested" in n["summary"]


def test_kolla_libvirt_status_xml_read_through_the_process_root(tmp_path: Path) -> None:
    name = "instance-0000002a"
    root = healthy_host(tmp_path / "s")
    proc = root / "proc/5150"
    (proc / "fd").mkdir(parents=True)
    (proc / "cmdline").write_bytes(
        b"\0".join(
            x.encode()
            for x in (
                "/usr/libexec/qemu-kvm",
                "-name",
                f"guest={name},debug-threads=on",
                "-S",
                "-uuid",
                "0b3c8a9e-62b7-4c33-9ad7-1f3f6a2c5d10",
                "-accel",
                "kvm",
            )
        )
        + b"\0"
    )
    (proc / "fd/0").symlink_to("/dev/null")
    (proc / "fd/11").symlink_to("/dev/kvm")
    (proc / "fd/12").symlink_to("anon_inode:kvm-vm")
    (proc / "fd/13").symlink_to("anon_inode:kvm-vcpu:0")
    xml = proc / f"root/run/libvirt/qemu/{name}.xml"
    xml.parent.mkdir(parents=True)
    xml.write_text(f"""<domstatus state='running' reason='booted' pid='5150'>
  <domain type='kvm' id='1'>
    <name>{name}</name>
    <uuid>0b3c8a9e-62b7-4c33-9ad7-1f3f6a2c5d10</uuid>
    <metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:name>db-primary</nova:name>
        <nova:flavor name="m1.large"/>
        <nova:owner><nova:project uuid="c0ffee">prod</nova:project></nova:owner>
      </nova:instance>
    </metadata>
    <devices><emulator>/usr/libexec/qemu-kvm</emulator></devices>
  </domain>
</domstatus>
""")
    _, doc = run_json("--root", str(root))
    (inst,) = doc["instances"]
    assert inst["accel"] == "kvm" and inst["evidence"] == ["fd", "libvirt-xml", "cmdline"]
    assert inst["libvirt_xml"] == f"/proc/5150/root/run/libvirt/qemu/{name}.xml"
    assert inst["nova"]["display_name"] == "db-primary" and inst["nova"]["project"] == "prod"
    assert json.dumps(doc)  # serialisable


def test_a_zombie_qemu_is_not_an_instance(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    proc = root / "proc/4711"
    proc.mkdir(parents=True)
    (proc / "comm").write_text("qemu-system-x86\n")
    (proc / "cmdline").write_bytes(b"")
    (proc / "status").write_text("Name:\tqemu-system-x86\nState:\tZ (zombie)\nUid:\t0\t0\t0\t0\n")
    _, doc = run_json("--root", str(root))
    assert doc["instances"] == [] and doc["verdict"]["acceleration"] == "none"


def test_processes_doctests() -> None:
    result = doctest.testmod(processes)
    assert result.attempted > 0
    assert result.failed == 0
