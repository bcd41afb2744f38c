"""Parse kernel-side text: ``/proc/modules``, ``modules.builtin``, ``modprobe.d``, the kernel
command line, module parameters and kernel log records.

``CATALOGUE`` holds the kernel's own messages about KVM availability, each as the kernel
source words it (with the version range that prints that wording), what it means
(``FIRMWARE_DISABLED``, ``CPU_LACKS``, ``NOT_APPLICABLE``, ``GUEST_WITHOUT_NESTED``, ...) and
the file and function it comes from. Parsing is pure: what a message means *on a given host*
(its CPU vendor, whether it is a VM, whether KVM demonstrably works) is decided in
``hvcheck.facts``.

>>> sorted(parse_proc_modules('kvm_intel 368640 0 - Live 0x0000000000000000\\n'
...                           'kvm 1028096 1 kvm_intel, Live 0x0000000000000000\\n'))
['kvm', 'kvm_intel']
>>> parse_modprobe_options('options kvm-intel nested=1 enable_apicv=0\\n', 'kvm_intel', 'nested')
[('1', 1)]
"""

import functools
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
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


# ============================================================================================
# Kernel log lines
# ============================================================================================
# Compiled on first use (``_other_formats``): /dev/kmsg records, all a live run reads, need only
# _KMSG_PREFIX, and the others' compiles were ~0.4 ms of every monitoring run.
_ANSI = r"\x1b(?:\[[0-9;?=>]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-~])"
_KMSG_PREFIX = re.compile(r"^\d+,\d+,\d+,[^;]*;")
# journalctl -k / syslog: "Aug 25 22:22:40 host kernel: ..." (any locale's month), ISO stamps too
_SYSLOG_PREFIX = (
    r"^(?:\S{3,4} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT[\d:.,+-]+Z?)\s+\S+\s+kernel:\s?"
)
# dmesg: "[    2.1] ", "<3>[    2.1] ", CONFIG_PRINTK_CALLER "[    8.7][    T1] " (or "] [ T1] "),
# a console logger's stamp or terminal debris before it ("2019-08-18 19:28:52: [    0.022155] ")
_DMESG_PREFIX = (
    r"^(?:(?:<\d+>)?\s*\[\s*\d+\.\d+\]|.{1,40}?(?:<\d+>)?\s*\[\s*\d+\.\d{6}\])"
    r"\s?(?:\[\s*[TC]\d+\]\s?)?"
)
_PRIO_ONLY = r"^<\d+>"


@functools.cache
def _other_formats() -> tuple["re.Pattern[str]", ...]:
    """The escape-sequence, syslog, dmesg and bare-priority patterns, compiled once."""
    return tuple(re.compile(r) for r in (_ANSI, _SYSLOG_PREFIX, _DMESG_PREFIX, _PRIO_ONLY))


def kmsg_text(line: str) -> str:
    """The message text of one kernel log line, in any of the forms the kernel log is kept in.

    /dev/kmsg records (``6,123,456,-;text``, Documentation/ABI/testing/dev-kmsg), ``dmesg``
    lines with or without a ``<level>`` and the ``[ T1]`` caller field (CONFIG_PRINTK_CALLER),
    ``journalctl -k``/syslog lines, and serial-console captures with terminal escapes and CRs.

    >>> [kmsg_text(x) for x in ("6,1,2,-;hi", "<3>[    2.1] kvm: x", "[ 8.7][    T1] a",
    ...                         "Aug 25 22:22:40 desk kernel: b", "\\x1b[0m[ 0.1] c\\r")]
    ['hi', 'kvm: x', 'a', 'b', 'c']
    """
    if "\x1b" in line:  # every escape sequence starts with one: most lines have none
        line = _other_formats()[0].sub("", line)
    if "\r" in line:
        line = line.replace("\r", "")
    m = _KMSG_PREFIX.match(line)
    if m:
        return line[m.end() :]
    _, syslog, dmesg, prio = _other_formats()
    m = syslog.match(line)
    if m:
        line = line[m.end() :]
    m = dmesg.match(line)
    if m:
        return line[m.end() :]
    m = prio.match(line)
    return line[m.end() :] if m else line


# ============================================================================================
# The kernel's own messages about KVM availability
# ============================================================================================
# What a message means. A check judges it in context (CPU vendor, a VM, working evidence):
FIRMWARE_DISABLED = "firmware-disabled"  # VT-x/AMD-V switched off in the firmware setup
CPU_LACKS = "cpu-lacks"  # the CPU (as this kernel sees it) has no VT-x/AMD-V/SIE
NOT_APPLICABLE = "vendor-module-not-applicable"  # the other vendor's module: noise
GUEST_WITHOUT_NESTED = "guest-without-nested"  # a VM whose hypervisor exposes no VT-x/AMD-V
OTHER_HYPERVISOR = "other-hypervisor-holds-vtx"  # VMXON/EFER.SVME refused: VT-x already in use
VENDOR_REGISTERED = "vendor-module-registered"  # a vendor module already holds KVM (it works)
KVM_INITIALIZED = "kvm-initialized"  # the vendor/arch code finished its setup
GUESTS_RAN = "guests-ran"  # printed while a guest runs: KVM worked then (harmless)
HARMLESS = "harmless"  # about something else (SGX, mitigations)
BOOTED_AT_EL2 = "booted-at-el2"  # arm: the kernel owns the hypervisor mode
NOT_AT_EL2 = "not-booted-at-el2"  # arm: started at EL1 / in SVC mode: no KVM possible
DISABLED_ON_CMDLINE = "disabled-on-command-line"
INIT_FAILED = "init-failed"  # KVM's setup failed for another reason

