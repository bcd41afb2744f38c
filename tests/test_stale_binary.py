"""instances.binary: a QEMU process that runs a binary replaced since it started (a package
upgrade renames a new file over the old one; the process keeps the old, unlinked inode).

The real case: a copy of qemu-system-x86_64 in a temporary prefix, a paused TCG guest started
from it, the copy replaced the way dpkg does it (write a new file, rename it over the old
name), then hvcheck live, as root and as nobody, and a collect replayed with --root. Each
ground truth is read independently of hvcheck (``os.readlink``/``os.stat`` of /proc/PID/exe).
"""

from __future__ import annotations

import doctest
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck import facts
from hvcheck.facts import CLOCK_SLACK, judge_binary
from hvcheck.host import ExeRecord, FileStamp
from qemu_harness import (  # noqa: F401
    GuestFactory,
    QemuStartError,
    qemu_binary,
    qemu_guests_fixture,
)
from snap import PROJECT, healthy_host, make_snapshot, run_hvcheck, run_json

QEMU = "/usr/bin/qemu-system-x86_64"


def _instances(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {i["pid"]: i for i in doc["instances"]}


def _check(doc: dict[str, Any], cid: str = "instances.binary") -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == cid)


# ---------------------------------------------------------------------------------- the rules
def test_judge_binary_doctests() -> None:
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for t in finder.find(facts.judge_binary, "judge_binary", globs={"judge_binary": judge_binary}):
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0


OLD = FileStamp(64769, 1000, 100.0, 100.0)
NEW = FileStamp(64769, 2000, 1000.0, 5000.0)
PATH = "/usr/bin/qemu-system-x86_64"


def test_deleted_link_is_stale_even_without_a_record() -> None:
    """An older snapshot holds the exe link (" (deleted)" kept) but no stat records."""
    s = judge_binary(PATH + " (deleted)", None)
    assert (s.stale, s.how, s.path, s.since) == (True, "deleted", PATH, None)


def test_other_inode_at_the_path_is_stale_without_deleted() -> None:
    # e.g. the running name survives under a bind mount or another link, but the path has
    # another file: the inodes decide
    s = judge_binary(PATH, ExeRecord(PATH, OLD, NEW, 1000.0))
    assert (s.stale, s.how, s.since, s.verified) == (True, "replaced", 5000.0, True)
    assert "inode 1000" in s.why and "inode 2000" in s.why


def test_same_inode_is_current_whatever_the_times_say() -> None:
    # a chmod/setcap after start moves the ctime; the inode is still the one it runs
    touched = OLD._replace(ctime=9000.0, mtime=9000.0)
    s = judge_binary(PATH, ExeRecord(PATH, touched, touched, 1000.0))
    assert (s.stale, s.how, s.verified) == (False, "current", True)


def test_without_the_mapped_inode_times_decide() -> None:
    """Another user's process: /proc/PID/exe cannot be stat'ed, the path and the start time
    can (argv[0], /proc/PID/stat)."""
    err = ("/proc/42/exe: Permission denied",)
    after = judge_binary(None, ExeRecord(PATH, None, NEW, 5000.0 - CLOCK_SLACK - 1, err))
    assert (after.stale, after.how, after.verified) == (True, "changed-after-start", False)
    before = judge_binary(None, ExeRecord(PATH, None, NEW, 5000.0 + CLOCK_SLACK + 1, err))
    assert (before.stale, before.how) == (False, "current")
    close = judge_binary(None, ExeRecord(PATH, None, NEW, 5000.0 + CLOCK_SLACK / 2, err))
    assert close.stale is None and "Permission denied" in close.why


def test_what_cannot_be_told() -> None:
    assert judge_binary(PATH, None).how == "not-recorded"
    gone = judge_binary(PATH, ExeRecord(PATH, OLD, None, 1000.0))
    assert gone.stale is None and "no file at" in gone.why
    nothing = judge_binary(None, ExeRecord(None, None, None, None, ("the process exited",)))
    assert nothing.stale is None and nothing.why == "the process exited"


# ---------------------------------------------------------------------------------- snapshots
def test_older_snapshot_skips_and_says_null() -> None:
    """A snapshot collected before the binaries were recorded: no verdict on them (SKIP),
    ``binary_stale`` null, nothing else changes."""
    _, doc = run_json("--root", str(PROJECT / "fixtures" / "live-qemu-kvm-tcg-fallback"))
    assert _check(doc)["status"] == "SKIP" and _check(doc)["code"] == "not-recorded"
    assert doc["instances"] and all(i["binary_stale"] is None for i in doc["instances"])


