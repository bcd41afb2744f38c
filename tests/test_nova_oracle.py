"""oslo.config as the oracle for hvcheck's reading of nova's configuration (issue 17).

nova's libvirt options are registered here as nova registers them (their essential parameters
copied from nova's source at each release, cited below), oslo.config parses the same files
(``--config-file``/``--config-dir`` in the same order) with the same environment, and for
``virt_type``, ``cpu_mode`` and ``cpu_models`` hvcheck must find the same value, from the same
file and line (or the same environment variable, or the default), and must say "nova-compute
will not start" exactly where oslo.config raises. Over a few hundred generated config sets and
the hand-written inputs of the issue: zero disagreements.

oslo.config gives no line numbers and its ``get_location()`` names, for a file value, the last
file that holds the *section* (``_Namespace._sections_to_file``), not the file the value came
from (see ``test_oslo_get_location_credits_the_wrong_file``). The oracle's file and line
therefore come from oslo's own parser, instrumented: every value object oslo stores is tagged
with the file and the line of its key, and the object oslo's lookup returns is looked up.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from oslo_config import cfg

from hvcheck.check import Context
from hvcheck.host import SnapshotHost
from hvcheck.novaconfig import nova_conf
from snap import make_snapshot

# --------------------------------------------------------------------------------------------
# nova's option definitions, per release (openstack/nova at the tag named)
# --------------------------------------------------------------------------------------------

_VT_ALL = ("kvm", "lxc", "qemu", "uml", "xen", "parallels")
_CPU_MODES = ("host-model", "host-passthrough", "custom", "none")


def _nova_opts(version: str) -> tuple[list[cfg.Opt], list[cfg.Opt]]:
    """(libvirt group options, DEFAULT options) of nova ``version``."""
    major = version.split(".")[0]
    if major == "2013":
        # 2013.2 nova/virt/libvirt/driver.py libvirt_opts: [DEFAULT] libvirt_type, default kvm
        return [], [
            cfg.StrOpt("libvirt_type", default="kvm"),
            cfg.StrOpt("libvirt_cpu_mode"),
            cfg.StrOpt("libvirt_cpu_model"),
            cfg.StrOpt("host", default=socket.gethostname()),  # nova/netconf.py
        ]
    if version == "2014.1":
        # 2014.1 nova/virt/libvirt/driver.py: the [libvirt] group, old names deprecated
        opts = [
            cfg.StrOpt(
                "virt_type",
                default="kvm",
                deprecated_group="DEFAULT",
                deprecated_name="libvirt_type",
            ),
            cfg.StrOpt("cpu_mode", deprecated_name="libvirt_cpu_mode", deprecated_group="DEFAULT"),
            cfg.StrOpt(
                "cpu_model", deprecated_name="libvirt_cpu_model", deprecated_group="DEFAULT"
            ),
        ]
    elif major == "2014":
        # 2014.2 nova/virt/libvirt/driver.py: deprecated names gone (d0a02fa390)
        opts = [
            cfg.StrOpt("virt_type", default="kvm"),
            cfg.StrOpt("cpu_mode"),
            cfg.StrOpt("cpu_model"),
        ]
    elif int(major) < 20:
        # 12.0.0 nova/virt/libvirt/driver.py, 14.0.0-19.x nova/conf/libvirt.py: choices
        opts = [
            cfg.StrOpt("virt_type", default="kvm", choices=_VT_ALL),
            cfg.StrOpt("cpu_mode", choices=_CPU_MODES),
            cfg.StrOpt("cpu_model"),
        ]
    else:
        # 20.0.0 nova/conf/libvirt.py: cfg.ListOpt('cpu_models', deprecated_name='cpu_model',
        # default=[]); 23.0.0: choices=('kvm', 'lxc', 'qemu', 'parallels')
        vt = ("kvm", "lxc", "qemu", "parallels") if int(major) >= 23 else _VT_ALL
        opts = [
            cfg.StrOpt("virt_type", default="kvm", choices=vt),
            cfg.StrOpt("cpu_mode", choices=_CPU_MODES),
            cfg.ListOpt("cpu_models", deprecated_name="cpu_model", default=[]),
        ]
    # nova/conf/libvirt.py: cfg.StrOpt('connection_uri', default='')
    opts.append(cfg.StrOpt("connection_uri", default=""))
    # nova/conf/netconf.py: cfg.StrOpt('host', default=socket.gethostname())
    return opts, [cfg.StrOpt("host", default=socket.gethostname())]


# the spellings of each option in the release, as hvcheck reports them
_OPTS = {
    "2013": {"virt_type": ("DEFAULT", "libvirt_type"), "cpu_mode": ("DEFAULT", "libvirt_cpu_mode"),
             "cpu_models": ("DEFAULT", "libvirt_cpu_model")},
    "old": {"virt_type": ("libvirt", "virt_type"), "cpu_mode": ("libvirt", "cpu_mode"),
            "cpu_models": ("libvirt", "cpu_model")},
    "new": {"virt_type": ("libvirt", "virt_type"), "cpu_mode": ("libvirt", "cpu_mode"),
            "cpu_models": ("libvirt", "cpu_models")},
}  # fmt: skip


def _opt_names(version: str) -> dict[str, tuple[str, str]]:
    major = version.split(".")[0]
    if major == "2013":
        return _OPTS["2013"]
    return _OPTS["old"] if major == "2014" or int(major) < 20 else _OPTS["new"]


def _reads_env(version: str) -> bool:
    # oslo.config 6.7.0 added the environment source; Stein (19.0.0) ships 6.8.x
    return not version.startswith("201") and int(version.split(".")[0]) >= 19


VERSIONS = ("2013.2", "2014.1", "2014.2", "12.0.0", "19.0.0", "20.0.0", "22.0.0", "23.0.0")

# --------------------------------------------------------------------------------------------
# the oracle: oslo.config itself, instrumented for file and line
# --------------------------------------------------------------------------------------------

_TAGS: dict[int, tuple[str, int]] = {}
_KEEP: list[Any] = []
_RAW: dict[str, Any] = {}


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    split = cfg.ConfigParser._split_key_value
    assign = cfg.ConfigParser.assignment
    get_ns = cfg.Opt._get_from_namespace

    def split_key_value(self: Any, line: str) -> Any:
        self._hv_key_line = self.lineno  # the key's own line (oslo assigns at the flush)
        return split(self, line)

    def assignment(self: Any, key: str, value: list[str]) -> None:
        assign(self, key, value)
        obj = self.sections[self.section][key][-1]
        _KEEP.append(obj)
        _TAGS[id(obj)] = (self.filename, self._hv_key_line)

    def get_from_namespace(self: Any, namespace: Any, group_name: Any) -> Any:
        value, loc = get_ns(self, namespace, group_name)
        _RAW[self.dest] = value
        return value, loc

    monkeypatch.setattr(cfg.ConfigParser, "_split_key_value", split_key_value)
    monkeypatch.setattr(cfg.ConfigParser, "assignment", assignment)
    monkeypatch.setattr(cfg.Opt, "_get_from_namespace", get_from_namespace)
    for k in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(k)
    yield
    _TAGS.clear()
    _KEEP.clear()
    _RAW.clear()


def _under(root: Path, arg: str) -> str:
    """A command-line argument with its path moved under the test's directory."""
    if arg.startswith("/"):
        return f"{root}{arg}"
    opt, sep, path = arg.partition("=")
    return f"{opt}={root}{path}" if sep and path.startswith("/") else arg


