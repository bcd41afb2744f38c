"""parsers.udev on real rules files (tests/data/udev, SOURCES.md) and parsers.acl on ACLs that
setfacl wrote (tests/data/acl, and live on a temp file), held to getfacl and to the kernel."""

from __future__ import annotations

import doctest
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvcheck.parsers import acl as acl_mod
from hvcheck.parsers import udev as udev_mod
from hvcheck.parsers.acl import AclError, acl_allows, effective, parse_acl_xattr, perm_text
from hvcheck.parsers.udev import Device, node_rules, parse_rules, rules_files

DATA = Path(__file__).parent / "data"
UDEV = DATA / "udev"
LIB = "/lib/udev/rules.d"
USR = "/usr/lib/udev/rules.d"
ETC = "/etc/udev/rules.d"


def rules(*names: str, into: str = LIB) -> list[tuple[str, Optional[str]]]:
    return [(f"{into}/{Path(n).name}", (UDEV / n).read_text()) for n in names]


def misc(kernel: str, minor: int, devname: Optional[str] = None, **kw: Any) -> Device:
    return Device(
        kernel,
        "misc",
        devname or f"/dev/{kernel}",
        10,
        minor,
        f"/devices/virtual/misc/{kernel}",
        **kw,
    )


KVM = misc("kvm", 232)
DEBIAN = (
    "debian12/50-udev-default.rules",
    "debian12/70-uaccess.rules",
    "debian12/73-seat-late.rules",
)


# ------------------------------------------------------------------------------ udev, real files
def test_debian12_default_rules_manage_kvm_vhost_and_tun() -> None:
    files = rules(*DEBIAN)
    kvm = node_rules(files, KVM)
    assert kvm.group and kvm.mode and kvm.static_node
    assert (kvm.group.value, kvm.mode.value) == ("kvm", "0660")
    assert kvm.mode.rule.where == f"{LIB}/50-udev-default.rules:108"
    assert kvm.static_node.line == 108 and kvm.expected_mode == "0660" and kvm.managed
    # 70-uaccess.rules:48 SUBSYSTEM=="misc", KERNEL=="kvm", TAG+="uaccess"
    assert [(t.value, t.rule.where) for t in kvm.tags] == [
        ("uaccess", f"{LIB}/70-uaccess.rules:48")
    ]
    assert kvm.uncertain == () and kvm.dropped == ()
    vhost = node_rules(files, misc("vhost-net", 238))
    assert vhost.mode and vhost.mode.rule.line == 115 and vhost.group
    assert vhost.group.value == "kvm" and not vhost.has_tag("uaccess")
    tun = node_rules(files, misc("tun", 200, "/dev/net/tun"))
    assert tun.group is None and tun.mode and tun.mode.value == "0666"
    assert tun.mode.rule.line == 103 and tun.static_node and tun.static_node.line == 103


def test_alternatives_and_globs_as_udev_matches_them() -> None:
    files = rules("debian12/50-udev-default.rules")
    # line 42: SUBSYSTEM=="mem", KERNEL=="mem|kmem|port", GROUP="kmem", MODE="0640"
    kmem = node_rules(files, Device("kmem", "mem", "/dev/kmem", 1, 2))
    assert kmem.mode and (kmem.mode.value, kmem.mode.rule.line) == ("0640", 42)
    null = node_rules(files, Device("null", "mem", "/dev/null", 1, 3))
    assert null.mode is None and null.group is None
    # line 40: KERNEL=="tty[A-Z]*[0-9]|ttymxc[0-9]*|...", GROUP="dialout"
    ttys = node_rules(files, Device("ttyS0", "tty", "/dev/ttyS0", 4, 64))
    assert ttys.group and (ttys.group.value, ttys.group.rule.line) == ("dialout", 40)
    # tty0: [A-Z] needs one capital, so line 40 does not match; line 35 (tty[0-9]*) does
    tty0 = node_rules(files, Device("tty0", "tty", "/dev/tty0", 4, 0))
    assert tty0.group and tty0.mode and tty0.group.rule.line == 35
    assert (tty0.group.value, tty0.mode.value) == ("tty", "0620")
    # line 49 SUBSYSTEM=="drm", KERNEL!="renderD*", GROUP="video"; line 54 renderD* -> render
    card = node_rules(files, Device("card0", "drm", "/dev/dri/card0", 226, 0))
    assert card.group and (card.group.value, card.group.rule.line) == ("video", 49)
    render = node_rules(files, Device("renderD128", "drm", "/dev/dri/renderD128", 226, 128))
    assert render.group and (render.group.value, render.group.rule.line) == ("render", 54)


