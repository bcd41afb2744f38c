"""hvcheck.parsers.qemu against real command lines (../shared/corpus) and QEMU's own rules."""

from __future__ import annotations

import doctest
import re
import shlex
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import CORPUS, manifest, require_corpus
from hvcheck.parsers import qemu
from hvcheck.parsers.qemu import (
    AccelRequest,
    from_proc_cmdline,
    is_qemu_binary,
    parse_qemu_argv,
)

_ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def args_argv(text: str) -> list[str]:
    """The argv of a libvirt ``.args`` text as the shell runs it: line continuations joined,
    words split by ``shlex`` (POSIX rules), the leading ``NAME=value`` assignments dropped."""
    words = shlex.split(text.replace("\\\n", ""), posix=True)
    start = 0
    while start < len(words) and _ENV_ASSIGNMENT.match(words[start]):
        start += 1
    return words[start:]


# --------------------------------------------------------------------------------------------
# Corpus: every qemu-cmdline row of MANIFEST.tsv
# --------------------------------------------------------------------------------------------


def _corpus_params() -> list[Any]:
    rows = manifest("qemu-cmdline")
    if not rows:
        # Keep the test collected (and skipped by require_corpus) on a fresh clone.
        return [pytest.param(None, {}, id="corpus-absent")]
    return [pytest.param(f, facts, id=f.rsplit("/", 1)[-1]) for f, facts, _ in rows]


def argv_from_ps_aux(text: str) -> list[str]:
    """The argv of the first QEMU process in a ``ps aux`` table (COMMAND is the 11th column)."""
    for line in text.splitlines():
        cols = line.split(None, 10)
        if len(cols) < 11 or cols[10] == "COMMAND":
            continue
        argv = cols[10].split()  # ps joins the arguments with spaces, unquoted
        if argv and is_qemu_binary(argv[0]):
            return argv
    return []


def _corpus_argv(file: str, facts: dict[str, str]) -> list[str]:
    text = (CORPUS / file).read_text(encoding="utf-8")
    if facts.get("format") == "ps-aux":
        return argv_from_ps_aux(text)
    return args_argv(text)


# argv_accel= in the manifest names the option the source says decided it.
_SOURCE_OF_ARGV_ACCEL = {
    "-accel": "-accel",
    "-machine": "-machine accel=",
    "-enable-kvm": "-enable-kvm",
    "none": "binary default",
}


@pytest.mark.parametrize(("file", "facts"), _corpus_params())
def test_corpus_cmdline_accel(file: str | None, facts: dict[str, str]) -> None:
    require_corpus()
    assert file is not None
    argv = _corpus_argv(file, facts)
    assert argv, "no argv found"
    q = parse_qemu_argv(argv)

    assert q.binary == facts["binary"]
    assert is_qemu_binary(q.binary)

    argv_accel = facts.get("argv_accel", "")
    expected_source = _SOURCE_OF_ARGV_ACCEL[argv_accel.split(":", 1)[0]]
    assert q.accel.source == expected_source
    if argv_accel.startswith("-accel:"):
        assert q.accel.tokens[1] == argv_accel.split(":", 1)[1]

    accel = facts["accel"]
    if facts.get("no_accel_option_but_kvm") == "yes":
        # The source ran these under a binary with KVM on by default; the command line
        # itself leaves the choice to QEMU's default for that binary name.
        assert q.accel.source == "binary default"
        assert q.accel.tokens == (q.binary,)
        if q.binary.endswith("kvm"):
            assert q.accel.decided == "kvm:tcg"
            assert q.accel.wants_kvm
        else:
            assert q.accel.decided == "tcg"
    elif accel == "kvm":
        assert q.accel.decided in ("kvm", "kvm:tcg")
        assert q.accel.accels[0] == "kvm"
        assert q.accel.wants_kvm
    elif accel == "tcg":
        assert q.accel.decided == "tcg"
        assert not q.accel.wants_kvm
    elif accel == "hvf":
        assert q.accel.decided == "hvf"
    else:  # pragma: no cover - a manifest row this test does not know
        pytest.fail(f"unexpected accel={accel}")


@pytest.mark.parametrize(("file", "facts"), _corpus_params())
def test_corpus_kvm_named_tokens_are_not_accelerators(
    file: str | None, facts: dict[str, str]
) -> None:
    """Rows listing tokens_containing_kvm_that_are_not_accel: the decision does not use them."""
    require_corpus()
    assert file is not None
    q = parse_qemu_argv(_corpus_argv(file, facts))
    for token in q.accel.tokens:
        assert "kvm=off" not in token
        assert "kvm_pv_eoi" not in token
        assert "kvmclock" not in token
        assert "kvm-pit" not in token


