"""The CLI contract: exit codes, formats, selection, timeout, JSON keys (../shared/DESIGN.md)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from snap import healthy_host, make_snapshot, run_hvcheck, run_json

REQUIRED_TOP = {
    "schema_version",
    "tool",
    "generated_at",
    "status",
    "exit_code",
    "host",
    "verdict",
    "checks",
    "instances",
}


@pytest.fixture()
def healthy(tmp_path: Path) -> Path:
    return healthy_host(tmp_path / "snap")


def test_json_document_has_every_required_key(healthy: Path) -> None:
    rc, doc = run_json("--root", str(healthy))
    assert doc.keys() >= REQUIRED_TOP
    assert doc["schema_version"] == 1
    assert doc["tool"] == {"name": "hvcheck", "version": "0.1.0"}
    assert {"hostname", "arch", "kernel", "os", "virtual"} <= doc["host"].keys()
    assert {"kvm_usable", "acceleration", "virt_type", "summary"} <= doc["verdict"].keys()
    for c in doc["checks"]:
        assert {"id", "status", "summary", "hint", "details"} <= c.keys()
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", c["id"]), c["id"]
    assert doc["status"] == "OK" and rc == 0 and doc["exit_code"] == 0
    assert doc["verdict"]["kvm_usable"] is True
    assert doc["host"]["hostname"] == "compute-1" and doc["host"]["os"].startswith("Ubuntu")


def test_nagios_line_and_exit_code_agree_with_json(healthy: Path) -> None:
    p = run_hvcheck("--root", str(healthy), "--format", "nagios")
    first = p.stdout.splitlines()[0]
    m = re.fullmatch(r"HVCHECK (OK|WARNING|CRITICAL|UNKNOWN) - ([^|]+) \| (.+)", first)
    assert m, first
    assert p.returncode == {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}[m.group(1)]
    perf = dict(re.findall(r"'([a-z_]+)'=(\d+)", m.group(3)))
    assert {"instances", "kvm_instances", "tcg_instances"} <= perf.keys()
    rc, _ = run_json("--root", str(healthy))
    t = run_hvcheck("--root", str(healthy), "--format", "table")
    assert rc == p.returncode == t.returncode
    assert "KVM usable: yes" in t.stdout


@pytest.mark.parametrize("fmt", ["table", "json", "nagios"])
@pytest.mark.parametrize(
    "bad", [["--format", "xml"], ["--no-such-option"], ["--timeout", "x"], ["--only"]]
)
def test_usage_errors_exit_3_in_every_format(fmt: str, bad: list[str]) -> None:
    p = run_hvcheck("--format", fmt, *bad) if bad[0] != "--format" else run_hvcheck(*bad)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "Traceback" not in p.stdout + p.stderr


def test_root_without_marker_or_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    for root in (tmp_path, tmp_path / "nope"):
        p = run_hvcheck("--root", str(root), "--format", "nagios")
        assert p.returncode == 3
        assert p.stdout.startswith("HVCHECK UNKNOWN - ")
    rc, doc = run_json("--root", str(tmp_path))
    assert rc == 3 and doc["status"] == "UNKNOWN" and "marker" in doc["verdict"]["summary"]


def test_version_and_help() -> None:
    v = run_hvcheck("-V")
    assert v.returncode == 0 and "0.1.0" in v.stdout
    h = run_hvcheck("--help")
    assert h.returncode == 0 and "--timeout" in h.stdout and "0 OK, 1 WARNING" in h.stdout


def test_only_and_skip_select_by_id_and_prefix(healthy: Path) -> None:
    _, doc = run_json("--root", str(healthy), "--only", "kvm")
    assert {c["id"] for c in doc["checks"]} == {
        "kvm.device",
        "kvm.modules",
        "kvm.vhost",
        "kvm.kernel_log",
    }
    _, doc = run_json("--root", str(healthy), "--only", "cpu.arch", "--only", "kvm.device")
    assert [c["id"] for c in doc["checks"]] == ["cpu.arch", "kvm.device"]
    _, doc = run_json("--root", str(healthy), "--skip", "kvm", "--skip", "host.os")
    ids = {c["id"] for c in doc["checks"]}
    assert not any(i.startswith("kvm.") for i in ids) and "host.os" not in ids and ids


def test_checks_lists_ids_titles_and_reads() -> None:
    p = run_hvcheck("checks")
    assert p.returncode == 0
    for cid in (
        "cpu.arch",
        "cpu.virt_ext",
        "host.virtual",
        "firmware.virt",
        "kvm.modules",
        "kvm.device",
        "nested.runtime",
        "host.os",
    ):
        assert cid in p.stdout
    assert "reads /proc/cpuinfo" in p.stdout
    j = json.loads(run_hvcheck("--json", "checks").stdout)
    assert all(c["reads"] for c in j if c["id"].startswith("kvm."))


def test_worst_state_orders_critical_above_unknown(tmp_path: Path) -> None:
    # /dev/kvm missing (CRITICAL) and the kernel log unreadable (UNKNOWN): CRITICAL wins.
    root = healthy_host(
        tmp_path / "s",
        devices={},
        probes={"kvm": {"ok": False, "stage": "open", "errno": "ENOENT"}, "kmsg_error": "EPERM"},
    )
    (root / "dev" / "kmsg").unlink()
    # no vendor module loaded: nothing proves the firmware allows VT-x, so that is UNKNOWN
    (root / "proc" / "modules").write_text("kvm 1146880 0 - Live 0x0000000000000000\n")
    shutil.rmtree(root / "sys/module/kvm_intel")
    rc, doc = run_json("--root", str(root))
    states = {c["id"]: c["status"] for c in doc["checks"]}
    assert states["kvm.device"] == "CRITICAL"
    assert states["firmware.virt"] == "UNKNOWN"
    assert rc == 2 and doc["status"] == "CRITICAL"


def test_live_run_is_bounded_by_timeout() -> None:
    t0 = time.monotonic()
    p = run_hvcheck("--format", "nagios", "-t", "2")
    assert time.monotonic() - t0 < 2 + 3  # interpreter start-up on a loaded CI box
    assert p.returncode in (0, 1, 2, 3) and p.stdout.startswith("HVCHECK ")


def test_garbage_snapshot_files_give_no_traceback(tmp_path: Path) -> None:
    root = make_snapshot(
        tmp_path / "g",
        {
            "proc/cpuinfo": b"\xff\xfe\x00garbage\x1b[31m",
            "proc/modules": b"\x00\x00\x00",
            "etc/os-release": b"\xff" * 100,
            "sys/module/kvm_intel/parameters/nested": b"maybe",
            "etc/modprobe.d/x.conf": b"options kvm_intel nested=\xff\n",
            "dev/kmsg": b"\xff\xff;\n",
        },
        {"devices": {"/dev/kvm": {"type": "char", "major": "x"}}, "probes": {"kvm": "bogus"}},
    )
    for fmt in ("json", "nagios", "table"):
        p = run_hvcheck("--root", str(root), "--format", fmt)
        assert "Traceback" not in p.stdout + p.stderr
        assert p.returncode in (0, 1, 2, 3)


def test_ranges_starting_with_a_minus_are_values_not_options() -> None:
    from hvcheck.cli import UsageError, parse_args

    ns = parse_args(["--format", "nagios", "-w", "-10:20", "--critical", "-5:3"])
    assert (ns.warn_range.start, ns.warn_range.end) == (-10, 20)
    assert (ns.crit_range.start, ns.crit_range.end) == (-5, 3)
    assert parse_args(["--warning=-1:2"]).warn_range.start == -1
    with pytest.raises(UsageError):
        parse_args(["-w", "--bogus"])
    with pytest.raises(UsageError):  # no abbreviations: a renamed option must not half-match
        parse_args(["--form", "json"])


# ------------------------------------------------------------------------------------------
# click: usage errors exit 3 in the requested format, typos name the right spelling
# ------------------------------------------------------------------------------------------
def _schema() -> dict[str, object]:
    from hvcheck.cli import schema_text

    return json.loads(schema_text())  # type: ignore[no-any-return]


def test_mistyped_option_names_the_right_one_and_exits_3() -> None:
    p = run_hvcheck("--formt", "nagios")
    assert p.returncode == 3, (p.stdout, p.stderr)
    # a Nagios command line with a typo still answers with a Nagios line
    assert re.fullmatch(r"HVCHECK UNKNOWN - usage error: [^|\n]+\n", p.stdout), p.stdout
    # click's suggestion: "Did you mean --format?" (8.1, one near option), "(Possible options:
    # --format, --root)" (8.1, several), "(Did you mean one of: '--format', '--root'?)" (8.2+)
    near = r"(did you mean|possible options)[^|\n]*--{}"
    assert "No such option" in p.stdout and "--formt" in p.stdout
    assert re.search(near.format("format"), p.stdout, re.I), p.stdout
    t = run_hvcheck("--timout", "3")
    assert t.returncode == 3 and t.stdout == ""
    assert re.search(near.format("timeout"), t.stderr, re.I), t.stderr
    assert "Usage: hvcheck" in t.stderr and "Traceback" not in t.stderr


def test_mistyped_format_names_the_valid_choices() -> None:
    from hvcheck.report import FORMATS

    p = run_hvcheck("--format", "nagois")
    assert p.returncode == 3 and p.stdout == ""
    assert "--format" in p.stderr and "'nagois'" in p.stderr
    for fmt in FORMATS:
        assert fmt in p.stderr, fmt


@pytest.mark.parametrize(
    ("args", "named", "near"),
    [
        (["--only", "kvmm"], "--only", "kvm"),
        (["--only", "kvm.devcie"], "--only", "kvm.device"),
        (["--only", "cpu.arch", "--only", "nova.ap"], "--only", "nova.api"),
        (["--skip", "intances"], "--skip", "instances"),
        (["--only", "zzzz"], "--only", "hvcheck checks"),
    ],
)
def test_a_selector_that_selects_no_check_is_a_usage_error(
    healthy: Path, args: list[str], named: str, near: str
) -> None:
    # a typo in --only must never give a green probe: exit 3 naming the nearest ids
    t = run_hvcheck("--root", str(healthy), *args)
    assert t.returncode == 3 and t.stdout == "", t.stdout
    assert named in t.stderr and args[-1] in t.stderr and near in t.stderr, t.stderr
    n = run_hvcheck("--root", str(healthy), "--format", "nagios", *args)
    assert n.returncode == 3
    assert n.stdout.startswith("HVCHECK UNKNOWN - usage error: ") and near in n.stdout
    assert "|" not in n.stdout  # nothing was measured: no perfdata
    rc, doc = run_json("--root", str(healthy), *args)
    assert rc == 3 and doc["status"] == "UNKNOWN" and doc["exit_code"] == 3
    assert named in doc["error"] and near in doc["error"] and doc["checks"] == []


def test_selectors_that_select_a_check_still_run(healthy: Path) -> None:
    for args in (["--only", "kvm."], ["--only", "nova.api"], ["--skip", "nova"]):
        rc, doc = run_json("--root", str(healthy), "--no-api", *args)
        assert rc in (0, 1, 2) and doc["checks"] and "error" not in doc, args


@pytest.mark.parametrize(
    "bad",
    [
        ["--bogus"],
        ["--timeout", "0.05"],
        ["--timeout", "nan"],
        ["--only"],
        ["-c", "5:1"],
        ["nagioss"],
        ["value"],
        ["value", "instance_accel"],
        ["report"],
    ],
)
def test_usage_errors_in_json_and_nagios_keep_their_format(bad: list[str]) -> None:
    j = run_hvcheck("--json", *bad)
    assert j.returncode == 3, (j.stdout, j.stderr)
    doc = json.loads(j.stdout)
    import jsonschema

    jsonschema.validate(doc, _schema())
    assert doc["status"] == "UNKNOWN" and doc["exit_code"] == 3
    assert doc["error"].startswith("usage error: ")
    assert doc["verdict"] == {
        "kvm_usable": None,
        "kvm_usable_reason": doc["error"],
        "acceleration": "unknown",
        "virt_type": None,
        "summary": doc["error"],
    }
    assert doc["host"] == {"hostname": "", "arch": "", "kernel": "", "os": "", "virtual": None}
    assert doc["checks"] == [] and doc["instances"] == []
    n = run_hvcheck("--format", "nagios", *bad)
    assert n.returncode == 3
    assert re.fullmatch(r"HVCHECK UNKNOWN - usage error: [^|\n]+\n", n.stdout), n.stdout
    t = run_hvcheck(*bad)
    assert t.returncode == 3 and t.stdout == "" and "Error: " in t.stderr
    assert "Traceback" not in j.stderr + n.stderr + t.stderr


def test_help_says_a_full_answer_needs_root_and_shows_completion() -> None:
    h = run_hvcheck("--help")
    assert h.returncode == 0
    assert "Run as root for a full answer" in h.stdout and "/dev/kvm" in h.stdout
    assert "_HVCHECK_COMPLETE=bash_source hvcheck" in h.stdout
    for cmd in ("checks", "collect", "schema", "value", "report"):
        assert re.search(rf"^\s+{cmd}\s", h.stdout, re.M), cmd
        sub = run_hvcheck(cmd, "-h")
        assert sub.returncode == 0 and f"Usage: hvcheck {cmd}" in sub.stdout


def test_defaults_come_from_the_model_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from hvcheck.cli import parse_args
    from hvcheck.model import DEFAULT_TIMEOUT

    monkeypatch.delenv("OS_CACERT", raising=False)
    ns = parse_args([])
    assert ns.timeout == DEFAULT_TIMEOUT and ns.command is None and ns.os_cacert is None
    assert (ns.fmt, ns.as_json, ns.only, ns.skip) == (None, False, (), ())
    monkeypatch.setenv("OS_CACERT", "/etc/ca.pem")
    assert parse_args([]).os_cacert == "/etc/ca.pem"
    assert parse_args(["--os-cacert", "/x.pem"]).os_cacert == "/x.pem"
    monkeypatch.setenv("OS_CACERT", "")
    assert parse_args([]).os_cacert is None


def test_parse_args_reads_subcommands() -> None:
    from hvcheck.cli import UsageError, parse_args

    ns = parse_args(["--json", "-t", "3", "report", "a.json", "b.json"])
    assert (ns.command, ns.as_json, ns.timeout, ns.files) == (
        "report",
        True,
        3.0,
        ("a.json", "b.json"),
    )
    ns = parse_args(["--root", "/s", "value", "instance_accel", "instance-0000000a"])
    assert (ns.command, ns.root, ns.item, ns.arg) == (
        "value",
        "/s",
        "instance_accel",
        "instance-0000000a",
    )
    assert parse_args(["collect", "-o", "x.tar.gz"]).output == "x.tar.gz"
    for bad in (
        ["value", "instance_accel"],
        ["value", "bogus"],
        ["report"],
        ["collect", "--root", "/s"],  # group options go before the command
        ["-t", "0"],
    ):
        with pytest.raises(UsageError):
            parse_args(bad)


# ------------------------------------------------------------------------------------------
# shell completion (click's _HVCHECK_COMPLETE)
# ------------------------------------------------------------------------------------------
def _complete(words: str, cword: int, shell: str = "bash") -> list[str]:
    p = run_hvcheck(
        env={
            "_HVCHECK_COMPLETE": f"{shell}_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        }
    )
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p.stdout.splitlines()


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    p = run_hvcheck(env={"_HVCHECK_COMPLETE": f"{shell}_source"})
    assert p.returncode == 0, p.stderr
    assert "_HVCHECK_COMPLETE=" in p.stdout and f"{shell}_complete" in p.stdout
    if shell == "bash":
        assert "complete -o nosort -F _hvcheck_completion hvcheck" in p.stdout
        bash = shutil.which("bash")
        if bash:  # the script is valid bash
            import subprocess

            check = subprocess.run([bash, "-n"], input=p.stdout, text=True, capture_output=True)
            assert check.returncode == 0, check.stderr


def test_check_ids_formats_and_commands_complete() -> None:
    from hvcheck import engine

    ids = {lc.id for lc in engine.load_checks()}
    kvm = {i for i in ids if i.startswith("kvm")}
    assert kvm >= {"kvm.device", "kvm.modules", "kvm.vhost"}
    got = _complete("hvcheck --only kv", 2)
    assert set(got) == {f"plain,{i}" for i in kvm | {"kvm"}}, got
    got = _complete("hvcheck --format nagios --skip nova.", 4)
    assert {g.split(",", 1)[1] for g in got} == {i for i in ids if i.startswith("nova.")}
    from hvcheck.report import FORMATS

    assert _complete("hvcheck --format ", 2) == [f"plain,{f}" for f in FORMATS]
    assert set(_complete("hvcheck c", 1)) == {"plain,checks", "plain,collect"}
    assert _complete("hvcheck value instance_", 2) == ["plain,instance_accel"]


# ------------------------------------------------------------------------------------------
# the CLI holds no logic: Verdict.failed rendered by report.render
# ------------------------------------------------------------------------------------------
def test_failed_verdict_renders_in_every_format() -> None:
    import io

    import jsonschema

    from hvcheck import report
    from hvcheck.model import Verdict

    v = Verdict.failed("cannot read\nthe snapshot | \x1b[31mx")
    assert v.status.label == "UNKNOWN" and v.exit_code == 3 and v.results == ()
    assert v.kvm_usable is None and v.acceleration == "unknown" and v.host.hostname == ""
    assert v.error == v.summary == v.kvm_usable_reason == "cannot read the snapshot | \x1b[31mx"
    out = io.StringIO()
    report.render(v, "json", stream=out)
    doc = json.loads(out.getvalue())
    jsonschema.validate(doc, _schema())
    assert doc["error"] == v.error and doc["status"] == "UNKNOWN" and doc["exit_code"] == 3
    assert "counts" not in doc  # nothing was counted
    out = io.StringIO()
    report.render(v, "nagios", stream=out)
    assert out.getvalue() == "HVCHECK UNKNOWN - cannot read the snapshot ¦ \\x1b[31mx\n"
    for fmt in ("table", "prometheus", "zabbix-discovery"):
        out, err = io.StringIO(), io.StringIO()
        report.render(v, fmt, stream=out, errors=err)
        assert (
            out.getvalue() == ""
            and err.getvalue() == "hvcheck: cannot read the snapshot | \\x1b[31mx\n"
        )
    for verdict in (v, v._replace(error=None)):
        with pytest.raises(ValueError, match="unknown format"):
            report.render(verdict, "xml", stream=io.StringIO())


@pytest.mark.parametrize(
    ("exc", "said"),
    [
        (KeyboardInterrupt(), "interrupted"),
        (RuntimeError("boom"), "internal error: RuntimeError: boom"),
    ],
)
def test_interrupts_and_internal_errors_exit_3_not_clicks_1(
    healthy: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    said: str,
) -> None:
    from hvcheck import cli, engine

    def broken(*a: object, **k: object) -> None:
        raise exc

    monkeypatch.setattr(engine, "run", broken)
    monkeypatch.delenv("HVCHECK_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["--root", str(healthy), "--format", "nagios"])
    assert e.value.code == 3
    assert capsys.readouterr().out == f"HVCHECK UNKNOWN - {said}" + (
        " (set HVCHECK_DEBUG=1 for details)\n" if "internal" in said else "\n"
    )
    with pytest.raises(SystemExit) as e:
        cli.main(["--root", str(healthy), "--json"])
    assert e.value.code == 3 and json.loads(capsys.readouterr().out)["error"].startswith(said)


@pytest.mark.parametrize("fmt", ["nagios", "json"])
def test_a_closed_pipe_keeps_the_verdicts_exit_code(healthy: Path, fmt: str) -> None:
    # issue 14: EPIPE ends quietly with the verdict's code (OK here), not 3 or click's 1
    # (more cases, every format and a full device: tests/test_output_channels.py)
    import subprocess
    import sys

    p = subprocess.Popen(
        [sys.executable, "-m", "hvcheck", "--root", str(healthy), "--format", fmt],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # before the interpreter has even started: the first write fails
    err = p.stderr.read().decode()
    assert p.wait(60) == 0 and err == "", err


@pytest.mark.parametrize("fmt", ["nagios", "json"])
def test_probe_paths_import_no_rich(healthy: Path, fmt: str) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hvcheck.cli import main\n"
        "try:\n"
        f"    main(['--root', {str(healthy)!r}, '--format', {fmt!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "rich = sorted(m for m in sys.modules if m.startswith('rich'))\n"
        "sys.stderr.write('IMPORTED ' + ' '.join(rich))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stderr.strip() == "IMPORTED", p.stderr
    assert p.stdout.startswith("HVCHECK OK" if fmt == "nagios" else "{")


# Modules that load only where there is something for them to read (issue 11: each import
# only on the path that needs it): the parsers of nova's config and of libvirt's domain XML
# (a nova config, a QEMU process's domain XML file), the trust rules (a QEMU or service
# process to judge), the guest-side parsers (`hvcheck guest`) and the Nagios range parser (a
# threshold: -w/-c, or nova's virt_type=kvm making any TCG instance CRITICAL), and the udev
# rules parser (a node its user cannot open, where udev may run).
_NOVA_AND_DOMAIN_PARSERS = (
    "hvcheck.parsers.novaconf",
    "hvcheck.parsers.nova_schema",
    "hvcheck.parsers.libvirt_xml",
)
_ON_DEMAND = (
    *_NOVA_AND_DOMAIN_PARSERS,
    "hvcheck.trust",
    "hvcheck.parsers.guest",
    "hvcheck.nagrange",
    "hvcheck.parsers.udev",
)


@pytest.mark.parametrize(
    ("fixture", "command", "loaded"),
    [
        ("intel-sgx-disabled-kvm-ok", (), ()),  # no nova config, no QEMU or service process
        # its libvirtd's user is judged, and cannot open /dev/kvm 0600 (udev's view not
        # recorded: the rules are read)
        ("own-machine-kvm-pvm", (), ("hvcheck.trust", "hvcheck.parsers.udev")),
        # QEMU processes without a libvirt domain XML file: nothing for the XML parser
        ("live-qemu-kvm-tcg-fallback", (), ("hvcheck.trust", "hvcheck.parsers.udev")),
        (
            "nova-kvm-all-instances-kvm",
            (),
            (*_NOVA_AND_DOMAIN_PARSERS, "hvcheck.trust", "hvcheck.nagrange"),
        ),
        ("guest-kvm-openstack-nested", ("guest",), ("hvcheck.parsers.guest",)),
    ],
)
def test_parsers_and_trust_rules_load_only_where_needed(
    fixture: str, command: tuple[str, ...], loaded: tuple[str, ...]
) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent / "fixtures" / fixture
    code = (
        "import sys\n"
        "from hvcheck.cli import main\n"
        "try:\n"
        f"    main([*{command!r}, '--root', {str(root)!r}, '--format', 'nagios'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"mods = [m for m in {_ON_DEMAND!r} if m in sys.modules]\n"
        "sys.stderr.write('IMPORTED ' + ' '.join(mods))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.startswith("HVCHECK "), (p.stdout, p.stderr)
    expected = " ".join(m for m in _ON_DEMAND if m in loaded)
    assert p.stderr.strip() == f"IMPORTED {expected}".strip(), p.stderr


def test_only_and_skip_that_together_select_nothing_are_a_usage_error(tmp_path: Path) -> None:
    # "an id that selects no check is a usage error ... so a typo never makes a green probe":
    # `--only kvm --skip kvm` runs zero checks and printed "HVCHECK OK" with exit 0
    root = healthy_host(tmp_path / "s")
    p = run_hvcheck("--root", str(root), "--format", "nagios", "--only", "kvm", "--skip", "kvm")
    assert p.returncode == 3, p.stdout
    assert p.stdout.startswith("HVCHECK UNKNOWN"), p.stdout


def test_group_selectors_are_not_silently_ignored_by_value(tmp_path: Path) -> None:
    # `hvcheck --only kvm.devic value status` printed a status and exited 0: a typo in a
    # Zabbix UserParameter is accepted without a word (and a valid --skip is ignored)
    root = healthy_host(tmp_path / "s")
    p = run_hvcheck("--root", str(root), "--only", "kvm.devic", "value", "status")
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert "'kvm.devic' selects no check; did you mean kvm.device" in p.stderr, p.stderr


PVM_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "own-machine-kvm-pvm"


@pytest.mark.parametrize(
    "selection",
    [
        (),
        ("--skip", "kvm.modules", "--skip", "kvm.vhost", "--skip", "libvirt.qemu_user"),
        ("--only", "kvm.modules"),
    ],
)
def test_value_status_is_the_probes_status_for_the_same_selection(
    selection: tuple[str, ...],
) -> None:
    """`hvcheck value status` (a Zabbix item) answers what the Nagios probe with the same
    --only/--skip answers: the group's selection counts for both (it was dropped by `value`)."""
    root = str(PVM_FIXTURE)
    probe = run_hvcheck("--root", root, *selection, "--format", "nagios")
    value = run_hvcheck("--root", root, *selection, "value", "status")
    assert value.returncode == 0, value.stderr
    assert value.stdout.strip() == str(probe.returncode), (value.stdout, probe.stdout)
    assert probe.returncode == (1 if selection[:1] != ("--skip",) else 0), probe.stdout


