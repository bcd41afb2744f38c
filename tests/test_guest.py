"""``hvcheck guest``: the view from inside a VM.

Held to real data: the corpus kernel logs of KVM, TCG, Hyper-V and VMware guests and of a bare
metal host (read in place), virt-what's cpuinfo test data (its kvm and qemu guests share one
CPU model: hvcheck must not claim either from it), a real TCG boot of Debian's cloud kernel
(fixtures/guest-tcg-debian12-cloud-kernel, tests/guestboot.py), this machine itself (a KVM
guest), and systemd-detect-virt where it is installed.
"""

from __future__ import annotations

import doctest
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Optional

import jsonschema
import pytest

from corpus import CORPUS, manifest, require_corpus
from hvcheck.cli import schema_text
from hvcheck.parsers import guest as pguest
from hvcheck.parsers.guest import (
    classify_cpu_model,
    classify_dmi,
    dmi_from_log,
    guest_log,
    hypervisor_from_kernel,
    parse_sysinfo,
)
from snap import PROJECT, make_snapshot, run_hvcheck

SCHEMA = json.loads(schema_text())
TCG_FIXTURE = PROJECT / "fixtures" / "guest-tcg-debian12-cloud-kernel"
CLOCKSOURCES = "/sys/devices/system/clocksource/clocksource0/available_clocksource"
EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def guest_json(*args: str) -> tuple[int, dict[str, Any]]:
    p = run_hvcheck("guest", "--json", *args)
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert p.returncode == doc["exit_code"] == EXIT[doc["status"]]
    return p.returncode, doc


# ------------------------------------------------------------------------------------------
# parsers
# ------------------------------------------------------------------------------------------
def test_parser_doctests() -> None:
    result = doctest.testmod(pguest)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(
    ("printed", "canonical"),
    [
        # the name of each hypervisor_x86 in arch/x86 (and the pre-4.x Hyper-V spelling)
        ("KVM", "kvm"),
        ("Xen HVM", "xen"),
        ("Xen PV", "xen"),
        ("VMware", "vmware"),
        ("Microsoft Hyper-V", "hyperv"),
        ("Microsoft HyperV", "hyperv"),
        ("ACRN", "acrn"),
        ("Jailhouse", "jailhouse"),
        ("Bhyve", "bhyve"),
        ("Something New", None),
    ],
)
def test_kernel_hypervisor_names(printed: str, canonical: Optional[str]) -> None:
    assert hypervisor_from_kernel(printed) == canonical


@pytest.mark.parametrize(
    ("vendor", "product", "hypervisor", "platform", "qemu", "kvm", "virtual"),
    [
        ("QEMU", "Standard PC (Q35 + ICH9, 2009)", None, None, True, None, True),
        ("QEMU", "KVM Virtual Machine", None, None, True, True, True),  # hw/arm/virt.c, KVM
        ("QEMU", "QEMU Virtual Machine", None, None, True, False, True),  # the same, TCG
        ("OpenStack Foundation", "OpenStack Nova", None, "OpenStack Nova", True, None, True),
        ("Google", "Google Compute Engine", "kvm", "Google Compute Engine", False, None, True),
        ("Amazon EC2", "m5.large", None, "Amazon EC2", False, None, True),
        ("Microsoft Corporation", "Virtual Machine", "hyperv", None, False, None, True),
        ("Microsoft Corporation", "Surface Pro 7", None, None, False, None, False),
        ("VMware, Inc.", "VMware7,1", "vmware", None, False, None, True),
        ("innotek GmbH", "VirtualBox", "virtualbox", None, False, None, True),
        ("Xen", "HVM domU", "xen", None, False, None, True),
        ("LENOVO", "2537CT4", None, None, False, None, False),
        ("", "", None, None, False, None, None),
    ],
)
def test_dmi_identities(
    vendor: str,
    product: str,
    hypervisor: Optional[str],
    platform: Optional[str],
    qemu: bool,
    kvm: Optional[bool],
    virtual: Optional[bool],
) -> None:
    ident = classify_dmi(vendor, product)
    assert (ident.hypervisor, ident.platform, ident.qemu, ident.kvm, ident.virtual) == (
        hypervisor,
        platform,
        qemu,
        kvm,
        virtual,
    )


