"""Output channels (issue 14, input 4), with the real CLI in real subprocesses: a closed stdout,
a reader that went away (EPIPE), a full device, terminals that cannot show every character.

The verdict's exit code must survive every way of failing to print it, except a real write
failure (the output is incomplete: exit 3 with one line on stderr); no run may end in a
traceback or click's/rich's exit 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from snap import PROJECT, healthy_host, run_hvcheck

FORMATS = ("table", "json", "nagios", "prometheus", "zabbix-discovery")
CRITICAL_FIXTURE = PROJECT / "fixtures" / "live-qemu-kvm-tcg-fallback"  # exit 2
NON_LATIN1 = "инстанс-中文"  # Cyrillic and CJK: outside Latin-1


def _hvcheck_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "hvcheck", *args]


def _env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("HVCHECK_DEBUG", None)
    e.update(extra)
    return e


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A snapshot per exit code that a write failure must not turn into another: OK (0) and
    CRITICAL (2)."""
    ok = healthy_host(tmp_path_factory.mktemp("ok") / "snap")
    return {0: ok, 2: CRITICAL_FIXTURE}


def _named(tmp: Path, names: dict[str, str]) -> Path:
    """The CRITICAL fixture with its instances renamed: {pid: new guest name}."""
    root = tmp / "renamed"
    shutil.copytree(CRITICAL_FIXTURE, root, symlinks=True)
    for pid, name in names.items():
        p = root / "proc" / pid / "cmdline"
        argv = p.read_bytes().split(b"\0")
        argv = [
            a.replace(b"guest=" + a.split(b"guest=")[1].split(b",")[0], b"guest=" + name.encode())
            if b"guest=" in a
            else a
            for a in argv
        ]
        p.write_bytes(b"\0".join(argv))
    return root


def _verdict_code(root: Path) -> int:
    p = run_hvcheck("--root", str(root), "--json")
    code = json.loads(p.stdout)["exit_code"]
    assert p.returncode == code
    return int(code)


def test_roots_have_the_codes_they_stand_for(roots: dict[int, Path]) -> None:
    for code, root in roots.items():
        assert _verdict_code(root) == code


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("code", [0, 2])
def test_closed_stdout_keeps_the_verdicts_exit_code(
    roots: dict[int, Path], fmt: str, code: int
) -> None:
    # `hvcheck ... >&-`: the shell closes descriptor 1 before exec
    argv = _hvcheck_argv("--root", str(roots[code]), "--format", fmt)
    p = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=PROJECT,
    )
    assert p.returncode == code, p.stderr
    assert p.stderr == ""


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("code", [0, 2])
def test_a_reader_that_went_away_ends_quietly_with_the_verdicts_code(
    roots: dict[int, Path], fmt: str, code: int
) -> None:
    # the read end is closed before the interpreter starts: the first write gets EPIPE
    p = subprocess.Popen(
        [*_hvcheck_argv("--root", str(roots[code]), "--format", fmt)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=PROJECT,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(60) == code, err
    assert err == ""


@pytest.mark.parametrize("fmt", ["table", "nagios", "json"])
def test_head_c0_in_a_shell_pipeline(roots: dict[int, Path], fmt: str) -> None:
    argv = " ".join(_hvcheck_argv("--root", str(roots[2]), "--format", fmt))
    p = subprocess.run(
        ["bash", "-c", f"{argv} | head -c0; exit ${{PIPESTATUS[0]}}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
        cwd=PROJECT,
    )
    assert p.returncode == 2 and p.stderr == "", p.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_device_exits_3_with_one_line(roots: dict[int, Path], fmt: str) -> None:
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            _hvcheck_argv("--root", str(roots[0]), "--format", fmt),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=_env(),
            cwd=PROJECT,
        )
    assert p.returncode == 3
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert p.stderr.startswith("hvcheck: cannot write") and "ENOSPC" in p.stderr, p.stderr


@pytest.mark.parametrize(
    "args", [["checks"], ["--help"], ["report", str(PROJECT / "pyproject.toml")]]
)
def test_other_commands_on_closed_pipes_and_full_devices(args: list[str]) -> None:
    normal = subprocess.run(
        _hvcheck_argv(*args), capture_output=True, timeout=60, env=_env(), cwd=PROJECT
    )
    p = subprocess.Popen(
        _hvcheck_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=PROJECT,
    )
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(60) == normal.returncode and err == "", err
    with open("/dev/full", "w") as full:
        f = subprocess.run(
            _hvcheck_argv(*args),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env=_env(),
            cwd=PROJECT,
        )
    assert f.returncode == 3 and "ENOSPC" in f.stderr and "Traceback" not in f.stderr


ENCODINGS = [
    {"PYTHONIOENCODING": "latin-1"},
    {"PYTHONIOENCODING": "ascii"},
    {"LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"},
    {"LANG": "C", "LC_ALL": "C"},
]


def _encoding_of(env: dict[str, str]) -> str:
    p = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.stdout.encoding)"],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=30,
    )
    return p.stdout.strip()


