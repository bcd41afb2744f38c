"""The catalogue of the kernel's own KVM messages (hvcheck.parsers.kernel.CATALOGUE): every
wording fed as the kernel log holds it, and what each means on a given host."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import CORPUS
from hvcheck import facts
from hvcheck.check import Context
from hvcheck.checks.hostchecks import (
    CpuVirtExt,
    FirmwareVirt,
    KernelLogKvm,
    KvmDevice,
    KvmModules,
)
from hvcheck.host import SnapshotHost
from hvcheck.model import CRITICAL, OK, SKIP
from hvcheck.parsers import kernel as k
from snap import FLAGS, make_snapshot

# One line (or more) per catalogue entry, in the forms logs are kept in: /dev/kmsg records,
# dmesg with and without a level, journalctl -k lines. Texts are the kernel's wordings
# (the sources are in each entry) or quoted from public logs.
SAMPLES: dict[str, list[str]] = {
    "vmx-disabled-by-bios": [
        "3,187,52035,-;x86/cpu: VMX (outside TXT) disabled by BIOS",
        "[    0.052035] x86/cpu: VMX (inside TXT) disabled by BIOS",
    ],
    "sgx-virt-lacks-vmx": [
        "3,189,52040,-;x86/cpu: SGX virtualization disabled due to lack of VMX."
    ],
    "sgx-disabled-by-bios": ["3,188,52036,-;x86/cpu: SGX disabled by BIOS."],
    "sgx-launch-control-locked": [
        "[    0.052041] x86/cpu: SGX Launch Control is locked. Support SGX virtualization only."
    ],
    "disabled-by-bios": ["[  318.117733] kvm: disabled by bios"],
    "no-hardware-support": ["<3>[    0.712410] kvm: no hardware support"],
    "already-loaded-other-module": ["[    5.037509] kvm: already loaded the other module"],
    "disabled-by-bios-named": ["3,1022,6093114,-;kvm: support for 'kvm_amd' disabled by bios"],
    "no-hardware-support-named": ["<3>[    2.125377] kvm: no hardware support for 'kvm_intel'"],
    "already-loaded-vendor-module": [
        "3,900,5100000,-;kvm: already loaded vendor module 'kvm_intel'"
    ],
    "inadequate-fpu": ["[    1.1] kvm: inadequate fpu"],
    "host-pat-not-wb": ["3,50,100,-;kvm: host PAT[0] is not WB"],
    "vmx-not-supported": ["3,600,4000000,-;kvm_intel: VMX not supported by CPU 0"],
    "vmx-not-enabled-by-bios": [
        "3,2291188,3542402551820,-;kvm_intel: VMX not enabled (by BIOS) in "
        "MSR_IA32_FEAT_CTL on CPU 0"
    ],
    "vmx-not-fully-enabled": [
        "3,1,1,-;kvm_intel: VMX not fully enabled on CPU 2.  Check kernel logs and/or BIOS"
    ],
    "vmx-disabled-on-cpu": ["[    9.1] kvm_intel: VMX is disabled on CPU 3"],
    "vmxon-faulted": ["4,700,8000000,-;VMXON faulted, MSR_IA32_FEAT_CTL (0x3a) = 0x5"],
    "vmx-perf-global-ctrl-workaround": [
        "[   13.475529] kvm: VM_EXIT_LOAD_IA32_PERF_GLOBAL_CTRL does not work properly. "
        "Using workaround"
    ],
    "l1tf-smt-leak": [
        "4,1,1,-;kvm_intel: L1TF CPU bug present and SMT on, data leak possible. See "
        "CVE-2018-3646 and https://www.kernel.org/doc/html/latest/admin-guide/hw-vuln/l1tf.html "
        "for details."
    ],
    "svm-not-amd": ["<6>[    2.125720] has_svm: not amd or hygon", "[    3.0] has_svm: not amd"],
    "svm-not-available": ["[    3.0] has_svm: svm not available"],
    "svm-no-cpuid-8000000a": ["[    3.0] has_svm: can't execute cpuid_8000000a"],
    "svm-not-supported-not-amd": ["3,1,1,-;kvm_amd: SVM not supported by CPU 0, not amd or hygon"],
    "svm-not-supported": [
        "3,1,1,-;kvm_amd: SVM not supported by CPU 1",
        "Aug 29 17:01:33 lasso kernel: kvm_amd: SVM not supported by CPU 0, can't execute "
        "cpuid_8000000a",
    ],
    "svm-cpu-not-amd": ["3,1,1,-;kvm_amd: CPU 0 isn't AMD or Hygon"],
    "svm-sev-guest": ["6,1,1,-;kvm_amd: KVM is unsupported when running as an SEV guest"],
    "svm-disabled-by-bios": [
        "3,1022,18608374,-;kvm_amd: SVM disabled (by BIOS) in MSR_VM_CR on CPU 5",
        "Aug 25 22:22:40 Desk kernel: kvm_amd: SVM disabled (by BIOS) in MSR_VM_CR on CPU 17",
    ],
    "amd-svm-disabled-by-bios": [
        "set 16 11:23:21 samirb3 kernel: SVM disabled (by BIOS) in MSR_VM_CR"
    ],
    "svm-nested-paging": [
        "[    5.009899] SVM: kvm: Nested Paging enabled",
        "[   13.200972] kvm: Nested Paging enabled",
        "6,1,1,-;kvm_amd: Nested Paging enabled",
    ],
    "svm-nested-virtualization": ["[    5.008825] kvm: Nested Virtualization enabled"],
    "svm-feature-supported": [
        "[    0.217293] SVM: TSC scaling supported",
        "6,1,1,-;kvm_amd: Virtual VMLOAD VMSAVE supported",
    ],
    "enabling-virtualization-failed": ["6,9,9,-;kvm: enabling virtualization on CPU3 failed"],
    "pvm-loaded": [
        "6,255,361183,-;kvm-pvm: loaded (native=1 pcid=1 pge_off=1 emul_batch=1024 emul_ibpb=0)"
    ],
    "guest-msr-unhandled": [
        "[90076.287242] kvm [23102]: vcpu0 unhandled rdmsr: 0x1ad",
        "4,1,1,-;kvm [4242]: vcpu1, guest rIP: 0xffffffff8106f0b4 ignored wrmsr: 0x4b564d05",
    ],
    "guest-perfctr-wrmsr": [
        "[ 3108.427338] kvm [4675]: vcpu0 disabled perfctr wrmsr: 0xc1 data 0xffff"
    ],
    "mmio-generation-wraparound": [
        "[ 3108.492484] kvm: zapping shadow pages for mmio generation wraparound"
    ],
    "arm-hyp-mode-not-available": ["[    4.527300] kvm [1]: HYP mode not available"],
    "arm-kvm-initialized": [
        "[    1.921359] kvm [1]: Hyp mode initialized successfully",
        "[    4.571891] kvm [1]: VHE mode initialized successfully",
        "6,1,1,-;kvm [1]: Protected nVHE mode initialized successfully",
        "6,1,1,-;kvm [1]: Hyp nVHE mode initialized successfully",
        "6,1,1,-;kvm [1]: Hyp hVHE mode initialized successfully",
        "6,1,1,-;kvm [1]: VHE+NV2 mode initialized successfully",
    ],
    "arm-kvm-disabled-cmdline": ["6,1,1,-;kvm [1]: KVM disabled from command line"],
    "arm-hyp-init-error": ["3,1,1,-;kvm [1]: error initializing Hyp mode: -12"],
    "arm64-started-at-el2": ["[    0.013783] [      T1] CPU: All CPU(s) started at EL2"],
    "arm64-started-at-el1": [
        "2019-08-18 19:28:52: [    0.022155] CPU: All CPU(s) started at EL1",
    ],
    "arm64-inconsistent-modes": ["4,1,1,-;CPU: CPUs started in inconsistent modes"],
    "arm-started-in-hyp": ["[    0.009621] CPU: All CPU(s) started in HYP mode."],
    "arm-started-in-svc": ["[    0.009621] CPU: All CPU(s) started in SVC mode."],
    "arm-wrong-modes": [
        "[    0.1] CPU: WARNING: CPU(s) started in wrong/inconsistent modes (primary CPU mode 0x13)"
    ],
    "ppc-no-nested": ["[   29.228168] kvm-hv: Parent hypervisor does not support nesting (rc=-2)"],
    "ppc-xics-unknown": ["3,1,1,-;KVM-HV: Cannot determine method for accessing XICS"],
    "s390-no-sie": ["6,1,1,-;kvm-s390: SIE is not available"],
    "s390-nested-hpage": [
        "6,1,1,-;kvm-s390: A KVM host that supports nesting cannot back its KVM guests with "
        "huge pages"
    ],
}


def test_every_catalogue_entry_has_samples() -> None:
    assert set(SAMPLES) == {w.code for w in k.CATALOGUE}


@pytest.mark.parametrize("code", sorted(SAMPLES))
def test_each_wording_is_recognised(code: str) -> None:
    w = k.wording(code)
    assert w.meaning and w.kernels and w.source and w.wording
    assert w.family in ("x86", "arm", "ppc", "s390")
    for line in SAMPLES[code]:
        msg = k.classify_line(k.kmsg_text(line))
        assert msg is not None, line
        assert msg.code == code, (line, msg.code)
        assert msg.meaning == w.meaning
        if w.module:
            assert msg.module == w.module


def test_named_module_comes_from_the_text() -> None:
    m = k.classify_line("kvm: no hardware support for 'kvm_amd'")
    assert m is not None and m.module == "kvm_amd" and m.meaning == k.CPU_LACKS
    m = k.classify_line("kvm: support for 'kvm_intel' disabled by bios")
    assert m is not None and m.module == "kvm_intel" and m.meaning == k.FIRMWARE_DISABLED


UNRELATED = [
    '[    0.000000] Local APIC disabled by BIOS -- you can enable it with "lapic"',
    "6,1,1,-;kvm-clock: Using msrs 4b564d01 and 4b564d00",
    "[    0.1] kvm-guest: PV spinlocks enabled",
    "[    0.1] Hyper-V: Nested features: 0x4a0000",
    "[    0.1] CPU features: detected: 32-bit EL1 Support",
]


def test_unrelated_lines_are_not_catalogued() -> None:
    for line in UNRELATED:
        assert k.classify_line(k.kmsg_text(line)) is None, line


def test_repeats_are_counted_once() -> None:
    msgs = k.classify_kernel_log(
        ["[ 1.0] kvm: no hardware support"] * 2 + ["[ 1.1] has_svm: not amd"]
    )
    assert [(m.code, m.repeats) for m in msgs] == [("no-hardware-support", 2), ("svm-not-amd", 1)]


# ------------------------------------------------------------------------ judged on a host
AMD_SVM = FLAGS.replace(" vmx ", " svm ")
NO_EXT = FLAGS.replace(" vmx ", " ")


ARM64_CPUINFO = (
    "processor\t: 0\nCPU implementer\t: 0x41\nCPU architecture: 8\nFeatures\t: fp asimd\n\n"
)


def _cpuinfo(vendor: str, flags: str, hypervisor: bool = False) -> str:
    fl = flags + (" hypervisor" if hypervisor else "")
    return (
        f"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel name\t: x\n"
        f"flags\t\t: {fl}\n\n"
    )


def _ctx(
    tmp: Path,
    log: list[str],
    cpuinfo: Optional[str] = None,
    modules: Optional[str] = None,
    builtin: Optional[str] = None,
    kvm_dev: bool = False,
    probe_ok: Optional[bool] = None,
    arch: str = "x86_64",
    extra: Optional[dict[str, str]] = None,
) -> Context:
    files: dict[str, str | bytes] = {"dev/kmsg": "\n".join(log) + "\n"}
    if cpuinfo is not None:
        files["proc/cpuinfo"] = cpuinfo
    if modules is not None:
        files["proc/modules"] = modules
    if builtin is not None:
        files["lib/modules/6.1.0-t/modules.builtin"] = builtin
    files.update(extra or {})
    marker: dict[str, Any] = {"arch": arch, "kernel": "6.1.0-t", "devices": {}}
    if kvm_dev:
        marker["devices"]["/dev/kvm"] = {"type": "char", "major": 10, "minor": 232, "mode": "0660"}
    if probe_ok is not None:
        marker["probes"] = {
            "kvm": {
                "ok": probe_ok,
                "stage": "done" if probe_ok else "open",
                "errno": None if probe_ok else "ENOENT",
                "api_version": 12,
            }
        }
    root = make_snapshot(tmp / "s", files, marker)
    return Context(SnapshotHost(str(root)))


def _finding(ctx: Context, code: str) -> facts.LogFinding:
    return next(f for f in facts.kvm_log_findings(ctx) if f.message.code == code)


def test_the_other_vendors_module_is_noise(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ["<3>[    2.1] kvm: no hardware support for 'kvm_intel'"],
        cpuinfo=_cpuinfo("AuthenticAMD", AMD_SVM),
        modules="kvm_amd 155648 0 - Live 0x0\nkvm 1142784 1 kvm_amd, Live 0x0\n",
        kvm_dev=True,
        probe_ok=True,
    )
    f = _finding(ctx, "no-hardware-support-named")
    assert not f.relevant and f.meaning == k.NOT_APPLICABLE and "kvm_intel" in f.note
    assert FirmwareVirt().run(ctx).status is OK
    assert KernelLogKvm().run(ctx).status is OK


def test_unnamed_no_hardware_support_is_noise_when_the_cpu_has_its_flag(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ["<3>[    0.7] kvm: no hardware support"],
        cpuinfo=_cpuinfo("AuthenticAMD", AMD_SVM),
        builtin="kernel/arch/x86/kvm/kvm.ko\nkernel/arch/x86/kvm/kvm-intel.ko\n",
        modules="",
    )
    f = _finding(ctx, "no-hardware-support")
    assert not f.relevant and "other vendor" in f.note


def test_unnamed_no_hardware_support_on_bare_metal_without_the_flag_is_the_cpu(
    tmp_path: Path,
) -> None:
    ctx = _ctx(
        tmp_path,
        ["<3>[    0.7] kvm: no hardware support"],
        cpuinfo=_cpuinfo("GenuineIntel", NO_EXT),
        builtin="kernel/arch/x86/kvm/kvm.ko\nkernel/arch/x86/kvm/kvm-intel.ko\n",
        modules="",
        probe_ok=False,
    )
    f = _finding(ctx, "no-hardware-support")
    assert f.relevant and f.meaning == k.CPU_LACKS
    r = KvmModules().run(ctx)
    assert (
        r.status is CRITICAL and r.code == "vendor-not-started" and "firmware" not in (r.hint or "")
    )


def test_working_evidence_outranks_a_firmware_line(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ["3,1,1,-;kvm_intel: VMX not enabled (by BIOS) in MSR_IA32_FEAT_CTL on CPU 0"],
        cpuinfo=_cpuinfo("GenuineIntel", FLAGS),
        modules="kvm_intel 389120 0 - Live 0x0\nkvm 1339392 1 kvm_intel, Live 0x0\n",
        kvm_dev=True,
        probe_ok=True,
    )
    f = _finding(ctx, "vmx-not-enabled-by-bios")
    assert not f.relevant and f.note.startswith("outranked")
    assert facts.firmware_disabled(ctx) == []
    fw = FirmwareVirt().run(ctx)
    assert fw.status is OK and fw.details["outranked_log_lines"]


def test_cpu_lacks_in_a_vm_means_no_nested(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ["6,1,1,-;Hypervisor detected: VMware", "3,2,2,-;kvm_intel: VMX not supported by CPU 0"],
        cpuinfo=_cpuinfo("GenuineIntel", NO_EXT, hypervisor=True),
        modules="kvm 1339392 0 - Live 0x0\n",
        probe_ok=False,
        extra={"sys/class/dmi/id/sys_vendor": "VMware, Inc.\n"},
    )
    f = _finding(ctx, "vmx-not-supported")
    assert f.relevant and f.meaning == k.GUEST_WITHOUT_NESTED
    for check in (CpuVirtExt(), KvmModules(), KvmDevice(), KernelLogKvm()):
        r = check.run(ctx)
        assert r.status is CRITICAL, check.id
        assert "vhv.enable" in (r.hint or ""), (check.id, r.hint)
        assert "BIOS" not in (r.hint or ""), (check.id, r.hint)
    assert FirmwareVirt().run(ctx).status is SKIP


@pytest.mark.parametrize(
    ("line", "meaning"),
    [
        ("6,9,9,-;kvm: enabling virtualization on CPU3 failed", k.OTHER_HYPERVISOR),
        ("3,1,1,-;kvm: support for 'kvm_intel' disabled by bios", k.FIRMWARE_DISABLED),
        ("3,1,1,-;kvm: host PAT[0] is not WB", k.INIT_FAILED),
    ],
)
def test_failures_decide_the_kernel_log_check(tmp_path: Path, line: str, meaning: str) -> None:
    ctx = _ctx(
        tmp_path,
        [line],
        cpuinfo=_cpuinfo("GenuineIntel", FLAGS),
        modules="kvm 1339392 0 - Live 0x0\n",
        probe_ok=False,
    )
    r = KernelLogKvm().run(ctx)
    assert r.status is CRITICAL and r.code == meaning and r.hint
    assert facts.kernel_log_state(ctx).meaning == meaning


def test_arm64_at_el1_on_bare_metal_points_at_the_boot_loader(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ["[    0.2] CPU: All CPU(s) started at EL1", "[    4.5] kvm [1]: HYP mode not available"],
        cpuinfo=ARM64_CPUINFO,
        arch="aarch64",
        probe_ok=False,
    )
    r = CpuVirtExt().run(ctx)
    assert r.status is CRITICAL and r.code == "arm-no-hyp" and "EL2" in (r.hint or "")
    assert "qemu-system-x86" not in (KvmDevice().run(ctx).hint or "")


def test_arm64_at_el1_in_a_vm_asks_the_layer_below(tmp_path: Path) -> None:
    ctx = _ctx(
        tmp_path,
        ["[    0.2] CPU: All CPU(s) started at EL1", "[    4.5] kvm [1]: HYP mode not available"],
        cpuinfo=ARM64_CPUINFO,
        arch="aarch64",
        probe_ok=False,
        extra={
            "sys/class/dmi/id/sys_vendor": "QEMU\n",
            "sys/class/dmi/id/product_name": "KVM Virtual Machine\n",
        },
    )
    r = CpuVirtExt().run(ctx)
    assert r.status is CRITICAL and r.code == "arm-no-el2-in-vm"
    assert "kvm-arm.mode=nested" in (r.hint or "")


_ARCH = {"x86": "x86_64", "arm64": "aarch64", "arm": "armv7l", "ppc": "ppc64le", "s390": "s390x"}


@pytest.mark.parametrize("code", sorted(SAMPLES))
def test_each_wording_gives_its_verdict_on_a_bare_metal_host(tmp_path: Path, code: str) -> None:
    """One composed bare-metal host per catalogue entry, its log holding just that line: the
    kernel-log check is CRITICAL exactly for the failure meanings, firmware.virt exactly for
    firmware-disabled (x86), and the hint of a failure is that meaning's lasting fix."""
    w = k.wording(code)
    failing = w.meaning in k.FAILURES
    cpuinfo = None
    msg = k.classify_line(k.kmsg_text(SAMPLES[code][0]))
    assert msg is not None
    if w.family == "x86":
        amd = msg.module == "kvm_amd"  # the module named by the wording or by the text
        flags = FLAGS.replace(" vmx ", " svm " if amd else " vmx ")
        if w.meaning == k.CPU_LACKS or (w.meaning == k.FIRMWARE_DISABLED and not amd):
            flags = NO_EXT  # feat_ctl.c clears vmx when the firmware disabled VT-x
        cpuinfo = _cpuinfo("AuthenticAMD" if amd else "GenuineIntel", flags)
    ctx = _ctx(
        tmp_path,
        [SAMPLES[code][0]],
        cpuinfo=cpuinfo,
        modules="kvm 1142784 0 - Live 0x0\n",
        kvm_dev=not failing,
        probe_ok=None if failing else True,
        arch=_ARCH[w.arch],
    )
    r = KernelLogKvm().run(ctx)
    if failing:
        assert r.status is CRITICAL and r.code == w.meaning, r
        assert r.hint and w.source in r.summary
    else:
        assert r.status is OK, r
    if w.family == "x86":
        fw = FirmwareVirt().run(ctx)
        assert (fw.status is CRITICAL) is (w.meaning == k.FIRMWARE_DISABLED), fw