def test_dmi_line_of_the_kernel_log_classifies_like_sysfs() -> None:
    for line, hv in (
        (
            "Microsoft Corporation Virtual Machine/Virtual Machine, BIOS 090008  12/07/2018",
            "hyperv",
        ),
        (
            "VMware, Inc. VMware Virtual Platform/440BX Desktop Reference Platform, "
            "BIOS 6.00 09/17/2015",
            "vmware",
        ),
        ("Xen HVM domU, BIOS 4.11.amazon 08/24/2006", "xen"),
    ):
        assert classify_dmi(*dmi_from_log(line)).hypervisor == hv, line
    assert classify_dmi(*dmi_from_log("QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16")).qemu


def test_cpu_models_of_qemu() -> None:
    # target/i386/cpu.c model_id of qemu64, max (TCG), kvm64, kvm32; a named model is not one
    assert classify_cpu_model("QEMU Virtual CPU version 0.13.0") == (True, False, "qemu64")
    assert classify_cpu_model("QEMU TCG CPU version 2.5+") == (True, True, "max")
    assert classify_cpu_model("Common KVM processor") == (True, False, "kvm64")
    assert classify_cpu_model("Common 32-bit KVM processor") == (True, False, "kvm32")
    assert classify_cpu_model("Intel Xeon Processor (Cascadelake)") is None
    assert classify_cpu_model("AMD EPYC") is None


def test_guest_log_reads_every_kernel_log_format() -> None:
    g = guest_log(
        [
            "6,0,0,-;Linux version 6.1.0-57-cloud-amd64",  # /dev/kmsg
            "<6>[    0.000000] Hypervisor detected: KVM",  # dmesg -r
            "[    0.000000] kvm-clock: Using msrs 4b564d01 and 4b564d00",
            "[    0.045410] Booting paravirtualized kernel on KVM",
            "[    3.328318] Switched to clocksource tsc",  # 3.x: no "clocksource: " prefix
            "[    0.1][    T1] CPU: All CPU(s) started at EL2",  # CONFIG_PRINTK_CALLER
        ]
    )
    assert g.complete and g.hypervisor == "KVM" and g.paravirt == "KVM"
    assert g.kvm_clock and g.clocksource == "tsc" and g.arm_el == "EL2"
    empty = guest_log([])
    assert not empty.complete and empty.hypervisor is None and not empty.kvm_clock


def test_sysinfo_keeps_the_first_of_each_key() -> None:
    # arch/s390/kernel/sysinfo.c pads values to 16 characters
    text = (
        "Manufacturer:         IBM             \n"
        "Type:                 8561\n"
        "VM00 Name:            LINUX01 \n"
        "VM00 Control Program: z/VM    7.2.0   \n"
    )
    si = parse_sysinfo(text)
    assert si["Manufacturer"] == "IBM" and si["VM00 Control Program"] == "z/VM    7.2.0"


# ------------------------------------------------------------------------------------------
# corpus: real kernel logs and cpuinfo, read in place
# ------------------------------------------------------------------------------------------
LOG_TRUTH = {"kvm": ("kvm", "kvm"), "hyperv": ("other", "hyperv"), "vmware": ("other", "vmware")}
LOG_TRUTH["qemu-tcg"] = ("tcg", "qemu")


def _kernel_log_rows() -> list[tuple[str, dict[str, str]]]:
    return [
        (f, facts)
        for f, facts, _ in manifest("kernel-log")
        if facts.get("guest_of") in LOG_TRUTH or facts.get("env") == "baremetal"
    ]


@pytest.mark.parametrize(
    ("name", "facts"), _kernel_log_rows() or [("none", {})], ids=lambda x: str(x)[:60]
)
def test_corpus_kernel_log_alone_names_the_hypervisor(
    name: str, facts: dict[str, str], tmp_path: Path
) -> None:
    """A snapshot holding only a real guest's kernel log: the guest_of fact of the corpus row."""
    require_corpus()
    text = (CORPUS / name).read_text(encoding="utf-8", errors="replace")
    root = make_snapshot(tmp_path / "s", {"/dev/kmsg": text})
    _, doc = guest_json("--root", str(root))
    g = doc["guest"]
    if facts.get("env") == "baremetal":
        assert (g["accel"], g["hypervisor"]) == ("none", None), g
    else:
        assert (g["accel"], g["hypervisor"]) == LOG_TRUTH[facts["guest_of"]], (name, g)
        assert g["evidence"] == ["kernel-log"], g
    want_status = {"tcg": "WARNING", "unknown": "UNKNOWN"}.get(g["accel"], "OK")
    assert doc["status"] == want_status


