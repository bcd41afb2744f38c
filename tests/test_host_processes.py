"""The process table: psutil on the live host (held against the kernel's and the OS's own
answers), psutil's exceptions meaning what they say, and ``collect`` writing what the live
walk saw so that ``--root`` walks the same table."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvcheck.host import LiveHost, ProcInfo, RecordingHost, SnapshotHost
from hvcheck.parsers.procstatus import format_status, parse_status
from hvcheck.processes import is_qemu_process
from snap import make_snapshot


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child whose command line holds an empty argument and a non-UTF-8 byte."""
    p = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "", b"caf\xe9-arg"],
        stdin=subprocess.DEVNULL,
    )
    try:
        ps = psutil.Process(p.pid)
        for _ in range(500):  # until the exec has happened and it sleeps
            if ps.cmdline()[-1:] == ["caf\udce9-arg"] and ps.status() == psutil.STATUS_SLEEPING:
                break
            time.sleep(0.01)
        yield p
    finally:
        p.kill()
        p.wait()


def _one(host: LiveHost | SnapshotHost, pid: int) -> list[ProcInfo]:
    return host.process_table({"it": lambda p: p.pid == pid}).groups["it"]


def _kernel_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":", 1) for line in f if ":" in line)


def test_live_walk_is_psutils_and_the_kernels(sleeper: subprocess.Popen[bytes]) -> None:
    [p] = _one(LiveHost(), sleeper.pid)
    # argv as psutil reads it; bytes that are not UTF-8 as U+FFFD, like every other read
    assert p.argv == (sys.executable, "-c", "import time; time.sleep(60)", "", "caf\ufffd-arg")
    with open(f"/proc/{sleeper.pid}/comm") as f:
        assert p.comm == f.read().rstrip("\n")
    st = _kernel_status(sleeper.pid)
    assert p.uids == tuple(int(x) for x in st["Uid"].split()[:3])
    assert p.gids == tuple(int(x) for x in st["Gid"].split()[:3])
    assert p.groups == tuple(int(x) for x in st["Groups"].split())
    assert p.status == psutil.STATUS_SLEEPING and st["State"].strip() == "S (sleeping)"


def test_live_walk_knows_this_process_as_the_os_does() -> None:
    [me] = _one(LiveHost(), os.getpid())
    assert me.uids == os.getresuid() and me.gids == os.getresgid()
    assert sorted(me.groups or ()) == sorted(os.getgroups())
    assert me.status == psutil.STATUS_RUNNING
    assert list(me.argv) == psutil.Process().cmdline()


def test_kernel_threads_are_not_in_the_table() -> None:
    kthreadd = [p for p in psutil.process_iter(["name"]) if p.info["name"] == "kthreadd"]
    if not kthreadd:
        pytest.skip("no kthreadd visible (a pid namespace)")
    assert _one(LiveHost(), kthreadd[0].pid) == []


def test_a_zombie_is_not_in_the_table() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: rename itself, then exit without being reaped
        try:
            ctypes.CDLL(None).prctl(15, b"qemu-system-x86", 0, 0, 0)  # PR_SET_NAME
        finally:
            os._exit(0)
    os.close(w)
    try:
        os.read(r, 1)  # EOF once the child has exited
        for _ in range(100):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.02)
        assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        table = LiveHost().process_table({"it": lambda p: p.pid == pid or p.comm == "x"})
        assert table.groups["it"] == [] and pid not in table.denied
    finally:
        os.close(r)
        os.waitpid(pid, 0)


