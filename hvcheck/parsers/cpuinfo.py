"""Parse ``/proc/cpuinfo`` on x86, arm64, s390x and POWER into virtualization facts.

The formats differ per architecture (arch/*/kernel/*cpuinfo* in the kernel):

- x86 (arch/x86/kernel/cpu/proc.c): ``flags`` per processor; ``vmx``/``svm`` are the
  virtualization extensions, ``hypervisor`` is set when the kernel runs as a guest, ``lm``
  means 64-bit. Since 5.8 a separate ``vmx flags`` line lists VMX sub-features; it is not
  ``flags``. The kernel clears ``vmx`` when the BIOS disabled VT-x (arch/x86/kernel/cpu/feat_ctl.c).
- arm64 (arch/arm64/kernel/cpuinfo.c): ``Features``, ``CPU implementer``; no virtualization
  flag at all: KVM availability shows only in ``/dev/kvm`` and the kernel log.
- s390x (arch/s390/kernel/processor.c): one ``features`` line; ``sie`` means the
  Start-Interpretive-Execution facility KVM needs.
- POWER (arch/powerpc/kernel/setup-common.c): ``platform`` is ``PowerNV`` on bare metal
  (KVM-HV possible) or ``pSeries`` under PowerVM/KVM (only the slow KVM-PR).

>>> info = parse_cpuinfo('''processor\\t: 0
... vendor_id\\t: GenuineIntel
... model name\\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz
... flags\\t\\t: fpu vme de pse tsc msr pae mce cx8 apic sep lm vmx ssse3
... ''')
>>> (info.arch_family, info.arch, info.vmx, info.svm, info.hypervisor)
('x86', 'x86_64', True, False, False)
"""

from typing import NamedTuple, Optional


class CpuInfo(NamedTuple):
    arch_family: Optional[str]  # x86 | arm | s390 | ppc | riscv | None (unrecognised)
    arch: Optional[str]  # best guess: x86_64, i686, aarch64, arm, s390x, ppc64, riscv64
    processors: int
    vendor: Optional[str]
    model_name: Optional[str]
    flags: frozenset[str]  # x86 flags / arm Features / s390 features
    vmx: bool
    svm: bool
    hypervisor: bool  # x86 "hypervisor" flag
    sie: bool  # s390x
    platform: Optional[str]  # POWER: PowerNV | pSeries
    power_model: Optional[str]  # POWER "model" line, e.g. "IBM pSeries (emulated by qemu)"
    truncated: bool  # no complete processor block was found

    @property
    def virt_ext(self) -> Optional[str]:
        """The extension name that is present, or None."""
        if self.vmx:
            return "vmx"
        if self.svm:
            return "svm"
        if self.sie:
            return "sie"
        return None


def _fields(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        out.append((key.strip(), value.strip()))
    return out


def parse_cpuinfo(text: str) -> CpuInfo:
    """Facts from cpuinfo text; tolerant of truncation and garbage (never raises)."""
    fields = _fields(text)
    first: dict[str, str] = {}
    processors = 0
    for k, v in fields:
        kl = k.lower()
        if kl == "processor":
            processors += 1
        if kl == "# processors" and (v.isascii() and v.isdigit()):
            processors = max(processors, int(v))
        first.setdefault(kl, v)
    vendor = first.get("vendor_id")
    family: Optional[str] = None
    arch: Optional[str] = None
    flags: frozenset[str] = frozenset()
    platform = first.get("platform")
    power_model = first.get("model") if platform else None
    if vendor == "IBM/S390" or "# processors" in first:
        family, arch = "s390", "s390x"
        flags = frozenset(first.get("features", "").split())
    elif "flags" in first and (
        "vendor_id" in first or "model name" in first or "cpu family" in first
    ):
        family = "x86"
        flags = frozenset(first["flags"].split())
        arch = "x86_64" if "lm" in flags else "i686"
    elif "cpu implementer" in first or ("features" in first and "cpu architecture" in first):
        family = "arm"
        flags = frozenset(first.get("features", "").split())
        cpu_arch = first.get("cpu architecture", "")
        arch = (
            "aarch64"
            if cpu_arch in ("8", "AArch64")
            or "asimd" in flags
            or ((cpu_arch.isascii() and cpu_arch.isdigit()) and int(cpu_arch) >= 8)
            else "arm"
        )
    elif platform or first.get("cpu", "").upper().startswith(("POWER", "PPC")):
        # cpuinfo does not carry the endianness: ppc64 and ppc64le look the same here
        family, arch = "ppc", "ppc64"
    elif "isa" in first and first["isa"].startswith("rv64"):
        family, arch = "riscv", "riscv64"
    return CpuInfo(
        arch_family=family,
        arch=arch,
        processors=processors,
        vendor=vendor,
        model_name=first.get("model name") or first.get("cpu"),
        flags=flags,
        vmx=family == "x86" and "vmx" in flags,
        svm=family == "x86" and "svm" in flags,
        hypervisor=family == "x86" and "hypervisor" in flags,
        sie=family == "s390" and "sie" in flags,
        platform=platform,
        power_model=power_model,
        truncated=not fields,
    )


def arch_family(machine: str) -> Optional[str]:
    """Family of a ``uname -m`` machine string.

    >>> [arch_family(m) for m in ("x86_64", "aarch64", "ppc64le", "s390x", "mips")]
    ['x86', 'arm', 'ppc', 's390', None]
    """
    m = machine.lower()
    if m in ("x86_64", "amd64") or (len(m) == 4 and m[0] == "i" and m.endswith("86")):
        return "x86"
    if m.startswith(("aarch64", "arm")):
        return "arm"
    if m.startswith("ppc"):
        return "ppc"
    if m.startswith("s390"):
        return "s390"
    if m.startswith("riscv"):
        return "riscv"
    return None