def test_corpus_covers_each_kind_of_guest() -> None:
    require_corpus()
    kinds = {f.get("guest_of") or f.get("env") for _, f in _kernel_log_rows()}
    assert kinds >= {"kvm", "qemu-tcg", "hyperv", "vmware", "baremetal"}, kinds


def _cpuinfo_only(
    tmp_path: Path, name: str, files: Optional[dict[str, str]] = None
) -> dict[str, Any]:
    """``hvcheck guest`` on a snapshot of a corpus cpuinfo and ``files``: its guest object."""
    require_corpus()
    text = (CORPUS / "cpuinfo" / name).read_text(encoding="utf-8")
    root = make_snapshot(tmp_path / name, {"/proc/cpuinfo": text, **(files or {})})
    return guest_json("--root", str(root))[1]["guest"]


def test_virt_what_kvm_and_qemu_cpuinfo_alone_decide_nothing(tmp_path: Path) -> None:
    """virt-what's kvm and qemu (TCG) test guests have the same CPU model, "QEMU Virtual CPU
    version 0.13.0": the model says QEMU, never which accelerator."""
    for name in ("virt-what_kvm.cpuinfo", "virt-what_qemu.cpuinfo"):
        g = _cpuinfo_only(tmp_path, name)
        assert g["accel"] == "unknown" and g["hypervisor"] is None, (name, g)
        assert set(g["evidence"]) == {"cpu-model", "cpu-flag"}, g


@pytest.mark.parametrize(
    ("name", "accel", "hypervisor"),
    [
        ("virt-what_baremetal.cpuinfo", "none", None),
        ("virt-what_aws-baremetal-x86.cpuinfo", "none", None),
        ("virt-what_aws-kvm-x86.cpuinfo", "unknown", None),  # a VM, but cpuinfo names nothing
        ("virt-what_ppc64-baremetal.cpuinfo", "none", None),
        ("virt-what_ppc64-lpar-shared.cpuinfo", "other", "powervm"),
        ("virt-what_ppc64-kvm.cpuinfo", "unknown", None),  # QEMU pSeries: KVM or TCG?
    ],
)
def test_virt_what_cpuinfo_alone(
    tmp_path: Path, name: str, accel: str, hypervisor: Optional[str]
) -> None:
    g = _cpuinfo_only(tmp_path, name)
    assert (g["accel"], g["hypervisor"]) == (accel, hypervisor), g


def test_pseries_under_qemu_the_device_tree_tells(tmp_path: Path) -> None:
    """QEMU adds the /hypervisor node ("linux,kvm") to a pSeries guest's device tree only under
    KVM (hw/ppc/spapr.c); the kernel's is_kvm_guest() reads the same node."""
    kvm = _cpuinfo_only(
        tmp_path / "kvm",
        "virt-what_ppc64-kvm.cpuinfo",
        {
            "/proc/device-tree/hypervisor/compatible": "linux,kvm\0epapr,hypervisor-0.2\0",
            "/proc/device-tree/model": "IBM pSeries (emulated by qemu)\0",
        },
    )
    assert (kvm["accel"], kvm["evidence"][0]) == ("kvm", "device-tree"), kvm
    tcg = _cpuinfo_only(
        tmp_path / "tcg",
        "virt-what_ppc64-kvm.cpuinfo",
        {"/proc/device-tree/model": "IBM pSeries (emulated by qemu)\0"},
    )
    assert tcg["accel"] == "tcg", tcg


