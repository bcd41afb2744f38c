"""What a guest sees of the machine under it: pure parsers for ``hvcheck guest`` (no I/O).

Each function turns the text of one source into data; the judgement (KVM, TCG, another
hypervisor, bare metal) is ``hvcheck.facts.guest_accel``. The sources:

- the clocksource list, ``/sys/devices/system/clocksource/clocksource0/available_clocksource``
  (drivers/clocksource, kernel/time/clocksource.c): ``kvm-clock`` is registered only when KVM's
  paravirtual clock is offered (arch/x86/kernel/kvmclock.c, kvm_para_available()); ``xen``,
  ``hyperv_clocksource_tsc_page`` / ``hyperv_clocksource_msr`` likewise for Xen and Hyper-V.
- the kernel's hypervisor name, "Hypervisor detected: %s" (arch/x86/kernel/cpu/hypervisor.c,
  the ``name`` of each ``hypervisor_x86``: "KVM", "Xen HVM", "Xen PV", "VMware",
  "Microsoft Hyper-V" — "Microsoft HyperV" before 4.x —, "ACRN", "Jailhouse", "Bhyve"). QEMU's
  TCG answers CPUID 0x40000000 with "TCGTCGTCGTCG" (target/i386/cpu.c), which no kernel driver
  claims: a TCG guest prints no such line and "Booting paravirtualized kernel on bare hardware".
- DMI ``sys_vendor`` / ``product_name`` (/sys/class/dmi/id, drivers/firmware/dmi-id.c), set by
  the hypervisor's firmware: QEMU's PC machines say "QEMU" / "Standard PC (...)" whatever the
  accelerator; its arm and riscv ``virt`` boards say "KVM Virtual Machine" only when KVM is on
  and "QEMU Virtual Machine" otherwise (hw/arm/virt.c virt_build_smbios); Nova's libvirt
  driver writes "OpenStack Foundation" / "OpenStack Nova" (nova/virt/libvirt/config.py).
- the CPU model name (x86 ``model name``): QEMU's own models ``qemu64``/``qemu32`` ("QEMU
  Virtual CPU version X") and ``max`` under TCG ("QEMU TCG CPU version X"); ``kvm64``/``kvm32``
  are "Common KVM processor" / "Common 32-bit KVM processor" (target/i386/cpu.c).
- s390x ``/proc/sysinfo`` (arch/s390/kernel/sysinfo.c): under QEMU's TCG the basic machine
  manufacturer is "QEMU" (target/s390x/tcg/misc_helper.c HELPER(stsi)); under KVM it is the
  real machine's ("IBM"); "VM00 Control Program" is "KVM/Linux" under both, "z/VM x.y" under
  z/VM, absent in an LPAR.
- POWER ``/proc/device-tree/hypervisor/compatible``: QEMU's pSeries machine adds the
  ``/hypervisor`` node ("linux,kvm") only when KVM runs it (hw/ppc/spapr.c; the kernel's
  is_kvm_guest() reads the same node, arch/powerpc/kernel/firmware.c).
"""

import re
from collections.abc import Iterable
from typing import NamedTuple, Optional

from hvcheck.parsers.kernel import kmsg_text

# ---------------------------------------------------------------------------------- clocksources
# clocksource name -> the hypervisor whose paravirtual clock it is
PARAVIRT_CLOCKS = {
    "kvm-clock": "kvm",  # arch/x86/kernel/kvmclock.c
    "xen": "xen",  # arch/x86/xen/time.c
    "hyperv_clocksource_tsc_page": "hyperv",  # drivers/clocksource/hyperv_timer.c
    "hyperv_clocksource_msr": "hyperv",
}


def parse_clocksources(text: str) -> tuple[str, ...]:
    """The names in ``available_clocksource`` (or ``current_clocksource``): one line, names
    separated by spaces.

    >>> parse_clocksources("tsc kvm-clock hpet acpi_pm \\n")
    ('tsc', 'kvm-clock', 'hpet', 'acpi_pm')
    """
    return tuple(text.split())


# ---------------------------------------------------------------------------------- hypervisors
# canonical names, as the JSON ``guest.hypervisor`` gives them (systemd-detect-virt's where
# it has one: src/basic/virt.c; "qemu" there and here is QEMU without KVM)
_KERNEL_NAMES = (
    ("kvm", "kvm"),
    ("xen", "xen"),
    ("vmware", "vmware"),
    ("microsoft hyper", "hyperv"),
    ("acrn", "acrn"),
    ("jailhouse", "jailhouse"),
    ("bhyve", "bhyve"),
)


