"""host.packages and the package databases: dpkg's status file (this machine's, held against
dpkg-query), RPM's rpmdb.sqlite (real databases written by rpm 4.18, held against `rpm -qa`),
`rpm -qa` itself, snaps' meta/snap.yaml (held against PyYAML), the host layer's reads (never a
write), collect's record, and the check's verdicts."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hvcheck import facts
from hvcheck.check import Context
from hvcheck.host import LiveHost, RecordingHost, RpmRead, SnapshotHost
from hvcheck.host.rpmdb import read_rpmdb_bytes, read_rpmdb_file
from hvcheck.parsers.pkgdb import (
    RPM_QUERYFORMAT,
    Package,
    RpmHeaderError,
    format_rpm_qa,
    parse_dpkg_status,
    parse_rpm_header,
    parse_rpm_qa,
    parse_snap_yaml,
    split_debian_version,
    yaml_top_scalars,
)
from hvcheck.services import rpm_qa
from rpmdb import RHEL94_COMPUTE, build_rpmdb, have_rpm
from snap import PROJECT, healthy_host, make_snapshot, run_hvcheck, run_json

DATA = Path(__file__).resolve().parent / "data" / "pkgdb"
FIXTURE_DB = PROJECT / "fixtures" / "rhel9-compute-rpmdb-sqlite" / "var/lib/rpm/rpmdb.sqlite"
needs_rpm = pytest.mark.skipif(not have_rpm(), reason="rpm and rpmbuild are not installed")
DEBIAN12 = (DATA / "dpkg-status-debian12").read_text()
NOVA_CONF = "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n\n[libvirt]\nvirt_type = kvm\n"


def _rpm_qa(dbdir: Path) -> list[tuple[str, ...]]:
    """What rpm itself says of a database: the reference for the header parser."""
    out = subprocess.run(
        ["rpm", "--dbpath", str(dbdir), "-qa", "--qf", RPM_QUERYFORMAT],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(tuple(line.split("\t")) for line in out.splitlines())


def _rows(pkgs: Any) -> list[tuple[str, ...]]:
    return sorted((p.name, p.epoch, p.version, p.release, p.arch) for p in pkgs)


def _blobs(path: Path) -> list[bytes]:
    conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT blob FROM Packages ORDER BY hnum")]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def odd_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database written by rpm with unusual values: epoch 0, no epoch, noarch, i686, '+', '~'
    and '^' in versions, a long release."""
    if not have_rpm():
        pytest.skip("rpm and rpmbuild are not installed")
    d = tmp_path_factory.mktemp("odd") / "rpmdb"
    build_rpmdb(
        d,
        (
            ("qemu-system-x86-core", "2", "7.2.0~rc1", "1.fc38", "x86_64"),
            ("libvirt-daemon-kvm", "0", "9.0.0^20230101git", "1.fc38", "i686"),
            (
                "python3-nova",
                "",
                "26.0.0+git2023",
                "0.1.20230101.fc38.long.release.string",
                "noarch",
            ),
        ),
    )
    return d


# ---------------------------------------------------------------------------------- dpkg
def test_module_doctests() -> None:
    import doctest

    from hvcheck.parsers import pkgdb

    result = doctest.testmod(pkgdb)
    assert result.attempted >= 10 and result.failed == 0


def test_dpkg_status_excerpt_of_this_project_machine() -> None:
    pkgs = {p.name: p for p in parse_dpkg_status(DEBIAN12)}
    assert len(pkgs) == 16
    q = pkgs["qemu-system-x86"]
    assert (q.epoch, q.version, q.release, q.arch) == ("1", "7.2+dfsg", "7+deb12u18+b3", "amd64")
    assert q.evr == "1:7.2+dfsg-7+deb12u18+b3" and q.db == "dpkg"
    assert q.state == "install ok installed"
    assert pkgs["libvirt-daemon-system"].evr == "9.0.0-4+deb12u2"
    assert pkgs["qemu-system-data"].arch == "all"


