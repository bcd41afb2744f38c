"""Nova config parsing and virt_type resolution: corpus rows plus hand-written real-format cases."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import CORPUS, manifest, require_corpus
from hvcheck.novaconfig import known_nova_config_locations
from hvcheck.parsers import nova_schema as schema_module
from hvcheck.parsers import novaconf
from hvcheck.parsers.nova_schema import nova_schema
from hvcheck.parsers.novaconf import (
    ConfEntry,
    ConfigSources,
    NovaLibvirtConf,
    ParsedConf,
    Setting,
    config_sources_from_argv,
    expand_config_dir,
    oslo_config_load_order,
    oslo_default_config_dirs,
    oslo_default_config_files,
    parse_oslo_ini,
    resolve_nova_libvirt,
)

DEPRECATED = "[DEFAULT] libvirt_type (deprecated name of [libvirt] virt_type)"
ESSEX = nova_schema("2012.1")
ICEHOUSE = nova_schema("2014.1")

# --------------------------------------------------------------------------------------------
# corpus: every nova-conf row of MANIFEST.tsv
# --------------------------------------------------------------------------------------------

_ROWS = manifest("nova-conf")
_PARAMS = [pytest.param(f, facts, id=f.rsplit("/", 1)[-1]) for f, facts, _ in _ROWS] or [
    pytest.param(None, None, id="corpus-absent")
]


@pytest.mark.parametrize(("path", "facts"), _PARAMS)
def test_corpus_nova_conf(path: str | None, facts: dict[str, str] | None) -> None:
    require_corpus()
    assert path is not None and facts is not None
    text = (CORPUS / path).read_text(encoding="utf-8")
    conf = parse_oslo_ini(text, path)
    assert conf.error is None, conf.error
    # the flagfiles are Diablo's and Essex's; the ini files are read as the newest nova reads them
    r = resolve_nova_libvirt([conf], ESSEX if facts.get("format") == "flagfile" else None)
    assert r.errors == () and r.failures == ()
    assert r.files == (path,)

    expected = facts.get("effective_virt_type", facts["virt_type"])
    assert r.virt_type.value == expected
    assert r.virt_type.default is (facts["virt_type"] == "unset")
    if r.virt_type.default:
        assert (r.virt_type.file, r.virt_type.line, r.virt_type.spelling) == (None, None, "default")
    else:
        assert r.virt_type.file == path
        assert r.virt_type.line is not None
        # the line reported really is where the value was set
        assert expected in text.splitlines()[r.virt_type.line - 1]

    if facts.get("format") == "flagfile":
        assert conf.format == "flagfile"
        assert facts.get("option") == "libvirt_type"
        assert r.virt_type.spelling == "--libvirt_type (flagfile)"
    else:
        assert conf.format == "ini"
        if not r.virt_type.default:
            assert r.virt_type.spelling == "[libvirt] virt_type"

    if "cpu_mode" in facts:
        want = None if facts["cpu_mode"] == "unset" else facts["cpu_mode"]
        assert r.cpu_mode.value == want
        assert r.cpu_mode.default is (want is None)
    if "cpu_model" in facts:
        assert r.cpu_models.value == facts["cpu_model"]
        assert (
            r.cpu_models.spelling == "[libvirt] cpu_model (deprecated name of [libvirt] cpu_models)"
        )
        assert r.cpu_models.items == (facts["cpu_model"],)


# --------------------------------------------------------------------------------------------
# ini parsing (oslo_config/iniparser.py semantics)
# --------------------------------------------------------------------------------------------

NOVA_CONF = """\
[DEFAULT]
# Ubuntu-style header comment
transport_url = rabbit://openstack:secret@controller
my_ip = 10.0.0.31
enabled_apis = osapi_compute,metadata

[api]
auth_strategy = keystone

[libvirt]
; a semicolon comment
virt_type = kvm
cpu_mode = host-passthrough
live_migration_flag = VIR_MIGRATE_UNDEFINE_SOURCE,
  VIR_MIGRATE_PEER2PEER,
  VIR_MIGRATE_LIVE