@pytest.mark.parametrize("command", [("checks",), ("schema",), ("collect",), ("guest",)])
def test_run_options_given_to_a_command_that_runs_no_check_are_refused(
    command: tuple[str, ...],
) -> None:
    """--only/--skip/-w/-c select and judge a run of the checks: a command that runs none
    refuses them (exit 3, naming them) rather than drop them without a word."""
    p = run_hvcheck("--only", "kvm", "-w", "1", *command)
    assert p.returncode == 3, (p.returncode, p.stdout, p.stderr)
    assert "--only/-w apply to a run of the checks" in p.stderr, p.stderr
    assert f"not to `hvcheck {command[0]}`" in p.stderr, p.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        # two formats at once: one is not silently preferred
        (("--json", "--format", "nagios"), "--json is --format json: it contradicts --format"),
        # ids are lower case: an upper-case one is still near its id
        (("--only", "KVM", "--format", "nagios"), "'KVM' selects no check; did you mean kvm?"),
        # the fleet view has a table and a JSON document, no Nagios line
        (("--format", "nagios", "report", "x.json"), "hvcheck report prints table or json"),
        (("guest", "--json", "--format", "nagios"), "--json is --format json: it contradicts"),
        # a bare value for Zabbix: a format would be silently dropped
        (("--format", "nagios", "value", "status"), "`hvcheck value` prints one bare value"),
        (("--json", "value", "status"), "`hvcheck value` prints one bare value"),
    ],
)
def test_contradictory_or_unsupported_options_are_usage_errors(
    args: tuple[str, ...], said: str
) -> None:
    p = run_hvcheck(*args)
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert said in p.stdout + p.stderr, (p.stdout, p.stderr)
