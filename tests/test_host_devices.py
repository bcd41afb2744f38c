"""Device nodes: ``os.stat``, the POSIX ACL (``system.posix_acl_access``) and udev's view through
pyudev on the live host, held against sysfs, udev's own database and setfacl; recorded by
``collect`` in the marker and read back, with wrong types refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import pyudev

import hvcheck.host.live as live
from hvcheck.devaccess import read_rules, udev_device
from hvcheck.host import DeviceInfo, LiveHost, RecordingHost, SnapshotHost
from hvcheck.parsers.udev import node_rules
from snap import make_snapshot


def test_udev_record_of_a_live_char_device_is_sysfs_and_udevs() -> None:
    st = os.stat("/dev/null")
    host = LiveHost()
    node = host.stat_device("/dev/null")
    assert node is not None and node.type == "char" and (node.major, node.minor) == (1, 3)
    assert node.udev is None  # asked separately, only where a judgement needs it
    info = node._replace(udev=host.udev_record(node))
    assert info.udev is not None, "pyudev found no device 1:3"
    props = info.udev["properties"]
    assert (props["MAJOR"], props["MINOR"]) == (
        str(os.major(st.st_rdev)),
        str(os.minor(st.st_rdev)),
    )
    sysfs = os.path.realpath(f"/sys/dev/char/{info.major}:{info.minor}")
    assert props["DEVPATH"] == sysfs[len("/sys") :]
    assert props["DEVNAME"] == "/dev/null"
    # initialized: udev has processed it, i.e. it is in udev's database (libudev:
    # udev_device_get_is_initialized reads /run/udev/data/c<major>:<minor>)
    in_db = os.path.exists(f"/run/udev/data/c{info.major}:{info.minor}")
    assert info.udev["initialized"] is in_db
    assert isinstance(info.udev["tags"], list)


UDEV_RUNS = any(os.path.exists(d) for d in live.UDEV_RUN_DIRS)
# rules that match on what udev's record and the kernel's uevent both give a misc device
UEVENT_RULES = [
    (
        "/etc/udev/rules.d/65-kvm.rules",
        'SUBSYSTEM=="misc", KERNEL=="kvm", ENV{MAJOR}=="10", ENV{MINOR}=="232", '
        'ENV{DEVPATH}=="/devices/virtual/misc/kvm", ENV{DEVNAME}=="/dev/kvm", '
        'GROUP="kvm", MODE="0660"\n'
        'SUBSYSTEM=="misc", KERNEL=="tun", ENV{DEVNAME}=="/dev/net/tun", MODE="0666"\n'
        'KERNEL=="null", ENV{DEVNAME}=="/dev/null", ENV{MAJOR}=="1", MODE="0666"\n',
    )
]


def test_udev_view_is_pyudevs_record_where_udev_runs_and_known_without_it_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = LiveHost().stat_device("/dev/null")
    assert node is not None
    (tmp_path / "udev").mkdir()
    monkeypatch.setattr(live, "UDEV_RUN_DIRS", (str(tmp_path / "none"), str(tmp_path / "udev")))
    host = LiveHost()
    assert host.udev_view("/dev/null", node) == host.udev_record(node) is not None
    monkeypatch.setattr(live, "UDEV_RUN_DIRS", (str(tmp_path / "none"),))
    view = LiveHost().udev_view("/dev/null", node)
    assert view == {"initialized": False, "tags": [], "running": False}


@pytest.mark.skipif(UDEV_RUNS, reason="udev runs on this host: it has a record to give")
def test_where_udev_does_not_run_pyudev_says_what_the_view_says() -> None:
    # the view known without pyudev against pyudev's own record of the same nodes: not
    # initialized, no tags, and a device the rules match alike (udev's properties there are
    # the kernel's uevent, which parsers.udev derives)
    host = LiveHost()
    seen = 0
    for path in ("/dev/null", "/dev/kvm", "/dev/net/tun"):
        node = host.stat_device(path)
        if node is None:
            continue
        view, record = host.udev_view(path, node), host.udev_record(node)
        assert view is not None and record is not None, path
        assert view["initialized"] is record["initialized"] is False, record
        assert view["tags"] == record["tags"] == [], record
        by_view = udev_device(host, path, node._replace(udev=view))
        by_record = udev_device(host, path, node._replace(udev=record))
        assert by_view._replace(properties=None) == by_record._replace(properties=None)
        groups = ["root", "kvm"]
        for files in (UEVENT_RULES, read_rules(host) or []):
            a = node_rules(files, by_view, groups=groups, users=["root"])
            b = node_rules(files, by_record, groups=groups, users=["root"])
            assert a._replace(device=None) == b._replace(device=None), (path, files[:1])
        seen += 1
    assert seen >= 1


@pytest.mark.parametrize("udev_runs", [True, False])
@pytest.mark.parametrize("libudev", [True, False])
def test_collect_records_the_udev_view_the_live_run_saw(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, udev_runs: bool, libudev: bool
) -> None:
    # --root answers as the live run did: where udev does not run, the view known without
    # pyudev, also where pyudev would have said something else (no libudev: nothing)
    (tmp_path / "udev").mkdir()
    monkeypatch.setattr(live, "UDEV_RUN_DIRS", (str(tmp_path / ("udev" if udev_runs else "x")),))
    if not libudev:

        def no_libudev() -> Any:
            raise ImportError("No library named udev")

        monkeypatch.setattr(pyudev, "Context", no_libudev)
    node = LiveHost().stat_device("/dev/null")
    assert node is not None
    seen = LiveHost().udev_view("/dev/null", node)
    rec = RecordingHost()
    recorded = rec.stat_device("/dev/null")
    assert recorded is not None and recorded.udev == seen
    assert (seen is None) == (udev_runs and not libudev)
    if not udev_runs:
        assert seen == NO_UDEV
    out = tmp_path / "snap.tar.gz"
    rec.write_snapshot(str(out), "2024-01-01T00:00:00Z")
    assert SnapshotHost(str(out)).stat_device("/dev/null") == recorded


def test_the_live_probe_loads_pyudev_only_where_udev_runs() -> None:
    code = (
        "import sys\n"
        "import hvcheck.host.live as live\n"
        "asked = []\n"
        "view = live.LiveHost.udev_view\n"
        "live.LiveHost.udev_view = lambda self, p, d: asked.append(p) or view(self, p, d)\n"
        "from hvcheck.cli import main\n"
        "try:\n"
        "    main(['--format', 'nagios'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.stderr.write(f'ASKED {len(asked)} PYUDEV {\"pyudev\" in sys.modules}')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("HVCHECK "), (p.stdout, p.stderr)
    asked, loaded = p.stderr.split("ASKED ")[-1].split(" PYUDEV ")
    if asked == "0":  # CI's VM has /dev/kvm 0600: its QEMU user's access is judged there
        pytest.skip("libvirt's QEMU user can open /dev/kvm here: nothing asks for udev's view")
    assert loaded.strip() == str(UDEV_RUNS), p.stderr


def test_no_udev_for_a_plain_file_and_no_acl_without_one(tmp_path: Path) -> None:
    f = tmp_path / "plain"
    f.write_text("x")
    host = LiveHost()
    info = host.stat_device(str(f))
    assert info is not None and info.type == "file"
    assert host.udev_view(str(f), info) is None and info.acl is None


@pytest.mark.skipif(shutil.which("setfacl") is None, reason="needs setfacl (acl package)")
def test_acl_is_the_raw_xattr_setfacl_wrote(tmp_path: Path) -> None:
    f = tmp_path / "node"
    f.write_text("")
    p = subprocess.run(["setfacl", "-m", "u:65534:rw", str(f)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"no ACLs on this filesystem: {p.stderr.strip()}")
    info = LiveHost().stat_device(str(f))
    assert info is not None and info.acl is not None
    raw = bytes.fromhex(info.acl)
    # include/uapi/linux/posix_acl_xattr.h: a le32 version 2 header, then 8-byte entries
    # (le16 tag, le16 perm, le32 id); ACL_USER is tag 0x02
    assert raw[:4] == (2).to_bytes(4, "little") and (len(raw) - 4) % 8 == 0
    assert (2).to_bytes(2, "little") + (6).to_bytes(2, "little") + (65534).to_bytes(
        4, "little"
    ) in raw


def test_udev_failures_leave_the_stat_standing(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise pyudev.DeviceNotFoundByNumberError("char", 0)

    monkeypatch.setattr(pyudev.Devices, "from_device_number", boom)
    info = LiveHost().stat_device("/dev/null")
    assert info is not None and info.udev is None and info.mode

    def no_libudev() -> Any:
        raise ImportError("No library named udev")

    monkeypatch.setattr(pyudev, "Context", no_libudev)
    info = LiveHost().stat_device("/dev/null")
    assert info is not None and info.udev is None and (info.major, info.minor) == (1, 3)


def test_collect_records_acl_and_udev_and_root_reads_them_back(tmp_path: Path) -> None:
    f = tmp_path / "node"
    f.write_text("")
    if shutil.which("setfacl"):
        subprocess.run(["setfacl", "-m", "u:65534:rw", str(f)], capture_output=True)
    rec = RecordingHost()
    paths = ["/dev/null", str(f)]
    live = {p: rec.stat_device(p) for p in paths}
    out = tmp_path / "snap.tar.gz"
    rec.write_snapshot(str(out), "2024-01-01T00:00:00Z")
    snap = SnapshotHost(str(out))
    assert {p: snap.stat_device(p) for p in paths} == live
    null = snap.stat_device("/dev/null")
    assert null is not None and null.udev is not None


NO_UDEV = {"initialized": False, "tags": [], "running": False}
GOOD_UDEV = {
    "initialized": True,
    "properties": {"DEVNAME": "/dev/kvm", "MAJOR": "10", "MINOR": "232", "TAGS": ":uaccess:"},
    "tags": ["uaccess"],
    "current_tags": ["uaccess"],
}


@pytest.mark.parametrize(
    ("acl", "udev", "want_acl", "want_udev"),
    [
        ("0200000001000600FFFFFFFF", GOOD_UDEV, "0200000001000600ffffffff", GOOD_UDEV),
        ({"hex": "02"}, {"initialized": "yes", "properties": {}, "tags": []}, None, None),
        ("zz", {"initialized": True, "properties": {"A": 1}, "tags": []}, None, None),
        ("020", {"initialized": True, "properties": {}, "tags": "uaccess"}, None, None),
        (None, {**GOOD_UDEV, "current_tags": [1]}, None, None),
        (None, [1, 2], None, None),
        # a host where udev did not run (LiveHost.udev_view): nothing initialized or tagged it
        (None, NO_UDEV, None, NO_UDEV),
        (None, {**NO_UDEV, "initialized": True}, None, None),
        (None, {**NO_UDEV, "tags": ["uaccess"]}, None, None),
        (None, {**NO_UDEV, "seen": 1}, None, None),
        (None, {**NO_UDEV, "running": "no"}, None, None),
    ],
)
def test_marker_acl_and_udev_are_type_checked(
    tmp_path: Path, acl: Any, udev: Any, want_acl: Any, want_udev: Any
) -> None:
    dev = {"type": "char", "major": 10, "minor": 232, "mode": "0660", "uid": 0, "gid": 107}
    root = make_snapshot(
        tmp_path / "s", marker={"devices": {"/dev/kvm": {**dev, "acl": acl, "udev": udev}}}
    )
    info = SnapshotHost(str(root)).stat_device("/dev/kvm")
    assert info == DeviceInfo("char", 10, 232, "0660", 0, 107, None, None, want_acl, want_udev)


def test_an_older_marker_has_neither(tmp_path: Path) -> None:
    dev = {"type": "char", "major": 10, "minor": 232, "mode": "0660", "uid": 0, "gid": 107}
    root = make_snapshot(tmp_path / "s", marker={"devices": {"/dev/kvm": dev}})
    info = SnapshotHost(str(root)).stat_device("/dev/kvm")
    assert info is not None and info.acl is None and info.udev is None and info.perm == 0o660