images_type = rbd
"""


def test_line_numbers_sections_and_continuations() -> None:
    conf = parse_oslo_ini(NOVA_CONF, "/etc/nova/nova.conf")
    assert conf.error is None and conf.format == "ini"
    got = {(e.section, e.key): (e.value, e.line) for e in conf.entries}
    assert got[("DEFAULT", "transport_url")] == ("rabbit://openstack:secret@controller", 3)
    assert got[("api", "auth_strategy")] == ("keystone", 8)
    assert got[("libvirt", "virt_type")] == ("kvm", 12)
    assert got[("libvirt", "cpu_mode")] == ("host-passthrough", 13)
    assert got[("libvirt", "live_migration_flag")] == (
        "VIR_MIGRATE_UNDEFINE_SOURCE,\nVIR_MIGRATE_PEER2PEER,\nVIR_MIGRATE_LIVE",
        14,
    )
    assert got[("libvirt", "images_type")] == ("rbd", 17)
    assert all(e.file == "/etc/nova/nova.conf" for e in conf.entries)
    r = resolve_nova_libvirt([conf])
    assert r.virt_type == Setting("kvm", "/etc/nova/nova.conf", 12, "[libvirt] virt_type", False)
    assert r.cpu_mode == Setting(
        "host-passthrough", "/etc/nova/nova.conf", 13, "[libvirt] cpu_mode", False
    )
    assert r.cpu_models == Setting(None, None, None, "default", True, items=())  # ListOpt: []


def test_crlf_and_cr_line_ends_count_like_oslo() -> None:
    conf = parse_oslo_ini("[libvirt]\r\n\r\nvirt_type = qemu\rcpu_mode = none\r\n", "x")
    assert [(e.key, e.value, e.line) for e in conf.entries] == [
        ("virt_type", "qemu", 3),
        ("cpu_mode", "none", 4),
    ]


def test_value_syntax_as_oslo_reads_it() -> None:
    conf = parse_oslo_ini(
        "[libvirt]\n"
        'virt_type = "qemu"\n'  # one pair of outer quotes is removed
        "cpu_mode: custom\n"  # ':' works like '='
        "cpu_models = kvm64  # inline comments are part of the value\n"
        "images_type =\n"  # empty value
        "connection_uri = qemu:///system\n",  # '=' before ':' splits at '='
        "x",
    )
    assert conf.error is None
    assert [(e.key, e.value) for e in conf.entries] == [
        ("virt_type", "qemu"),
        ("cpu_mode", "custom"),
        ("cpu_models", "kvm64  # inline comments are part of the value"),
        ("images_type", ""),
        ("connection_uri", "qemu:///system"),
    ]


def test_section_names_normalised_as_oslo_does() -> None:
    conf = parse_oslo_ini(
        "[LIBVIRT]\nvirt_type = qemu\n[default]\nlibvirt_type = lxc\n[ libvirt ]\ncpu_mode = x\n",
        "x",
    )
    assert [e.section for e in conf.entries] == ["libvirt", "default", " libvirt "]
    r = resolve_nova_libvirt([conf])
    assert r.virt_type.value == "qemu"  # [LIBVIRT] is the libvirt group
    assert r.cpu_mode.value is None  # "[ libvirt ]" is another group nova never reads


def test_values_kept_case_sensitive() -> None:
    r = resolve_nova_libvirt([parse_oslo_ini("[libvirt]\nvirt_type = KVM\n", "x")])
    assert r.virt_type.value == "KVM"  # nova rejects it; the check reports it
    assert r.virt_type.default is False


def test_empty_and_comment_only_files() -> None:
    for text in ("", "\n\n", "# nothing\n;here\n", "[DEFAULT]\n[libvirt]\n"):
        conf = parse_oslo_ini(text, "x")
        assert conf == ParsedConf("x", (), None, "ini")
    r = resolve_nova_libvirt([])
    assert r.virt_type == Setting("kvm", None, None, "default", True)
    assert r.files == () and r.errors == ()


# --------------------------------------------------------------------------------------------
# errors: oslo refuses the whole file at the first bad line
# --------------------------------------------------------------------------------------------


def test_line_without_equals_is_an_error_with_its_line_number() -> None:
    text = "[DEFAULT]\nmy_ip = 10.0.0.31\n\n[libvirt]\nvirt_type = qemu\nthis line is garbage\n"
    conf = parse_oslo_ini(text, "/etc/nova/nova.conf")
    assert conf.error is not None
    assert conf.error.startswith("line 6: ")
    assert "this line is garbage" in conf.error
    # what parsed before the bad line is kept (oslo flushed virt_type before failing)
    assert [e.key for e in conf.entries] == ["my_ip", "virt_type"]
    r = resolve_nova_libvirt([conf])
    assert r.errors == (f"/etc/nova/nova.conf: {conf.error}",)
    assert r.virt_type.value == "qemu"


def test_binary_junk_does_not_raise() -> None:
    junk = bytes(range(256)).decode("latin-1") * 3
    conf = parse_oslo_ini(junk, "/etc/nova/nova.conf")
    assert conf.error is not None
    assert conf.format == "ini"
    r = resolve_nova_libvirt([conf])
    assert r.errors and r.errors[0].startswith("/etc/nova/nova.conf: line ")
    assert r.virt_type.default is True


def test_no_section_header() -> None:
    conf = parse_oslo_ini("# comment\n\nvirt_type = kvm\n", "x")
    assert conf.error == "line 3: no section header before 'virt_type = kvm'"
    assert conf.entries == ()


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[libvirt\nvirt_type = kvm\n", 1, "must end with ]"),
        ("[]\n", 1, "empty section name"),
        ("[libvirt]\n= kvm\n", 2, "empty key"),
        # oslo treats any indented line as a continuation; with no value pending it refuses it,
        # even when it looks like a comment
        ("[libvirt]\n    # indented comment\nvirt_type = kvm\n", 2, "continuation"),
        ("[libvirt] # trailing comment\n", 1, "must end with ]"),
    ],
)
def test_oslo_parse_errors(text: str, line: int, words: str) -> None:
    conf = parse_oslo_ini(text, "x")
    assert conf.error is not None and conf.error.startswith(f"line {line}: ")
    assert words in conf.error


def test_indented_comment_after_a_value_is_part_of_it() -> None:
    conf = parse_oslo_ini("[libvirt]\nvirt_type = kvm\n    # not a comment to oslo\n", "x")
    assert conf.error is None
    assert conf.entries[0].value == "kvm\n# not a comment to oslo"


# --------------------------------------------------------------------------------------------
# resolution across files, duplicates and deprecated names
# --------------------------------------------------------------------------------------------


def test_later_file_overrides() -> None:
    a = parse_oslo_ini("[libvirt]\nvirt_type = kvm\ncpu_mode = host-model\n", "/etc/nova/nova.conf")
    b = parse_oslo_ini("[DEFAULT]\n\n[libvirt]\nvirt_type = qemu\n", "/etc/nova/nova-compute.conf")
    r = resolve_nova_libvirt([a, b])
    assert r.virt_type == Setting(
        "qemu", "/etc/nova/nova-compute.conf", 4, "[libvirt] virt_type", False
    )
    assert r.cpu_mode.file == "/etc/nova/nova.conf"  # not overridden, still from the first
    assert r.files == ("/etc/nova/nova.conf", "/etc/nova/nova-compute.conf")
    r2 = resolve_nova_libvirt([b, a])
    assert r2.virt_type.value == "kvm"


def test_duplicate_key_last_wins() -> None:
    conf = parse_oslo_ini("[libvirt]\nvirt_type = qemu\n\n[libvirt]\nvirt_type = kvm\n", "x")
    assert [e.value for e in conf.entries] == ["qemu", "kvm"]  # all kept, in order
    r = resolve_nova_libvirt([conf])
    assert (r.virt_type.value, r.virt_type.line) == ("kvm", 5)


def test_deprecated_default_libvirt_type_alone() -> None:
    conf = parse_oslo_ini("[DEFAULT]\nlibvirt_type=qemu\n", "/etc/nova/nova.conf")
    r = resolve_nova_libvirt([conf], ICEHOUSE)
    assert r.virt_type == Setting("qemu", "/etc/nova/nova.conf", 2, DEPRECATED, False)
    assert r.ignored == ()
    # Havana: the current name; Juno (d0a02fa390) and later: ignored, nova's default applies
    havana = resolve_nova_libvirt([conf], nova_schema("2013.2"))
    assert havana.virt_type.spelling == "[DEFAULT] libvirt_type"
    for version in ("2014.2", "27.1.0", None):
        r = resolve_nova_libvirt([conf], nova_schema(version))
        assert r.virt_type == Setting("kvm", None, None, "default", True)
        assert [(e.key, e.line) for e in r.ignored] == [("libvirt_type", 2)]


def test_new_name_beats_deprecated_in_the_same_file() -> None:
    # the new name is written first: "last one wins" would pick qemu, oslo picks kvm
    conf = parse_oslo_ini(
        "[libvirt]\nvirt_type = kvm\n\n[DEFAULT]\nlibvirt_type = qemu\n", "/etc/nova/nova.conf"
    )
    r = resolve_nova_libvirt([conf], ICEHOUSE)
    assert (r.virt_type.value, r.virt_type.spelling, r.virt_type.line) == (
        "kvm",
        "[libvirt] virt_type",
        2,
    )


def test_deprecated_name_in_a_later_file_beats_new_name_in_an_earlier_one() -> None:
    # oslo's _Namespace._get_file_value searches files newest first, names within each file
    a = parse_oslo_ini("[libvirt]\nvirt_type = kvm\n", "/etc/nova/nova.conf")
    b = parse_oslo_ini("[DEFAULT]\nlibvirt_type = qemu\n", "/etc/nova/nova-compute.conf")
    r = resolve_nova_libvirt([a, b], ICEHOUSE)
    assert (r.virt_type.value, r.virt_type.spelling) == ("qemu", DEPRECATED)


def test_default_group_must_be_spelled_exactly() -> None:
    r = resolve_nova_libvirt([parse_oslo_ini("[default]\nlibvirt_type = qemu\n", "x")], ICEHOUSE)
    assert r.virt_type.default is True and r.virt_type.value == "kvm"


def test_cpu_models_and_its_deprecated_names() -> None:
    old = parse_oslo_ini("[DEFAULT]\nlibvirt_cpu_mode = custom\nlibvirt_cpu_model = kvm64\n", "a")
    r = resolve_nova_libvirt([old], ICEHOUSE)
    assert r.cpu_mode.value == "custom"
    assert (
        r.cpu_mode.spelling == "[DEFAULT] libvirt_cpu_mode (deprecated name of [libvirt] cpu_mode)"
    )
    assert r.cpu_models.value == "kvm64"
    assert r.cpu_models.spelling.startswith("[DEFAULT] libvirt_cpu_model")
    assert r.cpu_models.items is None  # Icehouse's cpu_model is one string, not a list
    new = parse_oslo_ini(
        "[libvirt]\ncpu_model = kvm64\ncpu_models = Haswell,Broadwell\n", "/etc/nova/nova.conf"
    )
    r = resolve_nova_libvirt([new])
    assert (r.cpu_models.value, r.cpu_models.spelling, r.cpu_models.items) == (
        "Haswell,Broadwell",
        "[libvirt] cpu_models",
        ("Haswell", "Broadwell"),
    )
    # before Train (20.0.0) there is no cpu_models: cpu_model is the option
    r = resolve_nova_libvirt([new], nova_schema("19.0.0"))
    assert (r.cpu_models.value, r.cpu_models.spelling) == ("kvm64", "[libvirt] cpu_model")
    assert [e.key for e in r.ignored] == ["cpu_models"]


def test_compute_driver() -> None:
    r = resolve_nova_libvirt(
        [parse_oslo_ini("[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n", "x")]
    )
    assert r.compute_driver == Setting(
        "libvirt.LibvirtDriver", "x", 2, "[DEFAULT] compute_driver", False
    )
    assert resolve_nova_libvirt([]).compute_driver.default is True


# --------------------------------------------------------------------------------------------
# pre-Grizzly flagfiles
# --------------------------------------------------------------------------------------------

ESSEX_FLAGS = """\
--dhcpbridge=/usr/bin/nova-dhcpbridge
--logdir=/var/log/nova
# a comment
--libvirt_type=kvm
--libvirt_use_virtio_for_bridges=true