def test_a_continued_rule_is_numbered_by_its_last_line() -> None:
    # lines 63-64: SUBSYSTEM=="sound", GROUP="audio", \ / OPTIONS+="static_node=snd/seq", ...
    [rule] = [r for r in parse_rules("x", (UDEV / DEBIAN[0]).read_text()) if r.first_line == 63]
    assert rule.line == 64 and rule.error is None
    assert [t.value for t in rule.values("OPTIONS")] == [
        "static_node=snd/seq",
        "static_node=snd/timer",
    ]
    seq = node_rules(rules(DEBIAN[0]), Device("seq", "sound", "/dev/snd/seq", 116, 1))
    assert seq.group and (seq.group.value, seq.group.rule.line) == ("audio", 64)
    assert seq.static_node and seq.static_node.line == 64
    assert seq.expected_mode == "0660"  # a group and no MODE: udev-node.c upgrades to 0660


def test_goto_skips_to_its_label() -> None:
    # line 31: ACTION!="add", GOTO="default_end" -- a "change" event never reaches line 108
    files = rules(DEBIAN[0])
    assert node_rules(files, KVM._replace(action="change")).mode is None
    # 70-uaccess.rules:11 ENV{MAJOR}=="", GOTO="uaccess_end": a node without a number is skipped
    assert not node_rules(rules(DEBIAN[1]), KVM._replace(major=None, minor=None)).tags


def test_later_files_and_higher_directories_win() -> None:
    # Arch's 65-kvm.rules sorts after 50-udev-default.rules: its lines are the last word
    files = rules(DEBIAN[0]) + rules("arch/65-kvm.rules", into=USR)
    vhost = node_rules(files, misc("vhost-net", 238))
    assert vhost.mode and vhost.mode.rule.where == f"{USR}/65-kvm.rules:2"
    assert vhost.has_tag("uaccess") and vhost.static_node and vhost.static_node.line == 2
    # GitHub's runner rule in /etc sorts last: 0666
    files += rules("github/99-kvm4all.rules", into=ETC)
    kvm = node_rules(files, KVM)
    assert kvm.mode and (kvm.mode.value, kvm.mode.rule.where) == (
        "0666",
        f"{ETC}/99-kvm4all.rules:1",
    )
    # the same file placed under /etc with the Debian file's name masks the Debian file
    same_name = [(f"{ETC}/50-udev-default.rules", (UDEV / "github/99-kvm4all.rules").read_text())]
    kvm = node_rules(rules(DEBIAN[0]) + same_name, KVM)
    assert kvm.mode and kvm.mode.rule.where == f"{ETC}/50-udev-default.rules:1"
    rf = rules_files(rules(DEBIAN[0]) + same_name)
    assert rf.overridden == ((f"{LIB}/50-udev-default.rules", f"{ETC}/50-udev-default.rules"),)


def test_a_dev_null_link_disables_the_name() -> None:
    files = [*rules(*DEBIAN), (f"{ETC}/50-udev-default.rules", "")]
    kvm = node_rules(files, KVM)
    assert not kvm.managed and kvm.expected_mode is None
    assert kvm.files.disabled == (f"{ETC}/50-udev-default.rules",)
    assert kvm.has_tag("uaccess")  # 70-uaccess.rules is still read


def test_a_group_the_host_lacks_drops_the_rule() -> None:
    kvm = node_rules(rules(DEBIAN[0]), KVM, groups=["root", "tty", "audio"])
    assert not kvm.managed
    [(rule, why)] = kvm.dropped
    assert rule.line == 108 and 'GROUP="kvm"' in why
    assert node_rules(rules(DEBIAN[0]), KVM, groups=["kvm"]).managed


