"""What each QEMU asked for, read from composed snapshots the way QEMU reads it (issue 18):
config files through the process's root and working directory, and the judgement of a
snapshot that records no fds or thread names. tests/test_accel_differential.py holds the same
rules against real QEMU processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck.host import DeviceInfo, ProcInfo
from hvcheck.parsers.qemu import QemuArgv, parse_qemu_argv
from hvcheck.processes import decide, is_qemu_process, kvm_access, vcpu_thread_accels
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


# --------------------------------------------------------------------------------------------
# The decision (hvcheck.processes): what a silent fallback is, and the judgement without fds
# --------------------------------------------------------------------------------------------

KVM_FDS = ["/dev/null", "/dev/kvm", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"]
TCG_FDS = ["/dev/null", "socket:[1234]"]
DEV_0600 = DeviceInfo("char", 10, 232, "0600", 0, 0, "root", "root")
DEV_0660_KVM = DeviceInfo("char", 10, 232, "0660", 0, 108, "root", "kvm")


def _argv(*args: str, binary: str = QSYS) -> QemuArgv:
    return parse_qemu_argv([binary, *args])


@pytest.mark.parametrize(
    ("args", "silent"),
    [
        (["-machine", "accel=kvm:tcg"], True),
        (["-accel", "kvm", "-accel", "tcg"], True),
        (["-machine", "accel=xen:kvm:tcg"], True),
        (["-accel", "tcg", "-accel", "kvm"], False),  # TCG first: TCG as asked
        (["-accel", "tcg"], False),
        (["-machine", "accel=KVM:tcg"], False),  # QEMU skips "KVM": TCG as asked
    ],
)
def test_silent_fallback_is_kvm_then_the_accelerator_that_runs(
    args: list[str], silent: bool
) -> None:
    d = decide(TCG_FDS, ["CPU 0/TCG"], None, _argv(*args))
    assert (d.accel, d.silent_fallback, d.verified) == ("tcg", silent, True)
    assert d.requested == _argv(*args).accel.decided


def test_kvm_alone_running_tcg_is_a_misread_request_not_a_fallback() -> None:
    for argv, dom in ((_argv("-accel", "kvm"), None), (None, "kvm"), (_argv("-enable-kvm"), "kvm")):
        d = decide(TCG_FDS, None, dom, argv)
        assert (d.accel, d.requested, d.silent_fallback) == ("tcg", None, False)
        assert d.conflict and "cannot tell what was asked" in d.conflict
        assert "which QEMU does not run under TCG" in d.conflict
    # the same for a request that cannot be read
    d = decide(TCG_FDS, None, None, parse_qemu_argv([QSYS, "-readconfig", "/gone.cfg"]))
    assert (d.accel, d.requested, d.silent_fallback) == ("tcg", None, False)
    assert d.conflict == "cannot tell what was asked: /gone.cfg was not read"


def test_every_tcg_thread_name() -> None:
    for names in (["CPU 0/TCG", "CPU 1/TCG"], ["ALL CPUs/TCG"]):
        d = decide(None, ["qemu-system-x86", "IO mon_iothread", *names], None, None)
        assert (d.accel, d.kinds) == ("tcg", ("threads",))
    assert vcpu_thread_accels(["ALL CPUs/TCG", "CPU 12/KVM", "CPU 0/Dummy", "worker"]) == [
        "TCG",
        "KVM",
        "DUMMY",
    ]


def test_judged_without_fds_or_threads() -> None:
    # one accelerator: what QEMU runs if it runs at all
    d = decide(None, None, None, _argv("-accel", "kvm"))
    assert (d.accel, d.verified, d.kinds, d.likely) == ("kvm", False, ("cmdline",), None)
    assert any("requested kvm, unverified" in x for x in d.details)
    d = decide(None, None, None, _argv("-accel", "tcg"))
    assert (d.accel, d.verified) == ("tcg", False)
    # kvm alone, but the process could not have opened /dev/kvm: QEMU would not be running
    no = kvm_access(DEV_0600, 65534, [65534], None)
    d = decide(None, None, None, _argv("-accel", "kvm"), no)
    assert (d.accel, d.requested) == ("unknown", None)
    assert d.conflict and "cannot tell what was asked" in d.conflict
    # kvm:tcg: likely, never decided
    fb = _argv("-machine", "accel=kvm:tcg")
    d = decide(None, None, None, fb, no)
    assert (d.accel, d.likely, d.silent_fallback, d.requested) == (
        "unknown",
        "tcg",
        False,
        "kvm:tcg",
    )
    d = decide(None, None, None, fb, kvm_access(DEV_0600, 0, [0], None))
    assert (d.accel, d.likely) == ("unknown", "kvm")
    d = decide(None, None, None, fb, kvm_access(DEV_0600, 65534, [65534], "qemu"))
    assert (d.accel, d.likely) == ("unknown", None)
    assert any("-runas qemu" in x for x in d.details)
    d = decide(None, None, None, fb, None)
    assert (d.accel, d.likely) == ("unknown", None)
    # libvirt's domain type alone is a single accelerator
    assert decide(None, None, "kvm", None).accel == "kvm"
    assert decide(None, None, "qemu", None).accel == "tcg"
    # libvirt and the command line disagreeing: undecided
    d = decide(None, None, "kvm", _argv("-accel", "tcg"))
    assert (d.accel, d.requested) == ("unknown", None)


def test_kvm_access_from_mode_owner_and_groups() -> None:
    assert kvm_access(DEV_0660_KVM, 64055, [64055, 108], None).can_open is True
    assert kvm_access(DEV_0660_KVM, 64055, [64055], None).can_open is False
    assert kvm_access(DEV_0600, 0, [], None).can_open is True
    owner = DeviceInfo("char", 10, 232, "0600", 107, 0, "qemu", "root")
    assert kvm_access(owner, 107, [107], None).can_open is True
    world = DeviceInfo("char", 10, 232, "0666", 0, 108, "root", "kvm")
    assert kvm_access(world, 65534, [65534], None).can_open is True
    read_only = DeviceInfo("char", 10, 232, "0664", 0, 108, "root", "kvm")
    assert kvm_access(read_only, 65534, [65534], None).can_open is False  # O_RDWR
    assert kvm_access(None, 0, [0], None).can_open is None
    assert kvm_access(None, 0, [0], None, device_absent=True).can_open is False
    assert kvm_access(DEV_0600, None, [], None).can_open is None
    assert kvm_access(DEV_0600, 0, [0], "nobody").can_open is None


def _setfacl_capture(description: str) -> dict[str, Any]:
    """One of the real ACLs in tests/data/acl (setfacl's bytes, and what the kernel let open)."""
    import json

    data = json.loads((Path(__file__).parent / "data/acl/setfacl-captures.json").read_text())
    [cap] = [c for c in data["captures"] if c["description"] == description]
    return dict(cap)


def test_kvm_access_weighs_the_nodes_acl() -> None:
    """A 0600 root:root node with setfacl -m u:1000:rw (setfacl's real bytes): uid 1000 opens it,
    and the reason names the entry; anyone else does not; an ACL that cannot be decoded leaves
    it untold."""
    cap = _setfacl_capture("0600 root:root, one named user")
    st = cap["stat"]
    node = DeviceInfo(
        "char", 10, 232, st["mode"], st["uid"], st["gid"], "root", "root", acl=cap["xattr_hex"]
    )
    yes = kvm_access(node, 1000, [1000], None)
    assert yes.can_open is True and "ACL user:1000:rw-,mask::rw-" in yes.why
    assert kvm_access(node, 1001, [1001], None).can_open is False
    assert kvm_access(node._replace(acl="02000000ff"), 1000, [1000], None).can_open is None


# --------------------------------------------------------------------------------------------
# ... and what the check says of it, from snapshots
# --------------------------------------------------------------------------------------------

NOBODY_STATUS = (
    "Name:\tqemu-system-x86\nState:\tS (sleeping)\nUid:\t65534\t65534\t65534\t65534\n"
    "Gid:\t65534\t65534\t65534\t65534\nGroups:\t65534\n"
)
ROOT_ONLY_KVM = {
    "/dev/kvm": {"type": "char", "major": 10, "minor": 232, "mode": "0600", "uid": 0, "gid": 0}
}


def test_a_kvm_alone_request_running_tcg_is_not_called_a_fallback(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    _qemu(root, 100, ["-no-user-config", "-accel", "kvm"], threads=["CPU 0/TCG"], kvm_fds=False)
    inst, check = _instances(root)
    assert (inst[100]["accel"], inst[100]["requested"], inst[100]["silent_fallback"]) == (
        "tcg",
        None,
        False,
    )
    assert check["code"] != "silent-fallback" and "/dev/kvm 0660" not in (check["hint"] or "")
    assert any("cannot tell what was asked" in e for e in check["evidence"])


def test_command_line_only_snapshots_are_judged_not_verified(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s", devices=ROOT_ONLY_KVM)
    _qemu(root, 100, ["-no-user-config", "-accel", "kvm"])
    inst, check = _instances(root)
    assert (inst[100]["accel"], inst[100]["verified"], inst[100]["evidence"]) == (
        "kvm",
        False,
        ["cmdline"],
    )
    assert check["status"] == "OK" and check["code"] == "kvm-unverified"
    assert "requested kvm, unverified" in check["summary"] and "holds KVM" not in check["summary"]

    # kvm:tcg run by nobody, who cannot open /dev/kvm 0600 root:root: likely a fallback
    _qemu(root, 200, ["-no-user-config", "-machine", "accel=kvm:tcg"], status=NOBODY_STATUS)
    inst, check = _instances(root)
    assert (inst[200]["accel"], inst[200]["likely"], inst[200]["silent_fallback"]) == (
        "unknown",
        "tcg",
        False,
    )
    assert check["status"] == "UNKNOWN"
    assert "likely a silent fallback to TCG: vm200" in check["summary"]
    assert "/dev/kvm" in check["hint"]
    assert any(
        "uid 65534 (gids 65534) may not open /dev/kvm 0600" in x
        for x in inst[200]["evidence_detail"]
    )


# --------------------------------------------------------------------------------------------
# Detection by the executable, not argv[0]
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exe", "argv0", "comm", "found"),
    [
        ("/usr/bin/qemu-system-x86_64", "my-kvm", "qemu-system-x86", True),  # exec -a my-kvm
        ("/usr/bin/qemu-system-x86_64 (deleted)", "qemu", "qemu-system-x86", True),  # upgraded
        ("/usr/libexec/qemu-kvm", "/usr/libexec/qemu-kvm", "qemu-kvm", True),
        ("/usr/bin/python3.11", "qemu-system-x86_64", "qemu-system-x86", False),  # a disguise
        (None, "my-kvm", "qemu-system-x86", True),  # exe unreadable: the kernel's comm
        (None, "qemu-system-x86_64", "web01", True),  # -name ...,process=web01
        (None, "my-kvm", "my-kvm", False),
    ],
)
def test_qemu_is_known_by_its_executable(
    exe: Optional[str], argv0: str, comm: str, found: bool
) -> None:
    assert is_qemu_process(ProcInfo(1, comm, (argv0, "-S"), exe=exe)) is found


def test_a_renamed_qemu_is_found_and_its_argv0_sets_the_default(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    # exec -a my-kvm qemu-system-x86_64 ...: QEMU prefers KVM by that name (kvm:tcg), and
    # this one fell back to TCG
    _qemu(
        root,
        100,
        ["-no-user-config"],
        binary="my-kvm",
        exe="/usr/bin/qemu-system-x86_64",
        threads=["CPU 0/TCG"],
        kvm_fds=False,
    )
    inst, check = _instances(root)
    assert (inst[100]["binary"], inst[100]["requested"], inst[100]["silent_fallback"]) == (
        "my-kvm",
        "kvm:tcg",
        True,
    )
    assert check["code"] == "silent-fallback"


def test_a_mix_qemu_refuses_is_said_to_be_read_as_an_older_qemu() -> None:
    d = decide(KVM_FDS, None, None, _argv("-machine", "accel=tcg", "-accel", "kvm"))
    assert (d.accel, d.requested) == ("kvm", "kvm")
    assert any("refuses -accel with" in x for x in d.details)