# ---- the needle before the regex: classify_line searches an entry's regex only in a line
# holding its required literal; the answer must be what searching every regex gives
def _classify_every_regex(text: str) -> Optional[tuple[str, Optional[str]]]:
    text = text.strip()
    if not text or len(text) > 2000:
        return None
    for w in k.CATALOGUE:
        m = re.search(w.regex, text)
        if m:
            mod = m.groupdict().get("mod")
            return w.code, k.modname(mod) if mod else w.module
    return None


def _classified(text: str) -> Optional[tuple[str, Optional[str]]]:
    msg = k.classify_line(text)
    return None if msg is None else (msg.code, msg.module)


@pytest.mark.parametrize("entry", k.CATALOGUE, ids=lambda w: w.code)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_match_of_an_entry_holds_its_needle(entry: k.Wording, data: Any) -> None:
    """hypothesis draws texts that the entry's regex matches (re.search): each holds the
    needle, so no line the regex would name is passed over."""
    text = data.draw(st.from_regex(entry.regex))
    assert re.search(entry.regex, text)
    assert entry.needle is None or entry.needle in text


def test_most_entries_have_a_needle() -> None:
    # an entry without one is searched in every line: fine, but the shortcut is for the rest
    assert sum(w.needle is None for w in k.CATALOGUE) <= 3