def test_properties_from_udev_decide_env_matches() -> None:
    # ENV{ID_SEAT}!="", TAG+="$env{ID_SEAT}" (73-seat-late.rules:15) with udev's own properties
    props = {"SUBSYSTEM": "misc", "DEVNAME": "/dev/kvm", "MAJOR": "10", "MINOR": "232"}
    kvm = node_rules(rules(DEBIAN[2]), KVM._replace(properties={**props, "ID_SEAT": "seat1"}))
    assert [t.value for t in kvm.tags] == ["$env{ID_SEAT}"]
    assert not node_rules(rules(DEBIAN[2]), KVM._replace(properties=props)).tags


# ------------------------------------------------------------------------------ udev, grammar
def test_grammar_comments_continuations_prefixes_and_bad_lines() -> None:
    text = (
        "# a comment\n"
        '  KERNEL=="kvm", \\\n'
        "# a comment inside a continuation is dropped, as udev drops it\n"
        '    GROUP:="kvm", MODE="0660"\n'
        'KERNEL=="kvm", MODE="0666"\n'
        'KERNEL=="kvm", BOGUS="1", MODE="0600"\n'
        'KERNEL=="kvm" MODE="0600\n'
        'KERNEL==i"KVM", GROUP="late"\n'
        'KERNEL==e"kv\\x6d", TAG+="uaccess"\n'
        'KERNEL=="kvm", TAG+="a\\"b"\n'
        'KERNEL=="kvm", MODE="0644" \\\n'
    )
    rs = parse_rules("/etc/udev/rules.d/t.rules", text)
    assert [(r.first_line, r.line) for r in rs] == [
        (2, 4),
        (5, 5),
        (6, 6),
        (7, 7),
        (8, 8),
        (9, 9),
        (10, 10),
    ]
    assert rs[2].error and "BOGUS" in rs[2].error and rs[3].error
    assert rs[4].tokens[0].nocase and rs[5].tokens[0].value == "kvm"
    assert rs[6].tokens[1].value == 'a"b'
    kvm = node_rules([("/etc/udev/rules.d/t.rules", text)], KVM)
    assert kvm.group and kvm.group.value == "kvm" and kvm.group.op == ":="  # final: "late" ignored
    assert kvm.mode and (kvm.mode.value, kvm.mode.rule.line) == (
        "0666",
        5,
    )  # EOF continuation dropped
    assert [t.value for t in kvm.tags] == ["uaccess", 'a"b']


def test_what_a_file_cannot_tell_is_uncertain_not_applied() -> None:
    text = (
        'KERNEL=="kvm", ATTR{dev}=="10:232", MODE="0666"\n'
        'KERNEL=="kvm", TEST=="/x", GOTO="e"\n'
        'KERNEL=="kvm", MODE="0600"\n'
        'LABEL="e"\n'
    )
    kvm = node_rules([(f"{ETC}/t.rules", text)], KVM)
    assert kvm.mode is None
    assert [r.line for r in kvm.uncertain] == [1, 3]


def test_files_outside_rules_and_hidden_are_skipped() -> None:
    rf = rules_files(
        [
            (f"{ETC}/.hidden.rules", 'KERNEL=="kvm", MODE="0666"'),
            (f"{ETC}/x.conf", "x"),
            (f"{ETC}/a.rules", None),
        ]
    )
    assert rf.files == ((f"{ETC}/a.rules", None),)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(list('KERNEL=="kvm", GROUP:+!-{}\\#\n\t eiA|*?[]$%"')),
        max_size=300,
    )
)
def test_no_text_makes_the_udev_parser_raise(text: str) -> None:
    parse_rules("/etc/udev/rules.d/x.rules", text)
    node_rules([("/etc/udev/rules.d/x.rules", text)], KVM, groups=["kvm"])


