"""Edges of a snapshot directory's link resolution (``_DirTree``): a path deeper than Python's
recursion limit, a directory swapped for a link to the outside between two reads, and links
spread over several components (the kernel's 40 counts the whole lookup, not each directory)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from hvcheck.host.snapshot import SnapshotHost
from snap import make_snapshot


def test_a_deep_path_is_absent_not_an_internal_error(tmp_path: Path) -> None:
    """1,500 components (3 KB, under PATH_MAX): a path a snapshot's own content can name (a
    nova-compute ``--config-file``), which makes nova.virt_type "check failed: RecursionError"
    instead of a missing file. It does not exist: FileNotFoundError, and exists() is False."""
    host = SnapshotHost(str(make_snapshot(tmp_path / "s", {"etc/hosts": "x\n"})))
    deep = "/" + "a/" * 1500 + "nova.conf"
    with pytest.raises(FileNotFoundError):
        host.read_bytes(deep)
    assert host.exists(deep) is False
    assert host.read_opt(deep) is None


@pytest.mark.xfail(
    strict=True,
    reason="known, open: a directory's resolution is cached for the run, so a snapshot rewritten "
    "while hvcheck reads it can swap a resolved directory for a link; closing it means an "
    "openat walk with O_NOFOLLOW per component (docs/SECURITY.md: a snapshot must not change "
    "while it is read)",
)
def test_a_directory_swapped_for_an_outside_link_is_not_followed(tmp_path: Path) -> None:
    """A directory resolved once (cached) then replaced by a link to the outside: the next read
    through it is refused, as it is for a fresh reader; nothing outside is read."""
    root = make_snapshot(tmp_path / "s", {"etc/a/x": "inside\n"})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret").write_text("SECRET\n")
    host = SnapshotHost(str(root))
    assert host.read_bytes("/etc/a/x") == b"inside\n"
    os.rename(root / "etc/a", root / "etc/a.old")
    os.symlink(tmp_path / "outside", root / "etc/a")
    with pytest.raises(PermissionError):
        SnapshotHost(str(root)).read_bytes("/etc/a/secret")
    with pytest.raises(OSError):
        host.read_bytes("/etc/a/secret")


@pytest.mark.xfail(
    strict=True,
    reason="known, open: the 40-link bound is counted per directory component, not per "
    "lookup as the kernel does; every link followed stays inside the snapshot either way",
)
def test_links_spread_over_components_count_as_one_lookup(tmp_path: Path) -> None:
    """30 links to reach directory m/n, 30 more inside it: the kernel refuses the lookup
    (ELOOP: MAXSYMLINKS 40 for the whole path); the snapshot follows the kernel."""
    root = make_snapshot(tmp_path / "s", {"m/n/j30": "end\n"})
    for i in range(30):
        os.symlink(f"k{i + 1}", root / f"m/k{i}")
        os.symlink(f"j{i + 1}", root / f"m/n/j{i}")
    os.symlink("n", root / "m/k30")
    with pytest.raises(OSError) as kernel:
        os.open(root / "m/k0/j0", os.O_RDONLY)  # inside the snapshot: safe to ask the kernel
    assert kernel.value.errno == errno.ELOOP
    with pytest.raises(OSError) as ours:
        SnapshotHost(str(root)).read_bytes("/m/k0/j0")
    assert ours.value.errno == errno.ELOOP


def test_a_device_node_in_a_snapshot_is_refused_unopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A character device planted in a snapshot directory (where nova.conf, or a process's
    status, should be) is refused without being opened: opening a watchdog or a tape is
    already an action. Its name is never passed to open(2)."""
    root = make_snapshot(tmp_path / "s", {"etc/hosts": "x\n", "proc/4242/comm": "qemu\n"})
    (root / "etc/nova").mkdir(parents=True)
    os.mknod(root / "etc/nova/nova.conf", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "proc/4242/status", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    opened: list[str] = []
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
        opened.append(str(path))
        return real_open(path, flags, mode, dir_fd=dir_fd)

    host = SnapshotHost(str(root))
    monkeypatch.setattr(os, "open", spy)
    with pytest.raises(OSError) as conf:
        host.read_bytes("/etc/nova/nova.conf")
    assert conf.value.errno == errno.EINVAL
    with host.open_proc(4242) as view, pytest.raises(OSError) as status:
        view.read("status", 4096)
    assert status.value.errno == errno.EINVAL
    assert not [p for p in opened if p.endswith(("nova.conf", "status"))], opened


def test_refused_dir_says_what_the_reads_under_it_would(tmp_path: Path) -> None:
    """``refused_dir`` lets a caller skip the reads under a process's root (a QEMU's domain
    XML directories, its qemu.conf) only where each of them would be refused: a root link to
    "/" (collect's record of a process in hvcheck's namespace) or to an absolute path outside;
    never a link that stays inside, a plain directory, a loop, a .tar.gz or the live host."""
    root = make_snapshot(
        tmp_path / "s",
        {
            "c1/run/libvirt/qemu/vm.xml": "<domain type='kvm'/>\n",
            "proc/300/root/etc/qemu/qemu.conf": "[accel]\n",
        },
        links={
            "proc/100/root": "/",
            "proc/150/root": str(tmp_path / "outside"),
            "proc/200/root": "../../c1",
            "proc/400/root": "root",  # a loop
        },
    )
    (tmp_path / "outside/run/libvirt/qemu").mkdir(parents=True)
    host = SnapshotHost(str(root))
    for pid in (100, 150):
        assert host.refused_dir(f"/proc/{pid}/root") is True
        assert host.refused_dir(f"/proc/{pid}/root/run/libvirt/qemu") is True
        for d in ("/run/libvirt/qemu", "/etc/libvirt/qemu"):
            with pytest.raises(PermissionError):
                host.listdir(f"/proc/{pid}/root{d}")
        with pytest.raises(PermissionError):
            host.read_bytes(f"/proc/{pid}/root/etc/qemu/qemu.conf")
    assert host.refused_dir("/proc/200/root") is False
    assert host.listdir("/proc/200/root/run/libvirt/qemu") == ["vm.xml"]
    assert host.refused_dir("/proc/300/root") is False
    assert host.read_bytes("/proc/300/root/etc/qemu/qemu.conf") == b"[accel]\n"
    assert host.refused_dir("/proc/400/root") is False
    with pytest.raises(OSError) as e:
        host.listdir("/proc/400/root/run")
    assert e.value.errno == errno.ELOOP
    assert host.refused_dir("/proc/999/root") is False  # absent: the reads say so

    import tarfile

    tgz = tmp_path / "s.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(root, arcname=".")
    assert SnapshotHost(str(tgz)).refused_dir("/proc/100/root") is False

    from hvcheck.host import LiveHost

    assert LiveHost().refused_dir(f"/proc/{os.getpid()}/root") is False
