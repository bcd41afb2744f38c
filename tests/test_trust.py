"""Issue 14's rules on composed snapshots (tests/test_trust_live.py holds them against real
processes): who counts as nova-compute, libvirtd or QEMU; which files are read on a process's
behalf (permission walk from ``stat`` records); a QEMU still starting; an incomplete process
table; and reads that hang, which end the run in time with UNKNOWN for what depends on them.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck import engine
from hvcheck.check import Context
from hvcheck.host import FileStat, ProcInfo, SnapshotHost
from hvcheck.parsers.acl import EXECUTE, READ
from hvcheck.processes import decide, proc_hidepid, starting
from hvcheck.report import prometheus
from hvcheck.report.json import document
from hvcheck.report.nagios import perfdata
from hvcheck.trust import may_read, permits
from snap import healthy_host, run_json

QSYS = "/usr/bin/qemu-system-x86_64"
KVM_FDS = ["/dev/null", "/dev/kvm", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"]


def _status(uid: int, gid: Optional[int] = None, groups: tuple[int, ...] = ()) -> str:
    g = uid if gid is None else gid
    return (
        f"Name:\tx\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
        f"Gid:\t{g}\t{g}\t{g}\t{g}\nGroups:\t{' '.join(map(str, groups))} \n"
    )


def _proc(root: Path, pid: int, argv: list[str], status: Optional[str], **extra: Any) -> None:
    p = root / f"proc/{pid}"
    p.mkdir(parents=True)
    (p / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (p / "comm").write_text(Path(argv[0]).name[:15] + "\n")
    if status is not None:
        (p / "status").write_text(status)
    for name, target in extra.get("links", {}).items():
        (p / name).parent.mkdir(parents=True, exist_ok=True)
        (p / name).symlink_to(target)


def _marker(root: Path, **update: Any) -> None:
    m = root / "hvcheck-snapshot.json"
    doc = json.loads(m.read_text())
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k].update(v)
        else:
            doc[k] = v
    m.write_text(json.dumps(doc))


def _check(doc: dict[str, Any], cid: str) -> dict[str, Any]:
    return next(c for c in doc["checks"] if c["id"] == cid)


# ---- permissions ---------------------------------------------------------------------------
def _st(kind: str, mode: int, uid: int = 0, gid: int = 0, acl: Optional[str] = None) -> FileStat:
    return FileStat(kind, mode, uid, gid, 0, 0, 0, acl)


@pytest.mark.parametrize(
    ("st", "uid", "gids", "want", "ok"),
    [
        (_st("dir", 0o700), 65534, {65534}, EXECUTE, False),  # /root
        (_st("dir", 0o755), 65534, {65534}, EXECUTE, True),
        (_st("file", 0o600), 65534, {65534}, READ, False),
        (_st("file", 0o640, 0, 42436), 42436, {42436}, READ, True),  # group nova
        (_st("file", 0o066, 65534), 65534, {65534}, READ, False),  # the owner class only
        (_st("file", 0o600), 0, set(), READ, True),  # root
        # user:65534:r-- in an ACL (mask r--) on a 0600 root file
        (
            _st(
                "file",
                0o640,
                acl="0200000001000600ffffffff02000400feff000004000000ffffffff"
                "10000400ffffffff20000000ffffffff",
            ),
            65534,
            {65534},
            READ,
            True,
        ),
    ],
)
def test_permits(st: FileStat, uid: int, gids: set[int], want: int, ok: bool) -> None:
    assert permits(st, uid, frozenset(gids), want) is ok


def _stat_json(kind: str, mode: str, uid: int = 0, gid: int = 0) -> dict[str, Any]:
    return {"type": kind, "mode": mode, "uid": uid, "gid": gid, "ctime": 1, "mtime": 1}


def test_may_read_walks_the_path_as_the_process_would(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    pr = "/proc/42/root"
    _marker(
        root,
        stat={
            f"{pr}/": _stat_json("dir", "0755"),
            f"{pr}/root": _stat_json("dir", "0700"),
            f"{pr}/etc": _stat_json("dir", "0755"),
            f"{pr}/etc/nova": _stat_json("dir", "0750", 0, 42436),
        },
        lstat={
            f"{pr}/root": _stat_json("dir", "0700"),
            f"{pr}/root/secret.conf": _stat_json("file", "0644"),
            f"{pr}/etc": _stat_json("dir", "0755"),
            f"{pr}/etc/nova": _stat_json("dir", "0750", 0, 42436),
            f"{pr}/etc/nova/nova.conf": _stat_json("file", "0640", 0, 42436),
            f"{pr}/etc/nova/link.conf": {"type": "symlink", "mode": "0777", "uid": 0, "gid": 0,
                                         "ctime": 1, "mtime": 1},
            f"{pr}/etc/missing.conf": None,
        },
    )  # fmt: skip
    (root / "proc/42/root/etc/nova").mkdir(parents=True)
    (root / "proc/42/root/etc/nova/link.conf").symlink_to("/root/secret.conf")
    ctx = Context(SnapshotHost(str(root)))
    nobody, nova = (65534, frozenset({65534})), (42436, frozenset({42436}))
    a = may_read(ctx, "/root/secret.conf", *nobody, pr)
    assert a.allowed is False and "may not search /root" in a.why
    assert may_read(ctx, "/etc/nova/nova.conf", *nova, pr).allowed is True
    a = may_read(ctx, "/etc/nova/nova.conf", *nobody, pr)
    assert a.allowed is False and "/etc/nova" in a.why
    # a link is followed inside the process's root, and judged where it leads
    a = may_read(ctx, "/etc/nova/link.conf", *nova, pr)
    assert a.allowed is False and "/root" in a.why
    assert may_read(ctx, "/etc/missing.conf", *nobody, pr).exists is False
    assert may_read(ctx, "/root/secret.conf", 0, frozenset(), pr).allowed is True
    # not recorded: cannot be told, so not read
    assert may_read(ctx, "/var/x.conf", *nobody, pr).allowed is None


# ---- who is nova-compute ---------------------------------------------------------------------
NOVA_CONF = "[libvirt]\nvirt_type = {}\n"


@pytest.mark.parametrize(
    ("status", "passwd", "taken"),
    [
        (_status(0), "", True),
        (_status(64060), "nova:x:64060:64060::/var/lib/nova:/bin/sh\n", True),  # Debian's nova
        (_status(42436), "", True),  # kolla's nova, not in the host's passwd
        (_status(1000), "stack:x:1000:1000::/opt/stack:/bin/bash\n", False),  # DevStack
        (_status(65534), "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n", False),
        (_status(33), "www-data:x:33:33::/var/www:/usr/sbin/nologin\n", False),
        (None, "", True),  # an older snapshot: no status recorded
    ],
)
def test_nova_compute_is_root_or_the_nova_user(
    tmp_path: Path, status: Optional[str], passwd: str, taken: bool
) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n" + passwd)
    (root / "tmp").mkdir()
    (root / "tmp/nova.conf").write_text(NOVA_CONF.format("qemu"))
    _proc(root, 700, ["/usr/bin/python3", "/usr/bin/nova-compute", "--config-file",
                      "/tmp/nova.conf"], status)  # fmt: skip
    if status is not None:
        # what collect records for a non-root process: the walk to its file
        _marker(
            root,
            stat={"/": _stat_json("dir", "0755"), "/tmp": _stat_json("dir", "1777")},
            lstat={"/tmp": _stat_json("dir", "1777"), "/tmp/nova.conf": _stat_json("file", "0644")},
        )
    _, doc = run_json("--root", str(root), "--only", "nova.virt_type")
    nova = _check(doc, "nova.virt_type")
    if taken:
        assert nova["details"]["nova_compute_pid"] == 700, nova
        assert doc["verdict"]["virt_type"] == "qemu"
    else:
        assert nova["status"] == "SKIP" and "pid 700 runs as uid" in nova["summary"], nova
        assert doc["verdict"]["virt_type"] is None


# ---- QEMU by its executable ------------------------------------------------------------------
def _qemu(root: Path, pid: int, status: str, exe: Optional[str], kvm: bool = True) -> None:
    links = {f"fd/{i}": t for i, t in enumerate(KVM_FDS if kvm else ["/dev/null"])}
    if exe is not None:
        links["exe"] = exe
    _proc(
        root,
        pid,
        [QSYS, "-name", f"guest=vm{pid}", "-machine", "accel=kvm:tcg"],
        status,
        links=links,
    )


def test_an_unreadable_executable_never_gives_a_verdict(tmp_path: Path) -> None:
    """An unprivileged collect could not read another user's /proc/PID/exe: that process's
    name says QEMU, nothing proves it; it is listed, its accelerator unknown, never a
    silent-fallback CRITICAL."""
    root = healthy_host(tmp_path / "s")
    _qemu(root, 300, _status(1000), None, kvm=False)
    (root / "proc/300/task/300").mkdir(parents=True)
    (root / "proc/300/task/300/comm").write_text("CPU 0/TCG\n")
    _marker(root, denied=["/proc/300/exe"])
    _, doc = run_json("--root", str(root), "--only", "instances")
    inst = {i["pid"]: i for i in doc["instances"]}
    assert inst[300]["accel"] == "unknown" and inst[300]["identity_unverified"], inst
    assert inst[300]["silent_fallback"] is False and inst[300]["likely"] == "tcg"
    assert _check(doc, "instances.accel")["status"] == "UNKNOWN"


def test_a_qemu_named_binary_that_is_not_roots_is_not_qemu(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    _qemu(root, 301, _status(1000), "/home/u/qemu-system-x86_64", kvm=False)
    _qemu(root, 302, _status(64055), QSYS)
    _marker(
        root,
        stat={
            "/proc/301/exe": _stat_json("file", "0755", 1000, 1000),
            "/proc/302/exe": _stat_json("file", "0755"),
        },
    )
    _, doc = run_json("--root", str(root), "--only", "instances")
    assert [i["pid"] for i in doc["instances"]] == [302]
    assert _check(doc, "instances.accel")["status"] == "OK"


# ---- starting ---------------------------------------------------------------------------------
def test_starting_rules() -> None:
    # debug-threads and no vCPU thread yet, whatever its age
    assert starting(["/dev/null"], ["qemu-system-x86"], True, 600.0)
    # no thread names to go by: young is starting, old is not
    assert starting(["/dev/null"], ["qemu-system-x86"], False, 0.3)
    assert starting(["/dev/null"], ["qemu-system-x86"], False, 5.0) is None
    # holding KVM, or running vCPUs under TCG: not starting
    assert starting(KVM_FDS, ["qemu-system-x86"], True, 0.1) is None
    assert starting(["/dev/null"], ["CPU 0/TCG"], True, 0.1) is None
    assert starting(None, None, True, 0.1) is None  # nothing read: nothing said
    d = decide(["/dev/null"], ["qemu-system-x86"], None, None, start="no vCPU thread yet")
    assert (d.accel, d.starting, d.silent_fallback) == ("unknown", "no vCPU thread yet", False)


def test_a_young_qemu_without_kvm_fds_is_starting_not_a_fallback(tmp_path: Path) -> None:
    """The age comes from the marker (process_ages, what the live walk saw)."""
    root = healthy_host(tmp_path / "s")
    p = root / "proc/310"
    _proc(root, 310, [QSYS, "-machine", "accel=kvm:tcg"], _status(0), links={"fd/0": "/dev/null"})
    (p / "task/310").mkdir(parents=True)
    (p / "task/310/comm").write_text("qemu-system-x86\n")
    _marker(root, process_ages={"310": 0.4})
    _, doc = run_json("--root", str(root), "--only", "instances")
    inst = doc["instances"][0]
    assert inst["accel"] == "unknown" and "0.4 s ago" in inst["starting"], inst
    acc = _check(doc, "instances.accel")
    assert (acc["status"], acc["code"]) == ("OK", "starting"), acc
    _marker(root, process_ages={"310": 30.0})
    _, doc = run_json("--root", str(root), "--only", "instances")
    assert _check(doc, "instances.accel")["code"] == "silent-fallback"  # old: it fell back


# ---- incomplete tables ------------------------------------------------------------------------
def test_hidepid_parsing() -> None:
    line = "25 1 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw,{}\n"
    assert proc_hidepid(line.format("hidepid=invisible")) == ("invisible", None)
    assert proc_hidepid(line.format("hidepid=2,gid=27")) == ("2", 27)
    assert proc_hidepid(line.format("hidepid=off")) is None
    assert proc_hidepid(line.format("relatime")) is None
    other = "30 25 0:40 / /mnt/proc rw - proc proc rw,hidepid=2\n"
    assert proc_hidepid(other) is None  # not the /proc the walk reads


def test_denied_command_lines_make_the_instances_unknown(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    _qemu(root, 320, _status(64055), QSYS)
    (root / "proc/321").mkdir()
    _marker(root, denied=["/proc/321/cmdline"], stat={"/proc/320/exe": _stat_json("file", "0755")})
    rc, doc = run_json("--root", str(root), "--only", "instances")
    acc = _check(doc, "instances.accel")
    assert (acc["status"], acc["code"]) == ("UNKNOWN", "incomplete"), acc
    assert "1 KVM" in acc["summary"] and "could not be read" in acc["summary"]
    assert doc["verdict"]["acceleration"] == "unknown" and "counts" not in doc
    assert rc == 3


def test_a_silent_fallback_is_critical_even_in_an_incomplete_table(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    _qemu(root, 330, _status(0), QSYS, kvm=False)
    (root / "proc/330/task/330").mkdir(parents=True)
    (root / "proc/330/task/330/comm").write_text("CPU 0/TCG\n")
    (root / "proc/331").mkdir()
    _marker(root, denied=["/proc/331/cmdline"])
    rc, doc = run_json("--root", str(root), "--only", "instances")
    assert _check(doc, "instances.accel")["status"] == "CRITICAL" and rc == 2


# ---- reads that hang ------------------------------------------------------------------------
class _HangingHost(SnapshotHost):
    """A snapshot whose reads of some paths never return (a dead NFS or FUSE mount)."""

    def __init__(self, path: str, hang: tuple[str, ...]) -> None:
        super().__init__(path)
        self.hang = hang
        self.release = threading.Event()

    def _read_bytes(self, path: str, limit: int) -> bytes:
        if path.startswith(self.hang):
            self.release.wait()
        return super()._read_bytes(path, limit)


def _nova_host(tmp_path: Path) -> Path:
    root = healthy_host(tmp_path / "s")
    (root / "etc/nova").mkdir(parents=True)
    (root / "etc/nova/nova.conf").write_text(NOVA_CONF.format("kvm"))
    _proc(root, 700, ["/usr/bin/python3", "/usr/bin/nova-compute", "--config-file",
                      "/etc/nova/nova.conf"], _status(0))  # fmt: skip
    _qemu(root, 800, _status(64055), QSYS)
    return root


def test_a_config_file_that_hangs_ends_the_run_in_time(tmp_path: Path) -> None:
    """nova.conf on a dead mount: the run ends within the timeout, nova.virt_type (and what
    needs it) is UNKNOWN, the verdict's virt_type null — and the instances, which do not
    depend on it, are still counted."""
    host = _HangingHost(str(_nova_host(tmp_path)), ("/etc/nova/nova.conf",))
    try:
        t0 = time.monotonic()
        v = engine.run(host, engine.load_checks(), timeout=2.0, options={"no_api": True})
        took = time.monotonic() - t0
        assert took < 2.5, took
        by = {r.id: r for r in v.results}
        assert by["nova.virt_type"].status.label == "UNKNOWN"
        assert by["nova.virt_type"].code == "timeout"
        assert v.virt_type is None
        assert [i.pid for i in v.instances] == [800] and v.acceleration == "kvm"
        assert v.instances_unknown is None and v.counts()["instances"] == 1
        assert v.status.label == "UNKNOWN"
    finally:
        host.release.set()


class _HangingWalk(_HangingHost):
    def process_table(self, predicates: Any) -> Any:
        self.release.wait()
        return super().process_table(predicates)


def test_a_process_walk_that_hangs_counts_nothing(tmp_path: Path) -> None:
    """The walk itself hangs (a process's cmdline on a stuck mm): the instances are unknown,
    never "0 instances": no counts in JSON, U in the perfdata."""
    host = _HangingWalk(str(_nova_host(tmp_path)), ())
    try:
        v = engine.run(host, engine.load_checks(), timeout=1.5, options={"no_api": True})
        assert v.instances == () and v.acceleration == "unknown"
        assert v.instances_unknown and "timeout" in v.instances_unknown
        assert "counts" not in document(v)
        assert "'instances'=U;" in perfdata(v)
        assert "hvcheck_instances{" not in prometheus.render(v)  # no sample, not a 0
        by = {r.id: r for r in v.results}
        assert by["instances.accel"].status.label == "UNKNOWN"
    finally:
        host.release.set()


def test_collect_records_ages_stats_and_refused_exe(tmp_path: Path) -> None:
    """What the new judgements read is in the snapshot: process ages, stat records (null for
    a path that did not exist), a refused /proc/PID/exe in ``denied``."""
    from hvcheck.host import RecordingHost

    class Rec(RecordingHost):
        def _walk_processes(self, denied: list[int]):  # type: ignore[no-untyped-def]
            for p, handle in super()._walk_processes(denied):
                if p.pid == self.me:
                    yield p._replace(exe=None, exe_denied=True), handle
                else:
                    yield p, handle

    import os

    rec = Rec()
    rec.me = os.getpid()  # type: ignore[attr-defined]
    table = rec.process_table({"me": lambda p: p.pid == os.getpid()})
    [me] = table.groups["me"]
    assert me.age is not None and me.age > 0 and me.exe_denied
    assert rec.stat("/nonexistent-hvcheck") is None
    assert rec.stat("/") is not None
    out = tmp_path / "s.tar.gz"
    rec.write_snapshot(str(out), "2026-12-06T00:00:00Z")
    snap = SnapshotHost(str(out))
    assert snap.stat("/nonexistent-hvcheck") is None
    assert snap.stat("/") == rec.stat("/")
    [again] = snap.process_table({"me": lambda p: p.pid == os.getpid()}).groups["me"]
    assert again.age == me.age and again.exe_denied and again.exe is None
    with pytest.raises(OSError):
        snap.stat("/never-asked")  # not recorded: not known, and not "absent"


def test_procinfo_defaults_keep_older_records() -> None:
    p = ProcInfo(1, "x", ("x",))
    assert (p.exe_denied, p.age) == (False, None)