def test_ps_aux_helper_picks_qemu_line() -> None:
    table = (
        "USER   PID %CPU %MEM   VSZ  RSS TTY  STAT START TIME COMMAND\n"
        "root     1  0.0  0.0 19356 1544 ?    Ss   May31 0:01 /sbin/init\n"
        "qemu 22673  0.8 10.2 16185 8056 ?    Sl   11:38 1:07 /usr/libexec/qemu-kvm -name rhel7 "
        "-S -M rhel6.5.0 -enable-kvm -m 1024\n"
    )
    argv = argv_from_ps_aux(table)
    assert argv[:3] == ["/usr/libexec/qemu-kvm", "-name", "rhel7"]
    q = parse_qemu_argv(argv)
    assert (q.name, q.machine, q.paused, q.accel.decided) == ("rhel7", "rhel6.5.0", True, "kvm")


# --------------------------------------------------------------------------------------------
# Hand-written argv: QEMU's accelerator rules (system/vl.c)
# --------------------------------------------------------------------------------------------

QSYS = "/usr/bin/qemu-system-x86_64"


@pytest.mark.parametrize(
    ("args", "accels", "source"),
    [
        (["-accel", "kvm"], ("kvm",), "-accel"),
        (["-accel", "kvm", "-accel", "tcg"], ("kvm", "tcg"), "-accel"),
        (["-accel", "tcg", "-accel", "kvm"], ("tcg", "kvm"), "-accel"),
        (["--accel", "kvm"], ("kvm",), "-accel"),
        (["-accel", "kvm,dirty-ring-size=4096"], ("kvm",), "-accel"),
        (["-accel", "accel=kvm"], ("kvm",), "-accel"),
        (["-accel", "kvm,accel=tcg"], ("tcg",), "-accel"),  # last "accel" key wins
        (["-accel", "help", "-accel", "kvm"], ("kvm",), "-accel"),
        (["-machine", "pc,accel=kvm:tcg"], ("kvm", "tcg"), "-machine accel="),
        (["-machine", "type=pc,accel=kvm"], ("kvm",), "-machine accel="),
        (["-M", "q35,accel=tcg"], ("tcg",), "-machine accel="),
        (["-machine", "accel=hvf"], ("hvf",), "-machine accel="),
        (["-machine", "pc,accel=kvm", "-machine", "accel=tcg"], ("tcg",), "-machine accel="),
        (["-enable-kvm"], ("kvm",), "-enable-kvm"),
        (["--enable-kvm"], ("kvm",), "-enable-kvm"),
        (["-no-kvm"], ("tcg",), "-no-kvm"),
        (["-enable-hax"], ("hax",), "-enable-hax"),
        # -enable-kvm and -machine accel= write the same key: the last one wins.
        (["-enable-kvm", "-machine", "accel=tcg"], ("tcg",), "-machine accel="),
        (["-machine", "accel=tcg", "-enable-kvm"], ("kvm",), "-enable-kvm"),
        (["-machine", "pc"], ("tcg",), "binary default"),
        ([], ("tcg",), "binary default"),
    ],
)
def test_accel_rules(args: list[str], accels: tuple[str, ...], source: str) -> None:
    a = parse_qemu_argv([QSYS, *args]).accel
    assert (a.accels, a.source) == (accels, source)
    assert a.decided == ":".join(accels)
    assert a.wants_kvm == ("kvm" in accels)
    assert not a.conflict


def test_accel_tokens_are_evidence() -> None:
    a = parse_qemu_argv([QSYS, "-machine", "pc,accel=kvm:tcg", "-m", "512"]).accel
    assert a.tokens == ("-machine", "pc,accel=kvm:tcg")
    a = parse_qemu_argv([QSYS, "--accel", "kvm", "-accel", "tcg"]).accel
    assert a.tokens == ("--accel", "kvm", "-accel", "tcg")
    a = parse_qemu_argv(["/usr/libexec/qemu-kvm", "-enable-kvm"]).accel
    assert a.tokens == ("-enable-kvm",)