Outcome = tuple[Any, ...]  # ("stop",) | ("value", value, source)


def oracle(
    root: Path, argv: list[str], version: str, env: dict[str, str], mp: pytest.MonkeyPatch
) -> dict[str, Outcome]:
    """What nova-compute's oslo.config makes of it: per option, a value and its source, or
    ("stop",) where oslo.config raises (nova-compute does not start)."""
    _TAGS.clear()
    _RAW.clear()
    conf = cfg.ConfigOpts()
    group_opts, default_opts = _nova_opts(version)
    conf.register_opts(default_opts)
    if group_opts:
        conf.register_group(cfg.OptGroup("libvirt"))
        conf.register_opts(group_opts, group="libvirt")
    for k, v in env.items():
        mp.setenv(k, v)  # oslo reads the environment when a value is asked for
    try:
        try:
            conf(
                [_under(root, a) for a in argv],
                project="nova",
                prog="nova-compute",
                default_config_files=[],
                default_config_dirs=[],
                use_env=_reads_env(version),
            )
        except (cfg.Error, OSError, UnicodeDecodeError):
            return {o: ("stop",) for o in ("virt_type", "cpu_mode", "cpu_models")}
        out: dict[str, Outcome] = {}
        for opt, (group, name) in _opt_names(version).items():
            g = None if group == "DEFAULT" else group
            _RAW.pop(name, None)
            try:
                value, loc = conf._do_get(name, g)
            except (cfg.NoSuchOptError, cfg.NoSuchGroupError) as e:
                out[opt] = ("stop", type(e).__name__)
                continue
            except (cfg.Error, ValueError, RecursionError):
                out[opt] = ("stop",)
                continue
            if loc is not None and loc.location == cfg.Locations.environment:
                source: Any = ("env", loc.detail)
            elif name in _RAW and id(_RAW[name]) in _TAGS:
                f, line = _TAGS[id(_RAW[name])]
                source = ("file", f[len(str(root)) :], line)
            else:
                source = ("default",)
            if isinstance(value, list):
                value = tuple(value)
            out[opt] = ("value", value, source)
        return out
    finally:
        for k in env:
            mp.delenv(k)


