"""Hints that fit the host: its architecture, its distribution, the layer below it; and the
lasting fix for a built-in module (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck import facts
from hvcheck.check import Context
from hvcheck.checks.hostchecks import Nested, nested_hint
from hvcheck.host import SnapshotHost
from hvcheck.model import OK, WARNING
from snap import PROJECT, healthy_host, make_snapshot, run_json

OS_RELEASE = {
    "debian": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    "ubuntu": 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\nPRETTY_NAME="Ubuntu 24.04 LTS"\n',
    "rhel": 'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n',
    "sles": 'ID="sles"\nID_LIKE="suse"\nVERSION_ID="15.6"\n',
    "arch": 'ID=arch\nPRETTY_NAME="Arch Linux"\n',
    "alpine": 'ID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME="Alpine Linux v3.20"\n',
}


def _ctx(
    tmp: Path, arch: str = "x86_64", files: Optional[dict[str, str]] = None, **m: Any
) -> Context:
    root = make_snapshot(tmp / "s", dict(files or {}), {"arch": arch, "kernel": "6.8.0-t", **m})
    return Context(SnapshotHost(str(root)))


@pytest.mark.parametrize(
    ("os_id", "arch", "want"),
    [
        ("debian", "x86_64", "apt-get install qemu-system-x86"),
        ("debian", "aarch64", "apt-get install qemu-system-arm"),
        ("ubuntu", "ppc64le", "apt-get install qemu-system-ppc"),
        ("ubuntu", "s390x", "apt-get install qemu-system-s390x"),
        ("rhel", "aarch64", "dnf install qemu-kvm"),
        ("sles", "x86_64", "zypper install qemu-x86"),
        ("sles", "s390x", "zypper install qemu-s390x"),
        ("arch", "aarch64", "pacman -S qemu-base"),
        ("alpine", "aarch64", "apk add qemu-system-aarch64"),
    ],
)
def test_install_command_fits_distribution_and_architecture(
    tmp_path: Path, os_id: str, arch: str, want: str
) -> None:
    ctx = _ctx(tmp_path, arch, {"etc/os-release": OS_RELEASE[os_id]})
    got = facts.install_command(ctx)
    assert got == want
    if arch != "x86_64":
        assert "x86" not in got


@pytest.mark.parametrize(
    ("files", "marker", "want"),
    [
        (
            {
                "sys/class/dmi/id/sys_vendor": "innotek GmbH\n",
                "sys/class/dmi/id/product_name": "VirtualBox\n",
            },
            {},
            "--nested-hw-virt on",
        ),
        (
            {
                "sys/class/dmi/id/sys_vendor": "VMware, Inc.\n",
                "sys/class/dmi/id/product_name": "VMware7,1\n",
            },
            {},
            'vhv.enable = "TRUE"',
        ),
        (
            {
                "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
                "sys/class/dmi/id/product_name": "Virtual Machine\n",
            },
            {},
            "ExposeVirtualizationExtensions",
        ),
        (
            {
                "sys/class/dmi/id/sys_vendor": "Microsoft Corporation\n",
                "sys/class/dmi/id/product_name": "Virtual Machine\n",
                "sys/class/dmi/id/chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77\n",
            },
            {},
            "Azure",
        ),
        ({}, {"kernel": "5.15.153.1-microsoft-standard-WSL2"}, "nestedVirtualization=true"),
        (
            {
                "sys/class/dmi/id/sys_vendor": "Google\n",
                "sys/class/dmi/id/product_name": "Google Compute Engine\n",
            },
            {},
            "--enable-nested-virtualization",
        ),
        (
            {
                "sys/class/dmi/id/sys_vendor": "Amazon EC2\n",
                "sys/class/dmi/id/product_name": "m5.large\n",
            },
            {},
            ".metal",
        ),
        (
            {
                "sys/class/dmi/id/sys_vendor": "QEMU\n",
                "sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)\n",
            },
            {},
            "kvm_intel nested=1",
        ),
        ({"sys/hypervisor/type": "xen\n"}, {}, "nestedhvm=1"),
    ],
)
def test_nested_hint_names_the_switch_of_the_layer_below(
    tmp_path: Path, files: dict[str, str], marker: dict[str, Any], want: str
) -> None:
    ctx = _ctx(tmp_path, files=files, **marker)
    hint = nested_hint(ctx)
    assert want in hint and "virt_type = qemu" in hint
    assert "BIOS" not in hint


def test_nested_hint_on_arm64_and_powervm(tmp_path: Path) -> None:
    arm = _ctx(tmp_path / "a", "aarch64", {"sys/class/dmi/id/sys_vendor": "QEMU\n"})
    assert "kvm-arm.mode=nested" in nested_hint(arm) and "vmx" not in nested_hint(arm)
    ppc = _ctx(
        tmp_path / "p",
        "ppc64le",
        {"proc/cpuinfo": "processor\t: 0\ncpu\t\t: POWER10\nplatform\t: pSeries\n\n"},
    )
    assert "KVM Mode" in nested_hint(ppc)


def _fixture(name: str) -> dict[str, Any]:
    _, doc = run_json("--root", str(PROJECT / "fixtures" / name))
    return {c["id"]: c for c in doc["checks"]}


def test_builtin_module_nested_fix_is_the_command_line_never_a_reload() -> None:
    n = _fixture("builtin-kvm-intel-nested-modprobe-ignored")["nested.runtime"]
    assert n["code"] == "builtin-modprobe-ignored"
    assert "kernel command line" in n["hint"] and "kvm-intel.nested=1" in n["hint"]
    assert "modprobe -r" not in n["hint"] and "next module load" not in n["summary"]
    assert n["details"]["modprobe_d"]["applies"] is False


def test_firmware_disabled_amd_is_not_told_to_modprobe() -> None:
    checks = _fixture("debian12-amd-svm-disabled-by-bios")
    for cid in ("kvm.modules", "kvm.device", "firmware.virt", "cpu.virt_ext"):
        assert "modprobe" not in (checks[cid]["hint"] or ""), cid


def test_hyperv_guest_is_never_sent_to_the_bios() -> None:
    checks = _fixture("wsl2-hyperv-guest-no-nested")
    for c in checks.values():
        assert "BIOS" not in (c["hint"] or "") and "firmware" not in (c["hint"] or ""), c["id"]


def test_working_amd_host_reads_kvm_amd_nested_not_the_builtin_kvm_intel() -> None:
    checks = _fixture("amd-builtin-kvm-intel-noise")
    assert checks["nested.runtime"]["details"]["module"] == "kvm_amd"
    log = checks["kvm.kernel_log"]["details"]["messages"]
    noise = [m for m in log if m["text"] == "kvm: no hardware support"]
    assert (
        noise
        and noise[0]["relevant"] is False
        and noise[0]["meaning"] == ("vendor-module-not-applicable")
    )


def test_builtin_nested_set_on_the_command_line(tmp_path: Path) -> None:
    root = PROJECT / "fixtures" / "builtin-kvm-intel-nested-modprobe-ignored"
    ctx = _ctx(
        tmp_path,
        files={
            "proc/cmdline": "BOOT_IMAGE=/boot/vmlinuz ro kvm-intel.nested=1\n",
            "proc/cpuinfo": (root / "proc/cpuinfo").read_text(),
            "lib/modules/6.8.0-t/modules.builtin": "kernel/arch/x86/kvm/kvm.ko\n"
            "kernel/arch/x86/kvm/kvm-intel.ko\n",
            "sys/module/kvm_intel/parameters/nested": "Y\n",
        },
        devices={"/dev/kvm": {"type": "char", "major": 10, "minor": 232, "mode": "0660"}},
    )
    r = Nested().run(ctx)
    assert r.status is OK and r.details["builtin"] is True
    assert r.details["persisted"]["source"] == "kernel command line kvm-intel.nested"
    ctx2 = _ctx(
        tmp_path / "b",
        files={
            "proc/cmdline": "ro kvm-intel.nested=0\n",
            "proc/cpuinfo": (root / "proc/cpuinfo").read_text(),
            "lib/modules/6.8.0-t/modules.builtin": "kernel/arch/x86/kvm/kvm-intel.ko\n",
            "sys/module/kvm_intel/parameters/nested": "Y\n",
        },
        devices={"/dev/kvm": {"type": "char", "major": 10, "minor": 232, "mode": "0660"}},
    )
    r2 = Nested().run(ctx2)
    assert (
        r2.status is WARNING and "reboot" in (r2.hint or "") and "modprobe" not in (r2.hint or "")
    )


def test_a_vm_whose_vcpu_cannot_run_code_is_not_usable(tmp_path: Path) -> None:
    from snap import healthy_host

    guest = {
        "ok": False,
        "stage": "exit_io",
        "error": "expected KVM_EXIT_IO, got KVM_EXIT_INTERNAL_ERROR "
        "(suberror 1: emulation failure)",
        "exits": ["KVM_EXIT_INTERNAL_ERROR"],
    }
    root = healthy_host(
        tmp_path / "s",
        probes={"kvm": {"ok": True, "stage": "done", "api_version": 12, "uid": 0, "guest": guest}},
    )
    rc, doc = run_json("--root", str(root))
    assert doc["verdict"]["kvm_usable"] is False and rc == 2
    dev = next(c for c in doc["checks"] if c["id"] == "kvm.device")
    assert dev["status"] == "CRITICAL" and "emulation failure" in dev["summary"]
    assert dev["details"]["probe"]["guest"]["stage"] == "exit_io"


def test_a_kvm_node_that_is_not_a_char_device_is_not_described_as_char(tmp_path: Path) -> None:
    # docker -v /dev/kvm:/dev/kvm on a host without it makes a directory; live, hvcheck said
    # "/dev/kvm is not the KVM device (char 0:0 mode 0755 root:root; expected char 10:232)"
    root = healthy_host(tmp_path / "s")
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["devices"]["/dev/kvm"].update(type="block", major=10, minor=232)
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root), "--only", "kvm.device")
    (c,) = doc["checks"]
    assert c["status"] == "CRITICAL"
    assert "char 10:232 mode" not in c["summary"], c["summary"]
    assert "(block 10:232 mode " in c["summary"], c["summary"]
    # what `docker -v /dev/kvm:/dev/kvm` leaves on a host without the device: a directory
    marker["devices"]["/dev/kvm"].update(type="dir", major=0, minor=0, mode="0755")
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root), "--only", "kvm.device")
    (c,) = doc["checks"]
    assert c["status"] == "CRITICAL" and c["code"] == "wrong-device", c
    assert "(a directory, mode 0755 " in c["summary"] and "0:0" not in c["summary"], c
    assert c["hint"].startswith("rmdir /dev/kvm, then mknod /dev/kvm c 10 232"), c["hint"]


@pytest.mark.parametrize(
    ("uid", "kmsg_error", "expected"),
    [
        # root without a kernel log: sudo would change nothing
        (0, None, "take the snapshot again with `hvcheck collect` run on the host itself"),
        (0, "/dev/kmsg: ENOENT (No such file or directory)", "/dev/kmsg does not exist here"),
        (0, "/dev/kmsg: EPERM (Operation not permitted)", "root was refused /dev/kmsg"),
        (1000, "/dev/kmsg: EACCES (Permission denied)", "take the snapshot again as root"),
    ],
)
def test_an_unreadable_kernel_log_hint_follows_why_and_who(
    tmp_path: Path, uid: int, kmsg_error: Optional[str], expected: str
) -> None:
    """kvm.kernel_log's hint is built from why the log could not be read and who read it:
    it said "re-run with sudo" to root too, and where /dev/kmsg does not exist (a container)."""
    root = healthy_host(tmp_path / "s")
    (root / "dev/kmsg").unlink()
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["taken_as_uid"] = uid
    if kmsg_error is not None:
        marker.setdefault("probes", {})["kmsg_error"] = kmsg_error
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root), "--only", "kvm.kernel_log")
    (c,) = doc["checks"]
    assert c["status"] == "UNKNOWN" and c["code"] == "unreadable", c
    assert c["hint"].startswith(expected), c["hint"]
    assert ("sudo" in c["hint"]) == (uid != 0), c


def test_verdict_reason_describes_a_directory_at_dev_kvm(tmp_path: Path) -> None:
    """f7e7c46 describes a non-char /dev/kvm in kvm.device, but the verdict (JSON
    kvm_usable_reason, the Nagios/summary line) still says "/dev/kvm is a dir 0:0"."""
    root = healthy_host(tmp_path / "s")
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["devices"]["/dev/kvm"] = {
        "type": "dir",
        "major": 0,
        "minor": 0,
        "mode": "0755",
        "uid": 0,
        "gid": 0,
        "owner": "root",
        "group": "root",
    }
    del marker["probes"]["kvm"]
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root), "--only", "kvm.device")
    reason = doc["verdict"]["kvm_usable_reason"]
    assert "0:0" not in reason and "directory" in reason, reason
