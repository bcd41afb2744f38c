"""libvirt.caps: libvirt's capabilities against the local evidence.

Against a real libvirtd (started by hand, tests/libvirt_harness.py): with /dev/kvm 0660 root:kvm
libvirt offers kvm and the QEMU user can use it (OK, from libvirt's capability cache once
libvirt has probed); with the 0600 root:root /dev/kvm this project's machines boot with, the
QEMU user cannot open it — the WARNING naming that, at once, without waiting on libvirt, which
re-probes QEMU for seconds on every request. Then the judgement on snapshots that replay
recorded capabilities (the cache itself: tests/test_libvirt_cache.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck.host import CapsResult
from hvcheck.services import LIBVIRT_RO_SOCKETS
from libvirt_harness import dev_kvm_mode, libvirtd
from snap import PROJECT, run_hvcheck

__all__ = ["libvirtd"]  # the module-scoped fixture


def recheck_kvm_access() -> None:
    """Make libvirt re-evaluate the QEMU user's access to /dev/kvm.

    libvirt caches that access keyed by /dev/kvm's ctime in whole seconds
    (virQEMUCapsKVMUsable: "/dev/kvm has changed"), so a mode set within the second of the
    previous change may go unnoticed: touch the ctime again in a new second.
    """
    time.sleep(1.1)
    st = os.stat("/dev/kvm")
    os.chmod("/dev/kvm", st.st_mode & 0o7777)


def let_libvirt_probe() -> None:
    """Ask libvirt once, unhurried, so that it re-probes QEMU if it must and caches what it
    finds (hvcheck then answers from that cache instead of waiting on a probe)."""
    subprocess.run(
        ["virsh", "-r", "-c", "qemu:///system", "capabilities"],
        capture_output=True,
        timeout=120,
        check=False,
    )


def _checks(p: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert "Traceback" not in p.stderr, p.stderr
    return {c["id"]: c for c in json.loads(p.stdout)["checks"]}


# ---- a real libvirtd ------------------------------------------------------------------------
def test_kvm_offered_and_usable(libvirtd: None) -> None:
    with dev_kvm_mode(0o660, "kvm"):
        recheck_kvm_access()
        let_libvirt_probe()
        c = _checks(run_hvcheck("--json", "-t", "40", "--only", "libvirt.caps"))["libvirt.caps"]
    assert c["status"] == "OK" and c["code"] == "kvm-offered", c
    d = c["details"]
    api = "libvirt-python" if importlib.util.find_spec("libvirt") else "virsh"
    assert d["via"] in ("cache", api), d  # the cache, unless it was stale
    if d["via"] == "cache":
        assert d["cache"].startswith("/var/cache/libvirt/qemu/capabilities/")
        assert d["cache_stale"] is None
    assert d["offers_kvm"] is True and "kvm" in d["domain_types"] and "qemu" in d["domain_types"]
    assert d["emulator"].endswith("qemu-system-x86_64")
    assert d["domcaps"]["domain"] == "kvm" and d["domcaps"]["host_passthrough"] is True
    assert "consistent with the local evidence" in c["summary"]


def test_kvm_offered_but_unusable_for_the_qemu_user(libvirtd: None) -> None:
    # libvirt must have cached an answer offering kvm (as after the test above, which need
    # not have run: -k, a random order): probed once while its QEMU user could use /dev/kvm
    with dev_kvm_mode(0o660, "kvm"):
        recheck_kvm_access()
        let_libvirt_probe()
    with dev_kvm_mode(0o600, "root"):
        recheck_kvm_access()
        c = _checks(run_hvcheck("--json", "-t", "60", "--only", "libvirt.caps"))["libvirt.caps"]
    # libvirt's cache still says kvm (the contradiction), or libvirt re-probed as
    # libvirt-qemu and cached no kvm: the same WARNING and cause either way
    assert c["status"] == "WARNING", c
    assert c["code"] in ("contradiction", "qemu-user-no-kvm"), c
    assert "libvirt offers" in c["summary"] and "cannot open" in c["summary"]
    assert "libvirt-qemu" in c["summary"] and "0600 root:root" in c["summary"]
    assert "0660" in c["hint"]
    assert c["details"]["qemu_user_can_open"] is False and c["details"]["kvm_usable"] is True


def test_slow_capability_probe_is_not_waited_for(libvirtd: None) -> None:
    """With /dev/kvm unusable by libvirt-qemu while its cached capabilities say KVM, libvirt
    re-probes QEMU on every capabilities request (about 8 s here for i386 + x86_64). hvcheck
    does not ask it: -t 3 is plenty, libvirt.caps is the WARNING with its cause, no check
    times out."""
    with dev_kvm_mode(0o600, "root"):
        recheck_kvm_access()
        start = time.monotonic()
        p = run_hvcheck("--json", "-t", "3", "--no-api")
        took = time.monotonic() - start
        checks = _checks(p)
    assert took < 2.0, took
    c = checks["libvirt.caps"]
    assert c["status"] == "WARNING" and "libvirt-qemu cannot open" in c["summary"], c
    for cid, check in checks.items():
        assert check["code"] != "timeout", (cid, check)
    assert checks["libvirt.qemu_user"]["status"] == "WARNING"
    assert p.returncode in (1, 2)  # no UNKNOWN from libvirt


def test_collect_records_capabilities_and_replays_them(libvirtd: None, tmp_path: Path) -> None:
    out = tmp_path / "snap.tar.gz"
    with dev_kvm_mode(0o660, "kvm"):
        recheck_kvm_access()
        let_libvirt_probe()
        live = _checks(run_hvcheck("--json", "-t", "40", "--no-api", "--only", "libvirt.caps"))
        p = run_hvcheck("-t", "40", "--no-api", "collect", "-o", str(out))
    assert p.returncode == 0, p.stderr
    with tarfile.open(out, "r:gz") as tf:
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        marker = json.loads(f.read())
        names = tf.getnames()
    assert "nova_api" not in marker["probes"]  # --no-api: nothing asked, nothing recorded
    via = live["libvirt.caps"]["details"]["via"]
    if via == "cache":
        # the cache file and the stat records its freshness was judged by
        assert any(n.startswith("var/cache/libvirt/qemu/capabilities/") for n in names)
        assert "/usr/bin/qemu-system-x86_64" in marker["stat"]
        assert "libvirt_caps" not in marker["probes"]  # libvirt was not asked
    else:
        rec = marker["probes"]["libvirt_caps"]
        assert rec["status"] == "ok" and "<capabilities>" in rec["capabilities"]
    c = _checks(run_hvcheck("--json", "--root", str(out)))
    assert c["libvirt.caps"]["code"] == "kvm-offered", c["libvirt.caps"]
    assert c["libvirt.caps"]["details"]["via"] == via


@pytest.mark.skipif(importlib.util.find_spec("libvirt") is not None, reason="virsh path only")
def test_virsh_is_used_without_libvirt_python(libvirtd: None, tmp_path: Path) -> None:
    # libvirt is asked only when its capability cache is missing or stale: set the cache
    # aside for the call (what libvirt writes meanwhile is kept), so the daemon is asked
    cache = Path("/var/cache/libvirt/qemu/capabilities")
    aside = tmp_path / "capabilities"
    aside.mkdir()
    moved = [shutil.move(str(f), str(aside / f.name)) for f in sorted(cache.glob("*.xml"))]
    try:
        with dev_kvm_mode(0o660, "kvm"):
            doc = run_hvcheck("--json", "-t", "40", "--only", "libvirt.caps")
        c = _checks(doc)["libvirt.caps"]
    finally:
        for f in moved:
            if not (cache / Path(f).name).exists():
                shutil.move(f, str(cache / Path(f).name))
    assert c["details"]["via"] == "virsh"


# ---- the judgement, on snapshots that replay recorded capabilities ----------------------------
# Shortened from `virsh capabilities` / `virsh domcapabilities --virttype kvm` on this project's
# x86_64 machine (libvirt 9.0.0, QEMU 7.2).
def caps_xml(domains: tuple[str, ...] = ("qemu", "kvm"), arch: str = "x86_64") -> str:
    d = "".join(f"<domain type='{t}'/>" for t in domains)
    return (
        "<capabilities><host><uuid>3626d57f-3fb5-4714-a5bf-fad3bf966381</uuid><cpu>"
        "<arch>x86_64</arch><model>kvm64</model><vendor>AMD</vendor></cpu></host>"
        "<guest><os_type>hvm</os_type><arch name='i686'><wordsize>32</wordsize>"
        f"<emulator>/usr/bin/qemu-system-i386</emulator>{d}</arch></guest>"
        f"<guest><os_type>hvm</os_type><arch name='{arch}'><wordsize>64</wordsize>"
        f"<emulator>/usr/bin/qemu-system-{arch}</emulator>"
        "<machine maxCpus='255'>pc-i440fx-7.2</machine>"
        f"<machine canonical='pc-i440fx-7.2' maxCpus='255'>pc</machine>{d}</arch>"
        "<features><acpi default='on' toggle='yes'/></features></guest></capabilities>"
    )


DOMCAPS = (
    "<domainCapabilities><path>/usr/bin/qemu-system-x86_64</path><domain>kvm</domain>"
    "<machine>pc-i440fx-7.2</machine><arch>x86_64</arch><vcpu max='255'/>"
    "<iothreads supported='yes'/><cpu><mode name='host-passthrough' supported='yes'>"
    "<enum name='hostPassthroughMigratable'><value>on</value><value>off</value></enum></mode>"
    "</cpu></domainCapabilities>"
)


def _replay(
    tmp_path: Path,
    fixture: str,
    caps: Optional[CapsResult],
    marker_update: Optional[dict[str, Any]] = None,
) -> dict[str, Any]:
    root = tmp_path / "snap"
    shutil.copytree(PROJECT / "fixtures" / fixture, root, symlinks=True)
    mpath = root / "hvcheck-snapshot.json"
    marker = json.loads(mpath.read_text())
    marker.update(marker_update or {})
    if caps is not None:
        marker.setdefault("probes", {})["libvirt_caps"] = caps.to_json()
    mpath.write_text(json.dumps(marker))
    p = subprocess.run(
        [sys.executable, "-m", "hvcheck", "--root", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    return _checks(p)["libvirt.caps"]


def _ok(caps: str, domcaps: Optional[str] = DOMCAPS, **kw: Any) -> CapsResult:
    return CapsResult("ok", "virsh", capabilities=caps, domcapabilities=domcaps, **kw)


NO_KVM_DEVICE = {
    "devices": {},
    "probes": {"kvm": {"ok": False, "stage": "open", "errno": "ENOENT"}},
}


@pytest.mark.parametrize(
    ("fixture", "caps", "marker", "status", "code", "text"),
    [
        # 0600 root:root and libvirt offers kvm: the contradiction
        ("live-libvirt-dev-kvm-0600", _ok(caps_xml()), None, "WARNING", "contradiction",
         "libvirt-qemu cannot open /dev/kvm mode 0600 root:root"),
        # 0660 root:kvm, libvirt-qemu in kvm: consistent
        ("nova-kvm-all-instances-kvm", _ok(caps_xml()), None, "OK", "kvm-offered",
         "consistent with the local evidence"),
        # KVM works, libvirt offers only TCG: a stale capability cache
        ("nova-kvm-all-instances-kvm", _ok(caps_xml(("qemu",)), None), None, "WARNING",
         "stale-no-kvm", "no kvm, although KVM works"),
        # no /dev/kvm, libvirt still offers kvm: stale the other way
        ("live-libvirt-dev-kvm-0600", _ok(caps_xml()), NO_KVM_DEVICE, "WARNING", "stale-kvm",
         "not usable"),
        # no /dev/kvm, no kvm offered: consistent, guests are emulated
        ("live-libvirt-dev-kvm-0600", _ok(caps_xml(("qemu",)), None), NO_KVM_DEVICE, "OK",
         "kvm-not-offered", "only be emulated"),
        # no emulator for this architecture at all
        ("nova-kvm-all-instances-kvm", _ok(caps_xml(arch="aarch64")), None, "WARNING", "no-guest",
         "no hvm guest for x86_64"),
        # libvirt lists kvm but refuses kvm domain capabilities
        ("nova-kvm-all-instances-kvm",
         _ok(caps_xml(), None, domcaps_error="invalid argument: KVM is not supported by "
             "'/usr/bin/qemu-system-x86_64' on this host"),
         None, "WARNING", "domcaps-refused", "refuses kvm domain capabilities"),
        # capabilities came, domain capabilities did not in time: judged on the former
        ("nova-kvm-all-instances-kvm",
         _ok(caps_xml(), None, domcaps_error="libvirt did not answer domcapabilities "
             "--virttype kvm within 3.0 s"),
         None, "OK", "kvm-offered", "kvm domain caps: no answer in time"),
        ("nova-kvm-all-instances-kvm",
         CapsResult("timeout", "virsh", error="libvirt did not answer `virsh -c qemu:///system "
                    "capabilities` within 2.2 s"),
         None, "UNKNOWN", "timeout", "did not answer"),
        ("nova-kvm-all-instances-kvm",
         CapsResult("unavailable", "none", error="libvirt is not running (no libvirtd or "
                    "virtqemud socket in /run/libvirt)"),
         None, "SKIP", "no-libvirt", "not running"),
        ("nova-kvm-all-instances-kvm", CapsResult("error", "virsh", error="boom"), None,
         "UNKNOWN", "error", "boom"),
        ("nova-kvm-all-instances-kvm", _ok("<capabilities><!DOCTYPE x></capabilities>"), None,
         "UNKNOWN", "error", "does not parse"),
        ("nova-kvm-all-instances-kvm", None, None, "SKIP", "not-recorded", "probes.libvirt_caps"),
    ],
)  # fmt: skip
def test_replay(
    tmp_path: Path,
    fixture: str,
    caps: Optional[CapsResult],
    marker: Optional[dict[str, Any]],
    status: str,
    code: str,
    text: str,
) -> None:
    c = _replay(tmp_path, fixture, caps, marker)
    assert (c["status"], c["code"]) == (status, code), c
    assert text in c["summary"], c


def test_replay_slow_answer_is_explained(tmp_path: Path) -> None:
    c = _replay(tmp_path, "live-libvirt-dev-kvm-0600", _ok(caps_xml(), elapsed=7.5))
    assert "libvirt took 7.5 s: it re-probed QEMU" in c["summary"], c


def test_caps_result_from_json_rejects_garbage() -> None:
    for bad in (None, [], {"status": "maybe"}, {"status": 1}):
        assert CapsResult.from_json(bad) is None
    r = CapsResult.from_json({"status": "ok", "capabilities": 3, "elapsed": True})
    assert r is not None and r.capabilities is None and r.elapsed == 0.0


# ---- was libvirt running? A replay answers as the live run did ------------------------------
SOCKET = {
    "type": "socket",
    "mode": "0666",
    "uid": 0,
    "gid": 0,
    "ctime": 1796522193,
    "mtime": 1796522193,
    "size": 0,
    "acl": None,
}


def _sockets(*present: str) -> dict[str, Any]:
    """A marker's ``lstat`` table as ``collect`` writes it for libvirt's sockets."""
    return {"lstat": {s: (SOCKET if s in present else None) for s in LIBVIRT_RO_SOCKETS}}


@pytest.mark.parametrize(
    ("fixture", "marker", "code"),
    [
        # collect saw no daemon and no socket: "not running", as the live run said
        ("debian12-compute-no-qemu", _sockets(), "no-libvirt"),
        # a socket but no daemon process (socket activation starts virtqemud on the first
        # connection): libvirt runs, and the snapshot holds no answer of its
        ("debian12-compute-no-qemu", _sockets("/run/libvirt/virtqemud-sock-ro"), "not-recorded"),
        # a daemon ran: what the sockets were does not matter
        ("nova-kvm-all-instances-kvm", _sockets(), "not-recorded"),
        # an older snapshot, without the sockets' lstat: whether libvirt ran cannot be told
        ("debian12-compute-no-qemu", None, "not-recorded"),
        # a table of the wrong type is refused: cannot be told either, never "not running"
        ("debian12-compute-no-qemu", {"lstat": []}, "not-recorded"),
    ],
)
def test_replay_tells_whether_libvirt_ran(
    tmp_path: Path, fixture: str, marker: Optional[dict[str, Any]], code: str
) -> None:
    c = _replay(tmp_path, fixture, None, marker)
    assert c["code"] == code, c
    if code == "no-libvirt":
        assert c["status"] == "SKIP" and "libvirt is not running" in c["summary"], c


def test_collect_records_that_libvirt_was_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live run's "libvirt is not running" comes back from its snapshot: collect records
    the lstat of the sockets the check looked for (here paths that do not exist, and no
    daemon: libvirtd may run on this machine while the suite runs)."""
    from hvcheck import engine
    from hvcheck.checks import apichecks
    from hvcheck.host import RecordingHost, SnapshotHost

    socks = tuple(str(tmp_path / "run" / n) for n in ("libvirt-sock-ro", "virtqemud-sock-ro"))
    monkeypatch.setattr(apichecks, "LIBVIRT_RO_SOCKETS", socks)
    monkeypatch.setattr(apichecks.facts, "libvirt_daemons", lambda ctx: [])
    checks = [lc for lc in engine.load_checks() if lc.id == "libvirt.caps"]

    def caps(host: Any) -> tuple[str, str, str]:
        (r,) = engine.run(host, checks, timeout=10, options={"no_api": True}).results
        return r.status.label, r.code, r.summary

    rec = RecordingHost()
    live = caps(rec)
    assert live[:2] == ("SKIP", "no-libvirt"), live
    out = tmp_path / "snap.tar.gz"
    rec.write_snapshot(str(out), "2024-01-01T00:00:00Z")
    assert caps(SnapshotHost(str(out))) == live


def test_not_seen_running_where_the_process_table_is_incomplete_is_not_not_running(
    tmp_path: Path,
) -> None:
    """hvcheck in a pid namespace of its own (a container without the host's pids) sees no
    daemon and no socket: libvirt may run unseen, so the SKIP says what is known (it cannot
    be asked from here), not that it does not run."""
    root = tmp_path / "snap"
    shutil.copytree(PROJECT / "fixtures" / "debian12-compute-no-qemu", root, symlinks=True)
    (root / "proc" / "self" / "ns").mkdir(parents=True)
    (root / "proc" / "self" / "ns" / "pid").symlink_to("pid:[4026532731]")
    mpath = root / "hvcheck-snapshot.json"
    mpath.write_text(json.dumps({**json.loads(mpath.read_text()), **_sockets()}))
    p = run_hvcheck("--root", str(root), "--json", "--only", "libvirt.caps")
    (c,) = json.loads(p.stdout)["checks"]
    assert (c["status"], c["code"]) == ("SKIP", "no-libvirt"), c
    assert c["summary"].startswith("no libvirtd or virtqemud visible"), c
    assert "not running" not in c["summary"] and "pid namespace" in c["details"]["incomplete"]