# --------------------------------------------------------------------------------------------
# hvcheck: the same files as a snapshot of a host running nova-compute
# --------------------------------------------------------------------------------------------


def _egg(version: str) -> dict[str, str]:
    path = f"usr/lib/python3/dist-packages/nova-{version}.egg-info/PKG-INFO"
    return {path: f"Name: nova\nVersion: {version}\n"}


def hvcheck(root: Path, argv: list[str], version: str, env: dict[str, str]) -> dict[str, Outcome]:
    argv_bytes = b"".join(a.encode() + b"\0" for a in ["/usr/bin/nova-compute", *argv])
    environ = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())
    make_snapshot(
        root,
        {"proc/4242/cmdline": argv_bytes, "proc/4242/environ": environ, **_egg(version)},
    )
    conf = nova_conf(Context(SnapshotHost(str(root))))
    assert conf is not None and conf.release.version == version
    r = conf.resolved
    if any(f.kind == "file" for f in r.failures):
        return {o: ("stop",) for o in ("virt_type", "cpu_mode", "cpu_models")}
    out: dict[str, Outcome] = {}
    for opt in ("virt_type", "cpu_mode", "cpu_models"):
        s = getattr(r, opt)
        if s.invalid:
            out[opt] = ("stop",)
            continue
        if s.unresolved:
            out[opt] = ("unresolved", s.unresolved)
            continue
        value: Any = s.items if s.items is not None else s.value
        if s.env:
            source: Any = ("env", s.env)
        elif s.default:
            source = ("default",)
        else:
            source = ("file", s.file, s.line)
        out[opt] = ("value", value, source)
    return out


# --------------------------------------------------------------------------------------------
# generated config sets
# --------------------------------------------------------------------------------------------

_SECTIONS = ["[libvirt]", "[DEFAULT]", "[LIBVIRT]", "[ libvirt ]", "[default]", "[libvirt]"]
_KEYS = [
    "virt_type", "virt_type", "cpu_mode", "cpu_models", "cpu_model", "libvirt_type",
    "libvirt_cpu_mode", "libvirt_cpu_model", "Virt_type", "host", "connection_uri",
]  # fmt: skip
_VALUES = [
    "kvm", "qemu", "xen", "uml", "lxc", "parallels", "KVM", "kvm  # fast", '"qemu"', "'kvm'",
    '"kvm', "", "$host", "${libvirt.virt_type}", "$virt_type", "$cpu_mode", "$$kvm", "\\$kvm",
    "q$$emu", "host-model", "host-passthrough", "custom", "none", "Haswell, Broadwell,",
    "$cpu_model", "${DEFAULT.host}", "$libvirt_type", "${libvirt.connection_uri}", "k${host}",
    "$connection_uri", "${LIBVIRT.virt_type}", "$1", "q${", "Haswell,$virt_type",
]  # fmt: skip
_SEPS = [" = ", "=", ": ", " :", "= ", " =  "]
_ENV = [
    ("OS_LIBVIRT__VIRT_TYPE", ["qemu", "xen", "$host", "kvm"]),
    ("OS_LIBVIRT__CPU_MODE", ["custom", "host-model", "bogus"]),
    ("OS_LIBVIRT__CPU_MODELS", ["Haswell", "a,b"]),
    ("OS_DEFAULT__HOST", ["kvm", "qemu"]),
    ("OS_libvirt__virt_type", ["qemu"]),  # the wrong case: not oslo's name
    ("OS_LIBVIRT__CPU_MODEL", ["Haswell"]),  # a deprecated name: not looked up
]
# referenced options always have a value (oslo's defaults for them are not hvcheck's to know:
# host defaults to the hostname of nova-compute's host, see test_unset_reference)
_BASE = "[DEFAULT]\nhost = qemu\n[libvirt]\nconnection_uri = qemu:///system\n"