@pytest.mark.parametrize(
    ("regex", "needle"),
    [
        (r"ab\)?cd", "ab"),  # an escaped ) made optional
        (r"abc+", "ab"),  # a repeated character
        (r"x(?:y)?zzzz", "zzzz"),  # a group's contents are not required
        (r"a{2}bcde", "bcde"),
        (r"[a-z]+hello", "hello"),
        (r"kvm: (?P<mod>a|b) said", "kvm: "),
        (r"a|b", None),  # a top-level alternation
        (r"(?i)kvm: disabled by bios", None),  # case-insensitive
        (r"x\d+y", None),
    ],
)
def test_required_literal(regex: str, needle: Optional[str]) -> None:
    assert k.required_literal(regex, 1 if needle else 4) == needle


def test_classify_line_answers_as_every_regex_does_on_every_sample_and_corpus_line() -> None:
    lines = [line for samples in SAMPLES.values() for line in samples]
    lines += UNRELATED
    corpus = CORPUS / "kernel-log"
    if corpus.is_dir():
        for path in sorted(corpus.iterdir()):
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    assert len(lines) > 50
    for raw in lines:
        text = k.kmsg_text(raw)
        assert _classified(text) == _classify_every_regex(text), raw


@pytest.mark.parametrize(
    ("regex", "needle", "match"),
    [
        # a "{" that opens no {m,n} repeat is a literal (sre_parse): a top-level "|" after
        # it still means no needle, and a "(" after it still opens a group
        (r"kvm: {|disabled by bios}", None, "disabled by bios}"),
        (r"ab{(}wxyz)?", "ab{", "ab{"),
        # the digits of \xhh, \uhhhh, \N{...}, an octal escape or a group number are part of
        # the escape, never literal text of their own
        (r"\x41bcd", "bcd", "Abcd"),
        (r"\u0041bcd", "bcd", "Abcd"),
        (r"\N{DIGIT ONE}bcd", "bcd", "1bcd"),
        (r"\101xyz", "xyz", "Axyz"),
        # a comment is no item: the quantifier after it repeats the character before it
        (r"abcde(?#note)*xy", "abcd", "abcdxy"),
    ],
)
def test_required_literal_reads_escapes_braces_and_comments_as_sre_parse_does(
    regex: str, needle: Optional[str], match: str
) -> None:
    m = re.search(regex, match)
    assert m is not None and m.group() == match  # the regex does match this text
    assert k.required_literal(regex, 1) == needle
    assert needle is None or needle in match