--connection_type=libvirt
--force_dhcp_release
--root_helper=sudo nova-rootwrap
"""


def test_flagfile() -> None:
    conf = parse_oslo_ini(ESSEX_FLAGS, "/etc/nova/nova.conf")
    assert conf.format == "flagfile" and conf.error is None
    got = {e.key: (e.section, e.value, e.line) for e in conf.entries}
    assert got["libvirt_type"] == ("DEFAULT", "kvm", 4)
    assert got["force_dhcp_release"] == ("DEFAULT", "True", 8)  # a bare boolean flag
    assert got["root_helper"] == ("DEFAULT", "sudo nova-rootwrap", 9)
    r = resolve_nova_libvirt([conf], ESSEX)
    assert r.virt_type == Setting(
        "kvm", "/etc/nova/nova.conf", 4, "--libvirt_type (flagfile)", False
    )
    assert (r.compute_driver.value, r.compute_driver.spelling) == (
        "libvirt",
        "--connection_type (flagfile)",
    )


def test_flagfile_needs_no_sections() -> None:
    conf = parse_oslo_ini("[DEFAULT]\n--libvirt_type=kvm\n", "x")
    assert conf.format == "ini"  # a section header: oslo's ini parser decides (and keeps it)
    assert conf.entries[0].key == "--libvirt_type"


# --------------------------------------------------------------------------------------------
# where the files come from
# --------------------------------------------------------------------------------------------


def test_config_sources_from_argv_forms() -> None:
    argv = [
        "/usr/bin/python3",
        "/usr/bin/nova-compute",
        "--config-file=/etc/nova/nova.conf",
        "--config-file",
        "/etc/nova/nova-compute.conf",
        "--log-file=/var/log/nova/nova-compute.log",
        "--config-dir",
        "/etc/nova/nova.conf.d",
        "--config-dir=/etc/nova/extra.d",
    ]
    src = config_sources_from_argv(argv)
    assert src is not None
    assert list(src) == [
        ("file", "/etc/nova/nova.conf"),
        ("file", "/etc/nova/nova-compute.conf"),
        ("dir", "/etc/nova/nova.conf.d"),
        ("dir", "/etc/nova/extra.d"),
    ]
    assert len(src) == 4 and src.has_config_file and src.has_config_dir
    for kind, path in src:  # how hvcheck.novaconfig consumes it
        assert kind in ("file", "dir") and path.startswith("/etc/nova/")


def test_config_dir_only() -> None:
    src = config_sources_from_argv(["nova-compute", "--config-dir", "/etc/nova/nova.conf.d"])
    assert src == ConfigSources((("dir", "/etc/nova/nova.conf.d"),))
    assert not src.has_config_file


def test_kolla_argv_has_no_options() -> None:
    # kolla_start execs the command from /var/lib/kolla/config_files/config.json: a bare
    # nova-compute, which reads the /etc/nova/nova.conf kolla copied into the container
    argv = ["/var/lib/kolla/venv/bin/python3", "/var/lib/kolla/venv/bin/nova-compute"]
    assert config_sources_from_argv(argv) is None
    assert config_sources_from_argv([]) is None


def test_argv_edge_cases() -> None:
    assert config_sources_from_argv(["nova-compute", "--config-file"]) is None  # no value
    assert config_sources_from_argv(["nova-compute", "--", "--config-file=x"]) is None
    assert config_sources_from_argv(["nova-compute", "--config-files=x"]) is None
    src = config_sources_from_argv(["nova-compute", "--config-file="])
    assert src is not None and list(src) == [("file", "")]


def test_oslo_default_search() -> None:
    assert oslo_default_config_files() == [
        "/etc/nova/nova.conf",
        "/etc/nova.conf",
        "/etc/nova/nova-compute.conf",
        "/etc/nova-compute.conf",
    ]
    existing = {
        "/var/lib/nova/.nova/nova.conf",
        "/etc/nova/nova.conf",
        "/etc/nova/nova-compute.conf",
        "/etc/nova-compute.conf",
    }
    # first directory wins per name: ~/.nova/ before /etc/nova/, /etc/nova/ before /etc/
    assert oslo_default_config_files(exists=existing.__contains__, home="/var/lib/nova") == [
        "/var/lib/nova/.nova/nova.conf",
        "/etc/nova/nova-compute.conf",
    ]
    assert oslo_default_config_files(exists=existing.__contains__) == [
        "/etc/nova/nova.conf",
        "/etc/nova/nova-compute.conf",
    ]
    snap = oslo_default_config_files(
        snap="/snap/x/1", snap_common="/var/snap/x/common", exists=lambda p: "snap" in p
    )
    assert snap == [
        "/var/snap/x/common/etc/nova/nova.conf",
        "/var/snap/x/common/etc/nova/nova-compute.conf",
    ]
    assert oslo_default_config_dirs(exists=lambda p: p.endswith("nova-compute.conf.d")) == [
        "/etc/nova/nova-compute.conf.d"
    ]

    def broken(path: str) -> bool:
        raise PermissionError(path)

    assert oslo_default_config_files(exists=broken) == []


def test_oslo_load_order() -> None:
    exists = {"/etc/nova/nova.conf", "/etc/nova/nova.conf.d"}.__contains__
    assert oslo_config_load_order(None, exists=exists) == [
        ("file", "/etc/nova/nova.conf"),
        ("dir", "/etc/nova/nova.conf.d"),
    ]
    # Ubuntu: explicit files, but no --config-dir: default dirs are read first
    ubuntu = config_sources_from_argv(
        ["nova-compute", "--config-file=/etc/nova/nova.conf",
         "--config-file=/etc/nova/nova-compute.conf"]
    )  # fmt: skip
    assert oslo_config_load_order(ubuntu, exists=exists) == [
        ("dir", "/etc/nova/nova.conf.d"),
        ("file", "/etc/nova/nova.conf"),
        ("file", "/etc/nova/nova-compute.conf"),
    ]
    both = config_sources_from_argv(["nova-compute", "--config-dir", "/d", "--config-file", "/f"])
    assert oslo_config_load_order(both, exists=exists) == [("dir", "/d"), ("file", "/f")]


def test_expand_config_dir() -> None:
    names = ["20-x.conf", "10-y.conf", "9-z.conf", ".hidden.conf", "a.conf~", "B.CONF", "nova.conf"]
    assert expand_config_dir(names) == ["10-y.conf", "20-x.conf", "9-z.conf", "nova.conf"]
    paths = ["/etc/nova/nova.conf.d/b.conf", "/etc/nova/nova.conf.d/a.conf"]
    assert expand_config_dir(paths) == sorted(paths)
    assert expand_config_dir([]) == []


def test_known_locations() -> None:
    locs = known_nova_config_locations()
    assert isinstance(locs, tuple) and all(isinstance(p, str) and p.startswith("/") for p in locs)
    assert locs[:3] == (
        "/etc/nova/nova.conf",
        "/etc/nova/nova.conf.d/*.conf",
        "/etc/nova/nova-compute.conf",
    )
    for p in (
        "/etc/kolla/nova-compute/nova.conf",
        "/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf",
        "/var/snap/microstack/common/etc/nova/nova.conf",
        "/var/snap/openstack-hypervisor/common/etc/nova/nova.conf.d/*.conf",
    ):
        assert p in locs
    assert len(set(locs)) == len(locs)


def test_module_doctests() -> None:
    for mod in (novaconf, schema_module):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------

_INI_BITS = st.sampled_from(
    ["[libvirt]", "[DEFAULT]", "virt_type", "libvirt_type", "cpu_mode", " = ", ":", "=", "kvm",
     "qemu", "#", ";", "--", "\n", "\r\n", "\r", " ", "\t", "[", "]", '"', "'", "\x00", "\ufeff"]
)  # fmt: skip
_TEXT = st.one_of(st.text(), st.lists(_INI_BITS, max_size=60).map("".join))


@settings(max_examples=2000, deadline=None)
@given(_TEXT)
def test_property_parse_never_raises(text: str) -> None:
    conf = parse_oslo_ini(text, "f.conf")
    assert isinstance(conf, ParsedConf)
    assert conf.file == "f.conf" and conf.format in ("ini", "flagfile")
    assert conf.error is None or isinstance(conf.error, str)
    assert isinstance(conf.entries, tuple)
    n_lines = text.count("\n") + text.count("\r") + 1
    for e in conf.entries:
        assert isinstance(e, ConfEntry)
        assert all(isinstance(x, str) for x in (e.section, e.key, e.value, e.file))
        assert e.key and 1 <= e.line <= n_lines
    for schema in (ESSEX, ICEHOUSE, None):
        r = resolve_nova_libvirt([conf, conf], schema)
        assert isinstance(r, NovaLibvirtConf)
        assert isinstance(r.virt_type.value, str)
        for s in (r.virt_type, r.cpu_mode, r.cpu_models, r.compute_driver):
            assert isinstance(s, Setting) and s.default is (s.file is None)
        # a flagfile is an error where the release no longer reads flagfiles
        refused = conf.error or (conf.format == "flagfile" and schema is not ESSEX)
        assert len(r.errors) == (2 if refused else 0)
        assert len(r.failures) >= len(r.errors)


@given(st.lists(st.one_of(st.text(), st.sampled_from(["--config-file", "--config-dir", "--"]))))
def test_property_argv_never_raises(argv: list[str]) -> None:
    src = config_sources_from_argv(argv)
    assert src is None or (len(src) > 0 and all(k in ("file", "dir") for k, _ in src))
    order = oslo_config_load_order(src, exists=lambda p: len(p) % 2 == 0)
    assert all(isinstance(k, str) and isinstance(p, str) for k, p in order)
    assert expand_config_dir(argv) == sorted(expand_config_dir(argv))
