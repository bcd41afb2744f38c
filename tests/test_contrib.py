"""The integration files under contrib/ agree with each other and with the CLI.

- every command line that Nagios, Icinga 2 and the Zabbix agent run is allowed verbatim by
  contrib/sudoers.d/hvcheck, and nothing dangerous is (sudoers matching as sudo does it);
- every such command line parses with the real CLI parser, so renamed options show up here;
- the Zabbix template uses only keys the UserParameter file defines, its triggers only keys of
  the template, its UUIDs are unique UUIDv4 (Zabbix refuses anything else), its LLD macros are
  the ones `hvcheck --format zabbix-discovery` prints;
- the textfile-collector unit treats exit 1-3 as success and replaces the .prom file
  atomically (its shell script is run here against a fake hvcheck);
- external validators (visudo, zabbix_agentd, systemd-analyze, ansible-playbook) when present;
  visudo is required when CI is set.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from snap import PROJECT, run_hvcheck

CONTRIB = PROJECT / "contrib"
HVCHECK = "/usr/local/bin/hvcheck"
SUDOERS = CONTRIB / "sudoers.d" / "hvcheck"
NAGIOS = CONTRIB / "nagios" / "hvcheck.cfg"
ICINGA = CONTRIB / "icinga2" / "hvcheck.conf"
USERPARAMS = CONTRIB / "zabbix" / "userparameter_hvcheck.conf"
TEMPLATE = CONTRIB / "zabbix" / "template_hvcheck.yaml"
UNIT = CONTRIB / "systemd" / "hvcheck-textfile.service"
TIMER = CONTRIB / "systemd" / "hvcheck-textfile.timer"
PLAYBOOK = CONTRIB / "ansible" / "hvcheck.yml"
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
FIXTURE = PROJECT / "fixtures" / "nova-kvm-tcg-instance"
SAMPLE_INSTANCE = "instance-0000000a"
ACCEL_VALUES = {"kvm", "tcg", "unknown", "absent"}
UUID4 = re.compile(r"[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}")


# ------------------------------------------------------------------------------------------
# sudoers, as sudo matches it
# ------------------------------------------------------------------------------------------
def _logical_lines(text: str) -> Iterator[str]:
    """Lines with backslash continuations joined and comments dropped."""
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not buf and line.lstrip().startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            yield buf.strip()
        buf = ""


def _sudoers_rules() -> dict[str, list[tuple[str, Optional[str]]]]:
    """user -> allowed (command path, argument pattern or None for any arguments)."""
    aliases: dict[str, list[tuple[str, Optional[str]]]] = {}
    rules: dict[str, list[tuple[str, Optional[str]]]] = {}

    def commands(spec: str) -> list[tuple[str, Optional[str]]]:
        out: list[tuple[str, Optional[str]]] = []
        for item in (s.strip() for s in spec.split(",")):
            if item in aliases:
                out += aliases[item]
            else:
                path, _, args = item.partition(" ")
                out.append((path, args.strip() or None))
        return out

    for line in _logical_lines(SUDOERS.read_text()):
        if line.startswith("Defaults"):
            continue
        m = re.fullmatch(r"Cmnd_Alias\s+([A-Z0-9_]+)\s*=\s*(.+)", line)
        if m:
            aliases[m.group(1)] = commands(m.group(2))
            continue
        m = re.fullmatch(r"(.+?)\s+ALL\s*=\s*\(root\)\s*NOPASSWD:\s*(.+)", line)
        assert m, f"unexpected sudoers line: {line}"
        for user in (u.strip() for u in m.group(1).split(",")):
            rules.setdefault(user, []).extend(commands(m.group(2)))
    return rules


def sudo_allows(user: str, argv: list[str]) -> bool:
    """Whether sudoers lets `user` run argv: no arguments in a rule = any arguments, '""' = none,
    otherwise the joined arguments must fnmatch the rule (a '*' matches spaces too)."""
    for path, pattern in _sudoers_rules().get(user, []):
        if path != argv[0]:
            continue
        args = " ".join(argv[1:])
        if pattern is None or (pattern == '""' and not args):
            return True
        if pattern != '""' and fnmatch.fnmatchcase(args, pattern):
            return True
    return False


def strip_sudo(argv: list[str]) -> list[str]:
    assert argv[0] in ("sudo", "/usr/bin/sudo"), argv
    rest = argv[1:]
    if rest and rest[0] == "-n":
        rest = rest[1:]
    assert rest[0] == HVCHECK, argv
    return rest


def parse_cli(args: list[str]) -> None:
    """Parse hvcheck's arguments with the real CLI parser (raises cli.UsageError)."""
    from hvcheck.cli import parse_args

    parse_args(list(args))