def _line(rnd: random.Random) -> str:
    r = rnd.random()
    if r < 0.12:
        return rnd.choice(_SECTIONS)
    if r < 0.17:
        return rnd.choice(["# comment", "; comment", "#virt_type = xen", ""])
    if r < 0.19:
        return rnd.choice(["  continued", "\tmore, Skylake", "    # indented"])
    if r < 0.195:
        return rnd.choice(["garbage line", "[libvirt", "= kvm", "--debug"])
    return f"{rnd.choice(_KEYS)}{rnd.choice(_SEPS)}{rnd.choice(_VALUES)}"


def _file(rnd: random.Random) -> bytes:
    lines = [rnd.choice(_SECTIONS[:2])] + [_line(rnd) for _ in range(rnd.randint(1, 7))]
    if rnd.random() < 0.1:
        lines.insert(rnd.randint(0, len(lines)), "")
    text = rnd.choice(["\n", "\r\n", "\n", "\r"]).join(lines) + rnd.choice(["\n", "", "\n\n"])
    if rnd.random() < 0.1:
        text = text.replace(" = ", " = \t ", 1) + "   "  # trailing blanks
    data = text.encode()
    r = rnd.random()
    if r < 0.03:
        data = b"\xef\xbb\xbf" + data  # a BOM
    elif r < 0.05:
        data = data.replace(b"\n", b"\n# caf\xe9\n", 1)  # latin-1, not UTF-8
    return data


def _case(seed: int) -> tuple[dict[str, str | bytes], list[str], str, dict[str, str]]:
    rnd = random.Random(seed)
    files: dict[str, str | bytes] = {"cfg/base.conf": _BASE}
    argv = ["--config-file", "/cfg/base.conf"]
    for i in range(rnd.randint(1, 3)):
        kind = rnd.random()
        if kind < 0.2:  # a config dir, its files in an order glob does not give
            d = f"/cfg/d{i}"
            names = rnd.sample(["10-a.conf", "9-b.conf", "a.conf", "B.conf", "x.conf.bak"], 3)
            for n in names:
                files[f"{d[1:]}/{n}"] = _file(rnd)
            argv += ["--config-dir", d]
        elif kind < 0.24:
            argv.append(rnd.choice(["--config-file=/cfg/missing.conf", "--config-dir=/cfg/nod"]))
        elif kind < 0.26:
            files[f"cfg/dir{i}.conf/x"] = "[libvirt]\n"  # a directory given as a file
            argv.append(f"--config-file=/cfg/dir{i}.conf")
        else:
            files[f"cfg/f{i}.conf"] = _file(rnd)
            argv.append(f"--config-file=/cfg/f{i}.conf")
    if rnd.random() < 0.15:
        argv += ["--config-file", "/cfg/base.conf"]  # the same file twice
    env = {}
    for name, values in _ENV:
        if rnd.random() < 0.12:
            env[name] = rnd.choice(values)
    return files, argv, rnd.choice(VERSIONS), env