@pytest.mark.skipif(
    shutil.which("dpkg-query") is None or not os.path.exists("/var/lib/dpkg/status"),
    reason="no dpkg on this machine",
)
def test_dpkg_status_of_this_machine_is_what_dpkg_query_says() -> None:
    """The whole status file, held against dpkg itself: installed means the state letter of
    ${db:Status-Abbrev} is i (installed), W (triggers-awaited) or t (triggers-pending), with no
    error flag."""
    out = subprocess.run(
        [
            "dpkg-query",
            "-W",
            "-f",
            "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    want = set()
    for line in out.splitlines():
        name, version, arch, abbrev = line.split("\t")
        if abbrev[1] in "iWt" and abbrev[2:3] in ("", " "):
            want.add((name, version, arch))
    got = {
        (p.name, p.evr, p.arch) for p in parse_dpkg_status(Path("/var/lib/dpkg/status").read_text())
    }
    assert got == want and len(got) > 100


def _dpkg_query_installed(admindir: Path) -> set[tuple[str, str, str]]:
    """What dpkg itself reads as installed in ``admindir/status``: (name, version, arch)."""
    run = subprocess.run(
        [
            "dpkg-query",
            f"--admindir={admindir}",
            "-W",
            "-f",
            "${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr  # the strategy writes only files dpkg accepts
    want = set()
    for line in run.stdout.splitlines():
        name, version, arch, abbrev = line.split("\t")
        if abbrev[1] in "iWt" and abbrev[2:3] in ("", " "):
            want.add((name, version, arch))
    return want


def _spelled(draw: st.DrawFn, field: str) -> str:
    """``Field:`` as dpkg accepts it: the name in any case, blanks before and after the colon."""
    case = draw(st.sampled_from([str.lower, str.upper, str.title, str]))
    return case(field) + draw(st.sampled_from(["", "\t", " "])) + ":"


@st.composite
def _dpkg_status_files(draw: st.DrawFn) -> bytes:
    """Status files dpkg reads without complaint, in the shapes a hand-edited or foreign tool's
    file takes: field names in any case, blanks around colons and values, fields in any order,
    multi-line Description fields (with " ." lines) and Status fields, UTF-8 text, several
    blank lines."""
    names = draw(
        st.lists(
            st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,12}", fullmatch=True), max_size=6, unique=True
        )
    )
    stanzas = []
    for name in names:
        version = draw(
            st.from_regex(
                r"([1-9]:)?[0-9][A-Za-z0-9.+~]{0,6}(-[A-Za-z0-9.+~]{1,5})?", fullmatch=True
            )
        )
        state = draw(
            st.sampled_from(
                [
                    "install ok installed",
                    "hold ok installed",
                    "deinstall ok installed",
                    "install ok unpacked",
                    "deinstall ok config-files",
                ]
            )
        )
        # dpkg joins a Status continued on the next lines ("install ok\n installed")
        want_, flag, status_ = state.split(" ")
        gaps = [draw(st.sampled_from([" ", "\n ", "\n\t"])) for _ in range(2)]
        state = want_ + gaps[0] + flag + gaps[1] + status_
        desc_lines = draw(
            st.lists(st.sampled_from([" .", " more text", "\t tab", " ünïcödé"]), max_size=3)
        )
        fields = [
            ("Package", name),
            ("Status", state),
            ("Version", version),
            ("Architecture", draw(st.sampled_from(["amd64", "all", "arm64"]))),
            ("Maintainer", "Jörg <j@example.org>"),
            ("Description", "\n".join(["short", *desc_lines])),
        ]
        order = draw(st.permutations(fields))
        lines = []
        for field, value in order:
            pad = draw(st.sampled_from(["", " ", "\t", "  "]))
            tail = draw(st.sampled_from(["", " ", "\t"]))
            first, *rest = value.split("\n")
            lines.append(_spelled(draw, field) + pad + first + tail)
            lines.extend(rest)
        stanzas.append("\n".join(lines) + "\n")
    seps = [draw(st.sampled_from(["\n", "\n\n"])) for _ in stanzas]
    return "".join(s + sep for s, sep in zip(stanzas, seps)).encode()


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg on this machine")
@given(_dpkg_status_files())
@settings(max_examples=60, deadline=None)
def test_dpkg_status_files_read_as_dpkg_query_reads_them(data: bytes) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "status").write_bytes(data)
        want = _dpkg_query_installed(Path(d))
    assert {(p.name, p.evr, p.arch) for p in parse_dpkg_status(data)} == want


@pytest.mark.parametrize(
    "status",
    [  # a Status value continued on the next lines: dpkg joins them and reads three words
        "install ok\n installed",
        "install\n ok\n installed",
        "install ok\n\tinstalled",
        "install ok\r\n installed",
    ],
)
def test_dpkg_status_continued_on_next_lines_is_read_as_dpkg_reads_it(
    status: str, tmp_path: Path
) -> None:
    data = (
        f"Package: qemu-system-x86\nStatus: {status}\nVersion: 1:8.2.2+ds-0ubuntu1\n"
        "Architecture: amd64\n\n"
    ).encode()
    got = {(p.name, p.evr, p.arch) for p in parse_dpkg_status(data)}
    assert got == {("qemu-system-x86", "1:8.2.2+ds-0ubuntu1", "amd64")}
    if shutil.which("dpkg-query") is not None:
        (tmp_path / "status").write_bytes(data)
        assert got == _dpkg_query_installed(tmp_path)


@pytest.mark.parametrize(
    ("status", "installed"),
    [  # dpkg(1) "Package states" and "Package selection states"
        ("install ok installed", True),
        ("hold ok installed", True),  # apt-mark hold
        ("deinstall ok installed", True),  # selected for removal, still there
        ("install ok triggers-pending", True),
        ("install ok triggers-awaited", True),
        ("install ok unpacked", False),
        ("install ok half-configured", False),
        ("install reinstreq half-installed", False),
        ("deinstall ok config-files", False),
        ("purge ok not-installed", False),
        ("install ok", False),
    ],
)
def test_dpkg_states(status: str, installed: bool) -> None:
    text = f"Package: qemu-system-x86\nStatus: {status}\nVersion: 1:8.2.2+ds-0ubuntu1\n\n"
    assert bool(parse_dpkg_status(text)) is installed


def test_dpkg_field_names_are_case_insensitive_and_continuations_kept() -> None:
    text = "package: a\nSTATUS: install ok installed\nversion: 1.0-1\nDescription: x\n y\n .\n"
    (p,) = parse_dpkg_status(text)
    assert (p.name, p.evr) == ("a", "1.0-1")


@pytest.mark.parametrize(
    ("version", "parts"),
    [  # deb-version(7)
        ("1:7.2+dfsg-7+deb12u18+b3", ("1", "7.2+dfsg", "7+deb12u18+b3")),
        ("2:26.2.2-1~deb12u5", ("2", "26.2.2", "1~deb12u5")),
        ("1:2.3-4-5", ("1", "2.3-4", "5")),  # the revision follows the last hyphen
        ("0.9.8", ("", "0.9.8", "")),
        ("a:1.0", ("", "a:1.0", "")),  # not an epoch
    ],
)
def test_debian_version_split(version: str, parts: tuple[str, str, str]) -> None:
    assert split_debian_version(version) == parts


@given(st.text(max_size=300))
@settings(max_examples=300)
def test_dpkg_parser_never_raises(text: str) -> None:
    for p in parse_dpkg_status(text):
        assert p.name


# ---------------------------------------------------------------------------------- rpm
@needs_rpm
def test_fixture_rpmdb_holds_what_rpm_says(tmp_path: Path) -> None:
    r = read_rpmdb_file(str(FIXTURE_DB))
    assert r.status == "ok" and r.bad == 0, r
    # rpm is asked about a copy: even a query leaves rpmdb.sqlite-shm/-wal beside the database
    shutil.copy(FIXTURE_DB, tmp_path / "rpmdb.sqlite")
    assert _rows(r.packages) == _rpm_qa(tmp_path)
    assert _rows(r.packages) == sorted(RHEL94_COMPUTE)
    assert os.listdir(FIXTURE_DB.parent) == ["rpmdb.sqlite"]  # hvcheck's read left nothing


@needs_rpm
def test_odd_values_read_as_rpm_reads_them(odd_db: Path) -> None:
    r = read_rpmdb_file(str(odd_db / "rpmdb.sqlite"))
    assert r.status == "ok"
    assert _rows(r.packages) == _rpm_qa(odd_db)
    evrs = {p.name: p.evr for p in r.packages}
    assert evrs["libvirt-daemon-kvm"] == "0:9.0.0^20230101git-1.fc38"  # epoch 0 is an epoch
    assert evrs["python3-nova"] == "26.0.0+git2023-0.1.20230101.fc38.long.release.string"


def test_the_fixture_database_is_rpms_sqlite_schema_in_wal_mode() -> None:
    data = FIXTURE_DB.read_bytes()
    assert data[:16] == b"SQLite format 3\0"
    assert data[18:20] == b"\x02\x02"  # WAL mode, as rpm's sqlite backend leaves it
    blobs = _blobs(FIXTURE_DB)
    assert len(blobs) == len(RHEL94_COMPUTE)
    il, dl = struct.unpack_from(">II", blobs[0])
    assert len(blobs[0]) == 8 + 16 * il + dl
    # the first entry is the immutable region (RPMTAG_HEADERIMMUTABLE 63, BIN)
    assert struct.unpack_from(">II", blobs[0], 8) == (63, 7)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:5], "hdr length"),
        (lambda b: struct.pack(">II", 0x10000, 0) + b[8:], "out of range"),
        (lambda b: b + b"\0", "blob size"),
        (lambda b: b[:-1], "blob size"),
    ],
)
def test_broken_header_framing_is_refused(mutate: Any, message: str) -> None:
    blob = _blobs(FIXTURE_DB)[0]
    with pytest.raises(RpmHeaderError, match=message):
        parse_rpm_header(mutate(blob))