# ------------------------------------------------------------------------------------------
# the command lines each tool runs
# ------------------------------------------------------------------------------------------
def nagios_commands() -> dict[str, str]:
    text = NAGIOS.read_text()
    out = {}
    for body in re.findall(r"^define command \{(.*?)^\}", text, re.M | re.S):
        name = re.search(r"^\s*command_name\s+(\S+)", body, re.M)
        line = re.search(r"^\s*command_line\s+(.+)$", body, re.M)
        assert name and line, body
        out[name.group(1)] = line.group(1).strip()
    return out


def nagios_service_argvs() -> list[list[str]]:
    """Expanded argv of every example service, the commented ones included."""
    commands = nagios_commands()
    argvs = []
    for check in re.findall(r"^#?\s*check_command\s+(\S+)", NAGIOS.read_text(), re.M):
        name, *args = check.split("!")
        line = commands[name]
        for i, a in enumerate(args, 1):
            line = line.replace(f"${'ARG'}{i}$", a)
        assert "$ARG" not in line, (check, line)
        argvs.append(shlex.split(line))
    return argvs


def icinga_checkcommand() -> tuple[list[str], dict[str, dict[str, Any]], dict[str, Any]]:
    """(command, arguments, vars) of the CheckCommand, read from this file's layout."""
    text = ICINGA.read_text()
    body = re.search(r'object CheckCommand "hvcheck" \{\n(.*?)\n\}', text, re.S)
    assert body, "no CheckCommand"
    cmd = re.search(r"^\s*command = \[(.*?)\]", body.group(1), re.M)
    assert cmd
    command = re.findall(r'"([^"]*)"', cmd.group(1))
    arguments: dict[str, dict[str, Any]] = {}
    for key, spec in re.findall(r'^    "([^"]+)" = \{\n(.*?)\n    \}', body.group(1), re.M | re.S):
        a: dict[str, Any] = {}
        for attr, value in re.findall(r"^\s*(\w+) = (.+)$", spec, re.M):
            a[attr] = json.loads(value) if value[0] in '"0123456789tf' else value
        arguments[key] = a
    cvars = {
        k: json.loads(v) for k, v in re.findall(r"^\s*vars\.(\w+) = (.+)$", body.group(1), re.M)
    }
    return command, arguments, cvars


def icinga_render(vars_: dict[str, Any]) -> list[str]:
    """The argv Icinga 2 builds: arguments by order; set_if flags; values from $macros$ (an
    argument whose macro is unset is left out)."""
    command, arguments, _ = icinga_checkcommand()
    argv = list(command)
    for key, a in sorted(arguments.items(), key=lambda kv: (kv[1].get("order", 0), kv[0])):
        if "set_if" in a:
            if vars_.get(a["set_if"].strip("$")):
                argv.append(key)
            continue
        value = a.get("value")
        if isinstance(value, str) and value.startswith("$") and value.endswith("$"):
            value = vars_.get(value.strip("$"))
        if value is None:
            assert not a.get("required"), key
            continue
        argv += [key, str(value)]
    return argv


def icinga_example_vars() -> list[dict[str, Any]]:
    """The CheckCommand's defaults, and with the apply rule's (commented) thresholds."""
    _, _, defaults = icinga_checkcommand()
    extra = dict(re.findall(r'^\s*\*?\s*vars\.(hvcheck_\w+) = "([^"]*)"', ICINGA.read_text(), re.M))
    return [defaults, {**defaults, **extra}]