def _compare(
    tmp: Path,
    mp: pytest.MonkeyPatch,
    files: dict[str, str | bytes],
    argv: list[str],
    version: str,
    env: dict[str, str],
) -> tuple[Optional[str], dict[str, Outcome]]:
    root = make_snapshot(tmp, files)
    want = oracle(root, argv, version, env, mp)
    got = hvcheck(root, argv, version, env)
    if any(not _agree(want[o], got[o]) for o in want):
        return f"{version} {argv} env={env}\n  files={files}\n  oslo={want}\n  hvcheck={got}", want
    return None, want


def _agree(want: Outcome, got: Outcome) -> bool:
    """The same outcome; or oslo.config raised for a name nova has no option for
    (``NoSuchOptError``/``NoSuchGroupError``) where hvcheck, which cannot know every option
    name of every nova, says it cannot tell ("unresolved": UNKNOWN, never a value)."""
    if want[:1] == ("stop",) and got[:1] == ("stop",):
        return True
    if want[:1] == ("stop",) and len(want) == 2 and got[0] == "unresolved":
        return True
    return want == got


N_GENERATED = 400


def test_generated_config_sets_agree_with_oslo_config(
    tmp_path: Path, instrumented: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    disagreements = []
    kinds: dict[str, int] = {}
    for seed in range(N_GENERATED):
        files, argv, version, env = _case(seed)
        d, want = _compare(tmp_path / str(seed), monkeypatch, files, argv, version, env)
        if d:
            disagreements.append(d)
        for o in want.values():
            kind = o[0] if o[0] == "stop" else o[2][0]
            kinds[kind] = kinds.get(kind, 0) + 1
            if len(o) == 2:
                kinds["no-such-option"] = kinds.get("no-such-option", 0) + 1
    assert not disagreements, f"{len(disagreements)} disagreements:\n" + "\n".join(
        disagreements[:10]
    )
    # the generator reaches every outcome: refused, from a file, the environment, a default
    assert {"stop", "file", "env", "default"} <= set(kinds), kinds
    assert min(kinds[k] for k in ("stop", "file", "env", "default")) >= 30, kinds
    print(kinds)


# --------------------------------------------------------------------------------------------
# hand-written sets: the inputs of issue 17 and what the generator cannot aim at
# --------------------------------------------------------------------------------------------

_HAND: list[tuple[str, dict[str, str | bytes], list[str], str, dict[str, str]]] = [
    # 1. [DEFAULT] libvirt_type: nova's default since Juno
    ("1-qemu", {"cfg/n.conf": "[DEFAULT]\nlibvirt_type = qemu\n"}, [], "23.0.0", {}),
    ("1-KVM", {"cfg/n.conf": "[DEFAULT]\nlibvirt_type = KVM\n"}, [], "23.0.0", {}),
    ("1-icehouse", {"cfg/n.conf": "[DEFAULT]\nlibvirt_type = qemu\n"}, [], "2014.1", {}),
    # 2. xen: refused from Wallaby
    ("2-xen", {"cfg/n.conf": "[libvirt]\nvirt_type = xen\n"}, [], "23.0.0", {}),
    ("2-xen-victoria", {"cfg/n.conf": "[libvirt]\nvirt_type = xen\n"}, [], "22.0.0", {}),
    # 3. files nova cannot read
    ("3-missing", {}, ["--config-file", "/cfg/none.conf"], "23.0.0", {}),
    ("3-dir", {"cfg/n.conf/x": "[libvirt]\n"}, [], "23.0.0", {}),
    ("3-latin1", {"cfg/n.conf": b"[libvirt]\n# \xe9\nvirt_type = qemu\n"}, [], "23.0.0", {}),
    ("3-no-dir", {}, ["--config-dir", "/cfg/nowhere"], "23.0.0", {}),
    # 4. substitution
    (
        "4-host",
        {
            "cfg/n.conf": "[DEFAULT]\nhost = qemu\n[libvirt]\nvirt_type = $host\n"
            "cpu_models = $virt_type\n"
        },
        [],
        "23.0.0",
        {},
    ),
    ("4-escape", {"cfg/n.conf": "[libvirt]\nvirt_type = $$kvm\n"}, [], "23.0.0", {}),
    (
        "4-loop",
        {"cfg/n.conf": "[libvirt]\nvirt_type = $cpu_mode\ncpu_mode = $virt_type\n"},
        [],
        "23.0.0",
        {},
    ),
    (
        "4-dep",
        {"cfg/n.conf": "[libvirt]\ncpu_model = kvm\nvirt_type = $cpu_model\n"},
        [],
        "23.0.0",
        {},
    ),
    # 5. an inline comment is part of the value
    ("5", {"cfg/n.conf": "[libvirt]\ncpu_mode = host-passthrough # fast\n"}, [], "23.0.0", {}),
    # 6. a flag file: refused
    ("6", {"cfg/n.conf": "--debug\n--libvirt_type=qemu\n"}, [], "23.0.0", {}),
    # the environment beats every file; a later file's deprecated name beats an earlier one
    (
        "env",
        {"cfg/n.conf": "[libvirt]\nvirt_type = kvm\n"},
        [],
        "23.0.0",
        {"OS_LIBVIRT__VIRT_TYPE": "qemu"},
    ),
    (
        "dep-later",
        {"cfg/n.conf": "[libvirt]\ncpu_models = a\n", "cfg/m.conf": "[libvirt]\ncpu_model = b\n"},
        ["--config-file", "/cfg/m.conf"],
        "23.0.0",
        {},
    ),
    ("bom", {"cfg/n.conf": b"\xef\xbb\xbf[libvirt]\nvirt_type = qemu\n"}, [], "23.0.0", {}),
    (
        "bom-blank",
        {"cfg/n.conf": b"\xef\xbb\xbf\n[libvirt]\nvirt_type = qemu\n"},
        [],
        "23.0.0",
        {},
    ),
]


@pytest.mark.parametrize(
    ("files", "argv", "version", "env"),
    [pytest.param(f, a, v, e, id=i) for i, f, a, v, e in _HAND],
)
def test_hand_written_sets_agree_with_oslo_config(
    tmp_path: Path,
    instrumented: None,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str | bytes],
    argv: list[str],
    version: str,
    env: dict[str, str],
) -> None:
    n = ["--config-file", "/cfg/n.conf"] if any(k.startswith("cfg/n.conf") for k in files) else []
    disagreement, _ = _compare(tmp_path, monkeypatch, files, [*n, *argv], version, env)
    assert disagreement is None, disagreement