def _qemu_snapshot(
    root: Path,
    exe: str,
    binaries: Any,
    dpkg: Optional[str] = None,
    name: str = "instance-00000042",
    xml: Optional[str] = None,
) -> Path:
    files: dict[str, str | bytes] = {
        "proc/4242/cmdline": b"\0".join(
            [QEMU.encode(), b"-name", f"guest={name},debug-threads=on".encode(), b"-S"]
        )
        + b"\0",
        "proc/4242/comm": "qemu-system-x86\n",
        "proc/4242/task/4243/comm": "CPU 0/KVM\n",
    }
    if dpkg is not None:
        files["var/lib/dpkg/status"] = dpkg
    if xml is not None:
        files[f"run/libvirt/qemu/{name}.xml"] = xml
    healthy_host(root, binaries=binaries)
    make_snapshot(
        root,
        files,
        marker=json.loads((root / "hvcheck-snapshot.json").read_text()),
        links={
            "proc/4242/exe": exe,
            "proc/4242/fd/10": "/dev/kvm",
            "proc/4242/fd/11": "anon_inode:kvm-vm",
            "proc/4242/fd/12": "anon_inode:kvm-vcpu:0",
        },
    )
    return root


DPKG_QEMU = (
    "Package: qemu-system-x86\nStatus: install ok installed\nArchitecture: amd64\n"
    "Version: 1:7.2+dfsg-7+deb12u18+b3\n\n"
)


def test_snapshot_replaced_inode_names_the_installed_package(tmp_path: Path) -> None:
    rec = ExeRecord(QEMU, OLD, NEW, 1000.0).to_json()
    root = _qemu_snapshot(tmp_path / "s", QEMU, {"4242": rec}, DPKG_QEMU)
    rc, doc = run_json("--root", str(root), "--only", "instances")
    c = _check(doc)
    assert c["status"] == "WARNING" and c["code"] == "stale-binary" and rc == 1
    assert "instance-00000042 (pid 4242)" in c["summary"]
    assert "restart or live-migrate to pick up QEMU 7.2" in c["summary"]
    assert "qemu-system-x86 1:7.2+dfsg-7+deb12u18+b3 installed" in c["summary"]
    assert "virsh" not in c["hint"] and "stop and start" in c["hint"]  # plain QEMU
    assert _instances(doc)[4242]["binary_stale"] is True
    assert c["details"]["stale"][0]["installed"]["version"] == "1:7.2+dfsg-7+deb12u18+b3"


def test_snapshot_current_binary_is_ok(tmp_path: Path) -> None:
    rec = ExeRecord(QEMU, OLD, OLD, 1000.0).to_json()
    root = _qemu_snapshot(tmp_path / "s", QEMU, {"4242": rec}, DPKG_QEMU)
    rc, doc = run_json("--root", str(root), "--only", "instances.binary")
    c = _check(doc)
    assert (c["status"], c["code"], rc) == ("OK", "current", 0)
    assert "QEMU 7.2 installed" in c["summary"]
    assert _instances(doc)[4242]["binary_stale"] is False


def test_binary_elsewhere_says_when_not_which_version(tmp_path: Path) -> None:
    """A binary outside the distribution's directories is not the package's: the summary
    names the file and the time it was replaced, not the package's version."""
    opt = "/opt/qemu/bin/qemu-system-x86_64"
    rec = ExeRecord(opt, OLD, NEW, 1000.0).to_json()
    root = _qemu_snapshot(tmp_path / "s", opt + " (deleted)", {"4242": rec}, DPKG_QEMU)
    _, doc = run_json("--root", str(root), "--only", "instances.binary")
    c = _check(doc)
    assert c["status"] == "WARNING"
    assert "replaced since they started (replaced on 1970-01-01 01:23:20 UTC)" in c["summary"]
    assert c["summary"].endswith(f"pick up the binary now at {opt}")
    assert "QEMU 7.2" not in c["summary"]


# libvirt's real status XML of a domain on this project's machine (pid changed to the
# snapshot's); for Nova, with the <metadata> Nova's libvirt driver writes (nova/virt/libvirt/
# config.py LibvirtConfigGuestMetaNovaInstance)
DOMAIN_XML = (
    (PROJECT / "fixtures/nova-kvm-all-instances-kvm/run/libvirt/qemu/instance-0000k001.xml")
    .read_text()
    .replace("pid='19714'", "pid='4242'")
)
NOVA_META = """<metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:name>web-01</nova:name>
        <nova:flavor name="m1.small"/>
        <nova:owner><nova:project uuid="0a1b2c3d">demo</nova:project></nova:owner>
      </nova:instance>
    </metadata>
    <memory unit='KiB'>"""