@pytest.mark.parametrize(
    ("manufacturer", "control_program", "accel", "hypervisor"),
    [
        ("QEMU", "KVM/Linux", "tcg", "qemu"),  # target/s390x/tcg/misc_helper.c HELPER(stsi)
        ("IBM", "KVM/Linux", "kvm", "kvm"),
        ("IBM", "z/VM    7.2.0", "other", "zvm"),
    ],
)
def test_s390x_sysinfo(
    tmp_path: Path, manufacturer: str, control_program: str, accel: str, hypervisor: str
) -> None:
    sysinfo = (
        f"Manufacturer:         {manufacturer:<16}\n"
        "Type:                 8561\n"
        "LPAR Name:            LP01    \n"
        f"VM00 Control Program: {control_program:<16}\n"
    )
    g = _cpuinfo_only(tmp_path, "cpu_features_s390x_z15.cpuinfo", {"/proc/sysinfo": sysinfo})
    assert (g["accel"], g["hypervisor"], g["evidence"]) == (accel, hypervisor, ["sysinfo"]), g


# ------------------------------------------------------------------------------------------
# the real TCG guest (fixture captured by tests/guestboot.py), one source at a time
# ------------------------------------------------------------------------------------------
def _tcg_copy(tmp_path: Path) -> Path:
    root = tmp_path / "tcg"
    shutil.copytree(TCG_FIXTURE, root)
    (root / "expected.json").unlink()
    return root


def test_tcg_guest_without_its_kernel_log_still_tcg_from_the_clocksources(tmp_path: Path) -> None:
    root = _tcg_copy(tmp_path)
    (root / "dev" / "kmsg").unlink()
    code, doc = guest_json("--root", str(root))
    assert (code, doc["guest"]["accel"]) == (1, "tcg")
    assert "kernel-log" not in doc["guest"]["evidence"]
    assert "clocksource" in doc["guest"]["evidence"]


def test_tcg_guest_with_neither_log_nor_clocksources_cannot_tell(tmp_path: Path) -> None:
    root = _tcg_copy(tmp_path)
    (root / "dev" / "kmsg").unlink()
    (root / CLOCKSOURCES.lstrip("/")).unlink()
    code, doc = guest_json("--root", str(root))
    assert (code, doc["status"], doc["guest"]["accel"]) == (3, "UNKNOWN", "unknown")
    accel = next(c for c in doc["checks"] if c["id"] == "guest.accel")
    assert "kernel log" in accel["hint"] and "available_clocksource" in accel["hint"]


def test_a_hidden_hypervisor_flag_is_not_read_as_tcg(tmp_path: Path) -> None:
    """-cpu ...,-hypervisor hides the flag; the kernel then looks for no hypervisor, so a
    missing "Hypervisor detected" line proves nothing."""
    root = _tcg_copy(tmp_path)
    ci = root / "proc" / "cpuinfo"
    ci.write_text(ci.read_text().replace(" hypervisor", ""))
    _, doc = guest_json("--root", str(root))
    assert doc["guest"]["accel"] == "unknown"


def test_tcg_nova_instance_hint_names_virt_type(tmp_path: Path) -> None:
    root = _tcg_copy(tmp_path)
    (root / "sys/class/dmi/id/sys_vendor").write_text("OpenStack Foundation\n")
    (root / "sys/class/dmi/id/product_name").write_text("OpenStack Nova\n")
    _, doc = guest_json("--root", str(root))
    assert (doc["guest"]["accel"], doc["guest"]["platform"]) == ("tcg", "OpenStack Nova")
    accel = next(c for c in doc["checks"] if c["id"] == "guest.accel")
    assert "virt_type = kvm" in accel["hint"] and "compute node" in accel["hint"]


def test_virtualbox_offering_kvms_interface_is_virtualbox(tmp_path: Path) -> None:
    """VirtualBox's default paravirtualization provider for Linux guests is KVM's: the kernel
    says KVM and registers kvm-clock, DMI says VirtualBox."""
    root = make_snapshot(
        tmp_path / "vbox",
        {
            "/dev/kmsg": "[    0.000000] Linux version 6.1.0\n"
            "[    0.000000] DMI: innotek GmbH VirtualBox/VirtualBox, BIOS VirtualBox 12/01/2006\n"
            "[    0.000000] Hypervisor detected: KVM\n",
            CLOCKSOURCES: "kvm-clock tsc acpi_pm \n",
            "/sys/class/dmi/id/sys_vendor": "innotek GmbH\n",
            "/sys/class/dmi/id/product_name": "VirtualBox\n",
        },
    )
    _, doc = guest_json("--root", str(root))
    assert (doc["guest"]["accel"], doc["guest"]["hypervisor"]) == ("other", "virtualbox")