def hypervisor_from_kernel(name: str) -> Optional[str]:
    """The canonical name of what the kernel printed in "Hypervisor detected: <name>".

    >>> [hypervisor_from_kernel(n) for n in ("KVM", "Xen HVM", "Microsoft HyperV", "Foo")]
    ['kvm', 'xen', 'hyperv', None]
    """
    low = name.strip().lower()
    for prefix, canonical in _KERNEL_NAMES:
        if low.startswith(prefix):
            return canonical
    return None


class DmiIdentity(NamedTuple):
    """What DMI says about the machine."""

    hypervisor: Optional[str]  # a hypervisor DMI names outright (xen, hyperv, vmware, ...)
    platform: Optional[str]  # a cloud or product worth naming ("OpenStack Nova", "Amazon EC2")
    qemu: bool  # a QEMU machine (KVM or TCG: DMI alone does not tell for PC machines)
    kvm: Optional[bool]  # QEMU's virt boards: True "KVM Virtual Machine", False "QEMU ..."
    virtual: Optional[bool]  # True: a VM's firmware; False: a hardware vendor's; None: none


# (needle in "vendor product", lower case) -> (hypervisor, platform, qemu machine)
_DMI_TABLE: tuple[tuple[str, Optional[str], Optional[str], bool], ...] = (
    ("openstack", None, "OpenStack Nova", True),
    ("google compute engine", "kvm", "Google Compute Engine", False),
    ("amazon ec2", None, "Amazon EC2", False),  # Nitro (KVM) or Xen: the kernel tells
    ("alibaba cloud", "kvm", "Alibaba Cloud ECS", False),
    ("hetzner", None, "Hetzner Cloud", True),
    ("digitalocean", None, "DigitalOcean", True),
    ("ovirt", None, "oVirt", True),
    ("rhev", None, "Red Hat Virtualization", True),
    ("nutanix", None, "Nutanix AHV", True),
    ("proxmox", None, "Proxmox VE", True),
    ("bochs", None, "Bochs", True),
    ("qemu", None, None, True),
    ("vmware", "vmware", None, False),
    ("innotek", "virtualbox", None, False),
    ("virtualbox", "virtualbox", None, False),
    ("parallels", "parallels", None, False),
    ("bhyve", "bhyve", None, False),
    ("xen", "xen", None, False),
    ("apple virtualization", "apple", None, False),
)


def classify_dmi(vendor: str, product: str) -> DmiIdentity:
    """Identify the machine from DMI ``sys_vendor`` and ``product_name`` (either may be "").

    >>> classify_dmi("QEMU", "Standard PC (i440FX + PIIX, 1996)")
    DmiIdentity(hypervisor=None, platform=None, qemu=True, kvm=None, virtual=True)
    >>> classify_dmi("QEMU", "KVM Virtual Machine").kvm
    True
    >>> classify_dmi("Microsoft Corporation", "Virtual Machine").hypervisor
    'hyperv'
    >>> classify_dmi("LENOVO", "20XW0055GE").virtual
    False
    """
    v, p = vendor.strip(), product.strip()
    text = f"{v} {p}".lower()
    kvm: Optional[bool] = None
    if p.startswith("KVM Virtual Machine"):
        kvm = True
    elif p.startswith("QEMU Virtual Machine"):
        kvm = False
    if v.lower().startswith("microsoft") and "virtual machine" in p.lower():
        return DmiIdentity("hyperv", None, False, None, True)
    if p.startswith("KVM") and not v:
        return DmiIdentity("kvm", None, True, True, True)
    for needle, hv, platform, qemu in _DMI_TABLE:
        if needle in text:
            return DmiIdentity(hv, platform, qemu, kvm, True)
    if kvm is not None:
        return DmiIdentity(None, None, True, kvm, True)
    if not v and not p:
        return DmiIdentity(None, None, False, None, None)
    return DmiIdentity(None, None, False, None, False)


class CpuModel(NamedTuple):
    qemu: bool  # one of QEMU's own CPU models
    tcg_only: bool  # a model QEMU gives under TCG only ("QEMU TCG CPU": -cpu max)
    name: str  # the QEMU model (-cpu NAME) it is


def classify_cpu_model(model_name: str) -> Optional[CpuModel]:
    """QEMU's own x86 CPU models by their ``model name`` (target/i386/cpu.c model_id);
    None for any other model (a real CPU's, or a named model such as "EPYC-Rome").

    >>> classify_cpu_model("QEMU Virtual CPU version 2.5+")
    CpuModel(qemu=True, tcg_only=False, name='qemu64')
    >>> classify_cpu_model("QEMU TCG CPU version 2.5+").tcg_only
    True
    >>> classify_cpu_model("Common KVM processor").name
    'kvm64'
    """
    m = model_name.strip()
    if m.startswith("QEMU TCG CPU"):
        return CpuModel(True, True, "max")
    if m.startswith("QEMU Virtual CPU"):
        return CpuModel(True, False, "qemu64")
    if m.startswith("Common KVM processor"):
        return CpuModel(True, False, "kvm64")
    if m.startswith("Common 32-bit KVM processor"):
        return CpuModel(True, False, "kvm32")
    return None