# The meanings in words, for summaries
MEANING_TEXT = {
    FIRMWARE_DISABLED: "VT-x/AMD-V is switched off in the firmware setup",
    CPU_LACKS: "the CPU has no VT-x/AMD-V (or SIE) as this kernel sees it",
    NOT_APPLICABLE: "a vendor module for the other CPU vendor: noise",
    GUEST_WITHOUT_NESTED: "this VM is not given virtualization extensions by the layer below",
    OTHER_HYPERVISOR: "VT-x/AMD-V could not be turned on: another hypervisor may hold it",
    VENDOR_REGISTERED: "a KVM vendor module is already registered",
    KVM_INITIALIZED: "KVM set itself up",
    GUESTS_RAN: "printed while guests ran (harmless)",
    HARMLESS: "not about VT-x/AMD-V",
    BOOTED_AT_EL2: "the kernel was started at EL2 (KVM possible)",
    NOT_AT_EL2: "the kernel was not started at EL2/HYP: no KVM",
    DISABLED_ON_CMDLINE: "KVM was disabled on the kernel command line",
    INIT_FAILED: "KVM's setup failed",
}

FAILURES = (
    FIRMWARE_DISABLED,
    OTHER_HYPERVISOR,
    GUEST_WITHOUT_NESTED,
    CPU_LACKS,
    NOT_AT_EL2,
    DISABLED_ON_CMDLINE,
    INIT_FAILED,
)  # most specific first
SUCCESSES = (KVM_INITIALIZED, VENDOR_REGISTERED, GUESTS_RAN)


class Wording(NamedTuple):
    """One message as the kernel writes it, with what it means and where it comes from."""

    code: str
    wording: str  # the source's format string, pr_fmt prefix included
    meaning: str
    arch: str  # x86 | arm64 | arm (32-bit) | ppc | s390
    module: Optional[str]  # the module that prints it; None: named in the text (group 'mod')
    kernels: str  # kernel versions that print this wording
    source: str  # kernel file and function
    regex: str  # what hvcheck matches (re.search) in a message text
    # literal text every match of ``regex`` holds (see required_literal); None: none found
    needle: Optional[str]

    @property
    def family(self) -> str:
        """The cpuinfo/uname family (hvcheck.parsers.cpuinfo.arch_family) it applies to."""
        return "arm" if self.arch in ("arm64", "arm") else self.arch

    @property
    def pattern(self) -> "re.Pattern[str]":
        """``regex`` compiled, on first use: a run compiles only the entries whose needle a
        log line holds (52 compiles are ~2.5 ms of a ~100 ms run)."""
        compiled = _COMPILED.get(self.regex)
        if compiled is None:
            compiled = _COMPILED[self.regex] = re.compile(self.regex)
        return compiled


_COMPILED: dict[str, "re.Pattern[str]"] = {}


def _escape_end(regex: str, i: int, letter: str) -> int:
    """The index after the digits or name that follow ``\\letter`` (``i``: just after the
    letter): ``\\xhh``, ``\\uhhhh``, ``\\Uhhhhhhhh``, ``\\N{name}``, an octal escape or a
    group number (sre_parse reads them as one character or reference, never as literals)."""
    n = len(regex)
    if letter == "N" and regex[i : i + 1] == "{":
        close = regex.find("}", i)
        return close + 1 if close >= 0 else n
    width = {"x": 2, "u": 4, "U": 8}.get(letter)
    digits = "0123456789abcdefABCDEF"
    if width is None:
        if letter not in "0123456789":
            return i
        width, digits = 2, "0123456789"  # \0oo, \ooo or a group number: at most 2 more
    j = i
    while j < n and j - i < width and regex[j] in digits:
        j += 1
    return j


def _repeat_end(regex: str, i: int) -> int:
    """The index after the ``{m,n}`` repeat that opens at ``regex[i]``, or -1 when that
    ``{`` is a literal character (sre_parse: digits, an optional comma and digits, then
    ``}``; ``{}`` and a ``{`` followed by anything else are literal)."""
    j, n = i + 1, len(regex)
    while j < n and regex[j] in "0123456789":
        j += 1
    if j < n and regex[j] == ",":
        j += 1
        while j < n and regex[j] in "0123456789":
            j += 1
    elif j == i + 1:
        return -1  # no digits and no comma: "{}" or "{x"
    return j + 1 if j < n and regex[j] == "}" else -1


