"""devaccess: can a user open a device node, why not, and does a fix last -- on real rules
files (tests/data/udev) and real ACLs written by setfacl (tests/data/acl)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Optional

from hvcheck import devaccess, facts
from hvcheck.check import Context
from hvcheck.host import DeviceInfo, ProbeResult, SnapshotHost
from hvcheck.parsers.accounts import parse_accounts
from hvcheck.parsers.udev import Device, node_rules
from snap import PROJECT, make_snapshot, run_hvcheck

DATA = Path(__file__).parent / "data"
DEBIAN = DATA / "udev" / "debian12"
USR = "/usr/lib/udev/rules.d"
ETC = "/etc/udev/rules.d"
CAPTURES = {
    c["description"]: c
    for c in json.loads((DATA / "acl" / "setfacl-captures.json").read_text())["captures"]
}
UACCESS_ACL = CAPTURES["uaccess-like: 0660 root:kvm node, logind's entry for the seat user"]
# the accounts of the nova-kvm-dev-kvm-0600 capture (Debian 12)
FIXTURE = PROJECT / "fixtures" / "nova-kvm-dev-kvm-0600"
PASSWD = (FIXTURE / "etc" / "passwd").read_text()
GROUP = (FIXTURE / "etc" / "group").read_text()
ACCOUNTS = parse_accounts(PASSWD, GROUP)
SEAT = ACCOUNTS.user_name(1000)  # the user logged in at the seat (uid 1000 of that capture)
QEMU_UID, KVM_GID = 64055, 107

NODE_0600 = DeviceInfo("char", 10, 232, "0600", 0, 0, "root", "root")
NODE_0660 = DeviceInfo("char", 10, 232, "0660", 0, KVM_GID, "root", "kvm")


def debian_rules(*names: str, groups: Optional[list[str]] = None) -> Any:
    files = [(f"{USR}/{n}", (DEBIAN / n).read_text()) for n in names]
    dev = Device("kvm", "misc", "/dev/kvm", 10, 232, "/devices/virtual/misc/kvm")
    return node_rules(files, dev, groups=groups)


def judge(dev: DeviceInfo, uid: int, gids: set[int], user: str, rules: Any) -> Any:
    return devaccess.judge("/dev/kvm", dev, uid, gids, user, rules, ACCOUNTS)


def test_root_opens_anything() -> None:
    a = judge(NODE_0600, 0, {0}, "root", None)
    assert a.allowed is True and a.lasting_fix == ""


def test_no_rule_a_chmod_does_not_last() -> None:
    rules = debian_rules("70-uaccess.rules", "73-seat-late.rules")
    a = judge(NODE_0600, QEMU_UID, {KVM_GID}, "libvirt-qemu", rules)
    assert a.allowed is False
    assert "/dev/kvm (0600 root:root) lets only its owner in" in a.reasons
    assert any("no udev rule sets /dev/kvm's group or mode" in r for r in a.reasons)
    assert any('70-uaccess.rules:48 tags it "uaccess"' in r for r in a.reasons)
    assert a.lasting_fix.startswith(
        'create /etc/udev/rules.d/65-kvm.rules with KERNEL=="kvm", GROUP="kvm", MODE="0660"'
    )
    assert "usermod" not in a.lasting_fix  # kvm is libvirt-qemu's primary group
    a = judge(NODE_0600, 1001, {1001}, "alice", rules)
    assert a.lasting_fix.endswith("usermod -aG kvm alice")


def test_rule_not_applied_says_so_and_gives_the_command() -> None:
    rules = debian_rules("50-udev-default.rules")
    a = judge(NODE_0600, QEMU_UID, {KVM_GID}, "libvirt-qemu", rules)
    assert a.allowed is False
    assert (
        f"{USR}/50-udev-default.rules:108 sets 0660 root:kvm, the node is 0600 root:root: "
        "udev has not applied it" in a.reasons
    )
    assert a.lasting_fix == (
        "udevadm control --reload && udevadm trigger --action=add --name-match=kvm"
    )
    told = judge(NODE_0600._replace(udev={"initialized": False}), QEMU_UID, {KVM_GID}, "q", rules)
    assert any("udev has no record of the node" in r for r in told.reasons)


def test_rule_applied_but_user_not_in_the_group() -> None:
    rules = debian_rules("50-udev-default.rules")
    a = judge(NODE_0660, 1001, {1001}, "alice", rules)
    assert a.allowed is False
    assert "alice is not in group kvm, the only one /dev/kvm (0660 root:kvm) lets in" in a.reasons
    assert f"{USR}/50-udev-default.rules:108 sets 0660 root:kvm: a fix through that rule lasts" in (
        a.reasons
    )
    assert a.lasting_fix.startswith("usermod -aG kvm alice")
    ok = judge(NODE_0660, QEMU_UID, {KVM_GID}, "libvirt-qemu", rules)
    assert ok.allowed is True and ok.lasting_fix == ""


def test_a_rule_naming_a_missing_group_is_dropped() -> None:
    rules = debian_rules("50-udev-default.rules", groups=["root", "audio"])
    a = judge(NODE_0600, 1001, {1001}, "alice", rules)
    assert any(
        '50-udev-default.rules:108: GROUP="kvm" names no group of this host' in r for r in a.reasons
    )
    assert any("no udev rule sets /dev/kvm's group or mode" in r for r in a.reasons)
    no_kvm = parse_accounts(PASSWD, "root:x:0:\n")
    b = devaccess.judge("/dev/kvm", NODE_0600, 1001, {1001}, "alice", rules, no_kvm)
    assert b.lasting_fix.startswith("groupadd --system kvm; create /etc/udev/rules.d/65-kvm.rules")


def test_acl_from_setfacl_decides_over_the_mode() -> None:
    st = UACCESS_ACL["stat"]
    dev = DeviceInfo("char", 10, 232, st["mode"], st["uid"], st["gid"], "root", "kvm")
    dev = dev._replace(acl=UACCESS_ACL["xattr_hex"])
    rules = debian_rules("50-udev-default.rules", "70-uaccess.rules")
    seat = judge(dev, 1000, {1000}, "seat", rules)
    assert seat.allowed is True
    assert "the ACL of /dev/kvm gives seat rw-" in seat.reasons
    assert any("comes from uaccess" in r for r in seat.reasons)
    other = judge(dev, 1001, {1001}, "alice", rules)
    assert (
        other.allowed is False and f"the ACL of /dev/kvm names {SEAT}, not alice" in other.reasons
    )
    # a named entry without permissions shuts out a user the group would let in
    deny = CAPTURES["named user with no access, group:: rw"]
    dev2 = NODE_0660._replace(acl=deny["xattr_hex"])
    a = judge(dev2, QEMU_UID, {KVM_GID}, "libvirt-qemu", rules)
    assert a.allowed is False and "the ACL of /dev/kvm gives libvirt-qemu ---" in a.reasons
    # masked: the entry says rw-, the mask r--
    masked = CAPTURES["mask limits a named user and group::"]
    m = masked["stat"]
    dev3 = DeviceInfo("char", 10, 232, m["mode"], m["uid"], m["gid"], acl=masked["xattr_hex"])
    b = judge(dev3, 1000, {1000}, "seat", None)
    assert b.allowed is False
    assert (
        "the ACL of /dev/kvm gives seat r-- (entry user:1000:rw-, limited by the mask)" in b.reasons
    )


def test_an_undecodable_acl_is_not_judged() -> None:
    a = judge(NODE_0660._replace(acl="0300000001"), QEMU_UID, {KVM_GID}, "libvirt-qemu", None)
    assert a.allowed is None and "cannot be decoded" in a.reasons[0]


# ------------------------------------------------------------------------------ through a host
def _snapshot(tmp_path: Path, files: dict[str, str], links: dict[str, str]) -> Context:
    root = make_snapshot(
        tmp_path / "snap",
        {"/etc/passwd": PASSWD, "/etc/group": GROUP, **files},
        links=links,
    )
    return Context(SnapshotHost(str(root)))


def test_rules_read_through_the_host_with_masking(tmp_path: Path) -> None:
    ctx = _snapshot(
        tmp_path,
        {
            f"{USR}/50-udev-default.rules": (DEBIAN / "50-udev-default.rules").read_text(),
            f"{USR}/70-uaccess.rules": (DEBIAN / "70-uaccess.rules").read_text(),
            f"{ETC}/70-uaccess.rules": (DATA / "udev" / "github" / "99-kvm4all.rules").read_text(),
        },
        {
            f"{ETC}/50-udev-default.rules": "/dev/null",
            "/sys/dev/char/10:232": "../../devices/virtual/misc/kvm",
            "/sys/devices/virtual/misc/kvm/subsystem": "../../../../class/misc",
        },
    )
    files = dict(devaccess.read_rules(ctx.host) or [])
    assert files[f"{ETC}/50-udev-default.rules"] == ""
    assert files[f"{USR}/50-udev-default.rules"] is None  # masked: not even read
    assert files[f"{USR}/70-uaccess.rules"] is None
    dev = devaccess.udev_device(ctx.host, "/dev/kvm", NODE_0600)
    assert (dev.kernel, dev.subsystem, dev.devpath) == ("kvm", "misc", "/devices/virtual/misc/kvm")
    a = devaccess.node_access(
        ctx, "/dev/kvm", NODE_0600, QEMU_UID, {KVM_GID}, "libvirt-qemu", ACCOUNTS
    )
    assert a.rule is not None and a.rule.mode is not None
    assert a.rule.mode.rule.where == f"{ETC}/70-uaccess.rules:1"  # GitHub's line, by that name
    assert a.rule.files.disabled == (f"{ETC}/50-udev-default.rules",)
    assert "udev has not applied it" in a.hint()


def test_without_rules_dirs_nothing_is_claimed(tmp_path: Path) -> None:
    ctx = _snapshot(tmp_path, {}, {})
    assert devaccess.read_rules(ctx.host) is None
    dev = devaccess.udev_device(ctx.host, "/dev/kvm", NODE_0600)
    assert (dev.kernel, dev.subsystem) == ("kvm", "misc")  # char major 10 is misc
    a = devaccess.node_access(
        ctx, "/dev/kvm", NODE_0600, QEMU_UID, {KVM_GID}, "libvirt-qemu", ACCOUNTS
    )
    assert a.allowed is False and a.rule is None and a.lasting_fix == ""
    assert any("whether a fix lasts cannot be told" in r for r in a.reasons)


def test_kvm_device_hint_names_the_probing_user_and_why() -> None:
    """ubuntu1404-kvm-intel-nosudo: collected as ops (uid 1000), not in kvm; EACCES."""
    p = run_hvcheck("--root", str(PROJECT / "fixtures" / "ubuntu1404-kvm-intel-nosudo"), "--json")
    [c] = [c for c in json.loads(p.stdout)["checks"] if c["id"] == "kvm.device"]
    assert c["hint"].startswith("re-run with sudo (sudo hvcheck) to probe /dev/kvm; ops cannot")
    assert "ops is not in group kvm, the only one /dev/kvm (0660 root:kvm) lets in" in c["hint"]


def test_probe_refused_although_the_files_allow_it(tmp_path: Path) -> None:
    """ops was added to kvm after logging in: /etc/group says yes, the kernel said EACCES."""
    root = make_snapshot(
        tmp_path / "snap",
        {
            "/etc/passwd": "ops:x:1000:1000::/home/ops:/bin/bash\n",
            "/etc/group": "ops:x:1000:\nkvm:x:112:ops\n",
        },
    )
    ctx = Context(SnapshotHost(str(root)))
    dev = DeviceInfo("char", 10, 232, "0660", 0, 112, "root", "kvm")
    probe = ProbeResult(False, "open", "EACCES", "open /dev/kvm: Permission denied", uid=1000)
    text = facts.refused_open_hint(ctx, "/dev/kvm", dev, probe)
    assert text.startswith(
        "; /etc/passwd and /etc/group let ops open it (ops is in group kvm, which /dev/kvm "
        "(0660 root:kvm) lets in), yet the open was refused: log in again"
    )


# ------------------------------------------------------------ the ACL fixture: setfacl's bytes
ACL_FIXTURE = PROJECT / "fixtures" / "nova-kvm-dev-kvm-0600-acl-qemu-user"
QEMU_ACL = next(c for c in CAPTURES.values() if ACL_FIXTURE.name in c["description"])


def _acl_fixture_device() -> DeviceInfo:
    dev = SnapshotHost(str(ACL_FIXTURE)).stat_device("/dev/kvm")
    assert dev is not None
    return dev


def test_the_acl_fixture_carries_setfacls_bytes_and_the_kernel_agrees() -> None:
    """The fixture's /dev/kvm is the node setfacl -m u:64055:rw made of a 0600 root:root one:
    its bytes, its stat (0660: the group bits show the mask), and what the kernel then let
    uid 64055 and uid 1001 do are held to the capture."""
    dev = _acl_fixture_device()
    st = QEMU_ACL["stat"]
    assert dev.acl == QEMU_ACL["xattr_hex"]
    assert (dev.mode, dev.uid, dev.gid) == (st["mode"], st["uid"], st["gid"])
    kernel = QEMU_ACL["kernel_open"]
    assert facts.can_open(dev, QEMU_UID, {KVM_GID}) is (kernel["uid 64055 groups 107"] == "ok")
    assert facts.can_open(dev, 1001, {1001}) is (kernel["uid 1001 groups 1001"] == "ok")
    assert kernel["uid 64055 groups 107"] == "ok" and kernel["uid 1001 groups 1001"] == "EACCES"
    # by the mode bits alone (the node without its ACL) libvirt-qemu would be shut out, as the
    # kernel shut it out of the 0600 node before setfacl
    assert facts.can_open(dev._replace(acl=None), QEMU_UID, {KVM_GID}) is False
    before = dev._replace(acl=None, mode="0600")
    assert facts.can_open(before, QEMU_UID, {KVM_GID}) is (
        kernel["uid 64055 groups 107, before setfacl"] == "ok"
    )
    assert devaccess.acl_summary(dev) == "ACL user:64055:rw-,mask::rw-"


def _replay(tmp_path: Path, drop_acl: bool, caps: Optional[dict[str, Any]]) -> dict[str, Any]:
    root = tmp_path / "snap"
    shutil.copytree(ACL_FIXTURE, root, symlinks=True)
    mpath = root / "hvcheck-snapshot.json"
    marker = json.loads(mpath.read_text())
    if drop_acl:
        del marker["devices"]["/dev/kvm"]["acl"]
    if caps is not None:
        marker["probes"]["libvirt_caps"] = caps
    mpath.write_text(json.dumps(marker))
    p = run_hvcheck("--root", str(root), "--json")
    assert "Traceback" not in p.stderr, p.stderr
    return {c["id"]: c for c in json.loads(p.stdout)["checks"]}


# libvirt's answer as `virsh capabilities` gives it on this project's x86_64 machine (libvirt
# 9.0.0, QEMU 7.2), shortened to the x86_64 guest: kvm and qemu domains offered.
CAPS = {
    "status": "ok",
    "via": "virsh",
    "capabilities": (
        "<capabilities><host><cpu><arch>x86_64</arch></cpu></host>"
        "<guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>"
        "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
        "<machine maxCpus='255'>pc-i440fx-7.2</machine>"
        "<domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>"
    ),
}


def test_the_acl_decides_libvirt_qemu_user_and_libvirt_caps(tmp_path: Path) -> None:
    """Both checks take the QEMU user's access from facts.qemu_kvm_access: with the ACL the
    QEMU user opens /dev/kvm (OK, and libvirt's kvm offer is consistent); the same snapshot
    without its ACL is the 0660 root:root node libvirt-qemu cannot open (CRITICAL, and
    libvirt.caps's contradiction, with the same hint)."""
    with_acl = _replay(tmp_path / "a", drop_acl=False, caps=CAPS)
    q = with_acl["libvirt.qemu_user"]
    assert (q["status"], q["code"]) == ("OK", "ok"), q
    assert "the ACL of /dev/kvm gives libvirt-qemu rw-" in q["evidence"]
    assert q["details"]["access"]["allowed"] is True
    c = with_acl["libvirt.caps"]
    assert (c["status"], c["code"]) == ("OK", "kvm-offered"), c
    assert c["details"]["qemu_user_can_open"] is True

    without = _replay(tmp_path / "b", drop_acl=True, caps=CAPS)
    q = without["libvirt.qemu_user"]
    assert (q["status"], q["code"]) == ("CRITICAL", "cannot-open"), q
    assert "cannot open /dev/kvm (mode 0660 root:root)" in q["summary"]
    assert "libvirt-qemu is not in group root, the only one" in " ".join(q["evidence"])
    c = without["libvirt.caps"]
    assert (c["status"], c["code"]) == ("WARNING", "contradiction"), c
    assert c["details"]["qemu_user_can_open"] is False
    assert c["hint"] == q["hint"] and "usermod -aG kvm libvirt-qemu" in c["hint"]


def test_an_acl_that_does_not_decode_is_unknown_not_critical(tmp_path: Path) -> None:
    """Valid hex, not an ACL (version 3): the access cannot be told -- UNKNOWN with the
    reason, never a CRITICAL on a guess from the mode bits."""
    root = tmp_path / "snap"
    shutil.copytree(ACL_FIXTURE, root, symlinks=True)
    mpath = root / "hvcheck-snapshot.json"
    marker = json.loads(mpath.read_text())
    marker["devices"]["/dev/kvm"]["acl"] = "03000000" + QEMU_ACL["xattr_hex"][8:]
    mpath.write_text(json.dumps(marker))
    p = run_hvcheck("--root", str(root), "--json")
    assert "Traceback" not in p.stderr, p.stderr
    q = {c["id"]: c for c in json.loads(p.stdout)["checks"]}["libvirt.qemu_user"]
    assert (q["status"], q["code"]) == ("UNKNOWN", "acl-unreadable"), q
    assert "ACL (undecodable)" in q["summary"]
    assert any("cannot be decoded (ACL xattr version 3, expected 2)" in e for e in q["evidence"])


NO_UDEV = {"initialized": False, "tags": [], "running": False}  # LiveHost.udev_view's


def test_where_udev_does_not_run_no_udev_fix_is_advised() -> None:
    """No /run/udev (a container, a minimal VM such as this project's machines): nothing
    there applies a rule, at boot or by udevadm trigger, so the hint advises neither here;
    the lasting fix is the setting where /dev is made at boot (mdev.conf, a tmpfiles.d z line,
    the boot script), or the host's udev rule for a container sharing its /dev, and the group
    membership as before."""
    node = NODE_0600._replace(udev=NO_UDEV)
    for names, line in (
        (("70-uaccess.rules", "73-seat-late.rules"), ""),
        (
            ("50-udev-default.rules",),
            f" ({USR}/50-udev-default.rules:108 would set its mode or group)",
        ),
    ):
        rules = debian_rules(*names)
        a = judge(node, 1001, {1001}, "alice", rules)
        assert a.allowed is False
        assert (
            "udev does not run here (no /run/udev): nothing here applies a udev rule to "
            f"/dev/kvm{line}, so a chmod or chgrp is lost when the node is made again (the "
            "next boot, or a reload of its module), unless the host's udev sets it (a "
            "container sharing the host's /dev)" in a.reasons
        ), a.reasons
        assert not any("uaccess" in r or "logind" in r for r in a.reasons), a.reasons
        fix = a.lasting_fix
        assert "udevadm" not in fix and "rules.d" not in fix, fix
        assert fix.startswith("set group kvm and mode 0660 where /dev is made at every boot")
        for setting in (
            "`kvm root:kvm 0660` in /etc/mdev.conf",
            "`z /dev/kvm 0660 root kvm -` in /etc/tmpfiles.d/kvm.conf",
            "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm in the init's boot script",
            'a udev rule on the host (KERNEL=="kvm", GROUP="kvm", MODE="0660")',
        ):
            assert setting in fix, fix
        assert fix.endswith("usermod -aG kvm alice")
        # where udev runs (or it is not known), the udev advice as before
        b = judge(NODE_0600, 1001, {1001}, "alice", rules)
        assert "udevadm" in b.lasting_fix and not any("does not run" in r for r in b.reasons)


def test_where_udev_does_not_run_a_node_that_lets_its_group_in_needs_the_membership() -> None:
    """0660 root:kvm already (by hand or by what makes /dev at boot: which, the host cannot
    tell): the membership is the fix, the boot-time setting its condition."""
    a = judge(NODE_0660._replace(udev=NO_UDEV), 1001, {1001}, "alice", None)
    assert a.allowed is False
    assert a.lasting_fix.startswith(
        "usermod -aG kvm alice; unless something here sets /dev/kvm to 0660 root:kvm at every "
        "boot already: `kvm root:kvm 0660` in /etc/mdev.conf"
    ), a.lasting_fix
    assert "groupadd" not in a.lasting_fix and "set group" not in a.lasting_fix


def test_this_hosts_udev_view_decides_the_advice() -> None:
    """The udev view the live host gives (LiveHost.udev_view: the no-udev form where neither
    /run/udev nor /dev/.udev exists, else pyudev's record) is what decides: udev advice
    where udev runs, none where it does not."""
    from hvcheck.host import LiveHost

    host = LiveHost()
    dev = host.stat_device("/dev/null")
    assert dev is not None
    view = host.udev_view("/dev/null", dev)
    a = judge(
        NODE_0600._replace(udev=view), 1001, {1001}, "alice", debian_rules("70-uaccess.rules")
    )
    assert a.allowed is False
    runs = any(Path(d).exists() for d in ("/run/udev", "/dev/.udev"))
    assert ("udevadm" in a.lasting_fix) == runs, (view, a.lasting_fix)


def test_without_rules_to_read_where_udev_does_not_run_the_fix_is_still_known() -> None:
    a = judge(NODE_0600._replace(udev=NO_UDEV), 1001, {1001}, "alice", None)
    assert a.allowed is False and a.rule is None
    assert any(r.startswith("udev does not run here (no /run/udev)") for r in a.reasons)
    assert "chgrp kvm /dev/kvm && chmod 0660 /dev/kvm" in a.lasting_fix
    # where udev may run, what a fix needs cannot be told without the rules
    b = judge(NODE_0600, 1001, {1001}, "alice", None)
    assert b.lasting_fix == "" and any("cannot be told" in r for r in b.reasons)


def test_only_the_exact_no_udev_record_says_udev_does_not_run() -> None:
    """The marker's udev record says "udev did not run" only in the exact form collect writes
    (LiveHost.udev_view's); any other record -- an older hvcheck's (initialized false with
    the kernel's properties, no "running"), "running" true or not a bool, or a no-udev record
    with properties, tags or initialized true -- keeps the udev advice (udev may run)."""
    from hvcheck.host.base import udev_from_json

    props = {"DEVNAME": "/dev/kvm", "MAJOR": "10", "MINOR": "232", "SUBSYSTEM": "misc"}
    rules = debian_rules("70-uaccess.rules")
    for rec in (
        {"initialized": False, "properties": props, "tags": []},  # an older snapshot
        {"initialized": False, "tags": []},
        {"initialized": False, "tags": [], "running": True},
        {"initialized": False, "tags": [], "running": "false"},
        {"initialized": False, "tags": [], "running": 0},
        {"initialized": False, "tags": [], "running": False, "properties": props},
        {"initialized": False, "tags": ["uaccess"], "running": False},
        {"initialized": True, "tags": [], "running": False},
        "garbage",
        None,
    ):
        node = NODE_0600._replace(udev=udev_from_json(rec))
        assert devaccess.udev_runs(node), rec
        a = judge(node, 1001, {1001}, "alice", rules)
        assert "udevadm" in a.lasting_fix and not any("does not run" in r for r in a.reasons), rec
    node = NODE_0600._replace(udev=udev_from_json(dict(NO_UDEV)))
    assert not devaccess.udev_runs(node)
    assert "udevadm" not in judge(node, 1001, {1001}, "alice", rules).lasting_fix


RULE_NOT_APPLIED = PROJECT / "fixtures" / "nova-kvm-dev-kvm-0600-udev-rule-not-applied"


def test_where_udev_does_not_run_its_rules_are_not_read(tmp_path: Path) -> None:
    """Nothing applies udev's rules where udev does not run: they are not read (on such a
    host, ~2 ms of a probe), and the judgement says what lasts instead. The same snapshot
    with udev's record of the node (or none: not known) reads them as before."""

    def qemu_user(udev: Optional[dict[str, Any]]) -> dict[str, Any]:
        root = tmp_path / ("no-udev" if udev else "udev")
        shutil.copytree(RULE_NOT_APPLIED, root, symlinks=True)
        marker = json.loads((root / "hvcheck-snapshot.json").read_text())
        if udev is not None:
            marker["devices"]["/dev/kvm"]["udev"] = udev
        (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
        p = run_hvcheck(
            "--root",
            str(root),
            "--json",
            "--only",
            "libvirt.qemu_user",
            env={"PYTHONPROFILEIMPORTTIME": "1"},  # which modules the run imported
        )
        (c,) = json.loads(p.stdout)["checks"]
        # the rules parser is imported only where rules are read (issue 11, point 8)
        return {**c, "parser_imported": " hvcheck.parsers.udev\n" in p.stderr}

    without = qemu_user(NO_UDEV)
    assert without["details"]["access"]["udev"] is None, without["details"]
    assert "udev does not run here" in without["hint"] and "udevadm" not in without["hint"]
    assert not without["parser_imported"]
    known = qemu_user(None)
    assert known["details"]["access"]["udev"] is not None, known["details"]
    assert known["parser_imported"]
    assert "udevadm" in known["hint"] or "rules.d" in known["hint"], known["hint"]


def test_the_boot_time_setting_keeps_the_nodes_own_owner() -> None:
    """A node that already lets its group in keeps its owner in the setting named (no
    'root:' the node does not have)."""
    node = DeviceInfo("char", 10, 232, "0660", 64055, KVM_GID, "libvirt-qemu", "kvm")
    a = judge(node._replace(udev=NO_UDEV), 1001, {1001}, "alice", None)
    assert "`kvm libvirt-qemu:kvm 0660` in /etc/mdev.conf" in a.lasting_fix, a.lasting_fix
    assert "`z /dev/kvm 0660 libvirt-qemu kvm -`" in a.lasting_fix and "root:" not in a.lasting_fix


def test_reads_names_the_rules_directories_the_parser_ranks() -> None:
    """``devaccess.READS`` spells out the rules files (so that a run reading none does not
    import the parser): the same directories, in the same order, as ``RULES_DIRS``."""
    from hvcheck.parsers.udev import RULES_DIRS

    rules = [r for r in devaccess.READS if r.endswith(".rules")]
    assert rules == [f"{d}/*.rules" for d in RULES_DIRS]