def test_accel_and_machine_accel_conflict_prefers_accel() -> None:
    # Current QEMU refuses: 'The -accel and "-machine accel=" options are incompatible'.
    a = parse_qemu_argv([QSYS, "-machine", "pc,accel=tcg", "-accel", "kvm"]).accel
    assert (a.decided, a.source, a.conflict) == ("kvm", "-accel", True)
    a = parse_qemu_argv([QSYS, "-enable-kvm", "-accel", "tcg"]).accel
    assert (a.decided, a.source, a.conflict) == ("tcg", "-accel", True)


@pytest.mark.parametrize(
    ("binary", "decided"),
    [
        ("/usr/bin/kvm", "kvm:tcg"),
        ("/usr/libexec/qemu-kvm", "kvm:tcg"),
        ("qemu-kvm", "kvm:tcg"),
        ("/usr/bin/qemu-system-x86_64", "tcg"),
        ("/usr/bin/qemu-system-aarch64", "tcg"),
        ("/usr/bin/qemu", "tcg"),
    ],
)
def test_binary_default(binary: str, decided: str) -> None:
    a = parse_qemu_argv([binary, "-m", "1024", "-nographic"]).accel
    assert (a.decided, a.source, a.tokens) == (decided, "binary default", (binary,))
    assert a.primary == decided.split(":")[0]


@pytest.mark.parametrize(
    "args",
    [
        ["-cpu", "host,kvm=off"],
        ["-cpu", "qemu32,+kvm_pv_eoi"],
        ["-cpu", "qemu64,-kvmclock"],
        ["-cpu", "host,migratable=off,kvm=off,kvm-hint-dedicated=on,kvm-poll-control=on"],
        ["-global", "kvm-pit.lost_tick_policy=delay"],
        ["-no-kvm-pit-reinjection"],
        ["-no-kvm-irqchip", "-no-kvm-pit"],
        ["-machine", "pc,kernel_irqchip=on,kvm_shadow_mem=1024"],
        ["-name", "kvm"],
        ["-name", "-enable-kvm"],
        ["-append", "-accel kvm"],
        ["-drive", "file=/var/lib/kvm.img,if=none"],
        ["disk-kvm.img"],
    ],
)
def test_kvm_lookalikes_do_not_select_an_accelerator(args: list[str]) -> None:
    a = parse_qemu_argv([QSYS, *args]).accel
    assert (a.decided, a.source) == ("tcg", "binary default")


def test_name_forms() -> None:
    q = parse_qemu_argv([QSYS, "-name", "guest=a,,b,debug-threads=on"])
    assert (q.name, q.debug_threads) == ("a,b", True)
    q = parse_qemu_argv([QSYS, "-name", "QEMUGuest1"])
    assert (q.name, q.debug_threads) == ("QEMUGuest1", False)
    q = parse_qemu_argv([QSYS, "-name", "web01,process=qemu-web01"])
    assert q.name == "web01"
    q = parse_qemu_argv([QSYS, "-name", "guest=x,debug-threads=off"])
    assert (q.name, q.debug_threads) == ("x", False)
    q = parse_qemu_argv([QSYS, "-name", "debug-threads=on"])
    assert (q.name, q.debug_threads) == (None, True)
    # -name merges (merge_lists): the last guest= wins.
    q = parse_qemu_argv([QSYS, "-name", "old", "-name", "guest=new"])
    assert q.name == "new"


def test_option_value_is_never_an_option() -> None:
    q = parse_qemu_argv([QSYS, "-name", "-accel", "-m", "512"])
    assert q.name == "-accel"
    assert (q.accel.decided, q.accel.source) == ("tcg", "binary default")
    q = parse_qemu_argv(["/usr/bin/kvm", "-name", "-accel", "tcg"])
    # "-name" eats "-accel"; "tcg" is then a positional (a disk image for QEMU).
    assert q.name == "-accel"
    assert q.accel.decided == "kvm:tcg"


def test_kvm_binary_without_options() -> None:
    a = parse_qemu_argv(["/usr/bin/kvm"]).accel
    assert (a.decided, a.source, a.wants_kvm) == ("kvm:tcg", "binary default", True)


def test_other_fields() -> None:
    q = parse_qemu_argv(
        [
            "/usr/bin/qemu-system-x86_64",
            "-uuid",
            "c7a5fdbd-edaf-9455-926a-d65c16db1809",
            "-S",
            "-machine",
            "pc-q35-8.2,usb=off",
            "-accel",
            "kvm",
        ]
    )
    assert q.uuid == "c7a5fdbd-edaf-9455-926a-d65c16db1809"
    assert q.paused
    assert q.machine == "pc-q35-8.2"
    assert parse_qemu_argv([QSYS, "-machine", "type=virt,gic-version=3"]).machine == "virt"
    assert parse_qemu_argv([QSYS, "-M", "pc", "-machine", "accel=kvm"]).machine == "pc"
    assert parse_qemu_argv([QSYS, "-s"]).paused is False  # -s is the gdb stub, not -S
    assert parse_qemu_argv([QSYS, "-name", "-S"]).paused is False