def required_literal(regex: str, shortest: int = 4) -> Optional[str]:
    """The longest run of literal characters that every match of ``regex`` holds, or None
    when there is none of ``shortest`` characters or more.

    Conservative, reading the pattern text only at its top level (Python ``re`` syntax): a
    group's contents, a class, an escape such as ``\\d``, ``.``, ``^``/``$`` and a quantified
    character end a run; an alternation at the top level or an inline flag (``(?i)``) means
    there is none. The tests hold it to matches hypothesis draws from each regex.

    >>> required_literal(r"^(?:kvm_amd: )?SVM not supported(?: by CPU \\d+)?, not amd")
    'SVM not supported'
    >>> required_literal(r"VMX \\((?:outside|inside) TXT\\) disabled by BIOS")
    ' TXT) disabled by BIOS'
    >>> required_literal(r"a|b") is None, required_literal(r"(?i)kvm: disabled") is None
    (True, True)
    """
    runs: list[str] = []
    run: list[str] = []
    depth = 0
    i = 0
    literal = False  # the last thing read was a literal character, now last in ``run``

    def end() -> None:
        if run:
            runs.append("".join(run))
            run.clear()

    while i < len(regex):
        c = regex[i]
        was_literal, literal = literal, False
        if c == "\\":
            nxt = regex[i + 1 : i + 2]
            i += 2
            if nxt and not nxt.isalnum() and depth == 0:
                run.append(nxt)  # an escaped metacharacter: itself
                literal = True
            else:
                end()  # \d, \s, \b, \x41, \1 ...: not one literal character
                i = _escape_end(regex, i, nxt)
            continue
        if c == "(" and regex.startswith("?#", i + 1):
            # a comment is no item: a quantifier after it repeats what came before it
            close = regex.find(")", i)
            i = close + 1 if close > 0 else len(regex)
            literal = was_literal
            continue
        if c == "(":
            if regex[i + 1 : i + 2] == "?" and regex[i + 2 : i + 3] in "aiLmsux":
                return None  # inline flags: case and dot rules may differ
            depth += 1
            end()
        elif c == ")":
            depth -= 1
            end()
        elif c == "[":
            end()
            j = i + 1
            if regex[j : j + 1] == "^":
                j += 1
            if regex[j : j + 1] == "]":
                j += 1  # a leading ] is a member
            while j < len(regex) and regex[j] != "]":
                j += 2 if regex[j] == "\\" else 1
            i = j + 1
            continue
        elif c == "{" and _repeat_end(regex, i) < 0:
            if depth == 0:  # not {m}, {m,}, {,n} or {m,n}: sre_parse reads a literal "{"
                run.append(c)
                literal = True
        elif c in "*?{+":
            if was_literal:
                run.pop()  # the quantified character may be absent or repeated
            end()
            if c == "{":
                i = _repeat_end(regex, i)
                continue
        elif c == "|":
            if depth == 0:
                return None
            end()
        elif c in ".^$":
            end()
        elif depth == 0:
            run.append(c)
            literal = True
        i += 1
    end()
    best = max(runs, key=len, default="")
    return best if len(best) >= shortest else None


def _w(
    code: str,
    wording: str,
    meaning: str,
    arch: str,
    module: Optional[str],
    kernels: str,
    source: str,
    pattern: str,
) -> Wording:
    return Wording(
        code, wording, meaning, arch, module, kernels, source, pattern, required_literal(pattern)
    )


_X86 = "arch/x86/kvm/x86.c"
_VMX = "arch/x86/kvm/vmx/vmx.c"
_SVM = "arch/x86/kvm/svm/svm.c"
_FEAT = "arch/x86/kernel/cpu/feat_ctl.c init_ia32_feat_ctl()"
_ARM64 = "arch/arm64/kvm/arm.c kvm_arm_init() (virt/kvm/arm/arm.c before 5.7)"
_MOD = r"'(?P<mod>kvm_intel|kvm_amd|kvm_pvm|[\w-]+)'"

