"""What each QEMU asked for, read from composed snapshots the way QEMU reads it (issue 18):
config files through the process's root and working directory, and the judgement of a
snapshot that records no fds or thread names. tests/test_accel_differential.py holds the same
rules against real QEMU processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from snap import healthy_host, run_json

QSYS = "/usr/bin/qemu-system-x86_64"
ROOT_STATUS = "Name:\tqemu-system-x86\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"


def _qemu(
    root: Path,
    pid: int,
    args: list[str],
    *,
    threads: Optional[list[str]] = None,
    kvm_fds: Optional[bool] = None,
    files: Optional[dict[str, str]] = None,
    cwd: Optional[str] = None,
    status: Optional[str] = None,
    binary: str = QSYS,
    exe: Optional[str] = None,
) -> Path:
    """A QEMU process in a snapshot: cmdline, and only the evidence asked for.

    ``threads``: vCPU thread names (None: no task/ at all); ``kvm_fds``: True for the fds of a
    KVM process, False for a TCG one, None for no fd/ at all; ``files``: paths in the process's
    root (``proc/PID/root/...``); ``cwd``: the target of proc/PID/cwd.
    """
    proc = root / f"proc/{pid}"
    proc.mkdir(parents=True)
    argv = [binary, "-name", f"guest=vm{pid},debug-threads=on", *args]
    (proc / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "comm").write_text("qemu-system-x86\n")
    (proc / "status").write_text(status or ROOT_STATUS)
    if kvm_fds is not None:
        (proc / "fd").mkdir()
        (proc / "fd/0").symlink_to("/dev/null")
        if kvm_fds:
            (proc / "fd/11").symlink_to("/dev/kvm")
            (proc / "fd/12").symlink_to("anon_inode:kvm-vm")
            (proc / "fd/13").symlink_to("anon_inode:kvm-vcpu:0")
    if threads is not None:
        for i, name in enumerate(["qemu-system-x86", *threads]):
            (proc / f"task/{pid + i}").mkdir(parents=True)
            (proc / f"task/{pid + i}/comm").write_text(name + "\n")
    for path, text in (files or {}).items():
        f = proc / "root" / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    if cwd is not None:
        (proc / "cwd").symlink_to(cwd)
    if exe is not None:
        (proc / "exe").symlink_to(exe)
    return proc


def _instances(root: Path) -> tuple[dict[int, dict[str, Any]], dict[str, Any]]:
    _, doc = run_json("--root", str(root), "--only", "instances")
    check = next(c for c in doc["checks"] if c["id"] == "instances.accel")
    return {i["pid"]: i for i in doc["instances"]}, check


def test_readconfig_files_are_read_through_the_process_root(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    # issue 18, input 1: the file overrides -machine accel=kvm; QEMU runs TCG as asked
    _qemu(
        root,
        100,
        ["-machine", "accel=kvm", "-readconfig", "/srv/vm.cfg"],
        threads=["CPU 0/TCG"],
        kvm_fds=False,
        files={"/srv/vm.cfg": '[machine]\n  accel = "tcg"\n'},
    )
    # issue 18, input 2: kvm:tcg from the file, running TCG: a real fallback
    _qemu(
        root,
        200,
        ["-no-user-config", "-readconfig", "vm.cfg"],
        threads=["CPU 0/TCG"],
        kvm_fds=False,
        files={"/var/lib/vm/vm.cfg": '[machine]\n  accel = "kvm:tcg"\n'},
        cwd="/var/lib/vm",
    )
    # QEMU's default config, read because there is no -no-user-config
    _qemu(
        root,
        300,
        [],
        threads=["CPU 0/KVM"],
        kvm_fds=True,
        files={"/etc/qemu/qemu.conf": '[accel]\n  accel = "kvm"\n'},
    )
    inst, check = _instances(root)
    assert (inst[100]["accel"], inst[100]["requested"], inst[100]["silent_fallback"]) == (
        "tcg",
        "tcg",
        False,
    )
    assert any("/srv/vm.cfg:1: [machine]" in d for d in inst[100]["evidence_detail"])
    assert (inst[200]["accel"], inst[200]["requested"], inst[200]["silent_fallback"]) == (
        "tcg",
        "kvm:tcg",
        True,
    )
    assert (inst[300]["accel"], inst[300]["requested"]) == ("kvm", "kvm")
    assert check["status"] == "CRITICAL" and check["code"] == "silent-fallback"
    assert "vm200" in check["summary"] and "vm100" not in check["summary"]
