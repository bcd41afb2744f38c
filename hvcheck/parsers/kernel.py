"""Parse kernel-side text: ``/proc/modules``, ``modules.builtin``, ``modprobe.d``, the kernel
command line, module parameters and kernel log records.

>>> sorted(parse_proc_modules('kvm_intel 368640 0 - Live 0x0000000000000000\\n'
...                           'kvm 1028096 1 kvm_intel, Live 0x0000000000000000\\n'))
['kvm', 'kvm_intel']
>>> parse_modprobe_options('options kvm-intel nested=1 enable_apicv=0\\n', 'kvm_intel', 'nested')
[('1', 1)]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple, Optional


def modname(name: str) -> str:
    """The kernel treats '-' and '_' in module names alike (kernel/params.c parameq)."""
    return name.strip().replace("-", "_")


def parse_proc_modules(text: str) -> set[str]:
    """Module names from /proc/modules or ``lsmod`` output (header and prompt lines skipped)."""
    names: set[str] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] in ("Module", "lsmod") or parts[0].startswith(("$", "#")):
            continue
        if not (parts[1].isascii() and parts[1].isdigit()):
            continue
        names.add(modname(parts[0]))
    return names


def parse_modules_builtin(text: str) -> set[str]:
    """``kernel/arch/x86/kvm/kvm.ko`` lines → {"kvm"}."""
    out: set[str] = set()
    for line in text.splitlines():
        base = line.strip().rsplit("/", 1)[-1]
        if base.endswith(".ko"):
            out.add(modname(base[:-3]))
    return out


def parse_modprobe_options(text: str, module: str, param: str) -> list[tuple[str, int]]:
    """Values given to ``module.param`` by ``options`` lines in a modprobe.d file.

    Returns (value, line number) in file order; later ones win (modprobe.d(5)). Comments
    start with '#'; a trailing backslash continues a line.
    """
    out: list[tuple[str, int]] = []
    want = modname(module)
    logical: list[tuple[str, int]] = []
    buf, start = "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = n
        if raw.endswith("\\"):
            buf += raw[:-1] + " "
            continue
        logical.append((buf + raw, start))
        buf = ""
    if buf:
        logical.append((buf, start))
    for line, n in logical:
        words = line.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "options" or modname(words[1]) != want:
            continue
        for w in words[2:]:
            k, sep, v = w.partition("=")
            if sep and modname(k) == modname(param):
                out.append((v.strip('"'), n))
    return out


def parse_kernel_cmdline_param(text: str, module: str, param: str) -> Optional[str]:
    """Value of ``module.param=`` on the kernel command line (last one wins), e.g.
    ``kvm-intel.nested=1``.

    >>> parse_kernel_cmdline_param('ro quiet kvm-intel.nested=1', 'kvm_intel', 'nested')
    '1'
    """
    found: Optional[str] = None
    for word in text.split():
        if word == "--":
            break  # the rest goes to init (Documentation/admin-guide/kernel-parameters.rst)
        k, sep, v = word.partition("=")
        mod, dot, p = k.partition(".")
        if sep and dot and modname(mod) == modname(module) and modname(p) == modname(param):
            found = v.strip('"')
    return found


def param_enabled(value: Optional[str]) -> Optional[bool]:
    """Module parameter truth: bool params print Y/N, int params 1/0 (kvm_amd.nested)."""
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("y", "yes", "1", "on", "true"):
        return True
    if v in ("n", "no", "0", "off", "false"):
        return False
    if v.isascii() and v.isdigit():
        return int(v) != 0
    return None


_KMSG_PREFIX = re.compile(r"^\d+,\d+,\d+,[^;]*;")
_DMESG_PREFIX = re.compile(r"^(?:<\d+>)?\s*\[\s*\d+\.\d+\]\s?")


def kmsg_text(line: str) -> str:
    """The message text of one /dev/kmsg record ("6,123,456,-;text") or dmesg line."""
    m = _KMSG_PREFIX.match(line)
    if m:
        return line[m.end() :]
    m = _DMESG_PREFIX.match(line)
    return line[m.end() :] if m else line


class KernelMessage(NamedTuple):
    code: str
    text: str


# Messages that prove firmware or hardware switched virtualization off, with their sources.
_FIRMWARE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # arch/x86/kernel/cpu/feat_ctl.c (pr_fmt "x86/cpu: "): "VMX (outside TXT) disabled by BIOS",
    # "...(inside TXT)..."; the same file also prints "SGX disabled by BIOS." — not VT-x, so
    # every pattern here is anchored to VMX/SVM/kvm wording.
    ("vmx-disabled-by-bios", re.compile(r"VMX \((?:outside|inside) TXT\) disabled by BIOS")),
    # arch/x86/kvm/vmx/vmx.c since 6.4: "VMX not enabled (by BIOS) in MSR_IA32_FEAT_CTL on CPU %d"
    ("vmx-not-enabled-by-bios", re.compile(r"VMX not (?:fully )?enabled(?: \(by BIOS\))?")),
    # arch/x86/kvm/vmx/vmx.c (older kernels): "kvm: disabled by bios"
    ("disabled-by-bios", re.compile(r"\bkvm(?:_intel|_amd)?: disabled by bios\b", re.IGNORECASE)),
    # arch/x86/kvm/svm/svm.c: "SVM disabled (by BIOS) in MSR_VM_CR on CPU %d"
    ("svm-disabled-by-bios", re.compile(r"SVM disabled \(by BIOS\) in MSR_VM_CR")),
    # virt/kvm/kvm_main.c / arch/x86/kvm/x86.c: "kvm: no hardware support"
    ("no-hardware-support", re.compile(r"kvm(?:_intel|_amd)?: no hardware support")),
    ("vmx-not-supported", re.compile(r"kvm_intel: VMX not supported by CPU")),
    ("svm-not-supported", re.compile(r"kvm_amd: SVM not supported by CPU")),
)

# arch/arm64/kvm/arm.c: "kvm [1]: Hyp mode initialized successfully" / "HYP mode not available"
_ARM_OK = re.compile(
    r"kvm \[\d+\]: (?:Hyp|VHE|nVHE|Protected nVHE) mode initialized successfully", re.IGNORECASE
)
_ARM_NO = re.compile(r"kvm \[\d+\]: HYP mode not available", re.IGNORECASE)


def firmware_messages(lines: Iterable[str]) -> list[KernelMessage]:
    out: list[KernelMessage] = []
    seen: set[str] = set()
    for raw in lines:
        text = kmsg_text(raw)
        for code, pat in _FIRMWARE_PATTERNS:
            if pat.search(text):
                if code == "disabled-by-bios" and any("by-bios" in c.code for c in out):
                    break
                if text not in seen:
                    seen.add(text)
                    out.append(KernelMessage(code, text.strip()))
                break
    return out


def kvm_messages(lines: Iterable[str]) -> list[str]:
    """Kernel log lines about KVM itself (kvm:, kvm-pvm:, kvm_intel:, kvm [1]: ...)."""
    pat = re.compile(r"^(?:kvm[\w-]*|kvm \[\d+\]|pvm[\w-]*):", re.IGNORECASE)
    return [kmsg_text(x).strip() for x in lines if pat.match(kmsg_text(x).strip())]


def arm_hyp_state(lines: Iterable[str]) -> Optional[bool]:
    state: Optional[bool] = None
    for raw in lines:
        t = kmsg_text(raw)
        if _ARM_OK.search(t):
            state = True
        elif _ARM_NO.search(t):
            state = False
    return state