_PAIR_BITS = st.sampled_from(
    ["KERNEL", "GROUP", "MODE", "ATTR", "ENV", "OPTIONS", "TAG", "x", "{", "}", "{idVendor}",
     "==", "!=", "+=", "-=", ":=", "=", "+", "-", "!", ":", '"', '"kvm"', '"0660"', "e", "i",
     "\\", '\\"', "\\x41", ",", ", ", " ", "\t", "\r", "\n", "#", "kvm", "|", "*"]
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.lists(_PAIR_BITS, max_size=40).map("".join))
def test_the_one_regex_pair_reads_as_character_by_character(text: str) -> None:
    """Pairs read by _PAIR (values without a backslash) come out as the reading of
    udev-rules.c's parse_line, character by character, gives them: same tokens, same errors."""
    fast = parse_rules("/etc/udev/rules.d/x.rules", text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(udev_mod, "_PAIR", re.compile(r"(?!)"))  # never matches
        assert parse_rules("/etc/udev/rules.d/x.rules", text) == fast


@pytest.mark.parametrize(
    "text",
    ['KERNEL=="kvm", ="x"', 'KERNEL=="kvm",:="x"', ',, +="x"', 'KERNEL=="kvm",{a}="x"'],
)
def test_a_comma_before_an_empty_key_reads_as_character_by_character(text: str) -> None:
    """parse_line skips every comma and blank before a key, so the key here is empty: the
    one-regex reading must not give back a comma to make a key of it."""
    fast = parse_rules("/etc/udev/rules.d/x.rules", text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(udev_mod, "_PAIR", re.compile(r"(?!)"))
        slow = parse_rules("/etc/udev/rules.d/x.rules", text)
    assert fast == slow
    assert [r.error for r in fast] == [
        "invalid key/value pair (invalid key ''): udev ignores the line"
    ]


def test_real_rules_files_read_as_character_by_character() -> None:
    """The captured rules files, and this machine's own, read the same with and without
    _PAIR."""
    paths = sorted(UDEV.rglob("*.rules"))
    paths += [p for d in udev_mod.RULES_DIRS for p in sorted(Path(d).glob("*.rules"))]
    files = [(str(p), p.read_text(errors="replace")) for p in paths]
    fast = [parse_rules(p, t) for p, t in files]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(udev_mod, "_PAIR", re.compile(r"(?!)"))
        assert [parse_rules(p, t) for p, t in files] == fast
    assert sum(len(r.tokens) for rs in fast for r in rs) > 100


# ------------------------------------------------------------------------------ acl
CAPTURES = json.loads((DATA / "acl" / "setfacl-captures.json").read_text())["captures"]


def getfacl_lines(text: str) -> list[tuple[str, Optional[str]]]:
    """(entry, effective perms or None) from `getfacl -n --omit-header`."""
    out = []
    for line in text.splitlines():
        if not line:
            continue
        entry, _, eff = line.partition("\t#effective:")
        out.append((entry, eff or None))
    return out


@pytest.mark.parametrize("cap", CAPTURES, ids=[c["description"] for c in CAPTURES])
def test_captured_acls_decode_as_getfacl_prints_them(cap: dict[str, Any]) -> None:
    if cap["xattr_hex"] is None:
        return  # a minimal ACL: nothing stored, the mode bits decide
    entries = parse_acl_xattr(bytes.fromhex(cap["xattr_hex"]))
    want = getfacl_lines(cap["getfacl"])
    assert [e.text() for e in entries] == [w[0] for w in want]
    for e, (_, eff) in zip(entries, want):
        assert perm_text(effective(e, entries)) == (eff or perm_text(e.perm))


def test_captured_acls_access() -> None:
    by = {c["description"]: c for c in CAPTURES}

    def allows(desc: str, uid: int, gids: set[int]) -> bool:
        c = by[desc]
        entries = parse_acl_xattr(bytes.fromhex(c["xattr_hex"]))
        return acl_allows(entries, uid, gids, file_uid=c["stat"]["uid"], file_gid=c["stat"]["gid"])

    ua = "uaccess-like: 0660 root:kvm node, logind's entry for the seat user"
    assert allows(ua, 1000, {1000}) and allows(ua, 64055, {107}) and not allows(ua, 64055, {64055})
    masked = "mask limits a named user and group::"
    assert not allows(masked, 1000, {1000}) and not allows(masked, 5, {104})
    assert acl_allows(
        parse_acl_xattr(bytes.fromhex(by[masked]["xattr_hex"])),
        1000,
        {1000},
        4,
        file_uid=0,
        file_gid=104,
    )
    # a named entry with no permissions wins over the group the user is in
    assert not allows("named user with no access, group:: rw", 64055, {107})
    assert allows("named group only, 0600 root:root", 7, {2000}) and not allows(
        "named group only, 0600 root:root", 7, {7}
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x02\x00\x00",
        b"\x01\x00\x00\x00",
        b"\x02\x00\x00\x00\x01\x00\x06",
        b"\x02\x00\x00\x00\x40\x00\x06\x00\xff\xff\xff\xff",
    ],
)
def test_bad_acl_bytes_raise_acl_error(raw: bytes) -> None:
    with pytest.raises(AclError):
        parse_acl_xattr(raw)


@given(st.binary(max_size=80))
def test_no_bytes_make_the_acl_parser_raise_anything_else(raw: bytes) -> None:
    try:
        entries = parse_acl_xattr(b"\x02\x00\x00\x00" + raw)
    except AclError:
        return
    acl_allows(entries, 1000, {1000}, file_uid=0, file_gid=0)


# ------------------------------------------------------------------------------ acl, live
def _need_setfacl() -> str:
    tool = shutil.which("setfacl")
    if tool is None or shutil.which("getfacl") is None:
        pytest.skip("setfacl/getfacl not installed (apt-get install acl)")
    return tool


LIVE_ACLS = [
    ("u:1000:rw", 0o600, 0),
    ("u:1000:rw,g:104:r,m::r", 0o660, 104),
    ("u:64055:---", 0o660, 107),
    ("g:2000:rw,u:1001:r", 0o600, 0),
    ("u:1000:rw,g:107:rw,m::rw,o::r", 0o600, 0),
]
WHO = [(1000, [1000]), (1001, [1001]), (64055, [107]), (5, [104]), (7, [2000]), (9, [9]), (0, [0])]


@pytest.mark.parametrize(("spec", "mode", "gid"), LIVE_ACLS)
def test_live_setfacl_against_getfacl_and_the_kernel(spec: str, mode: int, gid: int) -> None:
    """setfacl writes the ACL, os.getxattr reads it back; the decoding must print as getfacl
    prints it, and acl_allows must agree with the kernel's own open(O_RDWR) for each user."""
    tool = _need_setfacl()
    d = tempfile.mkdtemp(dir="/tmp")
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "node")
        Path(path).touch()
        if os.geteuid() == 0:
            os.chown(path, 0, gid)
        os.chmod(path, mode)
        p = subprocess.run([tool, "-m", spec, path], capture_output=True, text=True)
        if p.returncode:
            pytest.skip(f"setfacl failed here: {p.stderr.strip()}")
        try:
            raw = os.getxattr(path, "system.posix_acl_access")
        except OSError as e:
            pytest.skip(f"no ACL xattr on this filesystem: {e}")
        entries = parse_acl_xattr(raw)
        shown = subprocess.run(
            ["getfacl", "-n", "--omit-header", path], capture_output=True, text=True
        )
        want = getfacl_lines(shown.stdout)
        assert [e.text() for e in entries] == [w[0] for w in want]
        if os.geteuid() != 0:
            return
        st_ = os.stat(path)
        for uid, gids in WHO:
            if uid == 0:
                continue  # root: CAP_DAC_OVERRIDE, not the ACL
            ours = acl_allows(entries, uid, set(gids), file_uid=st_.st_uid, file_gid=st_.st_gid)
            assert ours == _kernel_allows(path, uid, gids), (spec, uid, gids)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _kernel_allows(path: str, uid: int, gids: list[int]) -> bool:
    pid = os.fork()
    if pid == 0:  # the child drops to uid/gids and asks the kernel
        code = 2
        try:
            os.setgroups(gids)
            os.setgid(gids[0])
            os.setuid(uid)
            try:
                os.close(os.open(path, os.O_RDWR))
                code = 0
            except PermissionError:
                code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), code
    return code == 0


def test_module_doctests() -> None:
    for mod in (acl_mod, udev_mod):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