# Order matters: the first matching entry names a line.
CATALOGUE: tuple[Wording, ...] = (
    # ---- x86: feature control (IA32_FEAT_CTL, MSR 0x3a) set up at boot, Intel and Zhaoxin
    _w(
        "vmx-disabled-by-bios",
        "x86/cpu: VMX (%s TXT) disabled by BIOS",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_intel",
        ">= 5.6",
        _FEAT,
        r"VMX \((?:outside|inside) TXT\) disabled by BIOS",
    ),
    _w(
        "sgx-virt-lacks-vmx",
        "x86/cpu: SGX virtualization disabled due to lack of VMX.",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_intel",
        ">= 5.13",
        _FEAT,
        r"SGX virtualization disabled due to lack of VMX",
    ),
    _w(
        "sgx-disabled-by-bios",
        "x86/cpu: SGX disabled by BIOS.",
        HARMLESS,
        "x86",
        "kvm_intel",
        ">= 5.11",
        _FEAT + " (SGX, not VT-x)",
        r"SGX disabled by BIOS",
    ),
    _w(
        "sgx-launch-control-locked",
        "x86/cpu: SGX Launch Control is locked. %s",
        HARMLESS,
        "x86",
        "kvm_intel",
        ">= 5.11",
        _FEAT + " (SGX, not VT-x)",
        r"SGX Launch Control is locked",
    ),
    # ---- x86: the vendor-module registration in kvm.ko, three generations of wording
    _w(
        "disabled-by-bios",
        "kvm: disabled by bios",
        FIRMWARE_DISABLED,
        "x86",
        None,
        "<= 5.15",
        _X86 + " kvm_arch_init()",
        r"^kvm: disabled by bios\b",
    ),
    _w(
        "no-hardware-support",
        "kvm: no hardware support",
        CPU_LACKS,
        "x86",
        None,
        "<= 5.15",
        _X86 + " kvm_arch_init()",
        r"^kvm: no hardware support\s*$",
    ),
    _w(
        "already-loaded-other-module",
        "kvm: already loaded the other module",
        VENDOR_REGISTERED,
        "x86",
        None,
        "<= 5.15",
        _X86 + " kvm_arch_init()",
        r"^kvm: already loaded the other module",
    ),
    _w(
        "disabled-by-bios-named",
        "kvm: support for '%s' disabled by bios",
        FIRMWARE_DISABLED,
        "x86",
        None,
        "5.16 - 6.3",
        _X86 + " kvm_arch_init()/kvm_x86_vendor_init()",
        r"^kvm: support for " + _MOD + r" disabled by bios",
    ),
    _w(
        "no-hardware-support-named",
        "kvm: no hardware support for '%s'",
        CPU_LACKS,
        "x86",
        None,
        "5.16 - 6.3",
        _X86 + " kvm_arch_init()/kvm_x86_vendor_init()",
        r"^kvm: no hardware support for " + _MOD,
    ),
    _w(
        "already-loaded-vendor-module",
        "kvm: already loaded vendor module '%s'",
        VENDOR_REGISTERED,
        "x86",
        None,
        ">= 5.16",
        _X86 + " kvm_x86_vendor_init()",
        r"^kvm: already loaded vendor module " + _MOD,
    ),
    _w(
        "inadequate-fpu",
        "kvm: inadequate fpu",
        CPU_LACKS,
        "x86",
        None,
        "all",
        _X86 + " kvm_arch_init()/kvm_x86_vendor_init()",
        r"^kvm: inadequate fpu",
    ),
    _w(
        "host-pat-not-wb",
        "kvm: host PAT[0] is not WB",
        INIT_FAILED,
        "x86",
        None,
        ">= 6.0",
        _X86 + " kvm_x86_vendor_init()",
        r"^kvm: host PAT\[0\] is not WB",
    ),
    # ---- x86: kvm_intel's own checks (pr_fmt KBUILD_MODNAME since 6.4)
    _w(
        "vmx-not-supported",
        "kvm_intel: VMX not supported by CPU %d",
        CPU_LACKS,
        "x86",
        "kvm_intel",
        ">= 6.4",
        _VMX + " __kvm_is_vmx_supported()",
        r"^(?:kvm_intel: )?VMX not supported by CPU \d+",
    ),
    _w(
        "vmx-not-enabled-by-bios",
        "kvm_intel: VMX not enabled (by BIOS) in MSR_IA32_FEAT_CTL on CPU %d",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_intel",
        ">= 6.4",
        _VMX + " __kvm_is_vmx_supported()",
        r"VMX not enabled \(by BIOS\) in MSR_IA32_FEAT_CTL",
    ),
    _w(
        "vmx-not-fully-enabled",
        "kvm_intel: VMX not fully enabled on CPU %d.  Check kernel logs and/or BIOS",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_intel",
        "posted patch (x86/virt/hw.c series), not in a release checked",
        _VMX + " __kvm_is_vmx_supported()",
        r"VMX not fully enabled on CPU \d+",
    ),
    _w(
        "vmx-disabled-on-cpu",
        "kvm_intel: VMX is disabled on CPU %d",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_intel",
        "before 6.4",
        _VMX + " vmx_check_processor_compat()",
        r"^(?:kvm_intel: |kvm: )?VMX is disabled on CPU \d+",
    ),
    _w(
        "vmxon-faulted",
        "VMXON faulted, MSR_IA32_FEAT_CTL (0x3a) = 0x%llx",
        OTHER_HYPERVISOR,
        "x86",
        "kvm_intel",
        "5.x and later",
        _VMX + " kvm_cpu_vmxon()",
        r"VMXON faulted, MSR_IA32_FEAT_CTL",
    ),
    _w(
        "vmx-perf-global-ctrl-workaround",
        "kvm: VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL does not work properly. Using workaround",
        KVM_INITIALIZED,
        "x86",
        "kvm_intel",
        "3.x - 5.x",
        _VMX + " setup_vmcs_config()",
        r"VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL does not work properly",
    ),
    _w(
        "l1tf-smt-leak",
        "kvm_intel: L1TF CPU bug present and SMT on, data leak possible. ...",
        HARMLESS,
        "x86",
        "kvm_intel",
        ">= 4.19",
        _VMX + " vmx_vm_init() (a mitigation notice)",
        r"L1TF CPU bug present and SMT on",
    ),
    # ---- x86: kvm_amd's own checks (has_svm() until 6.3; pr_fmt KBUILD_MODNAME since 6.4)
    _w(
        "svm-not-amd",
        "has_svm: not amd or hygon  ('not amd' before 4.20)",
        NOT_APPLICABLE,
        "x86",
        "kvm_amd",
        "<= 6.3",
        _SVM + " has_svm() / asm/virtext.h cpu_has_svm()",
        r"^has_svm: not amd",
    ),
    _w(
        "svm-not-available",
        "has_svm: svm not available",
        CPU_LACKS,
        "x86",
        "kvm_amd",
        "<= 6.3",
        _SVM + " has_svm() / asm/virtext.h cpu_has_svm()",
        r"^has_svm: svm not available",
    ),
    _w(
        "svm-no-cpuid-8000000a",
        "has_svm: can't execute cpuid_8000000a",
        CPU_LACKS,
        "x86",
        "kvm_amd",
        "<= 6.3",
        _SVM + " has_svm() / asm/virtext.h cpu_has_svm()",
        r"^has_svm: can't execute cpuid_8000000a",
    ),
    _w(
        "svm-not-supported-not-amd",
        "kvm_amd: SVM not supported by CPU %d, not amd or hygon",
        NOT_APPLICABLE,
        "x86",
        "kvm_amd",
        "6.4 - 6.5",
        _SVM + " kvm_is_svm_supported()",
        r"^(?:kvm_amd: )?SVM not supported(?: by CPU \d+)?, not amd",
    ),
    _w(
        "svm-not-supported",
        "kvm_amd: SVM not supported by CPU %d[, %s]",
        CPU_LACKS,
        "x86",
        "kvm_amd",
        ">= 6.4",
        _SVM + " __kvm_is_svm_supported()",
        r"^(?:kvm_amd: )?SVM not supported(?: by CPU \d+)?",
    ),
    _w(
        "svm-cpu-not-amd",
        "kvm_amd: CPU %d isn't AMD or Hygon",
        NOT_APPLICABLE,
        "x86",
        "kvm_amd",
        ">= 6.6",
        _SVM + " __kvm_is_svm_supported()",
        r"^(?:kvm_amd: )?CPU \d+ isn't AMD or Hygon",
    ),
    _w(
        "svm-sev-guest",
        "kvm_amd: KVM is unsupported when running as an SEV guest",
        GUEST_WITHOUT_NESTED,
        "x86",
        "kvm_amd",
        ">= 6.4",
        _SVM + " __kvm_is_svm_supported()",
        r"KVM is unsupported when running as an SEV guest",
    ),
    _w(
        "svm-disabled-by-bios",
        "kvm_amd: SVM disabled (by BIOS) in MSR_VM_CR on CPU %d",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_amd",
        ">= 6.4",
        _SVM + " __kvm_is_svm_supported()",
        r"SVM disabled \(by BIOS\) in MSR_VM_CR on CPU \d+",
    ),
    _w(
        "amd-svm-disabled-by-bios",
        "SVM disabled (by BIOS) in MSR_VM_CR",
        FIRMWARE_DISABLED,
        "x86",
        "kvm_amd",
        ">= 6.8 (about; clears the svm flag at boot)",
        "arch/x86/kernel/cpu/amd.c init_amd()",
        r"^SVM disabled \(by BIOS\) in MSR_VM_CR\s*$",
    ),
    _w(
        "svm-nested-paging",
        "kvm: Nested Paging enabled  ('SVM: kvm: ...' 5.8 - 6.3, 'kvm_amd: ...' since 6.4)",
        KVM_INITIALIZED,
        "x86",
        "kvm_amd",
        "all",
        _SVM + " svm_hardware_setup()",
        r"^(?:SVM: )?(?:kvm|kvm_amd): Nested Paging (?:en|dis)abled",
    ),
    _w(
        "svm-nested-virtualization",
        "kvm: Nested Virtualization enabled  (kvm_amd: since 6.4)",
        KVM_INITIALIZED,
        "x86",
        "kvm_amd",
        "all",
        _SVM + " svm_hardware_setup()",
        r"^(?:SVM: )?(?:kvm|kvm_amd): Nested Virtualization enabled",
    ),
    _w(
        "svm-feature-supported",
        "SVM: TSC scaling supported / Virtual VMLOAD VMSAVE supported / Virtual GIF supported / "
        "LBR virtualization supported  ('kvm_amd: ' since 6.4)",
        KVM_INITIALIZED,
        "x86",
        "kvm_amd",
        ">= 5.8",
        _SVM + " svm_hardware_setup()",
        r"^(?:SVM|kvm_amd): (?:TSC scaling|Virtual VMLOAD VMSAVE|Virtual GIF|LBR virtualization"
        r"|AVIC|Virtual NMI|x2AVIC)\b.*(?:supported|enabled)",
    ),
    # ---- x86: common code
    _w(
        "enabling-virtualization-failed",
        "kvm: enabling virtualization on CPU%d failed",
        OTHER_HYPERVISOR,
        "x86",
        None,
        "all",
        "virt/kvm/kvm_main.c hardware_enable_nolock()/kvm_enable_virtualization_cpu()",
        r"kvm: enabling virtualization on CPU\d+ failed",
    ),
    _w(
        "pvm-loaded",
        "kvm-pvm: loaded (native=%d ...)",
        KVM_INITIALIZED,
        "x86",
        "kvm_pvm",
        "PVM kernels",
        "the PVM patch set's arch/x86/kvm/pvm (as this project's own machines log it)",
        r"^kvm-pvm: loaded\b",
    ),
    _w(
        "guest-msr-unhandled",
        "kvm [%d]: vcpu%d, guest rIP: %#lx unhandled rdmsr/wrmsr ...",
        GUESTS_RAN,
        "x86",
        None,
        "all",
        _X86 + " kvm_pr_unimpl() callers (a guest touched an MSR)",
        r"^kvm \[\d+\]: vcpu\d+[ ,].*(?:unhandled|ignored) (?:rd|wr)msr",
    ),
    _w(
        "guest-perfctr-wrmsr",
        "kvm [%d]: vcpu%d disabled perfctr wrmsr: 0x%x data 0x%llx",
        GUESTS_RAN,
        "x86",
        None,
        "<= 4.x",
        "arch/x86/kvm/pmu.c / x86.c (a guest wrote a PMU MSR)",
        r"^kvm \[\d+\]: vcpu\d+ disabled perfctr wrmsr",
    ),
    _w(
        "mmio-generation-wraparound",
        "kvm: zapping shadow pages for mmio generation wraparound",
        GUESTS_RAN,
        "x86",
        None,
        "3.x - 5.x",
        "arch/x86/kvm/mmu/mmu.c kvm_mmu_invalidate_mmio_sptes()",
        r"zapping shadow pages for mmio generation wraparound",
    ),
    # ---- arm64 (KVM is built in: arch/arm64/kvm/Kconfig bool)
    _w(
        "arm-hyp-mode-not-available",
        "kvm [%d]: HYP mode not available",
        NOT_AT_EL2,
        "arm64",
        None,
        ">= 3.11",
        _ARM64,
        r"^kvm \[\d+\]: HYP mode not available",
    ),
    _w(
        "arm-kvm-initialized",
        "kvm [%d]: {Hyp|VHE|Protected nVHE} mode initialized successfully"
        "  (later: '%s%sVHE%s mode ...')",
        KVM_INITIALIZED,
        "arm64",
        None,
        ">= 3.11",
        _ARM64,
        r"^kvm \[\d+\]: (?:Hyp |Protected )?(?:[nh]?VHE(?:\+NV2)? )?mode initialized successfully",
    ),
    _w(
        "arm-kvm-disabled-cmdline",
        "kvm [%d]: KVM disabled from command line",
        DISABLED_ON_CMDLINE,
        "arm64",
        None,
        ">= 5.16 (kvm-arm.mode=none)",
        _ARM64,
        r"^kvm \[\d+\]: KVM disabled from command line",
    ),
    _w(
        "arm-hyp-init-error",
        "kvm [%d]: error initializing Hyp mode: %d",
        INIT_FAILED,
        "arm64",
        None,
        ">= 3.11",
        _ARM64 + " init_hyp_mode()",
        r"^kvm \[\d+\]: error initializing Hyp mode",
    ),
    _w(
        "arm64-started-at-el2",
        "CPU: All CPU(s) started at EL2",
        BOOTED_AT_EL2,
        "arm64",
        None,
        ">= 3.11",
        "arch/arm64/kernel/smp.c hyp_mode_check()",
        r"^CPU: All CPU\(s\) started at EL2",
    ),
    _w(
        "arm64-started-at-el1",
        "CPU: All CPU(s) started at EL1",
        NOT_AT_EL2,
        "arm64",
        None,
        ">= 3.11",
        "arch/arm64/kernel/smp.c hyp_mode_check()",
        r"^CPU: All CPU\(s\) started at EL1",
    ),
    _w(
        "arm64-inconsistent-modes",
        "CPU: CPUs started in inconsistent modes",
        NOT_AT_EL2,
        "arm64",
        None,
        ">= 3.11",
        "arch/arm64/kernel/smp.c hyp_mode_check()",
        r"CPUs started in inconsistent modes",
    ),
    _w(
        "arm-started-in-hyp",
        "CPU: All CPU(s) started in HYP mode.",
        BOOTED_AT_EL2,
        "arm",
        None,
        "3.x - 5.6 (32-bit KVM removed in 5.7)",
        "arch/arm/kernel/setup.c hyp_mode_check()",
        r"^CPU: All CPU\(s\) started in HYP mode",
    ),
    _w(
        "arm-started-in-svc",
        "CPU: All CPU(s) started in SVC mode.",
        NOT_AT_EL2,
        "arm",
        None,
        "all",
        "arch/arm/kernel/setup.c hyp_mode_check()",
        r"^CPU: All CPU\(s\) started in SVC mode",
    ),
    _w(
        "arm-wrong-modes",
        "CPU: WARNING: CPU(s) started in wrong/inconsistent modes (primary CPU mode 0x%x)",
        NOT_AT_EL2,
        "arm",
        None,
        "all",
        "arch/arm/kernel/setup.c hyp_mode_check()",
        r"CPU\(s\) started in wrong/inconsistent modes",
    ),
    # ---- POWER
    _w(
        "ppc-no-nested",
        "kvm-hv: Parent hypervisor does not support nesting (rc=%ld)",
        GUEST_WITHOUT_NESTED,
        "ppc",
        "kvm_hv",
        ">= 4.20",
        "arch/powerpc/kvm/book3s_hv_nested.c kvmhv_nested_init()",
        r"kvm-hv: Parent hypervisor does not support nesting",
    ),
    _w(
        "ppc-xics-unknown",
        "KVM-HV: Cannot determine method for accessing XICS",
        INIT_FAILED,
        "ppc",
        "kvm_hv",
        ">= 4.x",
        "arch/powerpc/kvm/book3s_hv.c kvmppc_book3s_init_hv()",
        r"KVM-HV: Cannot determine method for accessing XICS",
    ),
    # ---- s390x
    _w(
        "s390-no-sie",
        "kvm-s390: SIE is not available",
        CPU_LACKS,
        "s390",
        None,
        "all",
        "arch/s390/kvm/kvm-s390.c kvm_s390_init()/kvm_arch_init()",
        r"^(?:kvm-s390: )?SIE (?:is )?not available",
    ),
    _w(
        "s390-nested-hpage",
        "kvm-s390: A KVM host that supports nesting cannot back its KVM guests with huge pages",
        INIT_FAILED,
        "s390",
        None,
        ">= 4.19",
        "arch/s390/kvm/kvm-s390.c kvm_s390_init()",
        r"A KVM host that supports nesting cannot back its KVM guests with huge pages",
    ),
)


