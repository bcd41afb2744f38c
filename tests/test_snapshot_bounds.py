"""Snapshots read with their bounds checked before the run's deadline starts (issue 14):
member count, total unpacked size (gzip bombs, huge pax headers), marker size and JSON nesting
depth; and marker values of the wrong type, which are UNKNOWN for what depends on them and
never CRITICAL (``"devices": {"/dev/kvm": "garbage"}``, ``"probes": []``...)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from hvcheck.host import SnapshotError
from hvcheck.host import snapshot as snapmod
from hvcheck.host.snapshot import SnapshotHost, json_depth
from snap import PROJECT, healthy_host, make_snapshot, run_hvcheck

MARKER = b'{"format": 1}'
PROBE_OK = {"ok": True, "stage": "done", "api_version": 12, "uid": 0}


def _tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


def _refused(root: Path, *words: str) -> str:
    t0 = time.monotonic()
    p = run_hvcheck("--root", str(root), "--format", "nagios")
    assert time.monotonic() - t0 < 20
    assert p.returncode == 3 and "Traceback" not in p.stderr, (p.stdout, p.stderr)
    assert p.stdout.startswith("HVCHECK UNKNOWN - ")
    for w in words:
        assert w in p.stdout, p.stdout
    return p.stdout


# ---- the tarball ---------------------------------------------------------------------------
def test_too_many_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = [_file("hvcheck-snapshot.json", MARKER)]
    members += [_file(f"proc/{i}/comm", b"x\n") for i in range(1, 60)]
    tar = _tar_gz(tmp_path / "many.tar.gz", members)
    monkeypatch.setattr(snapmod, "MAX_MEMBERS", 50)
    with pytest.raises(SnapshotError, match="more than 50 members"):
        SnapshotHost(str(tar))
    monkeypatch.setattr(snapmod, "MAX_MEMBERS", 60)
    assert SnapshotHost(str(tar)).read_text("/proc/59/comm") == "x\n"


def test_a_header_announcing_more_than_the_total_is_refused_before_its_data(
    tmp_path: Path,
) -> None:
    # a regular member that says it holds 700 MiB (the data need not even be there: the header
    # alone is refused, so a gzip bomb of zeros never gets decompressed)
    big = tarfile.TarInfo("proc/cpuinfo")
    big.size = 700 * 1024 * 1024
    raw = tarfile.TarInfo("hvcheck-snapshot.json")
    raw.size = len(MARKER)
    blob = raw.tobuf() + MARKER + b"\0" * (512 - len(MARKER)) + big.tobuf() + b"\0" * 4096
    path = tmp_path / "bomb.tar.gz"
    path.write_bytes(gzip.compress(blob))
    _refused(path, "larger than 512 MiB")


def test_the_unpacked_stream_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a pax extended header of 4 MiB: tarfile reads it whole into memory before any member;
    # the bounded stream stops it first (the bound lowered here to keep the test small)
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type = tarfile.XHDTYPE
    # a pax record is "LEN key=value\n", LEN counting the whole record, its own digits too
    # (older tarfile releases refuse a wrong LEN as an invalid header)
    value = b"x" * (4 * 1024 * 1024)
    rest = len(b" comment=") + len(value) + 1
    length = rest + len(str(rest))
    length = rest + len(str(length))
    body = b"%d comment=%s\n" % (length, value)
    assert len(body) == length
    pax.size = len(body)
    blob = pax.tobuf(format=tarfile.USTAR_FORMAT) + body + b"\0" * (-len(body) % 512)
    raw = tarfile.TarInfo("hvcheck-snapshot.json")
    raw.size = len(MARKER)
    blob += raw.tobuf() + MARKER + b"\0" * (512 - len(MARKER)) + b"\0" * 1024
    path = tmp_path / "pax.tar.gz"
    path.write_bytes(gzip.compress(blob))
    monkeypatch.setattr(snapmod, "MAX_UNPACKED", 1024 * 1024)
    with pytest.raises(SnapshotError, match="unpacks to more than 1 MiB"):
        SnapshotHost(str(path))
    monkeypatch.setattr(snapmod, "MAX_UNPACKED", 16 * 1024 * 1024)
    assert SnapshotHost(str(path)).marker == {"format": 1}


def test_a_real_gzip_bomb_ends_quickly(tmp_path: Path) -> None:
    # 600 MiB of zeros in ~600 KiB: refused from its header, in well under the timeout
    z = gzip.GzipFile(tmp_path / "zeros.tar.gz", "wb")
    raw = tarfile.TarInfo("hvcheck-snapshot.json")
    raw.size = len(MARKER)
    z.write(raw.tobuf() + MARKER + b"\0" * (512 - len(MARKER)))
    big = tarfile.TarInfo("dev/kmsg")
    big.size = 600 * 1024 * 1024
    z.write(big.tobuf())
    chunk = b"\0" * (1024 * 1024)
    for _ in range(600):
        z.write(chunk)
    z.write(b"\0" * 1024)
    z.close()
    assert (tmp_path / "zeros.tar.gz").stat().st_size < 2 * 1024 * 1024
    _refused(tmp_path / "zeros.tar.gz", "larger than 512 MiB")


# ---- the marker ----------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [33, 100_000])
def test_a_deeply_nested_marker_is_refused_before_parsing(tmp_path: Path, depth: int) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "hvcheck-snapshot.json").write_text(
        '{"format": 1, "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
    )
    _refused(root, "nests deeper than 32")


def test_nesting_within_the_bound_and_brackets_in_strings(tmp_path: Path) -> None:
    root = make_snapshot(tmp_path / "s", marker={"x": [[[{"y": '[[[[[[[[{{{{{{\\"[['}]]]})
    assert SnapshotHost(str(root)).marker["x"][0][0][0]["y"].startswith("[[[")
    assert json_depth(b'{"a": "\\"{[", "b": [1, {"c": []}]}') == 4
    assert json_depth(b"[]") == 1 and json_depth(b'"[[["') == 0


def test_an_oversized_marker_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "hvcheck-snapshot.json").write_text(
        json.dumps({"format": 1, "pad": "x" * (1024 * 1024)})
    )
    _refused(root, "larger than 1024 KiB")


@pytest.mark.parametrize(
    "marker",
    [
        {"format": True},
        {"format": 1.0},
        {"format": "1"},
        {"format": 1, "denied": "/proc/1/cmdline"},
        {"format": 1, "denied": [1, 2]},
    ],
)
def test_marker_head_of_the_wrong_type_refuses_the_snapshot(
    tmp_path: Path, marker: dict[str, Any]
) -> None:
    root = tmp_path / "s"
    root.mkdir()
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _refused(root)


DEV = {"type": "char", "major": 10, "minor": 232, "mode": "0660", "uid": 0, "gid": 108}
BAD_VALUES = {
    "kvm-garbage": ({"devices": {"/dev/kvm": "garbage"}}, "kvm.device"),
    "devices-list": ({"devices": []}, "kvm.device"),
    "major-string": ({"devices": {"/dev/kvm": {**DEV, "major": "ten"}}}, "kvm.device"),
    "mode-int": ({"devices": {"/dev/kvm": {**DEV, "mode": 660}}}, "kvm.device"),
    "mode-not-octal": ({"devices": {"/dev/kvm": {**DEV, "mode": "rw-rw----"}}}, "kvm.device"),
    "uid-bool": ({"devices": {"/dev/kvm": {**DEV, "uid": True}}}, "kvm.device"),
    "owner-int": ({"devices": {"/dev/kvm": {**DEV, "owner": 0}}}, "kvm.device"),
    "probes-list": ({"probes": []}, "kvm.device"),
    "probe-garbage": ({"probes": {"kvm": "garbage"}}, "kvm.device"),
    "probe-ok-string": ({"probes": {"kvm": {"ok": "yes"}}}, "kvm.device"),
    # a failed probe with a numeric errno: read as a failure it would be CRITICAL
    "probe-errno-int": ({"probes": {"kvm": {"ok": False, "stage": "open", "errno": 2}}}, None),
    "probe-guest-list": ({"probes": {"kvm": {**PROBE_OK, "guest": []}}}, "kvm.device"),
    "msr-list": ({"probes": {"kvm": PROBE_OK, "msr": []}}, "firmware.virt"),
    "msr-value-list": ({"probes": {"kvm": PROBE_OK, "msr": {"0:0x3a": [5]}}}, None),
}
# libvirt's and the Nova API's records: absent is no verdict there (the check is SKIPped), so
# a record of the wrong shape reads as absent
ABSENT_IS_NO_VERDICT = {
    "caps-int": ({"probes": {"kvm": PROBE_OK, "libvirt_caps": 5}}, "libvirt.caps"),
    "caps-bad-status": (
        {"probes": {"kvm": PROBE_OK, "libvirt_caps": {"status": "great"}}},
        "libvirt.caps",
    ),
    "nova-api-string": ({"probes": {"kvm": PROBE_OK, "nova_api": "x"}}, "nova.api"),
}


@pytest.mark.parametrize("case", sorted(ABSENT_IS_NO_VERDICT))
def test_a_service_record_of_the_wrong_shape_is_skipped(tmp_path: Path, case: str) -> None:
    marker, check = ABSENT_IS_NO_VERDICT[case]
    root = healthy_host(tmp_path / "s", **marker)
    p = run_hvcheck("--root", str(root), "--json")
    assert "Traceback" not in p.stderr and p.returncode == 0, p.stdout
    doc = json.loads(p.stdout)
    c = next(c for c in doc["checks"] if c["id"] == check)
    assert c["status"] == "SKIP", c


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_a_wrong_type_is_unknown_never_critical(tmp_path: Path, case: str) -> None:
    marker, check = BAD_VALUES[case]
    root = healthy_host(tmp_path / "s", **marker)
    for fmt in ("json", "nagios", "table"):
        p = run_hvcheck("--root", str(root), "--format", fmt)
        assert "Traceback" not in p.stderr and p.returncode != 2, (fmt, p.stdout, p.stderr)
    doc = json.loads(run_hvcheck("--root", str(root), "--json").stdout)
    assert "error" not in doc, doc.get("error")  # the snapshot itself is read
    assert not [c for c in doc["checks"] if c["status"] == "CRITICAL"]
    unknown = {c["id"]: c for c in doc["checks"] if c["status"] == "UNKNOWN"}
    assert unknown and doc["status"] == "UNKNOWN"
    if check is not None:
        assert check in unknown, sorted(unknown)
        c = unknown[check]
        assert "wrong type" in c["summary"] and c["code"] == "snapshot-refused", c
        assert "hvcheck collect" in (c["hint"] or "")


def test_the_same_values_of_the_right_type_are_read(tmp_path: Path) -> None:
    root = healthy_host(
        tmp_path / "s",
        probes={"kvm": PROBE_OK, "msr": {"0:0x3a": 5}},
        taken_as_uid=0,
    )
    h = SnapshotHost(str(root))
    d = h.stat_device("/dev/kvm")
    assert d is not None and (d.major, d.minor, d.mode) == (10, 232, "0660")
    probe = h.probe_kvm()
    assert probe is not None and probe.ok and probe.api_version == 12
    msr = h.read_msr(0, 0x3A)
    assert msr is not None and msr.value == 5
    assert h.stat_device("/dev/nope") is None  # absent from the marker: absent on the host
    assert h.euid() == 0
    p = run_hvcheck("--root", str(root))
    assert p.returncode == 0, p.stdout


# ---- issue 14's marker keys: stat, lstat, process_ages ----------------------------------------
FALLBACK = PROJECT / "fixtures" / "live-qemu-kvm-tcg-fallback"
NOBODY_QEMU = 20942  # the fixture's QEMU run by nobody, which fell back to TCG (CRITICAL)


def _fallback_with(tmp_path: Path, exe: bool = False, **marker: Any) -> Path:
    import shutil

    root = tmp_path / "s"
    shutil.copytree(FALLBACK, root, symlinks=True)
    if exe:  # what collect now records: the exe link (then its owner is looked at)
        (root / f"proc/{NOBODY_QEMU}/exe").symlink_to("/usr/bin/qemu-system-x86_64")
    m = json.loads((root / "hvcheck-snapshot.json").read_text())
    m.update(marker)
    (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
    return root


def test_the_fallback_fixture_is_critical_with_the_keys_of_the_right_type(
    tmp_path: Path,
) -> None:
    """The control: the same keys, well typed, leave the silent fallback CRITICAL."""
    rec = {"type": "file", "mode": "0755", "uid": 0, "gid": 0, "ctime": 1, "mtime": 1}
    root = _fallback_with(
        tmp_path,
        exe=True,
        stat={f"/proc/{NOBODY_QEMU}/exe": rec},
        process_ages={str(NOBODY_QEMU): 60.0},
    )
    p = run_hvcheck("--root", str(root), "--json")
    assert p.returncode == 2, p.stdout
    c = next(c for c in json.loads(p.stdout)["checks"] if c["id"] == "instances.accel")
    assert c["code"] == "silent-fallback", c


@pytest.mark.parametrize(
    ("case", "marker"),
    [
        ("stat-list", {"stat": []}),
        ("exe-record-garbage", {"stat": {f"/proc/{NOBODY_QEMU}/exe": "garbage"}}),
        (
            "exe-record-mode-int",
            {"stat": {f"/proc/{NOBODY_QEMU}/exe": {"type": "file", "mode": 755}}},
        ),
        ("ages-list", {"process_ages": [1]}),
        ("age-string", {"process_ages": {str(NOBODY_QEMU): "old"}}),
        ("age-negative", {"process_ages": {str(NOBODY_QEMU): -5}}),
    ],
)
def test_issue14_keys_of_the_wrong_type_are_unknown_never_critical(
    tmp_path: Path, case: str, marker: dict[str, Any]
) -> None:
    root = _fallback_with(tmp_path, exe=True, **marker)
    for fmt in ("json", "nagios", "table"):
        p = run_hvcheck("--root", str(root), "--format", fmt)
        assert "Traceback" not in p.stderr and p.returncode != 2, (case, fmt, p.stdout, p.stderr)
    doc = json.loads(run_hvcheck("--root", str(root), "--json").stdout)
    assert "error" not in doc, doc.get("error")  # the snapshot itself is read
    assert not [c for c in doc["checks"] if c["status"] == "CRITICAL"], case
    c = next(c for c in doc["checks"] if c["id"] == "instances.accel")
    if case.startswith("exe") or case.startswith("stat"):
        # the one QEMU whose owner record is wrong: identity unverified, never a fallback
        accel = {i["pid"]: i["accel"] for i in doc["instances"]}
        assert accel[NOBODY_QEMU] == "unknown" and accel[20933] == "kvm", (case, accel)
        assert "silent fallback" not in c["summary"], c
    else:
        # the process table could not be read as recorded: the instances are not known
        assert c["status"] == "UNKNOWN" and "wrong type" in c["summary"], (case, c)
        assert doc["verdict"]["acceleration"] == "unknown" and "counts" not in doc, case


def test_stat_records_of_the_wrong_type_are_refused_not_absent(tmp_path: Path) -> None:
    h = SnapshotHost(str(healthy_host(tmp_path / "a", stat=[])))
    with pytest.raises(PermissionError, match="wrong type"):
        h.stat("/usr/bin/qemu-system-x86_64")
    h = SnapshotHost(str(healthy_host(tmp_path / "b", lstat={"/etc": {"type": "dir"}})))
    with pytest.raises(PermissionError, match="wrong type"):
        h.stat("/etc", follow=False)
    # not recorded at all (an older snapshot) is no refusal: what depends on it cannot be told
    with pytest.raises(OSError) as e:
        h.stat("/usr")
    assert not isinstance(e.value, PermissionError)
    h = SnapshotHost(str(healthy_host(tmp_path / "c", process_ages={"1": True})))
    with pytest.raises(PermissionError, match="wrong type"):
        h._process_age(1)


# ---- libvirt's sockets in the lstat table (libvirt.caps: "was libvirt running?") -------------
_SOCKS = (
    "/run/libvirt/libvirt-sock-ro",
    "/run/libvirt/virtqemud-sock-ro",
    "/var/run/libvirt/libvirt-sock-ro",
    "/var/run/libvirt/virtqemud-sock-ro",
)
_ABSENT: dict[str, Any] = {s: None for s in _SOCKS}


def _lstat_rec(kind: str) -> dict[str, Any]:
    return {"type": kind, "mode": "0777", "uid": 0, "gid": 0, "ctime": 1, "mtime": 1, "size": 0}


@pytest.mark.parametrize(
    ("case", "lstat"),
    [
        # one path not looked at: whether libvirt ran cannot be told
        ("three-of-four", {s: None for s in _SOCKS[:3]}),
        # a record of the wrong type is refused, never read as absent
        ("record-string", {**_ABSENT, _SOCKS[1]: "garbage"}),
        ("record-int", {**_ABSENT, _SOCKS[0]: 5}),
        ("record-bad-kind", {**_ABSENT, _SOCKS[0]: _lstat_rec("banana")}),
        # something at a socket's path, whatever it is, is not "absent" (lexists, as live)
        ("var-run-socket-only", {**_ABSENT, _SOCKS[3]: _lstat_rec("socket")}),
        ("a-file", {**_ABSENT, _SOCKS[0]: _lstat_rec("file")}),
        ("a-dangling-symlink", {**_ABSENT, _SOCKS[2]: _lstat_rec("symlink")}),
        ("table-string", "garbage"),
    ],
)
def test_libvirt_socket_records_that_are_not_all_absent_never_say_not_running(
    tmp_path: Path, case: str, lstat: Any
) -> None:
    """Only a table that records every socket absent (and no daemon) replays the live run's
    "libvirt is not running"; a partial table or a record of the wrong type goes on as an
    older snapshot does (not recorded), and nothing tracebacks or goes CRITICAL."""
    import shutil

    root = tmp_path / "s"
    shutil.copytree(PROJECT / "fixtures" / "debian12-compute-no-qemu", root, symlinks=True)
    m = json.loads((root / "hvcheck-snapshot.json").read_text())
    m["lstat"] = lstat
    (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
    p = run_hvcheck("--root", str(root), "--json")
    assert "Traceback" not in p.stderr and p.returncode != 2, (case, p.stdout, p.stderr)
    c = next(c for c in json.loads(p.stdout)["checks"] if c["id"] == "libvirt.caps")
    assert (c["status"], c["code"]) == ("SKIP", "not-recorded"), (case, c)
    # the control: every socket recorded absent, as collect writes it, is "not running"
    if case == "three-of-four":
        m["lstat"] = _ABSENT
        (root / "hvcheck-snapshot.json").write_text(json.dumps(m))
        p = run_hvcheck("--root", str(root), "--json")
        c = next(c for c in json.loads(p.stdout)["checks"] if c["id"] == "libvirt.caps")
        assert (c["status"], c["code"]) == ("SKIP", "no-libvirt"), c