def test_header_values_outside_the_data_store_are_refused() -> None:
    def blob(entries: list[tuple[int, int, int]], data: bytes) -> bytes:
        index = b"".join(struct.pack(">IIiI", t, ty, off, 1) for t, ty, off in entries)
        return struct.pack(">II", len(entries), len(data)) + index + data

    good = blob([(1000, 6, 0), (1001, 6, 2)], b"a\x001\x00")
    assert parse_rpm_header(good).evr == "1"
    with pytest.raises(RpmHeaderError, match="1001"):
        parse_rpm_header(blob([(1000, 6, 0), (1001, 6, 99)], b"a\x001\x00"))
    with pytest.raises(RpmHeaderError, match="not terminated"):
        parse_rpm_header(blob([(1000, 6, 0), (1001, 6, 2)], b"a\x001!"))
    with pytest.raises(RpmHeaderError, match="1003"):  # EPOCH not 4-aligned
        parse_rpm_header(blob([(1000, 6, 0), (1001, 6, 2), (1003, 4, 1)], b"a\x001\x00\0\0\0\0"))
    with pytest.raises(RpmHeaderError, match="NAME or VERSION"):
        parse_rpm_header(blob([(1001, 6, 0)], b"1\x00"))


@given(st.data())
@settings(max_examples=300)
def test_header_parser_raises_only_its_error_on_damaged_headers(data: st.DataObject) -> None:
    blob = bytearray(_blobs(FIXTURE_DB)[data.draw(st.integers(0, len(RHEL94_COMPUTE) - 1))])
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    try:
        p = parse_rpm_header(bytes(blob))
    except RpmHeaderError:
        return
    assert isinstance(p, Package) and p.name and p.version