class KernelMessage(NamedTuple):
    """One kernel log line the catalogue recognised."""

    code: str
    text: str  # the message text (prefixes stripped)
    meaning: str = ""
    module: Optional[str] = None  # the module that printed it, when the wording tells
    wording: Optional[Wording] = None
    repeats: int = 1  # identical lines seen (per-CPU messages repeat)


_BY_CODE = {w.code: w for w in CATALOGUE}


def wording(code: str) -> Wording:
    """The catalogue entry with this code (KeyError for an unknown code)."""
    return _BY_CODE[code]


def classify_line(text: str) -> Optional[KernelMessage]:
    """The catalogue's reading of one message text (already through ``kmsg_text``).

    >>> m = classify_line("kvm: support for 'kvm_amd' disabled by bios")
    >>> (m.code, m.meaning, m.module, m.wording.kernels)
    ('disabled-by-bios-named', 'firmware-disabled', 'kvm_amd', '5.16 - 6.3')
    """
    text = text.strip()
    return _classify(text, [w for w in CATALOGUE if w.needle is None or w.needle in text])


def _classify(text: str, entries: Sequence[Wording]) -> Optional[KernelMessage]:
    """The first of ``entries`` (in catalogue order) whose regex matches the stripped
    ``text``; the entries left out are those that cannot match it (their needle is not in
    it), so that their regexes are neither compiled nor searched."""
    if not text or len(text) > 2000:
        return None
    for w in entries:
        m = w.pattern.search(text)
        if m:
            mod = m.groupdict().get("mod")
            return KernelMessage(w.code, text, w.meaning, modname(mod) if mod else w.module, w)
    return None