def userparameters() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in USERPARAMS.read_text().splitlines():
        if line.startswith("UserParameter="):
            key, _, command = line[len("UserParameter=") :].partition(",")
            assert key not in out, f"duplicate UserParameter {key}"
            out[key] = command
    return out


def userparameter_argv(command: str) -> list[str]:
    # the agent substitutes $1 before sh -c runs the line; a discovered instance name
    return shlex.split(command.replace("$1", SAMPLE_INSTANCE))


# ------------------------------------------------------------------------------------------
# sudoers
# ------------------------------------------------------------------------------------------
def test_sudoers_passes_visudo(tmp_path: Path) -> None:
    visudo = shutil.which("visudo") or next(
        (p for p in ("/usr/sbin/visudo", "/sbin/visudo") if os.access(p, os.X_OK)), None
    )
    if visudo is None:
        if os.environ.get("CI"):
            pytest.fail("visudo is missing in CI: install the sudo package")
        pytest.skip("visudo not installed (apt-get install sudo)")
    p = subprocess.run([visudo, "-cf", str(SUDOERS)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr


def test_sudoers_file_name_is_read_by_sudo() -> None:
    # sudo skips files in /etc/sudoers.d whose name contains '.' or ends in '~'
    assert "." not in SUDOERS.name and not SUDOERS.name.endswith("~")


def test_sudoers_grants_only_fixed_argument_lists() -> None:
    rules = _sudoers_rules()
    assert {"nagios", "icinga", "zabbix"} <= rules.keys()
    for user, allowed in rules.items():
        for path, pattern in allowed:
            assert path == HVCHECK, (user, path)
            assert pattern is not None, f"{user} may run {path} with any arguments"
            if "*" in pattern or "?" in pattern or "[" in pattern:
                # the one wildcard: the instance name after "--", where only positional
                # arguments of `value` can land
                assert pattern == "value instance_accel -- *", pattern
    assert re.search(r"^Defaults!/usr/local/bin/hvcheck\s+!requiretty$", SUDOERS.read_text(), re.M)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["collect", "-o", "/etc/sudoers"],
        ["report", "/etc/shadow"],
        ["--root", "/tmp/snap", "--format", "nagios"],
        ["--format", "nagios", "-w", "1", "collect", "-o", "/etc/sudoers", "-c", "1"],
        ["value", "instance_accel", SAMPLE_INSTANCE],  # without "--"
        ["--json"],
    ],
)
def test_sudoers_refuses_other_command_lines(args: list[str]) -> None:
    for user in ("nagios", "icinga", "zabbix"):
        assert not sudo_allows(user, [HVCHECK, *args]), (user, args)


def test_wildcard_rule_cannot_smuggle_options() -> None:
    # sudo lets "*" expand to several words; after "--" they are positionals, and `value`
    # takes exactly one
    argv = [HVCHECK, "value", "instance_accel", "--", "x", "--root", "/tmp/evil"]
    assert sudo_allows("zabbix", argv)
    from hvcheck.cli import UsageError

    with pytest.raises(UsageError):
        parse_cli(argv[1:])


# ------------------------------------------------------------------------------------------
# Nagios
# ------------------------------------------------------------------------------------------
def test_nagios_commands_use_sudo_and_thresholds() -> None:
    commands = nagios_commands()
    assert commands["check_hvcheck"].endswith("--format nagios -v -w $ARG1$ -c $ARG2$")
    assert "check_hvcheck_auto" in commands
    for line in commands.values():
        assert line.startswith(f"/usr/bin/sudo -n {HVCHECK} --format nagios"), line
    services = re.findall(r"^define service \{(.*?)^\}", NAGIOS.read_text(), re.M | re.S)
    assert services and all("check_command" in s for s in services)


