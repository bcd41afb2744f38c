"""libvirt.caps from libvirt's own capability cache (issue 14, input 6).

The cache file is real (tests/data/libvirt-cache/, captured on this project's machine); the
judgement runs on snapshot directories holding it with the ``stat`` records ``collect``
writes, and no recorded libvirt answer: what the check says, it says without the daemon.
These tests start no libvirtd and touch no device.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck.check import Context
from hvcheck.checks.apichecks import CACHE_DIR, cache_stale, read_cache
from hvcheck.host import CapsResult, LiveHost
from hvcheck.parsers.libvirt_caps import parse_caps_cache
from snap import PROJECT

DATA = Path(__file__).resolve().parent / "data" / "libvirt-cache"
I386 = (DATA / "qemu-system-i386.xml").read_text()
X86_64 = (DATA / "qemu-system-x86_64.xml").read_text()
X86_64_BIN = "/usr/bin/qemu-system-x86_64"
MODDIR = "/usr/lib/x86_64-linux-gnu/qemu"
KERNEL = ("6.18.44-fc-v1272", "#1 SMP PREEMPT_DYNAMIC @0")


def x86_64_cache(kvm: bool = True) -> str:
    """The x86_64 binary's real cache file (see the data's README). ``kvm`` False: derived
    from it as libvirt writes it after a probe whose QEMU could not open /dev/kvm (no kvm
    flag, no kvm host CPU, no kvm CPU models or machines)."""
    text = X86_64
    if not kvm:
        # drop the kvm flag and every element of type='kvm' (one line, or up to the line
        # that closes it at the same indent: virQEMUCapsFormatAccel writes them so)
        out: list[str] = []
        closing: Optional[str] = None
        for ln in text.splitlines(keepends=True):
            if closing is not None:
                if ln.rstrip("\n") == closing:
                    closing = None
                continue
            if "<flag name='kvm'/>" in ln:
                continue
            stripped = ln.lstrip()
            if stripped.startswith("<") and "type='kvm'" in ln:
                if not ln.rstrip().endswith("/>"):
                    tag = stripped[1:].split()[0]
                    closing = ln[: len(ln) - len(stripped)] + f"</{tag}>"
                continue
            out.append(ln)
        text = "".join(out)
    return text


def _file_name(emulator: str) -> str:
    # virFileCacheGetFileName: the SHA-256 of the binary's path
    return hashlib.sha256(emulator.encode()).hexdigest() + ".xml"


def test_the_file_names_are_the_sha256_of_the_binary() -> None:
    assert _file_name("/usr/bin/qemu-system-i386") == (
        "f11008721aacc79c97e592178e61264d75be551864cd79cc41fe820e31262f27.xml"
    )


def test_the_real_x86_64_file_parses() -> None:
    c = parse_caps_cache(X86_64)
    assert c is not None
    assert (c.emulator, c.arch, c.kvm, c.domain_types()) == (X86_64_BIN, "x86_64", True,
                                                            ("qemu", "kvm"))  # fmt: skip
    assert c.host_cpu_signature == "AuthenticAMD, AMD EPYC, family: 25, model: 17, stepping: 1"
    assert c.microcode_version == 0x1000065  # /proc/cpuinfo's microcode when probed
    m = c.default_machine("kvm")
    assert m is not None and (m.name, m.max_cpus) == ("pc-i440fx-7.2", 255)
    assert sum(1 for x in c.machines if x.accel == "kvm") == sum(
        1 for x in c.machines if x.accel == "tcg"
    )


def test_the_real_cache_file_parses() -> None:
    c = parse_caps_cache(I386)
    assert c is not None
    assert (c.emulator, c.arch, c.kvm, c.domain_types()) == (
        "/usr/bin/qemu-system-i386",
        "i686",
        True,
        ("qemu", "kvm"),
    )
    assert (c.qemuctime, c.qemumoddirmtime, c.selfctime, c.selfvers) == (
        1796522193,
        1796522192,
        1796522191,
        9000000,
    )
    assert c.version == 7002022 and c.kvm_version == 0 and c.package.startswith("Debian 1:7.2")
    assert c.kernel_version == " ".join(KERNEL)
    assert "kvm" in c.host_cpu and "tcg" in c.host_cpu
    m = c.default_machine("kvm")
    assert m is not None and (m.name, m.alias, m.max_cpus) == ("pc-i440fx-7.2", "pc", 255)
    nokvm = parse_caps_cache(x86_64_cache(kvm=False))
    assert nokvm is not None and not nokvm.kvm and nokvm.domain_types() == ("qemu",)


@pytest.mark.parametrize(
    "bad", ["", "<qemuCaps>", "<!DOCTYPE x [<!ENTITY a 'b'>]><qemuCaps/>", "<capabilities/>"]
)
def test_garbage_is_no_cache(bad: str) -> None:
    assert parse_caps_cache(bad) is None


# ---- snapshots holding the cache --------------------------------------------------------------
def _stat(kind: str, mode: str, ctime: int, mtime: Optional[int] = None) -> dict[str, Any]:
    return {
        "type": kind,
        "mode": mode,
        "uid": 0,
        "gid": 0,
        "ctime": ctime,
        "mtime": mtime if mtime is not None else ctime,
        "size": 0,
    }


def _snapshot(
    tmp_path: Path,
    fixture: str,
    cache: Optional[str],
    *,
    qemu_ctime: int = 1796522193,
    moddir_mtime: int = 1796522192,
    kernel: tuple[str, str] = KERNEL,
    caps: Optional[CapsResult] = None,
    denied: bool = False,
) -> Path:
    root = tmp_path / "snap"
    shutil.copytree(PROJECT / "fixtures" / fixture, root, symlinks=True)
    mpath = root / "hvcheck-snapshot.json"
    marker = json.loads(mpath.read_text())
    marker.get("probes", {}).pop("libvirt_caps", None)
    if caps is not None:
        marker.setdefault("probes", {})["libvirt_caps"] = caps.to_json()
    marker["stat"] = {
        X86_64_BIN: _stat("file", "0755", qemu_ctime, 1779741869),
        MODDIR: _stat("dir", "0755", moddir_mtime),
    }
    d = root / CACHE_DIR.lstrip("/")
    d.mkdir(parents=True)
    if cache is not None:
        (d / _file_name(X86_64_BIN)).write_text(cache)
        if denied:
            marker["denied"] = [*marker.get("denied", []), f"{CACHE_DIR}/{_file_name(X86_64_BIN)}"]
    (d / _file_name("/usr/bin/qemu-system-i386")).write_text(I386)
    k = root / "proc/sys/kernel"
    k.mkdir(parents=True, exist_ok=True)
    (k / "osrelease").write_text(kernel[0] + "\n")
    (k / "version").write_text(kernel[1] + "\n")
    mpath.write_text(json.dumps(marker))
    return root


def _caps(root: Path) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-m", "hvcheck", "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return next(c for c in json.loads(p.stdout)["checks"] if c["id"] == "libvirt.caps")


def test_qemu_user_without_kvm_and_a_cache_offering_it(tmp_path: Path) -> None:
    """/dev/kvm 0600 root:root, the cache says kvm: libvirt would re-probe on every request;
    the WARNING names the cause, from the cache alone (no libvirt answer recorded)."""
    c = _caps(_snapshot(tmp_path, "live-libvirt-dev-kvm-0600", x86_64_cache()))
    assert (c["status"], c["code"]) == ("WARNING", "contradiction"), c
    assert c["details"]["via"] == "cache" and c["details"]["cache_stale"] is None
    assert "libvirt-qemu cannot open /dev/kvm mode 0600 root:root" in c["summary"]
    assert "re-probes QEMU on every request" in c["summary"]
    assert "KVM was enabled when probing '/usr/bin/qemu-system-x86_64'" in c["summary"]
    assert "0660" in c["hint"] and c["details"]["qemu_user_can_open"] is False


def test_qemu_user_without_kvm_after_libvirt_reprobed(tmp_path: Path) -> None:
    """The same host once libvirt re-probed as libvirt-qemu (no kvm in its cache): the same
    status and cause — the answer does not flip with libvirt's cache."""
    c = _caps(_snapshot(tmp_path, "live-libvirt-dev-kvm-0600", x86_64_cache(kvm=False)))
    assert (c["status"], c["code"]) == ("WARNING", "qemu-user-no-kvm"), c
    assert "libvirt-qemu cannot open /dev/kvm mode 0600 root:root" in c["summary"]
    assert "0660" in c["hint"]