_NO_NEEDLE = [w for w in CATALOGUE if w.needle is None]


def classify_kernel_log(lines: Iterable[str]) -> list[KernelMessage]:
    """Every catalogue message in a kernel log, in log order; repeats of one text counted once.

    As :func:`classify_line` on each line, without asking each line for each needle: each
    needle is looked for once in the whole log (``str.find``), which leaves to each line only
    the entries whose needle it holds (and those without one)."""
    texts = [kmsg_text(raw).strip() for raw in lines]
    starts: list[int] = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    log = "\n".join(texts)
    holds: dict[int, set[int]] = {}  # line -> catalogue indexes of the needles it holds
    for k, w in enumerate(CATALOGUE):
        if w.needle is None:
            continue
        i = log.find(w.needle)
        while i >= 0:
            # a needle across a line break marks a line that may not hold it: its regex,
            # searched in the line alone, then decides
            holds.setdefault(bisect_right(starts, i) - 1, set()).add(k)
            i = log.find(w.needle, i + 1)

    def each() -> Iterator[Optional[KernelMessage]]:
        for n, text in enumerate(texts):
            found = holds.get(n)
            yield _classify(
                text,
                [w for k, w in enumerate(CATALOGUE) if k in found or w.needle is None]
                if found
                else _NO_NEEDLE,
            )

    return counted(each())