def test_arm64_virt_board_dmi_tells_kvm_from_tcg(tmp_path: Path) -> None:
    """QEMU's arm virt board names itself "KVM Virtual Machine" only when KVM is on
    (hw/arm/virt.c virt_build_smbios)."""
    require_corpus()
    cpu = (CORPUS / "cpuinfo" / "py-cpuinfo_linux_aarch64_64.cpuinfo").read_text()
    for product, accel in (("KVM Virtual Machine", "kvm"), ("QEMU Virtual Machine", "tcg")):
        root = make_snapshot(
            tmp_path / accel,
            {
                "/proc/cpuinfo": cpu,
                "/sys/class/dmi/id/sys_vendor": "QEMU\n",
                "/sys/class/dmi/id/product_name": product + "\n",
            },
            marker={"arch": "aarch64"},
        )
        _, doc = guest_json("--root", str(root))
        assert (doc["guest"]["accel"], doc["guest"]["evidence"]) == (accel, ["dmi"]), doc


def test_hostile_dmi_strings_are_escaped_in_the_table_and_round_trip_in_json(
    tmp_path: Path,
) -> None:
    evil = "VMware, Inc.\x1b[2J\x07 | evil"
    root = make_snapshot(
        tmp_path / "evil",
        {"/sys/class/dmi/id/sys_vendor": evil + "\n", "/sys/class/dmi/id/product_name": "x\n"},
    )
    _, doc = guest_json("--root", str(root))
    accel = next(c for c in doc["checks"] if c["id"] == "guest.accel")
    assert evil in accel["summary"]  # raw in the document; json escaped it
    for fmt in ("table", "nagios"):
        out = run_hvcheck("guest", "--root", str(root), "--format", fmt).stdout
        assert "\x1b" not in out and "\x07" not in out, fmt
    nagios = run_hvcheck("guest", "--root", str(root), "--format", "nagios").stdout
    assert nagios.count("|") == 1


# ------------------------------------------------------------------------------------------
# the engine: guest checks run in `hvcheck guest` only
# ------------------------------------------------------------------------------------------
def test_guest_checks_run_only_in_hvcheck_guest() -> None:
    from hvcheck import engine

    host_ids = {lc.id for lc in engine.load_checks()}
    guest_ids = {lc.id for lc in engine.load_checks("guest")}
    assert guest_ids == {"guest.accel", "guest.nested"}
    assert not host_ids & guest_ids and "kvm.device" in host_ids
    assert {lc.id for lc in engine.load_checks("all")} == host_ids | guest_ids
    listed = json.loads(run_hvcheck("--json", "checks").stdout)
    reads = {c["id"]: c["reads"] for c in listed}
    assert CLOCKSOURCES in reads["guest.accel"] and "/dev/kmsg" in reads["guest.accel"]
    # the host run's --only knows no guest check: a usage error that says so
    p = run_hvcheck("--only", "guest.accel", "--root", str(TCG_FIXTURE))
    assert p.returncode == 3 and "selects no check" in p.stderr


def test_guest_cli_formats_and_errors(tmp_path: Path) -> None:
    for args in (["guest", "--format", "prometheus"], ["--format", "prometheus", "guest"]):
        p = run_hvcheck(*args, "--root", str(TCG_FIXTURE))
        assert p.returncode == 3 and "Traceback" not in p.stderr, (args, p.stderr)
    # the group's --json reaches the subcommand
    doc = json.loads(run_hvcheck("--json", "guest", "--root", str(TCG_FIXTURE)).stdout)
    assert doc["guest"]["accel"] == "tcg" and doc["generated_at"] == "2026-12-06T02:53:10Z"
    # a path that is no snapshot: UNKNOWN in the asked format, valid against the schema
    code, doc = guest_json("--root", str(tmp_path / "nothing"))
    assert code == 3 and doc["guest"]["accel"] == "unknown" and "error" in doc
    n = run_hvcheck("guest", "--format", "nagios", "--root", str(tmp_path / "nothing"))
    assert n.returncode == 3 and n.stdout.startswith("HVCHECK UNKNOWN - ")
    h = run_hvcheck("guest", "-h")
    assert h.returncode == 0 and "Usage: hvcheck guest" in h.stdout and "TCG" in h.stdout