def test_a_fresh_cache_answers_without_libvirt(tmp_path: Path) -> None:
    c = _caps(_snapshot(tmp_path, "nova-kvm-all-instances-kvm", x86_64_cache()))
    assert (c["status"], c["code"]) == ("OK", "kvm-offered"), c
    d = c["details"]
    assert d["via"] == "cache" and d["offers_kvm"] is True
    assert d["domain_types"] == ["qemu", "kvm"] and d["emulator"] == X86_64_BIN
    assert d["domcaps"] == {
        "emulator": X86_64_BIN,
        "domain": "kvm",
        "machine": "pc-i440fx-7.2",
        "vcpu_max": 255,
        "host_passthrough": True,
    }
    assert d["cache"] == f"{CACHE_DIR}/{_file_name(X86_64_BIN)}"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"qemu_ctime": 1796600000}, "QEMU binary changed"),
        ({"moddir_mtime": 1796600000}, "module directory"),
        ({"kernel": ("6.1.0-28-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1")}, "kernel"),
    ],
)
def test_a_stale_cache_asks_libvirt(tmp_path: Path, change: dict[str, Any], why: str) -> None:
    """What makes libvirt re-probe (virQEMUCapsIsValid) makes hvcheck ask it: a snapshot that
    recorded no answer says so; one that did is judged on it."""
    root = _snapshot(tmp_path, "nova-kvm-all-instances-kvm", x86_64_cache(), **change)
    c = _caps(root)
    assert (c["status"], c["code"]) == ("SKIP", "not-recorded"), c
    assert why in c["details"]["cache_stale"]
    shutil.rmtree(root)
    answer = CapsResult(
        "ok",
        "virsh",
        capabilities="<capabilities><host><cpu><arch>x86_64</arch></cpu></host><guest>"
        "<os_type>hvm</os_type><arch name='x86_64'><emulator>/usr/bin/qemu-system-x86_64"
        "</emulator><domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>",
    )
    c = _caps(
        _snapshot(tmp_path, "nova-kvm-all-instances-kvm", x86_64_cache(), caps=answer, **change)
    )
    assert (c["status"], c["code"], c["details"]["via"]) == ("OK", "kvm-offered", "virsh"), c