def test_comma_escaping_in_machine_accel() -> None:
    # QEMU 7.2: "invalid accelerator tcg,thread=single" -- the ",," is part of the value, a name
    # QEMU does not know; with nothing else in the list it does not start at all.
    a = parse_qemu_argv([QSYS, "-machine", "pc,accel=tcg,,thread=single"]).accel
    assert (a.accels, a.dropped) == ((), ("tcg,thread=single",))
    assert a.undetermined and "would not start" in a.undetermined
    assert not a.wants_kvm
    # ... and with KVM after it, QEMU says "falling back to KVM" and runs KVM
    a = parse_qemu_argv([QSYS, "-machine", "pc,accel=tcg,,thread=single:kvm"]).accel
    assert (a.accels, a.dropped, a.undetermined) == (("kvm",), ("tcg,thread=single",), None)


def test_unknown_option_takes_a_following_value() -> None:
    q = parse_qemu_argv([QSYS, "-some-future-option", "value", "-enable-kvm"])
    assert q.accel.decided == "kvm"
    q = parse_qemu_argv([QSYS, "-some-future-flag", "-enable-kvm"])
    assert q.accel.decided == "kvm"


def test_empty_and_odd_argv() -> None:
    q = parse_qemu_argv([])
    assert (q.binary, q.accel.decided, q.accel.source) == ("", "unknown", "unknown")
    assert q.accel.primary == "unknown"
    q = parse_qemu_argv([QSYS, "-accel"])  # missing value: QEMU "requires an argument"
    assert q.accel.source == "binary default"
    q = parse_qemu_argv([QSYS, "-name"])
    assert q.name is None
    q = parse_qemu_argv((QSYS, "-accel", "kvm"))  # any Sequence
    assert q.accel.decided == "kvm"


def test_accel_request_properties() -> None:
    a = AccelRequest(accels=("kvm", "tcg"), source="-accel", tokens=())
    assert (a.wants_kvm, a.decided, a.primary) == (True, "kvm:tcg", "kvm")
    assert AccelRequest(accels=(), source="unknown", tokens=()).decided == "unknown"


# --------------------------------------------------------------------------------------------
# QEMU's other option sources: config files, -set, names it does not know (QEMU 7.2 behaviour,
# each case started for real; tests/test_accel_differential.py repeats them live)
# --------------------------------------------------------------------------------------------

NO_DEFAULT = {qemu.DEFAULT_CONFIG: None}


def _req(args: list[str], files: dict[str, Any] | None = None, binary: str = QSYS) -> AccelRequest:
    return parse_qemu_argv([binary, *args], files=files).accel


def test_readconfig_machine_accel_overrides_an_earlier_machine_accel() -> None:
    # issue 18, input 1: QEMU runs TCG as the file asks, with no error and no fallback
    files = {**NO_DEFAULT, "/c.cfg": b'[machine]\n  accel = "tcg"\n'}
    a = _req(["-machine", "accel=kvm", "-readconfig", "/c.cfg"], files)
    assert (a.accels, a.source, a.after_kvm) == (("tcg",), "-readconfig", ())
    assert a.tokens == ("-readconfig", "/c.cfg", '/c.cfg:1: [machine] accel = "tcg"')
    # ... and a later -machine accel= overrides the file (QEMU runs KVM)
    a = _req(["-readconfig", "/c.cfg", "-machine", "accel=kvm"], files)
    assert (a.accels, a.source) == (("kvm",), "-machine accel=")


def test_readconfig_fallback_list() -> None:
    # issue 18, input 2
    files = {**NO_DEFAULT, "/c.cfg": b'[machine]\n  accel = "kvm:tcg"\n'}
    a = _req(["-readconfig", "/c.cfg"], files)
    assert (a.accels, a.after_kvm, a.source) == (("kvm", "tcg"), ("tcg",), "-readconfig")