# ---------------------------------------------------------------------------------- s390x, POWER
def parse_sysinfo(text: str) -> dict[str, str]:
    """``/proc/sysinfo`` as ``{key: value}`` (first occurrence of each key).

    >>> parse_sysinfo("Manufacturer:         QEMU\\nVM00 Control Program: KVM/Linux\\n")
    {'Manufacturer': 'QEMU', 'VM00 Control Program': 'KVM/Linux'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip(), value.strip())
    return out


def parse_dt_strings(data: str) -> tuple[str, ...]:
    """A device-tree string-list property (``compatible``): NUL-separated strings.

    >>> parse_dt_strings("linux,kvm\\x00epapr,hypervisor-0.2\\x00")
    ('linux,kvm', 'epapr,hypervisor-0.2')
    """
    return tuple(s for s in data.split("\0") if s.strip())


# ---------------------------------------------------------------------------------- kernel log
class GuestLog(NamedTuple):
    """What a kernel log says about the machine it booted on, as a guest sees it."""

    complete: bool  # it holds the boot's start ("Linux version"): an absent line is absent
    hypervisor: Optional[str]  # "Hypervisor detected: <name>", verbatim
    paravirt: Optional[str]  # "Booting paravirtualized kernel on <name>" (x86 pv_info.name)
    kvm_clock: bool  # kvm-clock registered or switched to
    clocksource: Optional[str]  # the last "Switched to clocksource <name>"
    dmi: Optional[str]  # "DMI: ..." / "Hardware name: ..."
    arm_el: Optional[str]  # arm64 "CPU: All CPU(s) started at EL2" -> "EL2" (smp.c)


# compiled where guest_log reads a log: not every run does
_PARAVIRT = r"^Booting paravirtualized kernel on (.+?)\s*$"
# kernel/time/clocksource.c; before 4.x without the "clocksource: " prefix
_SWITCHED = r"^(?:clocksource: )?Switched to clocksource (\S+)"
# arch/x86/kernel/kvmclock.c: "kvm-clock: Using msrs %x and %x", "kvm-clock: cpu %d, msr %llx"
_KVM_CLOCK = r"^kvm-clock: (?:Using msrs|cpu \d+, msr)"
_ARM_EL = r"^CPU: All CPU\(s\) started at (EL\d)"


def guest_log(lines: Iterable[str]) -> GuestLog:
    """The guest-relevant lines of a kernel log (any format ``kmsg_text`` reads).

    >>> g = guest_log(["<5>[    0.000000] Linux version 6.1.0",
    ...                "[    0.000000] Hypervisor detected: KVM",
    ...                "[    0.1] clocksource: Switched to clocksource kvm-clock"])
    >>> (g.complete, g.hypervisor, g.kvm_clock, g.clocksource)
    (True, 'KVM', True, 'kvm-clock')
    """
    complete = False
    hv = paravirt = switched = dmi = arm_el = None
    kvm_clock = False
    paravirt_re, switched_re = re.compile(_PARAVIRT), re.compile(_SWITCHED)
    kvm_clock_re, arm_el_re = re.compile(_KVM_CLOCK), re.compile(_ARM_EL)
    for raw in lines:
        t = kmsg_text(raw).strip()
        if not t:
            continue
        if t.startswith("Linux version "):
            complete = True
        elif hv is None and t.startswith("Hypervisor detected:"):
            hv = t.split(":", 1)[1].strip()
        elif paravirt is None and (m := paravirt_re.match(t)):
            paravirt = m.group(1)
        elif m := switched_re.match(t):
            switched = m.group(1)
            kvm_clock = kvm_clock or switched == "kvm-clock"
        elif kvm_clock_re.match(t):
            kvm_clock = True
        elif dmi is None and t.startswith(("DMI: ", "Hardware name: ")):
            dmi = t.split(":", 1)[1].strip()
        elif arm_el is None and (m := arm_el_re.match(t)):
            arm_el = m.group(1)
    return GuestLog(complete, hv, paravirt, kvm_clock, switched, dmi, arm_el)


def dmi_from_log(line: str) -> tuple[str, str]:
    """Vendor and product from the kernel's DMI line (dmi_setup(): "<vendor> <product>/<board>,
    BIOS ..."): the vendor is the first word, which is only right for one-word vendors, so
    callers use it only to classify.

    >>> dmi_from_log("QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2 04/01/2014")
    ('QEMU', 'Standard PC (i440FX + PIIX, 1996)')
    """
    head = line.split(", BIOS ", 1)[0]
    head = head.rsplit("/", 1)[0] if "/" in head else head
    vendor, _, product = head.partition(" ")
    return vendor, product
