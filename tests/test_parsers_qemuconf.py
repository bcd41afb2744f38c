"""libvirt qemu.conf parsing (virconf format): user, group, dynamic_ownership."""

from __future__ import annotations

import doctest
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hvcheck.parsers import qemuconf
from hvcheck.parsers.qemuconf import QemuConf, parse_qemu_conf

# The security part of libvirt's src/qemu/qemu.conf, which Debian/Ubuntu install as
# /etc/libvirt/qemu.conf: every setting commented out, including a commented multi-line list.
DEBIAN_DEFAULT = """\
# Master configuration file for the QEMU driver.
# All settings described here are optional - if omitted, sensible
# defaults are used.

#security_driver = "selinux"

# If set to non-zero, then the default security labeling
# will make guests confined. If set to zero, then guests
# will be unconfined by default. Defaults to 1.
#security_default_confined = 1

# The user for QEMU processes run by the system instance. It can be
# specified as a user name or as a user id. The qemu driver will try to
# parse this value first as a name and then, if the name doesn't exist,
# as a user id.
#
# Since a sequence of digits is a valid user name, a leading plus sign
# can be used to ensure that a user id will not be interpreted as a user
# name.
#
# Some examples of valid values are:
#
#       user = "qemu"   # A user named "qemu"
#       user = "+0"     # Super user (uid=0)
#       user = "100"    # A user named "100" or a user with uid=100
#
#user = "root"

# The group for QEMU processes run by the system instance. It can be
# specified in a similar way to user.
#group = "root"

# Whether libvirt should dynamically change file ownership
# to match the configured user/group above. Defaults to 1.
# Set to 0 to disable file ownership changes.
#dynamic_ownership = 1

#cgroup_device_acl = [
#    "/dev/null", "/dev/full", "/dev/zero",
#    "/dev/random", "/dev/urandom",
#    "/dev/ptmx", "/dev/kvm"
#]
"""


def test_debian_default_all_commented() -> None:
    c = parse_qemu_conf(DEBIAN_DEFAULT)
    assert c == QemuConf(None, None, None, None, None, None)


def test_user_and_group_set() -> None:
    text = DEBIAN_DEFAULT.replace('#user = "root"', 'user = "libvirt-qemu"').replace(
        '#group = "root"', 'group = "kvm"'
    )
    c = parse_qemu_conf(text)
    lines = text.splitlines()
    assert (c.user, c.group, c.error) == ("libvirt-qemu", "kvm", None)
    assert c.user_line is not None and lines[c.user_line - 1] == 'user = "libvirt-qemu"'
    assert c.group_line is not None and lines[c.group_line - 1] == 'group = "kvm"'
    assert c.dynamic_ownership is None


def test_numeric_ids_kept_as_given() -> None:
    c = parse_qemu_conf('user = "+0"\ngroup = "+107"\n')
    assert (c.user, c.group, c.user_line, c.group_line, c.error) == ("+0", "+107", 1, 2, None)


def test_real_world_shapes() -> None:
    text = (
        "# managed by puppet\n"
        "cgroup_device_acl = [\n"
        '    "/dev/null", "/dev/full", "/dev/zero",\n'
        '    "/dev/random", "/dev/urandom",\n'
        '    "/dev/ptmx", "/dev/kvm",\n'  # trailing comma is allowed
        "]\n"
        "security_driver = 'none'\n"
        'user = "nova" # kolla runs QEMU as nova\n'
        "group = 'kvm'; dynamic_ownership = 1\n"
        'hugetlbfs_mount = ["/dev/hugepages2M", "/dev/hugepages1G"]\n'
        "max_files = 32768\n"
        'stdio_handler = """file"""\n'
    )
    c = parse_qemu_conf(text)
    assert c == QemuConf("nova", "kvm", None, True, 8, 9)


def test_first_entry_wins_like_virConfGetValue() -> None:
    c = parse_qemu_conf('user = "qemu"\nuser = "root"\n')
    assert (c.user, c.user_line) == ("qemu", 1)