def counted(messages: Iterable[Optional[KernelMessage]]) -> list[KernelMessage]:
    """The messages (None: a line the catalogue does not know) in order, each text once, with
    the number of times it came (``repeats``: per-CPU messages repeat)."""
    out: list[KernelMessage] = []
    index: dict[str, int] = {}
    for msg in messages:
        if msg is None:
            continue
        if msg.text in index:
            i = index[msg.text]
            out[i] = out[i]._replace(repeats=out[i].repeats + 1)
            continue
        index[msg.text] = len(out)
        out.append(msg)
    return out


def firmware_messages(lines: Iterable[str]) -> list[KernelMessage]:
    """The catalogue's firmware-disabled messages in a log (no context applied)."""
    return [m for m in classify_kernel_log(lines) if m.meaning == FIRMWARE_DISABLED]


_KVM_LINE = re.compile(
    r"^(?:kvm[\w-]*|kvm \[\d+\]|kvm_intel|kvm_amd|kvm_pvm|kvm-pvm|has_svm|KVM-HV|kvm-hv|"
    r"kvm-s390)[: ]"
)
_NOT_KVM = re.compile(r"^kvm-(?:clock|guest|stealtime)\b|^kvm_ptp|^kvm-ptp")


def kvm_messages(lines: Iterable[str]) -> list[str]:
    """Kernel log lines from KVM itself (what ``dmesg | grep kvm`` is after), minus the
    guest-side paravirt lines (kvm-clock, kvm-guest, kvm-stealtime) a KVM *guest* prints."""
    out: list[str] = []
    for raw in lines:
        t = kmsg_text(raw).strip()
        if _KVM_LINE.match(t) and not _NOT_KVM.match(t):
            out.append(t)
    return out