def test_nagios_example_command_lines_are_allowed_and_parse() -> None:
    argvs = nagios_service_argvs()
    assert len(argvs) >= 2  # the auto service and the commented threshold example
    for argv in argvs:
        args = strip_sudo(argv)
        assert sudo_allows("nagios", args) and sudo_allows("icinga", args), argv
        parse_cli(args[1:])


# ------------------------------------------------------------------------------------------
# Icinga 2
# ------------------------------------------------------------------------------------------
def test_icinga_checkcommand_always_passes_format_nagios() -> None:
    command, arguments, _ = icinga_checkcommand()
    assert command == ["/usr/bin/sudo", HVCHECK]
    fmt = arguments["--format"]
    assert fmt["value"] == "nagios" and "set_if" not in fmt
    assert fmt["order"] == min(a.get("order", 0) for a in arguments.values())
    for vars_ in ({}, {"hvcheck_verbose": False}, *icinga_example_vars()):
        argv = icinga_render(vars_)
        assert argv[2:4] == ["--format", "nagios"], argv
    assert {"-w", "-c", "-t"} <= arguments.keys()
    assert arguments["-w"]["value"] == "$hvcheck_warning$"
    assert arguments["-c"]["value"] == "$hvcheck_critical$"
    assert arguments["-t"]["value"] == "$hvcheck_timeout$"
    assert re.search(r'^apply Service "[^"]+" \{', ICINGA.read_text(), re.M)


def test_icinga_example_command_lines_are_allowed_and_parse() -> None:
    defaults, with_thresholds = icinga_example_vars()
    assert icinga_render(defaults) == ["/usr/bin/sudo", HVCHECK, "--format", "nagios", "-v"]
    assert icinga_render(with_thresholds)[4:] == ["-v", "-w", "0", "-c", "3"]
    for vars_ in (defaults, with_thresholds):
        args = strip_sudo(icinga_render(vars_))
        assert sudo_allows("icinga", args) and sudo_allows("nagios", args), args
        parse_cli(args[1:])


# ------------------------------------------------------------------------------------------
# Zabbix agent
# ------------------------------------------------------------------------------------------
def test_userparameters_run_allowed_command_lines() -> None:
    params = userparameters()
    assert set(params) == {
        "hvcheck.discovery",
        "hvcheck.status",
        "hvcheck.kvm_usable",
        "hvcheck.instances",
        "hvcheck.kvm_instances",
        "hvcheck.tcg_instances",
        "hvcheck.instance.accel[*]",
    }
    for key, command in params.items():
        flexible = key.endswith("[*]")
        assert ("$1" in command) == flexible, key
        assert not re.search(r"\$[2-9]", command), key
        if flexible:
            # quoted, and after "--" so a parameter can never become an option
            assert command.endswith('-- "$1"'), command
        argv = userparameter_argv(command)
        assert argv[:2] == ["sudo", "-n"], command
        args = strip_sudo(argv)
        assert sudo_allows("zabbix", args), (key, args)
        parse_cli(args[1:])
    assert not re.search(r"^\s*UnsafeUserParameters\s*=\s*1", USERPARAMS.read_text(), re.M)


def test_zabbix_agent_accepts_the_userparameters(tmp_path: Path) -> None:
    agent = shutil.which("zabbix_agentd") or (
        "/usr/sbin/zabbix_agentd" if os.access("/usr/sbin/zabbix_agentd", os.X_OK) else None
    )
    if agent is None:
        pytest.skip("zabbix_agentd not installed")
    conf = tmp_path / "agent.conf"
    conf.write_text(f"LogType=console\nAllowRoot=1\nInclude={USERPARAMS}\n")
    # agent.ping needs no hvcheck; the agent still parses every UserParameter line
    p = subprocess.run(
        [agent, "-c", str(conf), "-t", "agent.ping"], capture_output=True, text=True, timeout=30
    )
    assert p.returncode == 0 and "[u|1]" in p.stdout, p.stdout + p.stderr