def test_readconfig_accel_sections_and_set() -> None:
    files = {**NO_DEFAULT, "/c.cfg": b'[accel]\n  accel = "kvm"\n[accel]\n  accel = "tcg"\n'}
    assert _req(["-readconfig", "/c.cfg"], files).accels == ("kvm", "tcg")
    files = {**NO_DEFAULT, "/c.cfg": b'[accel "a0"]\n  accel = "tcg"\n'}
    a = _req(["-readconfig", "/c.cfg", "-set", "accel.a0.accel=kvm"], files)
    assert (a.accels, a.source) == (("kvm",), "-readconfig + -set")
    # -set before the section exists: QEMU 7.2 'there is no accel "a0" defined', no start
    a = _req(["-set", "accel.a0.accel=kvm", "-readconfig", "/c.cfg"], files)
    assert a.accels == () and a.undetermined and 'no accel "a0"' in a.undetermined
    # an [accel] section with -machine accel=: QEMU refuses the mix
    files = {**NO_DEFAULT, "/c.cfg": b'[accel]\n  accel = "tcg"\n'}
    assert _req(["-readconfig", "/c.cfg", "-machine", "accel=kvm"], files).conflict


def test_set_renames_an_accel_option() -> None:
    # issue 18, input 3: tcg,id=a0 becomes kvm, so the list is kvm:tcg
    a = _req(["-accel", "tcg,id=a0", "-accel", "tcg", "-set", "accel.a0.accel=kvm"], NO_DEFAULT)
    assert (a.accels, a.after_kvm, a.source) == (("kvm", "tcg"), ("tcg",), "-accel + -set")
    assert a.tokens == ("-accel", "tcg,id=a0", "-set", "accel.a0.accel=kvm", "-accel", "tcg")
    # other properties leave the name alone; -set machine... is refused by QEMU
    assert _req(["-accel", "tcg,id=a0", "-set", "accel.a0.thread=single"]).accels == ("tcg",)
    a = _req(["-accel", "kvm", "-set", "machine.x.accel=tcg"])
    assert a.undetermined and "not supported with machine" in a.undetermined
    assert _req(["-accel", "kvm", "-set", "accel.a0accel=kvm"]).undetermined  # "can't parse"


def test_default_config_is_read_first_unless_no_user_config() -> None:
    cfg = b'[machine]\n  accel = "kvm:tcg"\n'
    a = _req([], {qemu.DEFAULT_CONFIG: cfg})
    assert (a.accels, a.source) == (("kvm", "tcg"), "default config")
    assert a.tokens == (f'{qemu.DEFAULT_CONFIG}:1: [machine] accel = "kvm:tcg"',)
    assert _req(["-no-user-config"], {qemu.DEFAULT_CONFIG: cfg}).accels == ("tcg",)
    # the command line comes after it
    assert _req(["-enable-kvm"], {qemu.DEFAULT_CONFIG: cfg}).accels == ("kvm",)
    # an [accel] section there comes before every -accel
    cfg = b'[accel]\n  accel = "tcg"\n'
    assert _req(["-accel", "kvm"], {qemu.DEFAULT_CONFIG: cfg}).accels == ("tcg", "kvm")
    # absent: as QEMU, nothing; not looked at (files=None): counted as absent
    assert _req(["-accel", "kvm"], NO_DEFAULT).accels == ("kvm",)
    assert _req(["-accel", "kvm"]).accels == ("kvm",)


def test_unreadable_files_leave_the_request_undetermined_unless_overridden() -> None:
    a = _req(["-accel", "kvm"], {})  # the default config could not be read
    assert a.accels == () and a.decided == "unknown"
    assert a.undetermined == f"{qemu.DEFAULT_CONFIG} could not be read"
    # a later machine writer overrides whatever it said (an [accel] there would be refused)
    assert _req(["-machine", "accel=kvm:tcg"], {}).accels == ("kvm", "tcg")
    assert _req(["-enable-kvm", "-readconfig", "x.cfg"], NO_DEFAULT).undetermined
    assert _req(["-readconfig", "x.cfg", "-enable-kvm"], NO_DEFAULT).accels == ("kvm",)
    # without files a -readconfig file is not known
    a = _req(["-readconfig", "/vm.cfg"])
    assert a.undetermined == "/vm.cfg was not read"
    # a file that is gone now, or does not parse now, changed since QEMU read it
    a = _req(["-readconfig", "/vm.cfg"], {**NO_DEFAULT, "/vm.cfg": None})
    assert a.undetermined == "/vm.cfg no longer exists"
    a = _req(["-readconfig", "/vm.cfg"], {**NO_DEFAULT, "/vm.cfg": b"[machine]\n \n"})
    assert a.undetermined and "line 2: parse error" in a.undetermined
    # -set on an id an unread file may define
    a = _req(["-readconfig", "/vm.cfg", "-set", "accel.a.accel=kvm"], NO_DEFAULT)
    assert a.undetermined and "/vm.cfg" in a.undetermined