def test_kvm_usable_again_but_not_in_the_cache_is_stale(tmp_path: Path) -> None:
    """libvirt-qemu may open /dev/kvm, the cache has no kvm: libvirt probes again ("KVM was
    not enabled when probing ..., but it should be usable now"), so it is asked."""
    c = _caps(_snapshot(tmp_path, "nova-kvm-all-instances-kvm", x86_64_cache(kvm=False)))
    assert c["code"] == "not-recorded" and "KVM was not enabled" in c["details"]["cache_stale"]


def test_an_unreadable_cache_asks_libvirt(tmp_path: Path) -> None:
    root = _snapshot(tmp_path, "nova-kvm-all-instances-kvm", x86_64_cache(), denied=True)
    c = _caps(root)
    assert (
        c["code"] == "not-recorded" and "not readable without root" in c["details"]["cache_missing"]
    ), c


def test_no_cache_for_this_architecture_asks_libvirt(tmp_path: Path) -> None:
    c = _caps(_snapshot(tmp_path, "nova-kvm-all-instances-kvm", None))
    assert (
        c["code"] == "not-recorded"
        and "no capability cache for x86_64" in (c["details"]["cache_missing"])
    ), c


def test_this_machines_cache_is_fresh_by_libvirts_rules() -> None:
    """The cache libvirt left on this machine, judged live: its binary, module directory and
    kernel are those it was probed with (what libvirt's own validity check compares)."""
    host = LiveHost()
    ctx = Context(host)
    try:
        cc, why = read_cache(ctx, "i686")
    except PermissionError:
        pytest.skip("not root: the cache is 0600")
    if cc is None:
        pytest.skip(f"no libvirt capability cache on this machine: {why}")
    assert cc.cache.emulator is not None and Path(cc.cache.emulator).exists()
    stale = cache_stale(ctx, cc)
    assert stale is None or "libvirt changed" in stale, stale