@pytest.mark.parametrize(
    ("nova", "want"),
    [
        (
            True,
            [
                "openstack server migrate --live-migration b3abd899-2fcf-43ce-bd4f-d4be9b1fe511",
                "openstack server reboot --hard b3abd899-2fcf-43ce-bd4f-d4be9b1fe511",
            ],
        ),
        (
            False,
            [
                "virsh shutdown instance-0000k001` then `virsh start instance-0000k001",
                "virsh migrate --live instance-0000k001",
            ],
        ),
    ],
)
def test_hint_follows_what_runs_the_instance(tmp_path: Path, nova: bool, want: list[str]) -> None:
    xml = DOMAIN_XML.replace("<memory unit='KiB'>", NOVA_META, 1) if nova else DOMAIN_XML
    assert ("nova:instance" in xml) is nova
    rec = ExeRecord(QEMU, OLD, NEW, 1000.0).to_json()
    root = _qemu_snapshot(
        tmp_path / "s", QEMU + " (deleted)", {"4242": rec}, name="instance-0000k001", xml=xml
    )
    _, doc = run_json("--root", str(root), "--only", "instances.binary")
    c = _check(doc)
    assert c["status"] == "WARNING", c
    for text in want:
        assert text in c["hint"], c["hint"]
    assert ("openstack" in c["hint"]) is nova and ("virsh" in c["hint"]) is not nova
    assert ("instance-0000k001 'web-01' (pid 4242)" in c["summary"]) is nova


@pytest.mark.parametrize(
    "binaries",
    [
        {"4242": {"path": 7, "running": {"dev": "x"}, "current": [], "started": True}},
        {"4242": "garbage"},
        ["not", "an", "object"],
        {"4242": {"running": {"dev": 1, "ino": 2, "mtime": 3, "ctime": 4}, "errors": "x"}},
    ],
)
def test_malformed_marker_records_are_unknown_not_a_traceback(
    tmp_path: Path, binaries: Any
) -> None:
    root = _qemu_snapshot(tmp_path / "s", QEMU, binaries)
    p = run_hvcheck("--root", str(root), "--only", "instances.binary", "--json")
    assert "Traceback" not in p.stderr, p.stderr
    c = _check(json.loads(p.stdout))
    assert c["status"] in ("UNKNOWN", "SKIP"), c


# ---------------------------------------------------------------------------------- live
@pytest.fixture(name="prefix")
def prefix_fixture() -> Iterator[Path]:
    """A relocatable QEMU prefix: QEMU 7.2 finds its modules (accel-tcg-x86_64.so) and
    firmware relative to its own directory (``../lib``, ``../share``), so the copy gets the
    system's through two links. World-readable, for the run as nobody."""
    if qemu_binary() is None or not os.path.exists(QEMU):
        pytest.skip(f"{QEMU} not installed")
    d = Path(tempfile.mkdtemp(prefix="hvcheck-stale-"))
    try:
        d.chmod(0o755)
        (d / "bin").mkdir()
        (d / "share").symlink_to("/usr/share")
        (d / "lib").symlink_to("/usr/lib")
        shutil.copy2(QEMU, d / "bin" / "qemu-system-x86_64")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _replace_like_dpkg(binary: Path) -> None:
    """dpkg unpacks ``<file>.dpkg-new`` and renames it over ``<file>`` (src/main/archives.c):
    the old inode stays mapped by every process that runs it."""
    new = binary.with_name(binary.name + ".dpkg-new")
    shutil.copy2(QEMU, new)
    os.rename(new, binary)


def _wait_past_start(pid: int) -> None:
    """Sleep until the process is older than the clock slack, so that the new file's ctime is
    after its start by more than hvcheck's times can blur (the non-root run judges by them)."""
    import psutil

    left = psutil.Process(pid).create_time() + CLOCK_SLACK + 1.5 - time.time()
    if left > 0:
        time.sleep(left)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv to nobody)")