def test_dynamic_ownership() -> None:
    assert parse_qemu_conf("dynamic_ownership = 0\n").dynamic_ownership is False
    assert parse_qemu_conf("dynamic_ownership = 1\n").dynamic_ownership is True
    for bad in ("dynamic_ownership = 2\n", 'dynamic_ownership = "1"\n', "dynamic_ownership = -0\n"):
        c = parse_qemu_conf(bad)
        assert c.dynamic_ownership is None
        assert c.error is not None and c.error.startswith("line 1: ")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("user = libvirt-qemu\n", 1, "expecting a value"),  # unquoted
        ('user = "libvirt-qemu\n', 1, "unterminated string"),
        ('# ok\nuser = "a" group = "b"\n', 2, "expecting a separator"),
        ('cgroup_device_acl = [\n  "/dev/null"\n  "/dev/kvm"\n]\n', 3, "separator in list"),
        ('cgroup_device_acl = [\n  "/dev/null",\n', 3, "expecting a value"),
        ('cgroup_device_acl = [ "/dev/null"\n', 2, "list is not closed"),
        ("user\n", 1, "expecting an assignment"),
        ("= 1\n", 1, "expecting a name"),
        ("user = +\n", 1, "unterminated number"),
        ("x = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 1, "nested"),
        # a whitespace-only file: virConfParseStatement skips to the end, where CUR is the
        # terminating NUL, and virConfParseName fails
        ("\n   \n", 3, "expecting a name"),
    ],
)
def test_syntax_errors(text: str, line: int, words: str) -> None:
    c = parse_qemu_conf(text)
    assert c.error is not None and c.error.startswith(f"line {line}: "), c.error
    assert words in c.error


def test_user_must_be_a_string() -> None:
    c = parse_qemu_conf("user = 107\ngroup = +107\n")
    assert (c.user, c.group, c.user_line) == (None, None, 1)
    assert c.error is not None and c.error.startswith("line 1: 'user' must be a quoted string")


def test_entries_before_a_syntax_error_are_kept() -> None:
    c = parse_qemu_conf('user = "qemu"\ngroup = "kvm"\ngarbage here\n')
    assert (c.user, c.group) == ("qemu", "kvm")
    assert c.error == "line 3: expecting an assignment"


def test_garbage_never_raises() -> None:
    junk = bytes(range(256)).decode("latin-1") * 3
    c = parse_qemu_conf(junk)
    assert c.error is not None and c.user is None
    assert parse_qemu_conf("") == QemuConf(None, None, None, None, None, None)


def test_module_doctests() -> None:
    result = doctest.testmod(qemuconf)
    assert result.attempted > 0 and result.failed == 0


_BITS = st.sampled_from(
    ["user", "group", "dynamic_ownership", " = ", "=", '"', "'", '"""', "[", "]", ",", "#",
     ";", "\n", "\r", " ", "\t", "+", "-", "0", "1", "107", "qemu", "\x00"]
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(), st.lists(_BITS, max_size=60).map("".join)))
def test_property_never_raises(text: str) -> None:
    c = parse_qemu_conf(text)
    assert isinstance(c, QemuConf)
    assert c.user is None or isinstance(c.user, str)
    assert c.group is None or isinstance(c.group, str)
    assert c.error is None or isinstance(c.error, str)
    assert c.dynamic_ownership is None or isinstance(c.dynamic_ownership, bool)
    for n, v in ((c.user_line, c.user), (c.group_line, c.group)):
        assert n is None or (isinstance(n, int) and 1 <= n <= text.count("\n") + 1)
        if v is not None:
            assert n is not None


@settings(max_examples=2000, deadline=None)
@given(st.lists(_BITS, max_size=60).map("".join))
def test_comment_runs_read_as_one_comment_a_loop(text: str) -> None:
    """The run-of-comments shortcut changes nothing: the parser with it answers as the plain
    transcription of virconf.c's loop (one comment line per statement) does."""
    fast = parse_qemu_conf(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(qemuconf, "_COMMENT_LINES", re.compile(r"(?!)"))  # never matches
        assert parse_qemu_conf(text) == fast


def test_comment_runs_on_the_debian_file() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(qemuconf, "_COMMENT_LINES", re.compile(r"(?!)"))
        plain = parse_qemu_conf(DEBIAN_DEFAULT + 'user = "a"  # x\n#y\n\n  # z\r\ngroup = 1\n')
    assert parse_qemu_conf(DEBIAN_DEFAULT + 'user = "a"  # x\n#y\n\n  # z\r\ngroup = 1\n') == plain
    assert plain.user == "a" and plain.error is not None