def arm_hyp_state(lines: Iterable[str]) -> Optional[bool]:
    """arm64: True once KVM reports its hypervisor mode initialised, False for "HYP mode not
    available" (the last of these wins), None when the log says neither."""
    state: Optional[bool] = None
    for m in classify_kernel_log(lines):
        if m.code == "arm-kvm-initialized":
            state = True
        elif m.code == "arm-hyp-mode-not-available":
            state = False
    return state


_MODULES_LINKED = r"^Modules linked in:(.*)$"  # compiled where an oops is read


def modules_in_oops(lines: Iterable[str]) -> set[str]:
    """Module names from the "Modules linked in:" list of oops and warning reports
    (kernel/module/main.c print_modules): what was loaded when the report was printed."""
    out: set[str] = set()
    cont = False
    linked = re.compile(_MODULES_LINKED)
    for raw in lines:
        t = kmsg_text(raw)
        m = linked.match(t.strip())
        if m:
            body, cont = m.group(1), True
        elif cont and t[:1].isspace() and t.strip():
            body = t
        else:
            cont = False
            continue
        for word in body.replace("[last unloaded:", " ").split():
            name = word.split("(", 1)[0].strip("[],")
            if name and all(c.isalnum() or c in "_-" for c in name):
                out.add(modname(name))
    return out


class LogPlatform(NamedTuple):
    """What a kernel log says about the machine it booted on."""

    kernel: Optional[str]  # "Linux version X"
    hypervisor: Optional[str]  # arch/x86/kernel/cpu/hypervisor.c "Hypervisor detected: %s"
    systemd_virt: Optional[str]  # systemd "Detected virtualization %s."
    dmi: Optional[str]  # "DMI: ..." (dmi_setup) or "Hardware name: ..." (dump_stack)
    cpu0: Optional[str]  # x86 "smpboot: CPU0: <model name> (family: ...)"


_LINUX_VERSION = re.compile(r"^Linux version (\S+)")
_SYSTEMD_VIRT = re.compile(r"systemd\[1\]: Detected virtualization ([\w-]+)")
_CPU0 = re.compile(r"^smpboot: CPU0: (.+?)(?: \((?:family|fam):.*)?$")


def log_platform(lines: Iterable[str]) -> LogPlatform:
    """The first of each platform line in a kernel log."""
    kernel = hv = sd = dmi = cpu0 = None
    for raw in lines:
        t = kmsg_text(raw).strip()
        if kernel is None and (m := _LINUX_VERSION.match(t)):
            kernel = m.group(1)
        elif hv is None and t.startswith("Hypervisor detected:"):
            hv = t.split(":", 1)[1].strip()
        elif sd is None and (m := _SYSTEMD_VIRT.search(t)):
            sd = m.group(1)
        elif dmi is None and t.startswith(("DMI: ", "Hardware name: ")):
            dmi = t.split(":", 1)[1].strip()
        elif cpu0 is None and (m := _CPU0.match(t)):
            cpu0 = m.group(1)
    return LogPlatform(kernel, hv, sd, dmi, cpu0)
