"""Every real boot log in ../shared/corpus/kernel-log, read in place, judged against the facts
MANIFEST.tsv records for it: what the log says about KVM, the firmware, the boot level on Arm
and the hypervisor below."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus import CORPUS, manifest, require_corpus
from hvcheck import facts
from hvcheck.check import Context
from hvcheck.checks.hostchecks import (
    CpuArch,
    FirmwareVirt,
    KernelLogKvm,
    KvmModules,
    nested_hint,
)
from hvcheck.host import KernelLog, SnapshotHost
from hvcheck.model import CRITICAL, OK, WARNING
from hvcheck.parsers import kernel as k
from snap import make_snapshot

ROWS = manifest("kernel-log") or [("(corpus absent)", {}, "")]

# What the log alone may conclude for each manifest truth. A log without KVM lines cannot show
# that a Hyper-V guest lacks nested virtualization (the manifest learned it from lscpu).
ACCEPT = {
    "available": {True},
    "unavailable": {False},
    "unsupported-cpu": {False},
    "guest-no-nested": {False, None},
    "not-established": {None},
}
FAILURE_MEANINGS = {
    "unavailable": {k.NOT_AT_EL2, k.GUEST_WITHOUT_NESTED},
    "unsupported-cpu": {k.CPU_LACKS, k.GUEST_WITHOUT_NESTED},
    "guest-no-nested": {k.GUEST_WITHOUT_NESTED},
}
# manifest guest_of -> words the hypervisor name hvcheck finds must contain (any of)
GUEST_OF = {
    "kvm": ("KVM", "QEMU", "Google"),
    "qemu-tcg": ("QEMU",),
    "hyperv": ("Hyper-V", "HyperV"),
    "vmware": ("VMware",),
}
# manifest arch -> uname -m as the snapshot marker records it
UNAME = {"i386": "i686"}


class _CorpusLog(SnapshotHost):
    """A snapshot with nothing but the marker; the kernel log is the corpus file, read in place."""

    def __init__(self, root: str, log: Path) -> None:
        super().__init__(root)
        self._log = log

    def kernel_log(self) -> KernelLog:
        text = self._log.read_text(encoding="utf-8", errors="replace")
        return KernelLog(tuple(text.splitlines()), f"corpus {self._log.name}")


@pytest.mark.parametrize(("name", "facts_", "text"), ROWS, ids=[r[0] for r in ROWS])
def test_kernel_log_judged_as_the_manifest_says(
    tmp_path: Path, name: str, facts_: dict[str, str], text: str
) -> None:
    require_corpus()
    arch = facts_["arch"]
    root = make_snapshot(tmp_path / "s", {}, {"arch": UNAME.get(arch, arch)})
    ctx = Context(_CorpusLog(str(root), CORPUS / name))
    truth = facts_["kvm"]
    state = facts.kernel_log_state(ctx)
    assert state.available in ACCEPT[truth], (name, state)
    if state.available is False:
        assert state.meaning in FAILURE_MEANINGS[truth], (name, state)

    # nothing in these logs is the firmware's doing: never send anyone to the BIOS
    assert facts.firmware_disabled(ctx) == []
    fw = FirmwareVirt().run(ctx)
    assert fw.status is not CRITICAL, (name, fw)
    assert "BIOS" not in (fw.hint or "")

    log_check = KernelLogKvm().run(ctx)
    if state.available is False:
        assert log_check.status is CRITICAL and log_check.hint, (name, log_check)
    else:
        assert log_check.status is OK, (name, log_check)

    mods = KvmModules().run(ctx)
    if truth == "available":
        assert mods.status is not CRITICAL, (name, mods)
    else:
        assert mods.status is not OK, (name, mods)

    hyp = facts_.get("hyp")
    meanings = {f.meaning for f in facts.kvm_log_findings(ctx) if f.relevant}
    if hyp == "el2":
        assert k.BOOTED_AT_EL2 in meanings, name
    elif hyp in ("el1", "svc"):
        assert k.NOT_AT_EL2 in meanings, name
    mode = facts_.get("kvm_mode")
    if mode:
        init = [f for f in facts.kvm_log_findings(ctx) if f.meaning == k.KVM_INITIALIZED]
        word = {"vhe": "VHE mode", "nvhe": "Hyp mode"}[mode]
        assert init and word in init[0].message.text, name
    if arch == "armv7l":
        assert CpuArch().run(ctx).status is WARNING  # 32-bit ARM: no KVM since 5.7

    guest_of = facts_.get("guest_of")
    env = facts.virt_env(ctx)
    if guest_of:
        assert env.virtual is True, (name, env)
        assert any(w in (env.hypervisor or "") for w in GUEST_OF[guest_of]), (name, env)
    if state.available is False and state.meaning == k.GUEST_WITHOUT_NESTED:
        assert "nested" in nested_hint(ctx)
    # the hint names the switch of the layer below
    layer = {"hyperv": "Hyper-V", "vmware": "vhv.enable"}.get(guest_of or "")
    if facts_.get("cloud") == "gce":
        layer = "--enable-nested-virtualization"
    if layer:
        assert layer in nested_hint(ctx), (name, nested_hint(ctx))