_RX_TOKENS = [*"abc", *"abc", "{", "}", "(", ")", "|", "?", "*", "+", "{2}", "{,2}", "{}"]
_RX_TOKENS += ["[)]", r"\(", r"\{", ".", "^", "$", "(?:", "(?#c)", r"\x41", r"\12", r"\d", " "]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(parts=st.lists(st.sampled_from(_RX_TOKENS), min_size=1, max_size=12), data=st.data())
def test_required_literal_holds_for_regexes_hypothesis_builds(parts: list[str], data: Any) -> None:
    """Any regex re compiles (not only the catalogue's): every match drawn holds the needle."""
    regex = "".join(parts)
    try:
        compiled = re.compile(regex)
    except re.error:
        return
    needle = k.required_literal(regex, 1)
    if needle is None:
        return
    m = compiled.search(data.draw(st.from_regex(compiled)))
    assert m is not None and needle in m.group(), (regex, needle, m and m.group())


def _classify_log_line_by_line(lines: list[str]) -> list[k.KernelMessage]:
    """classify_kernel_log as its definition reads: classify_line on each line (repeats of a
    text counted on its first occurrence)."""
    return k.counted(k.classify_line(k.kmsg_text(raw)) for raw in lines)


def test_classify_kernel_log_reads_each_corpus_log_as_line_by_line() -> None:
    logs = [[line for samples in SAMPLES.values() for line in samples] + UNRELATED]
    corpus = CORPUS / "kernel-log"
    if corpus.is_dir():
        logs += [
            p.read_text(encoding="utf-8", errors="replace").splitlines()
            for p in sorted(corpus.iterdir())
        ]
    for lines in logs:
        assert k.classify_kernel_log(lines) == _classify_log_line_by_line(lines)
    assert sum(len(k.classify_kernel_log(lines)) for lines in logs) > len(SAMPLES)


_PIECES = st.sampled_from(
    [*(w.needle for w in k.CATALOGUE if w.needle), "kvm", ": ", "\r", "\x1b[0m", "  ", "x"]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.one_of(
            st.sampled_from([line for samples in SAMPLES.values() for line in samples]),
            st.lists(_PIECES, max_size=6).map("".join),  # needles cut across line breaks
        ),
        max_size=12,
    )
)
def test_classify_kernel_log_answers_as_line_by_line(lines: list[str]) -> None:
    assert k.classify_kernel_log(lines) == _classify_log_line_by_line(lines)