def test_guest_table_names_accel_nested_and_evidence() -> None:
    t = run_hvcheck("guest", "--root", str(TCG_FIXTURE))
    assert t.returncode == 1
    assert "hvcheck guest WARNING" in t.stdout
    assert "Acceleration: tcg (hypervisor: qemu)" in t.stdout
    assert "Nested virtualization: offered" in t.stdout
    assert "Evidence: kernel-log, clocksource" in t.stdout


# ------------------------------------------------------------------------------------------
# live: this machine is itself a KVM guest
# ------------------------------------------------------------------------------------------
SYSTEMD_TO_HVCHECK = {
    "kvm": ("kvm", "kvm"),
    "amazon": ("kvm", "kvm"),  # Nitro
    "google": ("kvm", "kvm"),
    "qemu": ("tcg", "qemu"),  # systemd: QEMU without KVM (CPUID "TCGTCGTCGTCG", or DMI QEMU)
    "microsoft": ("other", "hyperv"),
    "vmware": ("other", "vmware"),
    "xen": ("other", "xen"),
    "oracle": ("other", "virtualbox"),
    "none": ("none", None),
}


def systemd_detect_virt_vm() -> Optional[str]:
    exe = shutil.which("systemd-detect-virt")
    if exe is None:
        return None
    p = subprocess.run([exe, "--vm"], capture_output=True, text=True, timeout=30)
    return p.stdout.strip() or None


def test_live_guest_agrees_with_systemd_detect_virt() -> None:
    """systemd-detect-virt --vm (src/basic/virt.c: CPUID leaf 0x40000000 first, then DMI) is
    a reference implementation where it is installed."""
    sdv = systemd_detect_virt_vm()
    if sdv is None:
        pytest.skip("systemd-detect-virt is not installed")
    if sdv not in SYSTEMD_TO_HVCHECK:
        pytest.skip(f"systemd-detect-virt says {sdv!r}, which hvcheck has no mapping for")
    _, doc = guest_json()
    assert (doc["guest"]["accel"], doc["guest"]["hypervisor"]) == SYSTEMD_TO_HVCHECK[sdv], doc


def test_live_guest_on_this_kvm_guest_says_kvm() -> None:
    """This project's machines are KVM guests: "Hypervisor detected: KVM" at boot and kvm-clock
    among the clocksources, read here independently of hvcheck."""
    try:
        avail = Path(CLOCKSOURCES).read_text().split()
        log = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout
    except OSError as e:
        pytest.skip(f"cannot read the evidence independently: {e}")
    if "kvm-clock" not in avail or "Hypervisor detected: KVM" not in log:
        pytest.skip("this machine is not a KVM guest with kvm-clock (another machine)")
    code, doc = guest_json()
    g = doc["guest"]
    assert (code, doc["status"], g["accel"], g["hypervisor"]) == (0, "OK", "kvm", "kvm"), g
    assert {"kernel-log", "clocksource"} <= set(g["evidence"]) and doc["source"]["live"]
    assert doc["generated_at"] and doc["host"]["virtual"] is True


def test_collect_in_a_guest_replays_as_the_live_guest(tmp_path: Path) -> None:
    """`hvcheck collect` inside a VM records what the guest checks read: the replay gives the
    live answer, and the marker keeps the live guest verdict."""
    out = tmp_path / "snap.tar.gz"
    p = run_hvcheck("collect", "-o", str(out))
    assert p.returncode == 0, p.stderr
    _, live = guest_json()
    _, replay = guest_json("--root", str(out))
    for key in ("accel", "hypervisor", "nested", "evidence"):
        assert replay["guest"][key] == live["guest"][key], key
    assert replay["source"] == {"live": False, "snapshot": str(out)}
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        marker = json.loads(tf.extractfile("hvcheck-snapshot.json").read())  # type: ignore[union-attr]
    assert "dev/kmsg" in names and CLOCKSOURCES.lstrip("/") in names
    assert marker["live_verdict"]["guest"]["accel"] == live["guest"]["accel"]
    assert replay["generated_at"] == marker["taken_at"]