def test_unset_reference(
    tmp_path: Path, instrumented: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$host`` unset: nova substitutes its default (the hostname of nova-compute's host),
    which hvcheck does not guess: it says it cannot tell (UNKNOWN), never a wrong value."""
    files: dict[str, str | bytes] = {"cfg/n.conf": "[libvirt]\nvirt_type = $host\n"}
    argv = ["--config-file", "/cfg/n.conf"]
    root = make_snapshot(tmp_path, files)
    want = oracle(root, argv, "23.0.0", {}, monkeypatch)
    got = hvcheck(root, argv, "23.0.0", {})
    assert want["virt_type"] == ("stop",) or want["virt_type"][1] == socket.gethostname()
    assert got["virt_type"][0] == "unresolved"


def test_oslo_get_location_credits_the_wrong_file(
    tmp_path: Path, instrumented: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """oslo.config's own defect: ``get_location()`` names the last file holding the section."""
    files: dict[str, str | bytes] = {
        "cfg/a.conf": "[libvirt]\nvirt_type = qemu\n",
        "cfg/b.conf": "[libvirt]\ncpu_mode = none\n",
    }
    argv = ["--config-file", "/cfg/a.conf", "--config-file", "/cfg/b.conf"]
    root = make_snapshot(tmp_path, files)
    conf = cfg.ConfigOpts()
    conf.register_group(cfg.OptGroup("libvirt"))
    conf.register_opts(_nova_opts("23.0.0")[0], group="libvirt")
    conf([_under(root, a) for a in argv], project="nova",
         default_config_files=[], default_config_dirs=[])  # fmt: skip
    assert conf.libvirt.virt_type == "qemu"
    assert conf.get_location("virt_type", "libvirt").detail == f"{root}/cfg/b.conf"  # wrong
    got = hvcheck(root, argv, "23.0.0", {})
    assert got["virt_type"] == ("value", "qemu", ("file", "/cfg/a.conf", 2))  # right
