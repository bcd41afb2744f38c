"""Symlinks inside a snapshot directory (``_DirTree``): followed one component at a time from
the directory they are in, never out of the snapshot; the walk stops at the first component
that would leave it, so nothing outside is even looked at (``lstat``), and the thousands of
``proc/<pid>/root`` links to ``/`` a collected snapshot holds cost no walk of the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hvcheck.host.snapshot import SnapshotHost
from snap import make_snapshot


def _snapshot(tmp_path: Path) -> Path:
    root = make_snapshot(
        tmp_path / "s",
        files={
            "etc/libvirt/qemu/a.xml": "<domain type='kvm'/>",
            "usr/share/qemu/conf": "inside\n",
        },
        links={
            "proc/7/root": "/",  # what collect writes for a process in its own root
            "var/run": "../run",  # relative, inside
            "run/libvirt": "../etc/libvirt",
            "etc/qemu": "../usr/share/qemu",
            "etc/up": "../../outside",  # relative, leaves
            "etc/loop1": "loop2",
            "etc/loop2": "loop1",
        },
    )
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret").write_text("SECRET\n")
    os.symlink(f"{root}/usr/share", root / "etc/share")  # absolute, naming the snapshot
    os.symlink(f"{root}/../outside", root / "etc/back")  # absolute, leaves and comes back
    return root


def test_links_inside_the_snapshot_are_followed(tmp_path: Path) -> None:
    h = SnapshotHost(str(_snapshot(tmp_path)))
    assert h.listdir("/var/run/libvirt/qemu") == ["a.xml"]
    assert h.read_text("/etc/qemu/conf") == "inside\n"
    assert h.read_text("/etc/share/qemu/conf") == "inside\n"
    assert h.exists("/var/run/libvirt/qemu/a.xml")


@pytest.mark.parametrize(
    "path",
    [
        "/proc/7/root/etc/passwd",
        "/proc/7/root/run/libvirt/qemu/a.xml",
        "/etc/up/secret",
        "/etc/back/secret",
    ],
)
def test_links_leaving_the_snapshot_are_refused(tmp_path: Path, path: str) -> None:
    h = SnapshotHost(str(_snapshot(tmp_path)))
    with pytest.raises(PermissionError, match="leaves the snapshot"):
        h.read_bytes(path)
    with pytest.raises(PermissionError, match="leaves the snapshot"):
        h._listdir(path.rsplit("/", 1)[0])
    assert not h.exists(path)


def test_a_link_loop_is_an_error_never_a_hang(tmp_path: Path) -> None:
    h = SnapshotHost(str(_snapshot(tmp_path)))
    with pytest.raises(OSError):
        h.read_bytes("/etc/loop1/x")
    assert not h.exists("/etc/loop1/x")


def test_nothing_outside_the_snapshot_is_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _snapshot(tmp_path)
    h = SnapshotHost(str(root))
    seen: list[str] = []
    real_lstat, real_readlink = os.lstat, os.readlink

    def lstat(p: str, *a: object, **k: object) -> os.stat_result:
        seen.append(str(p))
        return real_lstat(p, *a, **k)  # type: ignore[arg-type]

    def readlink(p: str, *a: object, **k: object) -> str:
        seen.append(str(p))
        return real_readlink(p, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", lstat)
    monkeypatch.setattr(os, "readlink", readlink)
    for path in ("/proc/7/root/run/libvirt/qemu", "/proc/7/root/etc/qemu", "/etc/up", "/etc/back"):
        with pytest.raises(PermissionError):
            h._listdir(path)
    assert seen and all(p.startswith(f"{root}/") for p in seen), seen
    # a refused directory is remembered: asking again looks at nothing
    seen.clear()
    with pytest.raises(PermissionError):
        h._listdir("/proc/7/root/run/libvirt/qemu")
    assert seen == []