@given(st.binary(max_size=200))
def test_header_parser_on_arbitrary_bytes(blob: bytes) -> None:
    with contextlib.suppress(RpmHeaderError):
        parse_rpm_header(blob)


def test_rpm_qa_lines_round_trip() -> None:
    pkgs = [
        Package("qemu-kvm", "8.2.0", "11.el9_4", "17", "x86_64", "rpm -qa"),
        Package("gpg-pubkey", "fd431d51", "4ae0493b", "", "", "rpm -qa"),
    ]
    assert parse_rpm_qa("\n".join(format_rpm_qa(pkgs))) == pkgs


# ---------------------------------------------------------------------------------- host layer
def _tree(d: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in d.iterdir()}


@needs_rpm
def test_live_read_in_place_writes_nothing(tmp_path: Path) -> None:
    """rpm leaves its database in WAL mode with -wal and -shm beside it: the read (read-only,
    immutable) changes none of them and creates nothing."""
    d = build_rpmdb(tmp_path / "db", RHEL94_COMPUTE[:3]).parent
    assert {"rpmdb.sqlite", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"} <= set(os.listdir(d))
    before = _tree(d)
    shm = (d / "rpmdb.sqlite-shm").read_bytes()
    d.chmod(0o555)  # and a directory nobody may write to is no obstacle
    try:
        r = LiveHost().rpm_sqlite(str(d / "rpmdb.sqlite"))
    finally:
        d.chmod(0o755)
    assert r is not None and r.status == "ok" and len(r.packages) == 3
    assert _tree(d) == before and (d / "rpmdb.sqlite-shm").read_bytes() == shm
    assert LiveHost().rpm_sqlite(str(d / "absent.sqlite")) is None


def test_not_an_rpm_database(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    r = read_rpmdb_file(str(other))
    assert r.status == "error" and "no such table: Packages" in (r.error or "")
    (tmp_path / "text").write_text("not sqlite")
    assert "not an SQLite database" in (read_rpmdb_file(str(tmp_path / "text")).error or "")
    assert read_rpmdb_bytes(b"garbage", "/x").error == "/x: not an SQLite database"


def test_truncated_copy_is_an_error_not_a_short_list() -> None:
    data = FIXTURE_DB.read_bytes()
    r = read_rpmdb_bytes(data[: len(data) // 2], "/var/lib/rpm/rpmdb.sqlite")
    assert r.status == "error" and "truncated" in (r.error or "") and not r.packages


def test_snapshot_reads_the_file_from_a_private_copy(tmp_path: Path) -> None:
    root = make_snapshot(tmp_path / "s", {"var/lib/rpm/rpmdb.sqlite": FIXTURE_DB.read_bytes()})
    r = SnapshotHost(str(root)).rpm_sqlite("/var/lib/rpm/rpmdb.sqlite")
    assert r is not None and r.status == "ok"
    assert _rows(r.packages) == sorted(RHEL94_COMPUTE)
    tgz = tmp_path / "s.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(root, arcname=".")
    r2 = SnapshotHost(str(tgz)).rpm_sqlite("/var/lib/rpm/rpmdb.sqlite")
    assert r2 is not None and r2.packages == r.packages
    assert SnapshotHost(str(root)).rpm_sqlite("/usr/lib/sysimage/rpm/rpmdb.sqlite") is None


def test_a_snapshot_never_follows_an_rpmdb_link_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside.sqlite"
    outside.write_bytes(FIXTURE_DB.read_bytes())
    root = make_snapshot(tmp_path / "s", links={"var/lib/rpm/rpmdb.sqlite": str(outside)})
    r = SnapshotHost(str(root)).rpm_sqlite("/var/lib/rpm/rpmdb.sqlite")
    assert r is not None and r.status == "error" and not r.packages


@needs_rpm
def test_rpm_qa_service(tmp_path: Path) -> None:
    """rpm -qa as the live host runs it for a Berkeley DB/ndb database (this machine's rpm
    writes only sqlite; rpm -qa reads whichever backend it finds the same way)."""
    d = build_rpmdb(tmp_path / "db", RHEL94_COMPUTE).parent
    r = rpm_qa(str(d), 30)
    assert r.status == "ok" and r.via == "rpm -qa"
    assert _rows(r.packages) == sorted(RHEL94_COMPUTE)
    assert rpm_qa(str(d), 0).status == "timeout"


def test_rpm_qa_without_rpm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    r = rpm_qa("/var/lib/rpm", 10)
    assert r.status == "unavailable" and "rpm command" in (r.error or "")


@needs_rpm
def test_collect_records_the_package_list_and_a_replay_reads_it(tmp_path: Path) -> None:
    d = build_rpmdb(tmp_path / "db", RHEL94_COMPUTE).parent
    (d / "Packages").write_bytes(b"")  # what a Berkeley DB database's directory holds
    rec = RecordingHost()
    live_sqlite = rec.rpm_sqlite(str(d / "rpmdb.sqlite"))
    live_qa = rec.rpm_query(str(d), 30)
    assert live_sqlite is not None and live_qa is not None and live_qa.status == "ok"
    out = tmp_path / "snap.tar.gz"
    rec.write_snapshot(str(out), "2025-12-06T00:00:00Z")
    with tarfile.open(out) as tf:
        names = tf.getnames()
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        marker = json.load(f)
    assert not any(n.endswith("rpmdb.sqlite") for n in names)  # the list, not the file
    assert marker["probes"]["rpm"][str(d)]["via"] == "rpm -qa"
    snap = SnapshotHost(str(out))
    assert snap.rpm_sqlite(str(d / "rpmdb.sqlite")) == live_sqlite
    assert snap.rpm_query(str(d), 30) == live_qa
    assert RpmRead.from_json({"status": "ok", "packages": [1, "a\t\t1\t\t"]}) == RpmRead(
        "ok", "snapshot", (Package("a", "1", db="rpmdb.sqlite"),)
    )


# ---------------------------------------------------------------------------------- snap.yaml
def test_real_snap_yaml_files() -> None:
    classic = parse_snap_yaml((DATA / "classic-snap.yaml").read_text())
    assert classic is not None and (classic.name, classic.version) == ("classic", "16.04-3")
    platform = parse_snap_yaml((DATA / "syncloud-platform-snap.yaml").read_text())
    assert platform is not None and (platform.name, platform.version) == ("platform", "")
    oh = parse_snap_yaml((DATA / "openstack-hypervisor-snap.yaml").read_text())
    assert oh is not None and (oh.name, oh.evr, oh.db) == ("openstack-hypervisor", "2024.1", "snap")
    for f in DATA.glob("*.yaml"):
        ref = yaml.safe_load(f.read_text())
        one_line = {k: v for k, v in ref.items() if isinstance(v, str) and "\n" not in v}
        assert yaml_top_scalars(f.read_text()) == one_line


_SCALAR = st.text(
    alphabet=st.characters(
        min_codepoint=32, max_codepoint=0x24F, blacklist_categories=("Cc",)
    ),  # no control characters: YAML 1.1 takes NEL (U+0085) for a line break
    min_size=1,
    max_size=20,
)


@st.composite
def _yaml_doc(draw: st.DrawFn) -> str:
    lines = []
    for key in draw(st.lists(st.sampled_from(["name", "version", "summary", "apps"]), max_size=5)):
        value = draw(_SCALAR)
        style = draw(st.sampled_from(["plain", "single", "double", "nested", "block", "flow"]))
        if style == "plain":
            lines.append(f"{key}: {value}")
        elif style == "single":
            lines.append(f"{key}: '{value.replace(chr(39), chr(39) * 2)}'")
        elif style == "double":
            lines.append(f"{key}: " + json.dumps(value))
        elif style == "nested":
            lines += [f"{key}:", f"  {key}: {json.dumps(value)}", "  other: [x]"]
        elif style == "block":
            lines += [f"{key}: |", f"  name: {json.dumps(value)}"]
        else:
            lines += [f"{key}: [a, {json.dumps(value)},", "  name: x]"]
        if draw(st.booleans()):
            lines.append(f"# {value}")
    return "\n".join(lines) + "\n"


@given(_yaml_doc())
@example("name: '\n# '\n")  # found by hypothesis: a quote closed on the next line
@settings(max_examples=400)
def test_top_level_scalars_are_what_pyyaml_reads(doc: str) -> None:
    """Where PyYAML reads the document as a mapping, every value the small reader returns is
    PyYAML's (as text), and it misses no top-level string PyYAML finds."""
    try:
        ref = yaml.safe_load(doc)
    except yaml.YAMLError:
        return
    got = yaml_top_scalars(doc)
    if not isinstance(ref, dict):
        return
    for k, v in got.items():
        assert k in ref, (doc, k)
        r = ref[k]
        if isinstance(r, str):
            assert r == v, (doc, k, v, r)
        else:  # a plain scalar PyYAML resolves to a number, bool or date: kept as text here
            assert r is not None and not isinstance(r, (list, dict)), (doc, k, v, r)
    for k, r in ref.items():
        last = re.findall(rf"^{k}:(.*)$", doc, re.M)[-1].strip(" \t")
        if isinstance(r, str) and last[:1] not in ("|", ">") and not _continues(last):
            # block scalars and quoted scalars over several lines are not read (documented)
            assert got.get(k) == r, (doc, k, r)


def _continues(value: str) -> bool:
    """A quoted scalar not closed on its own line (``name: '`` then ``# '`` on the next):
    YAML folds it over lines, the small reader skips it."""
    if value[:1] not in ("'", '"'):
        return False
    try:
        yaml.safe_load(f"k: {value}")
    except yaml.YAMLError:
        return True
    return False


# ---------------------------------------------------------------------------------- the check
def _packages(root: Path, *args: str) -> dict[str, Any]:
    _, doc = run_json("--root", str(root), "--only", "host.packages", *args)
    (c,) = doc["checks"]
    return dict(c)


def _debian(tmp_path: Path, drop: tuple[str, ...] = (), **files: str | bytes) -> Path:
    stanzas = [
        s
        for s in DEBIAN12.strip("\n").split("\n\n")
        if not s.split("\n", 1)[0].removeprefix("Package: ").startswith(drop)
    ]
    root = healthy_host(tmp_path / "s")
    for rel, content in {"var/lib/dpkg/status": "\n\n".join(stanzas) + "\n", **files}.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    return root


def test_no_database_skips(tmp_path: Path) -> None:
    c = _packages(healthy_host(tmp_path / "s"))
    assert (c["status"], c["code"]) == ("SKIP", "no-database")


def test_not_a_compute_node_lists_what_is_installed(tmp_path: Path) -> None:
    c = _packages(_debian(tmp_path))
    assert (c["status"], c["code"]) == ("OK", "not-compute")
    assert "qemu-system-x86 1:7.2+dfsg-7+deb12u18+b3 (QEMU 7.2)" in c["summary"]
    assert c["details"]["qemu"]["short_version"] == "7.2"
    assert c["details"]["qemu"]["version"] == "1:7.2+dfsg-7+deb12u18+b3"
    names = {p["name"] for p in c["details"]["packages"]}
    assert {"qemu-system-x86", "libvirt-daemon-system"} <= names and "libvirt0" not in names


def test_compute_node_with_everything_is_ok(tmp_path: Path) -> None:
    c = _packages(_debian(tmp_path, **{"etc/nova/nova.conf": NOVA_CONF}))
    assert (c["status"], c["code"]) == ("OK", "ok")
    assert c["details"]["compute_node"] is True and c["details"]["missing"] == []


def test_a_controllers_nova_conf_is_no_compute_node(tmp_path: Path) -> None:
    conf = "[DEFAULT]\ntransport_url = rabbit://nova:x@ctl:5672/\n[api_database]\nconnection = x\n"
    c = _packages(_debian(tmp_path, ("qemu", "ipxe", "libvirt"), **{"etc/nova/nova.conf": conf}))
    assert (c["status"], c["code"]) == ("OK", "not-compute")
    # the same file on a host with nova-compute installed is a compute node's
    compute = "Package: nova-compute\nStatus: install ok installed\nVersion: 2:26.2.2-1~deb12u5\n"
    status = tmp_path / "s/var/lib/dpkg/status"
    status.write_text(status.read_text() + "\n" + compute)
    c = _packages(tmp_path / "s")
    assert (c["status"], c["code"]) == ("WARNING", "no-qemu-libvirt")
    assert "nova-compute installed" in c["summary"]


def test_missing_libvirt_names_the_distributions_package(tmp_path: Path) -> None:
    c = _packages(_debian(tmp_path, ("libvirt",), **{"etc/nova/nova.conf": NOVA_CONF}))
    assert (c["status"], c["code"]) == ("WARNING", "no-libvirt")
    assert "apt-get install libvirt-daemon-system" in c["hint"]
    assert "libvirt.LibvirtDriver" in c["summary"]


def test_missing_both(tmp_path: Path) -> None:
    c = _packages(
        _debian(tmp_path, ("libvirt", "qemu", "ipxe"), **{"etc/nova/nova.conf": NOVA_CONF})
    )
    assert (c["status"], c["code"]) == ("WARNING", "no-qemu-libvirt")
    assert "apt-get install qemu-system-x86" in c["hint"]
    assert "apt-get install libvirt-daemon-system" in c["hint"]


def test_arm64_host_with_only_the_x86_emulator(tmp_path: Path) -> None:
    root = _debian(tmp_path, **{"etc/nova/nova.conf": NOVA_CONF})
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["arch"] = "aarch64"
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    c = _packages(root)
    assert (c["status"], c["code"]) == ("WARNING", "no-qemu")
    assert "apt-get install qemu-system-arm" in c["hint"]
    assert "qemu-system-x86 installed: not an emulator for aarch64" in c["summary"]


def test_rhel_hint_uses_dnf(tmp_path: Path) -> None:
    if not have_rpm():
        pytest.skip("rpm and rpmbuild are not installed")
    build_rpmdb(tmp_path / "db", tuple(p for p in RHEL94_COMPUTE if "qemu" not in p[0]))
    root = healthy_host(tmp_path / "s")
    (root / "etc/os-release").write_text(
        (PROJECT / "fixtures/rhel9-compute-rpmdb-sqlite/etc/os-release").read_text()
    )
    for rel, content in {
        "var/lib/rpm/rpmdb.sqlite": (tmp_path / "db/rpmdb.sqlite").read_bytes(),
        "etc/nova/nova.conf": NOVA_CONF.encode(),
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content)
    c = _packages(root)
    assert (c["status"], c["code"]) == ("WARNING", "no-qemu")
    assert c["hint"].startswith("dnf install qemu-kvm")
    assert c["details"]["databases"][0]["kind"] == "rpmdb.sqlite"


def test_qemu_built_from_source_is_not_missing(tmp_path: Path) -> None:
    root = _debian(
        tmp_path,
        ("qemu", "ipxe"),
        **{"etc/nova/nova.conf": NOVA_CONF, "usr/local/bin/qemu-system-x86_64": b"\x7fELF"},
    )
    c = _packages(root)
    assert (c["status"], c["code"]) == ("OK", "ok")
    assert (
        "/usr/local/bin/qemu-system-x86_64 is installed outside the package manager"
        in (c["summary"])
    )


def test_virt_type_lxc_needs_no_qemu(tmp_path: Path) -> None:
    conf = "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n[libvirt]\nvirt_type = lxc\n"
    c = _packages(_debian(tmp_path, ("qemu", "ipxe"), **{"etc/nova/nova.conf": conf}))
    assert (c["status"], c["code"]) == ("OK", "ok")


def test_kolla_compute_node_takes_qemu_from_its_images(tmp_path: Path) -> None:
    # kolla's nova-compute config need not set the driver: where it lives says what it is
    conf = "[DEFAULT]\ntransport_url = rabbit://openstack:x@10.0.0.10:5672//\n"
    root = _debian(
        tmp_path, ("qemu", "ipxe", "libvirt"), **{"etc/kolla/nova-compute/nova.conf": conf}
    )
    c = _packages(root)
    assert (c["status"], c["code"]) == ("OK", "containers")
    assert "/etc/kolla/nova-compute/nova.conf" in c["summary"]
    assert c["details"]["compute_evidence"] == [
        "nova-compute's config /etc/kolla/nova-compute/nova.conf"
    ]


def test_a_libvirtd_whose_binary_is_not_on_the_host_runs_in_a_container(tmp_path: Path) -> None:
    root = _debian(
        tmp_path,
        ("qemu", "ipxe", "libvirt"),
        **{"proc/4242/cmdline": "/usr/sbin/libvirtd\0--listen\0", "proc/4242/comm": "libvirtd\n"},
    )
    c = _packages(root)
    assert (c["status"], c["code"]) == ("OK", "containers")
    assert "not on this host's filesystem" in c["summary"]
    # the same daemon with its binary on the host, and no QEMU package: a compute node lacking QEMU
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/libvirtd").write_bytes(b"\x7fELF")
    c = _packages(root)
    assert (c["status"], c["code"]) == ("WARNING", "no-qemu")
    assert "libvirtd runs (pid 4242)" in c["summary"]


def test_openstack_hypervisor_snap_brings_its_own(tmp_path: Path) -> None:
    root = _debian(
        tmp_path,
        ("qemu", "ipxe", "libvirt"),
        **{
            "var/snap/openstack-hypervisor/common/etc/nova/nova.conf": NOVA_CONF,
            "snap/openstack-hypervisor/current/meta/snap.yaml": (
                DATA / "openstack-hypervisor-snap.yaml"
            ).read_text(),
            "snap/core24/current/meta/snap.yaml": "name: core24\nversion: '20240528'\n",
        },
    )
    c = _packages(root)
    assert (c["status"], c["code"]) == ("OK", "snap")
    assert "snap openstack-hypervisor 2024.1" in c["summary"]
    assert {"kind": "snap", "path": "/snap", "status": "ok", "found": 2, "error": None} in c[
        "details"
    ]["databases"]


def test_unreadable_database_is_unknown_with_a_way_out(tmp_path: Path) -> None:
    root = _debian(tmp_path, **{"etc/nova/nova.conf": NOVA_CONF})
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["denied"] = ["/var/lib/dpkg/status"]
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    c = _packages(root)
    assert (c["status"], c["code"]) == ("UNKNOWN", "unreadable")
    assert "re-run as root" in c["hint"]


def test_berkeley_db_in_a_snapshot_without_collects_record(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "var/lib/rpm").mkdir(parents=True)
    (root / "var/lib/rpm/Packages").write_bytes(b"\0" * 4096)
    c = _packages(root)
    assert (c["status"], c["code"]) == ("UNKNOWN", "unreadable")
    assert "hvcheck collect" in c["hint"]


def test_berkeley_db_replayed_from_collects_record(tmp_path: Path) -> None:
    rows = [
        "qemu-kvm\t10\t1.5.3\t175.el7_9.6\tx86_64",
        "libvirt-daemon-kvm\t\t4.5.0\t36.el7\tx86_64",
    ]
    root = healthy_host(
        tmp_path / "s",
        probes={
            "kvm": {"ok": True, "stage": "done", "api_version": 12, "uid": 0},
            "rpm": {"/var/lib/rpm": {"status": "ok", "via": "rpm -qa", "packages": rows}},
        },
    )
    (root / "etc/nova").mkdir(parents=True)
    (root / "etc/nova/nova.conf").write_text(NOVA_CONF)
    c = _packages(root)
    assert (c["status"], c["code"]) == ("OK", "ok"), c
    assert "qemu-kvm 10:1.5.3-175.el7_9.6 (QEMU 1.5.3)" in c["summary"]
    assert c["details"]["databases"][0]["kind"] == "rpm -qa"


def test_rpmdb_unreadable_as_a_file_but_read_by_rpm(tmp_path: Path) -> None:
    """collect read rpmdb.sqlite mid-transaction, then asked rpm: the replay says what rpm
    said, as the live run did."""
    root = healthy_host(
        tmp_path / "s",
        probes={
            "kvm": {"ok": True, "stage": "done", "api_version": 12, "uid": 0},
            "rpm": {
                "/var/lib/rpm/rpmdb.sqlite": {
                    "status": "error",
                    "via": "sqlite3",
                    "error": "sqlite3: database disk image is malformed",
                },
                "/var/lib/rpm": {
                    "status": "ok",
                    "via": "rpm -qa",
                    "packages": ["qemu-kvm\t17\t8.2.0\t11.el9_4\tx86_64"],
                },
            },
        },
    )
    c = _packages(root)
    assert (c["status"], c["code"]) == ("OK", "not-compute")
    assert c["details"]["databases"] == [
        {"kind": "rpm -qa", "path": "/var/lib/rpm", "status": "ok", "found": 1, "error": None}
    ]
    # without rpm's answer, the file's error stands
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    del marker["probes"]["rpm"]["/var/lib/rpm"]
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    c = _packages(root)
    assert (c["status"], c["code"]) == ("UNKNOWN", "unreadable")
    assert "malformed" in c["summary"]


# ---------------------------------------------------------------------------------- live
@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="no dpkg on this machine")
def test_live_run_reports_this_machines_qemu_package() -> None:
    p = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "qemu-system-x86"],
        capture_output=True,
        text=True,
        check=False,
    )
    if p.returncode != 0:
        pytest.skip("qemu-system-x86 is not installed here")
    _, doc = run_json("--only", "host.packages")
    (c,) = doc["checks"]
    assert c["status"] == "OK", c
    assert c["details"]["qemu"]["name"] == "qemu-system-x86"
    assert c["details"]["qemu"]["version"] == p.stdout
    ctx = Context(LiveHost())
    assert facts.qemu_package(ctx) is not None
    assert any(db.kind == "dpkg" for db in facts.installed_packages(ctx).databases)


def test_checks_lists_host_packages_after_host_os() -> None:
    j = json.loads(run_hvcheck("--json", "checks").stdout)
    ids = [c["id"] for c in j]
    assert ids.index("host.packages") == ids.index("host.os") + 1
    reads = next(c for c in j if c["id"] == "host.packages")["reads"]
    assert "/var/lib/dpkg/status" in reads and "/var/lib/rpm/rpmdb.sqlite" in reads


_DPKG_LINE_SOUP = st.lists(
    st.sampled_from(
        [
            b"Package: qemu-kvm",
            b"PACKAGE : x",
            b"Status: install ok",
            b" installed",
            b"\tcontinued",
            b" .",
            b" ",
            b"\t \r",
            b"",
            b"\r",
            b"Version:1",
            b"Description: d",
            b"Architecture:amd64",
            b"other",
            b"\xff\xfe",
        ]
    ),
    max_size=10,
).map(b"\n".join)


@given(_DPKG_LINE_SOUP, st.booleans())
@settings(max_examples=500, deadline=None)
def test_dpkg_lines_are_the_regex_over_the_file_with_a_leading_newline(
    body: bytes, final_newline: bool
) -> None:
    """The file is matched in place, its first line (continued or not, blank or not) apart:
    the same lines as the regex finds after a "\\n" put before the whole file."""
    from hvcheck.parsers.pkgdb import _DPKG_LINE, _dpkg_lines

    data = body + (b"\n" if final_newline else b"")
    assert _dpkg_lines(data) == _DPKG_LINE.findall(b"\n" + data)