@pytest.mark.parametrize("env", ENCODINGS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_table_under_a_narrow_encoding(roots: dict[int, Path], env: dict[str, str]) -> None:
    enc = _encoding_of(env)
    p = subprocess.run(
        _hvcheck_argv("--root", str(roots[2]), "--format", "table", "-v"),
        capture_output=True,
        timeout=60,
        env=_env(**env),
        cwd=PROJECT,
    )
    assert p.returncode == 2, p.stderr
    assert p.stdout.startswith(b"hvcheck CRITICAL ") and p.stderr == b""
    text = p.stdout.decode(enc)  # every byte is in the terminal's encoding
    line = next(ln for ln in text.splitlines() if ln.startswith("KVM usable:"))
    # the em dash where the encoding has one, its plain form where it has not
    assert (" — " in line) if "utf" in enc.lower() else (" - " in line), line


@pytest.mark.parametrize("env", ENCODINGS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()))
def test_non_latin1_instance_name_in_nagios_and_prometheus(
    tmp_path: Path, env: dict[str, str]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    enc = _encoding_of(env)
    root = _named(tmp_path, {"20942": NON_LATIN1})
    n = subprocess.run(
        _hvcheck_argv("--root", str(root), "--format", "nagios", "-v"),
        capture_output=True,
        timeout=60,
        env=_env(**env),
        cwd=PROJECT,
    )
    assert n.returncode == 2 and n.stderr == b"", n.stderr
    nagios = n.stdout.decode(enc)
    assert nagios.startswith("HVCHECK CRITICAL - ") and "HVCHECK_DEBUG" not in nagios
    # the name as it is where the encoding shows it, as inert's escapes where it cannot
    shown = (
        NON_LATIN1
        if "utf" in enc.lower()
        else "".join(c if ord(c) < 0x80 else f"\\u{ord(c):04x}" for c in NON_LATIN1)
    )
    assert shown in nagios, nagios
    # Prometheus's text format is UTF-8 whatever the locale: the name round-trips exactly
    p = subprocess.run(
        _hvcheck_argv("--root", str(root), "--format", "prometheus"),
        capture_output=True,
        timeout=60,
        env=_env(**env),
        cwd=PROJECT,
    )
    assert p.returncode == 2 and p.stderr == b"", p.stderr
    fams = {f.name: f for f in text_string_to_metric_families(p.stdout.decode("utf-8"))}
    names = {s.labels["name"] for s in fams["hvcheck_instance_accel"].samples}
    assert NON_LATIN1 in names


def test_an_unencodable_hostname_in_the_table(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "snap", hostname="узел-1")
    p = subprocess.run(
        _hvcheck_argv("--root", str(root)),
        capture_output=True,
        timeout=60,
        env=_env(PYTHONIOENCODING="latin-1"),
        cwd=PROJECT,
    )
    assert p.returncode == 0 and p.stderr == b""
    assert "\\u0443\\u0437\\u0435\\u043b-1" in p.stdout.decode("latin-1")