@pytest.mark.parametrize(
    ("args", "accels", "dropped"),
    [
        # names are case-sensitive (accel_find): QEMU 7.2 "invalid accelerator KVM"
        (["-machine", "accel=KVM:tcg"], ("tcg",), ("KVM",)),
        (["-accel", "KVM", "-accel", "tcg"], ("tcg",), ("KVM",)),
        (["-accel", "KVM"], (), ("KVM",)),  # QEMU does not start
        (["-machine", "accel=Tcg"], (), ("Tcg",)),
        # ":" is no separator for -accel: "invalid accelerator kvm:tcg"
        (["-accel", "kvm:tcg", "-accel", "tcg"], ("tcg",), ("kvm:tcg",)),
        (["-accel", "kvm:tcg"], (), ("kvm:tcg",)),
        (["-machine", "accel=kvm::tcg"], ("kvm", "tcg"), ()),
    ],
)
def test_names_qemu_does_not_know_are_skipped(
    args: list[str], accels: tuple[str, ...], dropped: tuple[str, ...]
) -> None:
    a = _req(args)
    assert (a.accels, a.dropped) == (accels, dropped)
    assert (a.undetermined is None) == bool(accels)


def test_known_accels_of_the_binary() -> None:
    # xen:kvm:tcg on a build without Xen (Debian 12's qemu-system-x86_64 has kvm and tcg)
    q = parse_qemu_argv([QSYS, "-machine", "accel=xen:kvm:tcg"], known_accels={"kvm", "tcg"})
    assert (q.accel.accels, q.accel.dropped) == (("kvm", "tcg"), ("xen",))
    assert parse_qemu_argv([QSYS, "-machine", "accel=xen:kvm:tcg"]).accel.accels == (
        "xen",
        "kvm",
        "tcg",
    )
    # the default of a build with only one of KVM and TCG (RHEL's qemu-kvm has no TCG)
    assert parse_qemu_argv(["/usr/libexec/qemu-kvm"], known_accels={"kvm"}).accel.accels == ("kvm",)
    assert parse_qemu_argv([QSYS], known_accels={"kvm"}).accel.accels == ("kvm",)
    assert parse_qemu_argv(["/usr/bin/kvm"], known_accels={"tcg"}).accel.accels == ("tcg",)
    assert parse_qemu_argv([QSYS], known_accels=set()).accel.undetermined


def test_default_accelerator_follows_argv0_not_the_executable() -> None:
    # configure_accelerators(argv[0]): exec -a my-kvm qemu-system-x86_64 prefers KVM
    a = parse_qemu_argv(["my-kvm", "-m", "64"]).accel
    assert (a.accels, a.source, a.tokens, a.after_kvm) == (
        ("kvm", "tcg"),
        "binary default",
        ("my-kvm",),
        ("tcg",),
    )


def test_after_kvm() -> None:
    assert AccelRequest(("kvm", "tcg"), "-accel", ()).after_kvm == ("tcg",)
    assert AccelRequest(("kvm",), "-accel", ()).after_kvm == ()
    assert AccelRequest(("tcg", "kvm"), "-accel", ()).after_kvm == ()
    assert AccelRequest(("xen", "kvm", "hvf", "tcg"), "-accel", ()).after_kvm == ("hvf", "tcg")
    assert AccelRequest((), "unknown", ()).after_kvm == ()


def test_privilege_and_root_options() -> None:
    q = parse_qemu_argv([QSYS, "-runas", "qemu", "-chroot", "/var/empty", "-daemonize"])
    assert (q.runas, q.chroot, q.daemonize) == ("qemu", "/var/empty", True)
    q = parse_qemu_argv([QSYS, "-run-with", "user=qemu,chroot=/srv"])
    assert (q.runas, q.chroot, q.daemonize) == ("qemu", "/srv", False)
    q = parse_qemu_argv([QSYS, "-name", "-runas"])
    assert q.runas is None