def test_psutil_exceptions_mean_what_they_say(
    sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """AccessDenied: listed as denied (the table is incomplete); NoSuchProcess: skipped;
    ZombieProcess: not in it; either, when it comes only for the details: dropped."""
    victims = {}
    for _ in range(3):
        c = subprocess.Popen(["sleep", "60"])
        victims[c.pid] = c
    denied, gone, zombie = sorted(victims)
    real_cmdline = psutil.Process.cmdline

    def cmdline(self: psutil.Process) -> list[str]:
        if self.pid == denied:
            raise psutil.AccessDenied(self.pid)
        if self.pid == gone:
            raise psutil.NoSuchProcess(self.pid)
        if self.pid == zombie:
            raise psutil.ZombieProcess(self.pid)
        return real_cmdline(self)

    try:
        monkeypatch.setattr(psutil.Process, "cmdline", cmdline)
        wanted = {*victims, sleeper.pid}
        table = LiveHost().process_table({"it": lambda p: p.pid in wanted})
        assert [p.pid for p in table.groups["it"]] == [sleeper.pid]
        assert denied in table.denied and gone not in table.denied and zombie not in table.denied

        # the details asked of a matched process: gone by then, or denied
        monkeypatch.setattr(psutil.Process, "cmdline", real_cmdline)
        real_status = psutil.Process.status

        def status(self: psutil.Process) -> str:
            if self.pid == gone:
                raise psutil.NoSuchProcess(self.pid)
            if self.pid == denied:
                raise psutil.AccessDenied(self.pid)
            return str(real_status(self))

        monkeypatch.setattr(psutil.Process, "status", status)
        got = {
            p.pid: p
            for p in LiveHost().process_table({"it": lambda p: p.pid in wanted}).groups["it"]
        }
        assert gone not in got
        assert got[denied].argv == ("sleep", "60") and got[denied].uids is None
        assert got[zombie].status == psutil.STATUS_SLEEPING
    finally:
        for c in victims.values():
            c.kill()
            c.wait()


def test_collect_writes_what_the_live_walk_saw(
    sleeper: subprocess.Popen[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    denied_child = subprocess.Popen(["sleep", "60"])
    try:
        real_cmdline = psutil.Process.cmdline

        def cmdline(self: psutil.Process) -> list[str]:
            if self.pid == denied_child.pid:
                raise psutil.AccessDenied(self.pid)
            return real_cmdline(self)

        monkeypatch.setattr(psutil.Process, "cmdline", cmdline)
        rec = RecordingHost()
        wanted = {sleeper.pid, os.getpid()}
        live = rec.process_table({"it": lambda p: p.pid in wanted})
        out = tmp_path / "snap.tar.gz"
        rec.write_snapshot(str(out), "2024-01-01T00:00:00Z")
    finally:
        denied_child.kill()
        denied_child.wait()
    assert denied_child.pid in live.denied

    for root in (out, _extracted(out, tmp_path / "dir")):
        replay = SnapshotHost(str(root)).process_table({"it": lambda p: p.pid in wanted})
        assert replay.groups == live.groups  # argv, comm, status, ids and groups
        assert denied_child.pid in replay.denied

    # the status file is in the kernel's format: its State/Uid/Gid/Groups lines are the ones
    # the kernel writes for the same process
    with tarfile.open(out) as tf:
        f = tf.extractfile(f"proc/{sleeper.pid}/status")
        assert f is not None
        written = dict(ln.split(":", 1) for ln in f.read().decode().splitlines())
    kernel = _kernel_status(sleeper.pid)
    for key in ("State", "Uid", "Gid", "Groups"):
        assert written[key] == kernel[key], key


def test_exe_is_the_kernels_link_deleted_included(tmp_path: Path) -> None:
    """The walk's ``exe`` is the kernel's ``/proc/PID/exe`` as it reads, " (deleted)" kept for
    a binary removed since it started (psutil's ``exe()`` drops that suffix); a process given
    another argv[0] is known by it; ``collect`` keeps the link and ``--root`` replays it."""
    binary = tmp_path / "qemu-system-x86_64"
    shutil.copy("/bin/sleep", binary)
    child = subprocess.Popen(["my-kvm", "60"], executable=str(binary))  # exec -a my-kvm
    try:
        binary.unlink()
        link = os.readlink(f"/proc/{child.pid}/exe")
        assert link == f"{binary} (deleted)"
        rec = RecordingHost()
        [p] = rec.process_table({"it": lambda p: p.pid == child.pid}).groups["it"]
        assert (p.argv, p.exe) == (("my-kvm", "60"), link)
        assert is_qemu_process(p)
        out = tmp_path / "snap.tar.gz"
        rec.write_snapshot(str(out), "2024-01-01T00:00:00Z")
        with tarfile.open(out) as tf:
            assert tf.getmember(f"proc/{child.pid}/exe").linkname == link
        for root in (out, _extracted(out, tmp_path / "dir")):
            [q] = _one(SnapshotHost(str(root)), child.pid)
            assert q == p
    finally:
        child.kill()
        child.wait()


def _extracted(tarball: Path, dest: Path) -> Path:
    with tarfile.open(tarball) as tf:
        tf.extractall(dest, filter="tar") if sys.version_info >= (3, 12) else tf.extractall(dest)
    return dest


def test_snapshot_status_files_fill_the_record_and_zombies_drop(tmp_path: Path) -> None:
    status = format_status("qemu-system-x86", "sleeping", (64055, 64055, 64055), (107,) * 3, (107,))
    root = make_snapshot(
        tmp_path / "s",
        files={
            "proc/10/cmdline": b"/usr/bin/qemu-system-x86_64\0-accel\0kvm\0",
            "proc/10/comm": "qemu-system-x86\n",
            "proc/10/status": status,
            "proc/11/cmdline": b"/usr/sbin/libvirtd\0",  # an older snapshot: no status
            "proc/12/cmdline": b"/usr/bin/qemu-system-x86_64\0",
            "proc/12/status": "Name:\tqemu\nState:\tZ (zombie)\n",
        },
        marker={"denied": ["/proc/13/cmdline"]},
    )
    (root / "proc/13").mkdir()
    table = SnapshotHost(str(root)).process_table({"all": lambda p: True})
    assert table.groups["all"] == [
        ProcInfo(
            10,
            "qemu-system-x86",
            ("/usr/bin/qemu-system-x86_64", "-accel", "kvm"),
            (64055, 64055, 64055),
            (107, 107, 107),
            (107,),
            "sleeping",
        ),
        ProcInfo(11, "", ("/usr/sbin/libvirtd",)),
    ]
    assert table.denied == (13,)


def test_status_parser_on_this_kernels_files() -> None:
    with open("/proc/self/status") as f:
        st = parse_status(f.read())
    assert st.uids == os.getresuid() and st.gids == os.getresgid()
    assert sorted(st.groups or ()) == sorted(os.getgroups())
    assert st.status == psutil.STATUS_RUNNING
    with open("/proc/1/status") as f:
        assert parse_status(f.read()).status == psutil.Process(1).status()


def test_status_parser_on_garbage() -> None:
    assert parse_status("") == parse_status("State:\nUid:\tx\ty\nGroups:\t-1\n")
    assert parse_status("State:\tQ (new)\nUid:\t1\t2\n").uids is None
    assert parse_status("Groups:\t \n").groups == ()


_IDS = st.tuples(*[st.integers(0, 2**32 - 1)] * 3)


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=20),
    st.sampled_from([None, "running", "sleeping", "disk-sleep", "zombie", "dead", "idle"]),
    st.none() | _IDS,
    st.none() | _IDS,
    st.none() | st.lists(st.integers(0, 2**32 - 1), max_size=40).map(tuple),
)
def test_status_round_trip(
    comm: str,
    status: str | None,
    uids: tuple[int, int, int] | None,
    gids: tuple[int, int, int] | None,
    groups: tuple[int, ...] | None,
) -> None:
    got = parse_status(format_status(comm, status, uids, gids, groups))
    assert (got.status, got.uids, got.gids, got.groups) == (status, uids, gids, groups)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_status_parser_never_raises(text: str) -> None:
    st_ = parse_status(text)
    assert st_.status is None or isinstance(st_.status, str)


def test_fd_and_task_listings_through_proc_self_fd_and_without_proc(
    sleeper: subprocess.Popen[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QEMU process's ``fd`` and ``task`` directories are listed through
    ``/proc/self/fd/<fd>`` (fewer syscalls than ``os.listdir(fd)``): the same names and
    entry types as the directory's own listing, live and in a snapshot. Where that path is
    missing, is not a directory, or names another directory (a /proc that is no procfs: a
    tmpfs, a tree of its own), the fd itself lists: never another directory's names."""
    from hvcheck.host import procdir

    snap = tmp_path / "fd"
    snap.mkdir()
    (snap / "0").symlink_to("/dev/null")
    (snap / "3").symlink_to("anon_inode:kvm-vm")
    (snap / "sub").mkdir()
    (snap / "file").write_text("x")
    decoy = tmp_path / "fake-proc"
    decoy.mkdir()
    (decoy / "not-here").mkdir()
    (tmp_path / "a-file").write_text("")
    broken = {  # what /proc/self/fd/<fd> stands for, and whether /proc was judged usable
        "no /proc": (str(tmp_path / "no-proc"), None),
        "another directory": (str(decoy), None),
        "a file, /proc judged usable before": (str(tmp_path / "a-file"), True),
    }
    dirs = [snap, Path(f"/proc/{sleeper.pid}/fd"), Path(f"/proc/{sleeper.pid}/task")]
    for d in dirs:
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            names = sorted(os.listdir(d))
            kinds = {e.name: e.is_dir(follow_symlinks=False) for e in os.scandir(d)}
            monkeypatch.setattr(procdir, "_proc_fd_reopens", None)
            assert names and sorted(procdir._listdir_fd(fd)) == names
            assert dict(procdir._entries_fd(fd)) == kinds
            assert procdir._proc_fd_reopens is True  # this machine's /proc is procfs
            for why, (path, judged) in broken.items():
                with monkeypatch.context() as m:
                    m.setattr(procdir, "_fd_path", lambda n, path=path: path)
                    m.setattr(procdir, "_proc_fd_reopens", judged)
                    assert sorted(procdir._listdir_fd(fd)) == names, why
                    assert dict(procdir._entries_fd(fd)) == kinds, why
                    assert sorted(procdir._listdir_fd(fd)) == names, why  # fd rewound
        finally:
            os.close(fd)
        if d == snap:
            assert kinds == {"0": False, "3": False, "sub": True, "file": False}
