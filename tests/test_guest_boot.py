"""A REAL guest: Debian's stock cloud kernel booted under QEMU's TCG on this machine.

tests/guestboot.py fetches ``linux-image-cloud-amd64``'s kernel and ``busybox-static`` with
``apt-get download`` (cached between runs), builds an initramfs whose init copies back what the
guest checks read (their ``reads``) over the serial console, and boots it:
``qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -kernel ... -initrd ...``
(about 3 s). The capture becomes a snapshot directory; ``hvcheck guest --root`` on it must say
``tcg``. systemd-detect-virt, copied into the same initramfs with its libraries, says what it
sees from inside the same guest.

Only TCG is booted: this project's machines offer KVM through kvm_pvm, which boots
PVM-enabled guest kernels only (DESIGN.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import guestboot
from hvcheck.cli import schema_text
from snap import run_hvcheck

SCHEMA = json.loads(schema_text())


@pytest.fixture(scope="module")
def tcg_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """One boot for the module: the capture and its snapshot directory."""
    try:
        parts = guestboot.guest_parts()
    except guestboot.GuestBootUnavailable as e:
        pytest.skip(f"cannot boot a guest here: {e}")
    cap = guestboot.boot(parts, guestboot.guest_reads(), accel="tcg")
    root = guestboot.write_snapshot(cap, tmp_path_factory.mktemp("tcg") / "snap")
    yield cap, root


def test_the_guest_booted_and_reported(tcg_guest: tuple[Any, Path]) -> None:
    cap, _ = tcg_guest
    assert cap.done, cap.console[-3000:]
    assert cap.machine == "x86_64" and cap.release.endswith("-cloud-amd64")
    for path in ("/proc/cpuinfo", "/dev/kmsg", guestboot.CLOCKSOURCES_PATH):
        assert path in cap.files, (path, sorted(cap.files), cap.absent)
    # what a TCG x86 guest shows (the facts hvcheck's judgement rests on, read directly)
    log = cap.files["/dev/kmsg"].decode()
    assert "Linux version" in log and "Hypervisor detected" not in log
    assert "Booting paravirtualized kernel on bare hardware" in log
    assert b"kvm-clock" not in cap.files[guestboot.CLOCKSOURCES_PATH]
    assert b"QEMU Virtual CPU" in cap.files["/proc/cpuinfo"]
    assert b" hypervisor " in cap.files["/proc/cpuinfo"]


def test_hvcheck_guest_says_tcg(tcg_guest: tuple[Any, Path]) -> None:
    _, root = tcg_guest
    p = run_hvcheck("guest", "--root", str(root), "--json")
    assert "Traceback" not in p.stderr, p.stderr
    doc = json.loads(p.stdout)
    jsonschema.validate(doc, SCHEMA)
    g = doc["guest"]
    assert (p.returncode, doc["status"], g["accel"], g["hypervisor"]) == (
        1,
        "WARNING",
        "tcg",
        "qemu",
    ), g
    assert {"kernel-log", "clocksource", "cpu-model", "dmi"} <= set(g["evidence"]), g
    assert doc["host"]["arch"] == "x86_64" and doc["generated_at"]
    # QEMU's default CPU (qemu64) advertises svm; no kvm module in the initramfs
    assert g["nested"] is True
    nested = next(c for c in doc["checks"] if c["id"] == "guest.nested")
    assert "/dev/kvm is absent" in nested["summary"]
    for fmt in ("nagios", "table"):
        assert run_hvcheck("guest", "--root", str(root), "--format", fmt).returncode == 1


def test_systemd_detect_virt_inside_the_same_guest(tcg_guest: tuple[Any, Path]) -> None:
    """systemd-detect-virt reads CPUID leaf 0x40000000 ("TCGTCGTCGTCG" under TCG) and prints
    "qemu" for QEMU without KVM: the same answer as hvcheck, from the CPU instead of files."""
    cap, _ = tcg_guest
    if not cap.detect_virt:
        pytest.skip("systemd-detect-virt is not installed on this machine")
    assert cap.detect_virt.get("--vm") == "qemu", cap.detect_virt
    assert cap.detect_virt.get("") == "qemu", cap.detect_virt


def test_the_capture_matches_the_committed_fixture(tcg_guest: tuple[Any, Path]) -> None:
    """fixtures/guest-tcg-debian12-cloud-kernel was captured by this harness: a boot today
    still shows what the fixture holds (the same machine model and CPU model)."""
    cap, _ = tcg_guest
    fixture = Path(__file__).resolve().parent.parent / "fixtures/guest-tcg-debian12-cloud-kernel"
    for path in ("/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/product_name"):
        assert cap.files[path] == (fixture / path.lstrip("/")).read_bytes(), path
    model = [ln for ln in cap.files["/proc/cpuinfo"].decode().splitlines() if "model name" in ln]
    assert model and model[0] in (fixture / "proc/cpuinfo").read_text()


def test_cpio_newc_layout(tmp_path: Path) -> None:
    """The initramfs writer against the format (buffer-format.rst): 110-byte headers of
    "070701" and 13 hex fields, names and data padded to 4 bytes, a TRAILER!!! entry."""
    c = guestboot.Cpio()
    c.file("init", b"#!/bin/sh\n", 0o755)
    c.chardev("dev/console", 5, 1)
    data = c.bytes()
    assert data.startswith(b"070701") and data.endswith(b"\0")
    names = []
    off = 0
    while off < len(data):
        head = data[off : off + 110]
        assert head[:6] == b"070701", off
        f = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name = data[off + 110 : off + 110 + namesize - 1].decode()
        names.append((name, f[1], f[9], f[10]))
        off += 110 + namesize
        off += -off % 4
        off += filesize
        off += -off % 4
        if name == "TRAILER!!!":
            break
    assert off == len(data)
    by_name = {n: (mode, ma, mi) for n, mode, ma, mi in names}
    assert by_name["init"][0] == 0o100755
    assert by_name["dev/console"] == (0o020600, 5, 1)
    assert "dev" in by_name and names[-1][0] == "TRAILER!!!"