def test_config_files() -> None:
    assert qemu.config_files([QSYS]) == (qemu.DEFAULT_CONFIG,)
    assert qemu.config_files([QSYS, "-readconfig", "a", "-nodefconfig", "-readconfig", "b"]) == (
        "a",
        "b",
    )
    assert qemu.config_files([QSYS, "-name", "-no-user-config"]) == (qemu.DEFAULT_CONFIG,)
    q = parse_qemu_argv([QSYS, "-no-user-config", "-readconfig", "/x"], files={"/x": b""})
    assert q.config_files == ("/x",) and q.accel.accels == ("tcg",)


# The config file format, as qemu_config_foreach() reads it (each quirk checked on QEMU 7.2).


def test_config_sections_ids_and_last_key_wins() -> None:
    c = qemu.parse_qemu_config(
        b'[machine]\n  accel = "kvm"\n  accel = "tcg"\n\n#x\n[accel "a0"]\naccel = "kvm"\n'
    )
    assert c.error is None
    assert [(s.group, s.get("accel"), s.get("id"), s.line) for s in c.sections] == [
        ("machine", "tcg", None, 1),
        ("accel", "kvm", "a0", 6),
    ]


@pytest.mark.parametrize(
    ("text", "items"),
    [
        (b'[machine]\naccel = "kvm"', (("accel", "kvm"),)),  # no final newline
        (b"[machine]\naccel = kvm\n", (("accel", ""),)),  # QEMU: "no accelerator found"
        (b'[machine]\naccel="kvm"\n', (('accel="kvm"', ""),)),  # QEMU: Property not found
        (b'[machine]\naccel = ""\n', (("accel", ""),)),
        (b'[machine]\n\t accel\t=\t"k v"  trailing\n', (("accel", "k v"),)),
        (b'[machine]\naccel = "kvm\n', (("accel", "kvm\n"),)),  # unclosed quote
        (b"[machine]\n[]x\n", (("[]x", ""),)),  # not a header: a key
    ],
)
def test_config_key_lines(text: bytes, items: tuple[tuple[str, str], ...]) -> None:
    c = qemu.parse_qemu_config(text)
    assert c.error is None
    assert c.sections[0].items == items


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (b"[machine]\n   \n", "line 2: parse error"),  # QEMU 7.2: "c.cfg:2: parse error"
        (b"[machine]\r\n\r\n", "line 2: parse error"),
        (b'accel = "kvm"\n', "line 1: no group defined"),
        (b"  # indented comment\n", "line 1: no group defined"),
        (b"[machine]\n\x00\n", "line 2: parse error"),
    ],
)
def test_config_errors(text: bytes, error: str) -> None:
    assert qemu.parse_qemu_config(text).error == error


def test_config_headers_as_sscanf_reads_them() -> None:
    c = qemu.parse_qemu_config(b'[ machine ]\n[accel  "my id" ]\n[machine]x\n[m\n')
    assert [(s.group, s.get("id")) for s in c.sections] == [
        (" machine ", None),  # %63[^]] keeps the spaces: QEMU finds no such group
        ("accel", "my id"),
        ("machine", None),
        ("m\n", None),
    ]
    # the last section is handed on under whatever the last "[" line scanned into `group`:
    # a "[]..." line inside it is a key line, but its %63s clobbered the name
    c = qemu.parse_qemu_config(b'[machine]\naccel = "kvm"\n[]z\n')
    assert [(s.group, s.items) for s in c.sections] == [("]z", (("accel", "kvm"), ("[]z", "")))]
    long_group = b"[" + b"g" * 70 + b"]\n"
    assert qemu.parse_qemu_config(long_group).sections[0].group == "g" * 63


def test_config_long_lines_are_read_in_fgets_pieces() -> None:
    # fgets(line, 1024): a 1100-byte line is two lines; the second is "word" -> key, value ""
    text = b'[machine]\naccel = "' + b"k" * 1100 + b'"\n'
    c = qemu.parse_qemu_config(text)
    assert c.error is None
    ((k1, v1), (k2, v2)) = c.sections[0].items
    assert (k1, len(v1)) == ("accel", 1023 - len('accel = "'))
    assert (k2, v2) == ("k" * 63, "")
    assert qemu.parse_qemu_config('[machine]\naccel = "é"\n').sections[0].get("accel") == "é"


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_parse_qemu_config_never_raises(data: bytes | str) -> None:
    c = qemu.parse_qemu_config(data)
    assert c.error is None or isinstance(c.error, str)
    files = {qemu.DEFAULT_CONFIG: data, "/r": data}
    a = parse_qemu_argv([QSYS, "-readconfig", "/r", "-set", "accel.a.accel=kvm"], files=files)
    assert isinstance(a.accel.decided, str)


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------