# ------------------------------------------------------------------------------------------
# Zabbix template
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(TEMPLATE.read_text())
    export = doc["zabbix_export"]
    assert export["version"] == "6.0"
    assert export["groups"] and all(g["name"] for g in export["groups"])
    (tpl,) = export["templates"]
    assert tpl["template"] == "hvcheck"
    assert {g["name"] for g in tpl["groups"]} <= {g["name"] for g in export["groups"]}
    return dict(tpl)


def _flex(key: str) -> str:
    """hvcheck.instance.accel[{#INSTANCE}] -> hvcheck.instance.accel[*] (UserParameter form)."""
    return re.sub(r"\[.*\]$", "[*]", key)


def _triggers(tpl: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in tpl.get("items", []):
        yield from item.get("triggers", [])
    for rule in tpl.get("discovery_rules", []):
        for proto in rule.get("item_prototypes", []):
            yield from proto.get("trigger_prototypes", [])
        yield from rule.get("trigger_prototypes", [])


def _item_keys(tpl: dict[str, Any]) -> dict[str, dict[str, Any]]:
    keys = {i["key"]: i for i in tpl.get("items", [])}
    for rule in tpl.get("discovery_rules", []):
        keys.update({p["key"]: p for p in rule.get("item_prototypes", [])})
    return keys


def _uuids(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "uuid":
                yield v
            else:
                yield from _uuids(v)
    elif isinstance(node, list):
        for v in node:
            yield from _uuids(v)


def test_template_keys_are_userparameters(template: dict[str, Any]) -> None:
    used = [i["key"] for i in template["items"]]
    for rule in template["discovery_rules"]:
        used.append(rule["key"])
        used += [p["key"] for p in rule["item_prototypes"]]
    assert "hvcheck.discovery" in used and "hvcheck.instance.accel[{#INSTANCE}]" in used
    defined = set(userparameters())
    for key in used:
        assert _flex(key) in defined, f"{key} has no UserParameter"
    for item in [*template["items"], *template["discovery_rules"]]:
        assert item.get("type", "ZABBIX_PASSIVE") in ("ZABBIX_PASSIVE", "ZABBIX_ACTIVE"), item


def test_template_triggers_reference_only_its_own_keys(template: dict[str, Any]) -> None:
    keys = _item_keys(template)
    macros = {m["macro"].split(":")[0].rstrip("}") + "}" for m in template.get("macros", [])}
    exprs = []
    for t in _triggers(template):
        exprs.append(t["expression"])
        exprs += [d["expression"] for d in t.get("dependencies", [])]
    assert exprs
    for expr in exprs:
        refs = re.findall(r"[a-z_]+\(/([^/]+)/([^,)]+?(?:\[[^\]]*\])?)[,)]", expr)
        assert refs, expr
        for host, key in refs:
            assert host == "hvcheck" and key in keys, (expr, host, key)
        # no other /host/key reference hides in the expression
        assert expr.count("(/") == len(refs), expr
        for m in re.findall(r"\{\$[A-Z0-9._]+", expr):
            assert m + "}" in macros, f"{m} has no default in the template"


def test_template_trigger_values_fit_the_items(template: dict[str, Any]) -> None:
    keys = _item_keys(template)
    for t in _triggers(template):
        for key, literal in re.findall(
            r"\(/hvcheck/([^,)]+)\)\s*=\s*\"([^\"]*)\"", t["expression"]
        ):
            assert keys[key].get("value_type") in ("CHAR", "TEXT"), key
            assert literal in ACCEL_VALUES, literal
    # -1 (cannot tell) does not fit Numeric (unsigned)
    assert keys["hvcheck.kvm_usable"].get("value_type") == "FLOAT"
    assert keys["hvcheck.instance.accel[{#INSTANCE}]"]["value_type"] == "CHAR"
    names = {t["name"]: t["expression"] for t in _triggers(template)}
    for t in _triggers(template):
        for dep in t.get("dependencies", []):
            assert names.get(dep["name"]) == dep["expression"], f"unknown dependency {dep}"
        assert t["priority"] in ("NOT_CLASSIFIED", "INFO", "WARNING", "AVERAGE", "HIGH", "DISASTER")
    exprs = set(names.values())
    assert "last(/hvcheck/hvcheck.kvm_usable)=0" in exprs
    assert any(e.startswith("last(/hvcheck/hvcheck.tcg_instances)>") for e in exprs)
    assert {"last(/hvcheck/hvcheck.status)=2", "last(/hvcheck/hvcheck.status)=3"} <= exprs
    proto = next(t for t in _triggers(template) if "hvcheck.instance.accel" in t["expression"])
    assert 'last(/hvcheck/hvcheck.instance.accel[{#INSTANCE}])="tcg"' in proto["expression"]
    assert proto["priority"] == "HIGH"


def test_template_valuemaps_resolve(template: dict[str, Any]) -> None:
    maps = {v["name"]: v for v in template.get("valuemaps", [])}
    for item in _item_keys(template).values():
        if "valuemap" in item:
            assert item["valuemap"]["name"] in maps, item["key"]
    states = {m["value"]: m["newvalue"] for m in maps["hvcheck state"]["mappings"]}
    assert states == {"0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}


def test_template_uuids_are_unique_uuid4(template: dict[str, Any]) -> None:
    yaml = pytest.importorskip("yaml")
    uuids = list(_uuids(yaml.safe_load(TEMPLATE.read_text())))
    assert len(uuids) >= 10
    for u in uuids:
        # 32 lowercase hex digits; Zabbix also checks the version and variant bits
        # ("UUIDv4 is expected", CApiInputValidator::validateUuid)
        assert isinstance(u, str) and UUID4.fullmatch(u), u
    assert len(set(uuids)) == len(uuids), "duplicate uuid"


def test_template_lld_macros_are_what_discovery_prints(template: dict[str, Any]) -> None:
    (rule,) = template["discovery_rules"]
    text = json.dumps(rule)
    used = set(re.findall(r"\{#[A-Z0-9_.]+\}", text))
    assert "{#INSTANCE}" in used
    p = run_hvcheck("--root", str(FIXTURE), "--format", "zabbix-discovery")
    assert p.returncode in (0, 1, 2, 3), p.stderr
    rows = json.loads(p.stdout)["data"]
    assert rows, "the fixture has QEMU instances"
    for row in rows:
        assert used <= row.keys(), (used, row)
        # the discovered name is what hvcheck.instance.accel[...] hands to `value`
        v = run_hvcheck("--root", str(FIXTURE), "value", "instance_accel", "--", row["{#INSTANCE}"])
        assert v.returncode == 0 and v.stdout.strip() in ACCEL_VALUES - {"absent"}, v


# ------------------------------------------------------------------------------------------
# systemd textfile collector
# ------------------------------------------------------------------------------------------
def _unit(path: Path) -> dict[str, list[str]]:
    """key -> values (repeatable keys keep every value), continuation lines joined."""
    out: dict[str, list[str]] = {}
    for line in _logical_lines(path.read_text()):
        if line.startswith("[") or line.startswith(";"):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def _textfile_script() -> str:
    (exec_start,) = _unit(UNIT)["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3, argv
    assert not re.search(r"%[^%]", argv[2]), "unescaped systemd specifier"
    # "$$" is systemd's escape for a literal "$"; a lone $VAR would be expanded by systemd
    assert not re.search(r"(?<!\$)\$(?!\$)", argv[2].replace("$$", "")), "unescaped $"
    return argv[2].replace("$$", "$").replace("%%", "%")


def test_textfile_unit_settings() -> None:
    unit = _unit(UNIT)
    assert unit["Type"] == ["oneshot"]
    success = {int(x) for v in unit["SuccessExitStatus"] for x in v.split()}
    assert {1, 2, 3} <= success
    assert "User" not in unit and "DynamicUser" not in unit  # /dev/kvm, /proc/PID/fd need root
    if unit.get("ProtectSystem") in (["strict"], ["full"], ["yes"]):
        assert TEXTFILE_DIR in " ".join(unit.get("ReadWritePaths", []))
    if unit.get("DevicePolicy", ["auto"]) != ["auto"]:
        assert "/dev/kvm rw" in unit.get("DeviceAllow", []), "the KVM probe opens /dev/kvm rw"
    for hides in ("PrivateDevices", "ProtectKernelLogs", "ProtectProc", "PrivateUsers"):
        assert unit.get(hides, ["no"]) in (["no"], ["false"], ["default"]), hides
    script = _textfile_script()
    assert f"{HVCHECK} --format prometheus" in script
    assert re.search(r'mktemp "\$dir/\.[^"/]+"', script) and "dir=" + TEXTFILE_DIR in script
    assert re.search(r'mv -f "\$tmp" "\$dir/hvcheck\.prom"', script)
    timer = _unit(TIMER)
    assert timer.get("OnUnitActiveSec") == ["1min"] or timer.get("OnCalendar") == ["minutely"]
    assert timer["WantedBy"] == ["timers.target"] and TIMER.stem == UNIT.stem


def _run_textfile_script(tmp_path: Path, hvcheck_body: Optional[str]) -> tuple[int, Path]:
    outdir = tmp_path / "node-exporter"
    outdir.mkdir(exist_ok=True)
    fake = tmp_path / "hvcheck"
    if hvcheck_body is not None:
        # records what the directory held while it ran (the temporary file)
        fake.write_text(f'#!/bin/sh\nls -A "{outdir}" > "{tmp_path}/during"\n{hvcheck_body}\n')
        fake.chmod(0o755)
    script = _textfile_script().replace(TEXTFILE_DIR, str(outdir)).replace(HVCHECK, str(fake))
    p = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
    return p.returncode, outdir


@pytest.mark.parametrize("rc", [0, 1, 2, 3])
def test_textfile_script_replaces_the_file_atomically(tmp_path: Path, rc: int) -> None:
    old = tmp_path / "node-exporter" / "hvcheck.prom"
    old.parent.mkdir()
    old.write_text("hvcheck_status 0\n")
    got, outdir = _run_textfile_script(tmp_path, f'echo "hvcheck_status {rc}"; exit {rc}')
    assert got == rc  # and SuccessExitStatus covers 1-3
    assert sorted(os.listdir(outdir)) == ["hvcheck.prom"], "temporary file left behind"
    assert old.read_text() == f"hvcheck_status {rc}\n"
    assert stat.S_IMODE(old.stat().st_mode) == 0o644  # node_exporter runs as another user
    # while hvcheck ran, its output went to a same-directory file node_exporter ignores
    (during,) = set((tmp_path / "during").read_text().split()) - {"hvcheck.prom"}
    assert during.startswith(".") and not during.endswith(".prom"), during


@pytest.mark.parametrize(
    "body", ["exit 3", 'echo "hvcheck_status 1"; exit 5', None], ids=["no-output", "rc5", "missing"]
)
def test_textfile_script_keeps_the_old_file_on_failure(tmp_path: Path, body: Optional[str]) -> None:
    old = tmp_path / "node-exporter" / "hvcheck.prom"
    old.parent.mkdir()
    old.write_text("hvcheck_status 0\n")
    got, outdir = _run_textfile_script(tmp_path, body)
    success = {0} | {int(x) for v in _unit(UNIT)["SuccessExitStatus"] for x in v.split()}
    assert got not in success, "the unit must fail"
    assert old.read_text() == "hvcheck_status 0\n"
    assert os.listdir(outdir) == ["hvcheck.prom"]


def test_textfile_units_pass_systemd_analyze(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not installed")
    for f in (UNIT, TIMER):
        shutil.copy(f, tmp_path / f.name)
    p = subprocess.run(
        [analyze, "verify", str(tmp_path / UNIT.name), str(tmp_path / TIMER.name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [ln for ln in (p.stdout + p.stderr).splitlines() if "hvcheck-textfile" in ln]
    assert p.returncode == 0 and not problems, p.stdout + p.stderr


def test_prometheus_output_fits_the_textfile_collector() -> None:
    """What the unit writes: one sample a line, and a timestamp precise enough for the
    staleness alert (time() - hvcheck_last_run_timestamp_seconds > 300)."""
    before = time.time()
    p = run_hvcheck("--root", str(FIXTURE), "--format", "prometheus")
    assert p.returncode in (0, 1, 2, 3) and p.stdout.endswith("\n"), p.stderr
    samples = {}
    for line in p.stdout.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) hvcheck_[a-z_]+ .+", line), line
            continue
        m = re.fullmatch(
            r'(hvcheck_[a-z_]+)(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? (\S+)', line
        )
        assert m, line
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(4))
    assert samples["hvcheck_status"] == p.returncode
    assert {"hvcheck_kvm_usable", "hvcheck_last_run_timestamp_seconds"} <= samples.keys()
    assert any(k.startswith("hvcheck_instance_accel{") for k in samples)
    stamp = samples["hvcheck_last_run_timestamp_seconds"]
    assert before - 5 <= stamp <= time.time() + 5, f"timestamp {stamp} vs now {time.time()}"


# ------------------------------------------------------------------------------------------
# Ansible
# ------------------------------------------------------------------------------------------
def test_playbook_structure() -> None:
    yaml = pytest.importorskip("yaml")
    (play,) = yaml.safe_load(PLAYBOOK.read_text())
    assert play["hosts"] == "{{ target | default('compute') }}"
    assert play["become"] is True
    tasks = play["tasks"]
    run = tasks[0]
    assert run["ansible.builtin.command"]["argv"][1:] == ["--json"]
    assert run["changed_when"] is False and "rc > 3" in run["failed_when"]
    store = next(t for t in tasks if "ansible.builtin.copy" in t)
    assert store["delegate_to"] == "localhost"
    assert store["ansible.builtin.copy"]["dest"] == "{{ report_dir }}/{{ inventory_hostname }}.json"
    merge = next(t for t in tasks if "report" in str(t.get("ansible.builtin.command", {})))
    assert merge["delegate_to"] == "localhost" and merge["run_once"] is True
    assert "rc > 3" in merge["failed_when"]


def test_playbook_syntax_check() -> None:
    # on PATH, or beside this interpreter: the test venv's ansible-core (a `test` extra)
    venv = Path(sys.executable).parent / "ansible-playbook"
    ansible = shutil.which("ansible-playbook") or (str(venv) if venv.is_file() else None)
    if ansible is None:
        pytest.skip("ansible-playbook not installed (pip install ansible-core)")
    p = subprocess.run(
        [
            ansible,
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "target=all",
            "--syntax-check",
            str(PLAYBOOK),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr


# ------------------------------------------------------------------------------------------
def test_readme_covers_every_file() -> None:
    readme = (CONTRIB / "README.md").read_text()
    for f in sorted(CONTRIB.rglob("*")):
        if f.is_file() and f.name != "README.md":
            assert str(f.relative_to(CONTRIB)) in readme, f


def test_playbook_runs_against_localhost(tmp_path: Path) -> None:
    """The fleet playbook for real: hvcheck on localhost (-c local), JSON fetched, report run."""
    ansible = shutil.which("ansible-playbook") or str(
        Path(sys.executable).parent / "ansible-playbook"
    )
    if not Path(ansible).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the playbook: ansible-core is in the test extras")
        pytest.skip("ansible-playbook not installed (pip install ansible-core)")
    if os.geteuid() != 0 or shutil.which("sudo") is None:
        pytest.skip("become needs root and sudo")
    hv = str(Path(sys.executable).parent / "hvcheck")
    reports = tmp_path / "reports"
    p = subprocess.run(
        [
            ansible,
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "target=all",
            "-e",
            f"report_dir={reports}",
            "-e",
            f"hvcheck_bin={hv}",
            "-e",
            f"hvcheck_local={hv}",
            str(PLAYBOOK),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-tmp"),
        },
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads((reports / "localhost.json").read_text())
    assert doc["schema_version"] == 1 and "verdict" in doc
    assert "Fleet: 1 host(s)" in p.stdout