def test_replaced_binary_live_and_replayed(
    qemu_guests: GuestFactory, prefix: Path, tmp_path: Path
) -> None:
    binary = prefix / "bin" / "qemu-system-x86_64"
    old = qemu_guests("stale-guest", ["-accel", "tcg"], binary=str(binary))
    before = os.stat(f"/proc/{old.pid}/exe")

    # the in-place way is refused while it runs: writing the running file fails (ETXTBSY),
    # so an upgrade can only replace it
    with pytest.raises(OSError) as busy:
        open(binary, "r+b").close()
    assert busy.value.errno == errno.ETXTBSY
    _, doc = run_json("--only", "instances")
    assert _instances(doc)[old.pid]["binary_stale"] is False

    _wait_past_start(old.pid)
    _replace_like_dpkg(binary)
    # ground truth, read without hvcheck: the running inode is unlinked, the path is another
    assert os.readlink(f"/proc/{old.pid}/exe") == f"{binary} (deleted)"
    assert os.stat(f"/proc/{old.pid}/exe").st_ino == before.st_ino != binary.stat().st_ino
    _wait_past_start_of_file(binary)
    fresh = qemu_guests("fresh-guest", ["-accel", "tcg"], binary=str(binary))
    assert os.stat(f"/proc/{fresh.pid}/exe").st_ino == binary.stat().st_ino

    rc, doc = run_json("--only", "instances")
    inst = _instances(doc)
    assert inst[old.pid]["binary_stale"] is True and inst[fresh.pid]["binary_stale"] is False
    c = _check(doc)
    assert c["status"] == "WARNING" and c["code"] == "stale-binary" and rc >= 1
    assert f"stale-guest (pid {old.pid})" in c["summary"]
    assert "fresh-guest" not in c["summary"]
    assert f"restart or live-migrate to pick up the binary now at {binary}" in c["summary"]
    entry = next(e for e in c["details"]["stale"] if e["pid"] == old.pid)
    assert (entry["how"], entry["verified"], entry["path"]) == ("deleted", True, str(binary))
    assert entry["replaced_at"].endswith(" UTC")
    assert "stop and start" in c["hint"]  # plain QEMU: no libvirt domain

    # nobody cannot read /proc/PID/exe of root's QEMU: argv[0] and the times decide
    p = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            sys.executable,
            "-m",
            "hvcheck",
            "--only",
            "instances",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
    )
    assert "Traceback" not in p.stderr, p.stderr
    nobody = json.loads(p.stdout)
    ninst = _instances(nobody)
    assert ninst[old.pid]["binary_stale"] is True and ninst[fresh.pid]["binary_stale"] is False
    nentry = next(e for e in _check(nobody)["details"]["stale"] if e["pid"] == old.pid)
    # the link itself is denied to nobody: judged from the path's ctime, not verified
    assert (nentry["how"], nentry["verified"]) == ("changed-after-start", False)

    # collect, then replay: the same verdict from the snapshot
    out = tmp_path / "stale.tar.gz"
    assert run_hvcheck("collect", "-o", str(out)).returncode == 0
    _, snap = run_json("--root", str(out), "--only", "instances")
    rinst = _instances(snap)
    assert rinst[old.pid]["binary_stale"] is True and rinst[fresh.pid]["binary_stale"] is False
    rc_ = _check(snap)
    assert rc_["status"] == "WARNING" and f"stale-guest (pid {old.pid})" in rc_["summary"]
    import tarfile

    with tarfile.open(out) as tf:
        marker = json.load(tf.extractfile("hvcheck-snapshot.json"))  # type: ignore[arg-type]
    rec = marker["binaries"][str(old.pid)]
    assert rec["path"] == str(binary)
    assert rec["running"]["ino"] == before.st_ino and rec["current"]["ino"] != before.st_ino
    assert isinstance(rec["started"], float)


def _wait_past_start_of_file(binary: Path) -> None:
    """Sleep until the new file is older than the clock slack: a guest started then is
    judged current by times too."""
    left = binary.stat().st_ctime + CLOCK_SLACK + 1.5 - time.time()
    if left > 0:
        time.sleep(left)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (unshare --mount, mount --bind)")
def test_binary_is_looked_up_in_the_process_mount_namespace(
    qemu_guests: GuestFactory, prefix: Path
) -> None:
    """A QEMU in a mount namespace of its own (libvirt's per-domain one, a container's) sees
    its own file at the path: here a bind mount puts another copy there before exec. In
    hvcheck's namespace the path holds a different inode, which is not a replacement."""
    binary = prefix / "bin" / "qemu-system-x86_64"
    alt = prefix / "alt-qemu-system-x86_64"
    shutil.copy2(QEMU, alt)
    script = f'mount --bind {alt} {binary} && exec "$@"'
    ns = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    try:
        g = qemu_guests("ns-guest", ["-accel", "tcg"], binary=str(binary), prefix=ns)
    except QemuStartError as e:  # no mount namespaces here (an unprivileged container)
        pytest.skip(f"cannot start QEMU in a mount namespace of its own: {e}")
    running = os.stat(f"/proc/{g.pid}/exe").st_ino
    # ground truth: the link names the path, whose inode differs here and matches there
    assert os.readlink(f"/proc/{g.pid}/exe") == str(binary)
    assert os.stat(binary).st_ino != running == alt.stat().st_ino
    assert os.stat(f"/proc/{g.pid}/root{binary}").st_ino == running
    _, doc = run_json("--only", "instances")
    assert _instances(doc)[g.pid]["binary_stale"] is False