def test_from_proc_cmdline() -> None:
    raw = b"/usr/libexec/qemu-kvm\x00-name\x00guest=vm1,debug-threads=on\x00-S\x00"
    assert from_proc_cmdline(raw) == [
        "/usr/libexec/qemu-kvm",
        "-name",
        "guest=vm1,debug-threads=on",
        "-S",
    ]
    assert from_proc_cmdline(b"") == []
    assert from_proc_cmdline(b"qemu\x00-append\x00\x00-S\x00") == ["qemu", "-append", "", "-S"]
    assert from_proc_cmdline(b"kvm\x00\xff\xfe\x00") == ["kvm", "\ufffd\ufffd"]
    assert from_proc_cmdline(b"no-trailing-nul") == ["no-trailing-nul"]


@pytest.mark.parametrize(
    "path",
    [
        "/usr/bin/qemu-system-x86_64",
        "qemu-system-aarch64",
        "qemu-system-x86",  # comm, truncated to 15 characters
        "/usr/bin/qemu-system-x86_64 (deleted)",
        "/usr/libexec/qemu-kvm",
        "qemu-kvm",
        "/usr/bin/kvm",
        "kvm",
        "/usr/bin/qemu",
    ],
)
def test_is_qemu_binary_true(path: str) -> None:
    assert is_qemu_binary(path)


@pytest.mark.parametrize(
    "path",
    [
        "qemu-img",
        "/usr/bin/qemu-nbd",
        "qemu-ga",
        "/usr/bin/qemu-storage-daemon",
        "qemu-io",
        "/usr/libexec/qemu-pr-helper",
        "qemu-x86_64",
        "qemu-arm-static",
        "kvm-ok",
        "kvm-pit/1234",
        "qemu-system-",
        "libvirtd",
        "",
    ],
)
def test_is_qemu_binary_false(path: str) -> None:
    assert not is_qemu_binary(path)


def test_module_doctests() -> None:
    result = doctest.testmod(qemu)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------------------------
# Garbage never raises
# --------------------------------------------------------------------------------------------

_OPTION_TOKENS = st.sampled_from(
    [
        "-accel",
        "--accel",
        "-machine",
        "-M",
        "-enable-kvm",
        "-no-kvm",
        "-name",
        "-uuid",
        "-S",
        "-cpu",
        "kvm",
        "tcg",
        "accel=kvm:tcg",
        "guest=a,,b,debug-threads=on",
        ",,",
        "=",
        ",",
        "-",
        "--",
        "",
    ]
)


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(st.text(), _OPTION_TOKENS), max_size=30))
def test_parse_qemu_argv_never_raises(argv: list[str]) -> None:
    q = parse_qemu_argv(argv)
    assert isinstance(q.accel.decided, str)
    assert isinstance(q.accel.source, str)
    assert isinstance(q.accel.wants_kvm, bool)


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_text_helpers_never_raise(text: str) -> None:
    argv = text.split()
    assert all(isinstance(a, str) for a in argv)
    assert isinstance(is_qemu_binary(text), bool)
    assert isinstance(parse_qemu_argv(argv).accel.decided, str)


@settings(max_examples=2000, deadline=None)
@given(st.binary())
def test_from_proc_cmdline_never_raises(raw: bytes) -> None:
    argv = from_proc_cmdline(raw)
    assert all(isinstance(a, str) for a in argv)
    assert isinstance(parse_qemu_argv(argv).accel.decided, str)


def test_huge_and_control_inputs() -> None:
    huge = "-accel " * 200_000 + "kvm"
    assert isinstance(parse_qemu_argv(huge.split()).accel.decided, str)
    big = ["/usr/bin/qemu-kvm", "-name", "guest=" + "y" * 500_000, "-accel", "kvm"]
    q = parse_qemu_argv(big)
    assert (q.binary, q.name, q.accel.decided) == ("/usr/bin/qemu-kvm", "y" * 500_000, "kvm")
    hostile = parse_qemu_argv(["\x00", "-accel", "\x00kvm\x1b"]).accel
    assert (hostile.decided, hostile.dropped) == ("unknown", ("\x00kvm\x1b",))
    assert hostile.tokens == ("-accel", "\x00kvm\x1b")
    assert from_proc_cmdline(None) == []  # type: ignore[arg-type]
    assert parse_qemu_argv(None).accel.decided == "unknown"  # type: ignore[arg-type]
    assert is_qemu_binary(None) is False  # type: ignore[arg-type]
