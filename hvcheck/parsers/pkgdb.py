"""Package databases, parsed: dpkg's status file, RPM headers (the blobs of ``rpmdb.sqlite``'s
``Packages`` table, and ``rpm -qa`` output in :data:`RPM_QUERYFORMAT`), and a snap's
``meta/snap.yaml``. Pure functions: text or bytes in, :class:`Package` records out; the host
layer reads the files (``/var/lib/dpkg/status``, ``/usr/lib/sysimage/rpm/rpmdb.sqlite``,
``/var/lib/rpm/rpmdb.sqlite``, ``/snap/<name>/current/meta/snap.yaml``).

**dpkg** (dpkg(1) "Package states", deb822(5), deb-version(7)): the status file is a list of
stanzas separated by blank lines, ``Field: value`` lines, continuation lines starting with a
space. A package is installed when the third word of its ``Status:`` (want, flag, state) is
``installed``, ``triggers-pending`` or ``triggers-awaited`` (all three are unpacked and
configured) and its flag is ``ok``; the want word does not matter (``hold ok installed`` after
``apt-mark hold`` is installed, ``deinstall ok installed`` too until it is removed).
``config-files``, ``unpacked``, ``half-installed`` and ``half-configured`` are not:

>>> text = '''Package: qemu-system-x86
... Status: install ok installed
... Architecture: amd64
... Version: 1:7.2+dfsg-7+deb12u18+b3
... Description: QEMU full system emulation binaries (x86)
...  QEMU is a fast processor emulator.
...
... Package: qemu-kvm
... Status: deinstall ok config-files
... Version: 1:5.2+dfsg-11+deb11u3
... '''
>>> [(p.name, p.epoch, p.version, p.release, p.arch, p.evr) for p in parse_dpkg_status(text)]
[('qemu-system-x86', '1', '7.2+dfsg', '7+deb12u18+b3', 'amd64', '1:7.2+dfsg-7+deb12u18+b3')]

**RPM headers** (rpm's ``lib/header.cc``: ``hdrblobInit``, ``hdrblobVerifyInfo``;
``include/rpm/rpmtag.h``): a header as rpm stores it in its database is ``il`` and ``dl``
(big-endian uint32: the number of index entries, the size of the data store), ``il`` index
entries of four big-endian 32-bit words (tag, type, offset into the data store, count), then
``dl`` bytes of data. Strings are NUL-terminated UTF-8 at their offset, INT32 values
big-endian and 4-aligned. The tags read: NAME 1000, VERSION 1001, RELEASE 1002 (strings),
EPOCH 1003 (INT32), ARCH 1022 (string). Every other tag (file lists, scripts, changelogs,
signatures) is skipped unread:

>>> import struct
>>> def entry(tag, typ, off, count=1):
...     return struct.pack(">IIiI", tag, typ, off, count)
>>> data = b"qemu-kvm\\0" + b"8.2.0\\0" + b"11.el9_4\\0" + struct.pack(">I", 17)
>>> data += b"x86_64\\0"
>>> index = [entry(1000, 6, 0), entry(1001, 6, 9), entry(1002, 6, 15), entry(1003, 4, 24),
...          entry(1022, 6, 28)]
>>> blob = struct.pack(">II", len(index), len(data)) + b"".join(index) + data
>>> parse_rpm_header(blob).evr, parse_rpm_header(blob).arch
('17:8.2.0-11.el9_4', 'x86_64')

**snap.yaml** (snapd's ``snap/info_snap_yaml.go`` reads ``name`` and ``version`` as top-level
strings): read with a reader of top-level ``key: scalar`` lines (plain, single- or
double-quoted) that skips everything nested, so PyYAML need not be a dependency:

>>> parse_snap_yaml("name: openstack-hypervisor\\nversion: '2024.1'\\nbase: core24\\n").evr
'2024.1'

Nothing here raises on bad input except :func:`parse_rpm_header`, which raises
:class:`RpmHeaderError` (a ``ValueError``) naming what is wrong with the blob.
"""

import re
import struct
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Optional, Union

__all__ = [
    "DPKG",
    "RPMDB_SQLITE",
    "RPM_QA",
    "RPM_QUERYFORMAT",
    "SNAP",
    "Package",
    "RpmHeaderError",
    "dpkg_stanzas",
    "format_rpm_qa",
    "parse_dpkg_status",
    "parse_rpm_header",
    "parse_rpm_qa",
    "parse_snap_yaml",
    "split_debian_version",
    "upstream_release",
    "yaml_top_scalars",
]

# where a record came from (Package.db)
DPKG = "dpkg"
RPMDB_SQLITE = "rpmdb.sqlite"
RPM_QA = "rpm -qa"
SNAP = "snap"


class Package(NamedTuple):
    """One installed package.

    ``version`` is the upstream version (dpkg: without epoch and Debian revision; rpm:
    VERSION; snap: the snap's own ``version``), ``release`` the distribution's revision (dpkg:
    the Debian revision; rpm: RELEASE; "" when none), ``epoch`` "" when none, ``arch`` the
    package architecture ("" when none: snaps, RPM's ``gpg-pubkey``). ``db``: which database
    said so (:data:`DPKG`, :data:`RPMDB_SQLITE`, :data:`RPM_QA`, :data:`SNAP`). ``state``: the
    dpkg ``Status:`` line ("" elsewhere).
    """

    name: str
    version: str
    release: str = ""
    epoch: str = ""
    arch: str = ""
    db: str = ""
    state: str = ""

    @property
    def evr(self) -> str:
        """``[epoch:]version[-release]``: the full version as dpkg and rpm print it."""
        v = f"{self.epoch}:{self.version}" if self.epoch else self.version
        return f"{v}-{self.release}" if self.release else v

    def to_json(self) -> dict[str, Any]:
        """``{"name", "version" (the full evr), "upstream", "epoch", "release", "arch",
        "db"}``."""
        return {
            "name": self.name,
            "version": self.evr,
            "upstream": self.version,
            "epoch": self.epoch or None,
            "release": self.release or None,
            "arch": self.arch or None,
            "db": self.db,
        }


def upstream_release(version: str) -> str:
    """The leading dotted number of an upstream version ("" when none): what "QEMU x.y" names.

    >>> upstream_release("7.2+dfsg"), upstream_release("8.2.0"), upstream_release("git")
    ('7.2', '8.2.0', '')
    """
    m = re.match(r"\d+(?:\.\d+)*", version)
    return m.group(0) if m else ""


# ---------------------------------------------------------------------------------- dpkg
# dpkg(1) "Package states": these three are unpacked and configured
_DPKG_INSTALLED = ("installed", "triggers-pending", "triggers-awaited")
# One match per line that matters, found by one regex over the raw file (its ~20,000 other
# lines are never made into objects: ~3 ms less per run on a 1,000-package status file):
#  * a Package/Status/Version/Architecture field line (the name in any case, as dpkg compares
#    names with strcasecmp: IGNORECASE, which on a bytes pattern folds ASCII letters only;
#    blanks before the colon) and its value, with the continuation lines that follow it (a
#    blank, then more than blanks). Policy 5.1 makes all four simple (one-line) fields, but
#    dpkg reads a continued one: "Status: install ok\n installed" is installed for
#    dpkg-query, so the continuation lines are joined (with "\n") as before;
#  * a blank line (nothing but spaces, tabs and CRs), which ends a stanza.
# Every other line (another field, a continuation of another field) is passed over. The first
# line has no "\n" before it: it is found in a copy of itself alone (_dpkg_lines), not in a copy
# of the whole file.
_DPKG_LINE = re.compile(
    rb"\n(?:(package|status|version|architecture)[ \t]*:"
    rb"([^\n]*(?:\n[ \t][ \t\r]*[^ \t\r\n][^\n]*)*)|[ \t\r]*(?=\n|\Z))",
    re.IGNORECASE,  # on bytes: ASCII letters only, as strcasecmp
)


def _dpkg_lines(data: bytes) -> list[tuple[bytes, bytes]]:
    """``_DPKG_LINE.findall(b"\\n" + data)``, without copying ``data`` (850 KB, ~200 fresh
    pages: ~0.6 ms on a VM, where a page fault costs ~3 us): the first line, with the
    continuation lines that follow it (a blank, then more than blanks, as the regex has them),
    is matched in a copy of its own; the rest of the file in place from there on (no match can
    start inside a continued line: each starts with a blank)."""
    end = data.find(b"\n")
    while end >= 0:
        nxt = data.find(b"\n", end + 1)
        line = data[end + 1 : nxt if nxt >= 0 else len(data)]
        if line[:1] not in (b" ", b"\t") or not line.strip(b" \t\r"):
            break  # not a continuation line: the first line ends at ``end``
        end = nxt
    if end < 0:  # one line (and its continuations) in all
        return _DPKG_LINE.findall(b"\n" + data)
    return _DPKG_LINE.findall(b"\n" + data[:end]) + _DPKG_LINE.findall(data, end)


def dpkg_stanzas(data: bytes) -> Iterator[dict[str, str]]:
    """The ``package``, ``status``, ``version`` and ``architecture`` fields (names lower-cased,
    values stripped of spaces, tabs and CRs, continuation lines joined with newlines, as
    dpkg joins them) of each stanza of a dpkg status file (deb822(5):
    stanzas separated by blank lines, ``Field: value`` lines). A stanza with none of them
    gives nothing; a field given twice keeps its last value; undecodable bytes of a value read
    as U+FFFD."""
    fields: dict[str, str] = {}
    for name, value in _dpkg_lines(data):
        if not name:  # a blank line ends the stanza
            if fields:
                yield fields
                fields = {}
            continue
        if b"\n" in value:  # continued: each line stripped, joined with "\n"
            value = b"\n".join(line.strip(b" \t\r") for line in value.split(b"\n"))
        fields[name.lower().decode("ascii")] = value.strip(b" \t\r").decode(
            "utf-8", errors="replace"
        )
    if fields:
        yield fields


def split_debian_version(version: str) -> tuple[str, str, str]:
    """``(epoch, upstream, revision)`` of a Debian version (deb-version(7): the epoch is what
    precedes the first ``:``, the revision what follows the last ``-``).

    >>> split_debian_version("1:7.2+dfsg-7+deb12u18+b3")
    ('1', '7.2+dfsg', '7+deb12u18+b3')
    >>> split_debian_version("9.0.0-4+deb12u2"), split_debian_version("1.0")
    (('', '9.0.0', '4+deb12u2'), ('', '1.0', ''))
    """
    epoch = ""
    head, sep, rest = version.partition(":")
    if sep and head.isdigit():
        epoch, version = head, rest
    upstream, sep, revision = version.rpartition("-")
    if not sep:
        return epoch, version, ""
    return epoch, upstream, revision


def parse_dpkg_status(data: Union[bytes, str]) -> list[Package]:
    """The installed packages of a dpkg status file (``/var/lib/dpkg/status``, as read: bytes;
    text is encoded as UTF-8 first), in file order."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogatepass")
    out: list[Package] = []
    for f in dpkg_stanzas(data):
        name = f.get("package", "")
        words = f.get("status", "").split()
        if not name or len(words) != 3 or words[1] != "ok" or words[2] not in _DPKG_INSTALLED:
            continue
        epoch, upstream, revision = split_debian_version(f.get("version", ""))
        out.append(
            Package(
                name, upstream, revision, epoch, f.get("architecture", ""), DPKG, " ".join(words)
            )
        )
    return out


# ---------------------------------------------------------------------------------- rpm
RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH = 1000, 1001, 1002, 1003
RPMTAG_ARCH = 1022
_WANTED = frozenset((RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH, RPMTAG_ARCH))
RPM_INT32_TYPE, RPM_STRING_TYPE, RPM_STRING_ARRAY_TYPE, RPM_I18NSTRING_TYPE = 4, 6, 8, 9
_STRING_TYPES = (RPM_STRING_TYPE, RPM_STRING_ARRAY_TYPE, RPM_I18NSTRING_TYPE)
HEADER_TAGS_MAX = 0x0000FFFF  # lib/header.cc: at most 65535 index entries
HEADER_DATA_MAX = 0x0FFFFFFF  # lib/header.cc: at most 256 MiB of data
_ENTRY = struct.Struct(">IIiI")


class RpmHeaderError(ValueError):
    """An RPM header blob that is not one (what is wrong, as rpm's hdrblobInit says it)."""


def parse_rpm_header(blob: bytes, db: str = RPMDB_SQLITE) -> Package:
    """The package of one RPM header blob (a ``Packages`` row of ``rpmdb.sqlite``).

    Checks what rpm's ``hdrblobInit`` checks of the framing (``il`` ≤ 65535, ``dl`` < 256
    MiB, the blob exactly ``8 + 16·il + dl`` bytes) and that each value read lies inside the
    data store. Raises :class:`RpmHeaderError`; a header without NAME or VERSION is one.
    """
    if len(blob) < 8:
        raise RpmHeaderError(f"hdr length: BAD ({len(blob)} bytes, fewer than 8)")
    il, dl = struct.unpack_from(">II", blob)
    if il > HEADER_TAGS_MAX or dl > HEADER_DATA_MAX:
        raise RpmHeaderError(f"hdr tags/data: BAD (il {il}, dl {dl} out of range)")
    start = 8 + 16 * il
    if len(blob) != start + dl:
        raise RpmHeaderError(f"blob size({len(blob)}): BAD, 8 + 16 * il({il}) + dl({dl})")
    found: dict[int, tuple[int, int]] = {}
    view = memoryview(blob)
    for tag, typ, off, _count in _ENTRY.iter_unpack(view[8:start]):
        if tag in _WANTED and tag not in found:
            found[tag] = (typ, off)
            if len(found) == len(_WANTED):
                break

    def string(tag: int) -> str:
        hit = found.get(tag)
        if hit is None:
            return ""
        typ, off = hit
        if typ not in _STRING_TYPES or not 0 <= off < dl:
            raise RpmHeaderError(f"tag {tag}: BAD (type {typ}, offset {off})")
        end = blob.find(b"\0", start + off, start + dl)
        if end < 0:
            raise RpmHeaderError(f"tag {tag}: string not terminated inside the data store")
        return blob[start + off : end].decode("utf-8", errors="replace")

    epoch = ""
    if RPMTAG_EPOCH in found:
        typ, off = found[RPMTAG_EPOCH]
        if typ != RPM_INT32_TYPE or off % 4 or not 0 <= off <= dl - 4:
            raise RpmHeaderError(f"tag {RPMTAG_EPOCH}: BAD (type {typ}, offset {off})")
        epoch = str(struct.unpack_from(">I", blob, start + off)[0])
    name, version = string(RPMTAG_NAME), string(RPMTAG_VERSION)
    if not name or not version:
        raise RpmHeaderError("no NAME or VERSION tag: not a package header")
    return Package(
        name=name,
        version=version,
        release=string(RPMTAG_RELEASE),
        epoch=epoch,
        arch=string(RPMTAG_ARCH),
        db=db,
    )


# The query format of `rpm -qa --qf` whose output parse_rpm_qa reads: one package a line, five
# tab-separated fields; EPOCH, RELEASE and ARCH print empty when the header has none (rpm's
# %|TAG?{...}:{...}| conditional; gpg-pubkey has no ARCH).
RPM_QUERYFORMAT = (
    r"%{NAME}\t%|EPOCH?{%{EPOCH}}:{}|\t%{VERSION}\t%|RELEASE?{%{RELEASE}}:{}|"
    r"\t%|ARCH?{%{ARCH}}:{}|\n"
)


def parse_rpm_qa(text: str, db: str = RPM_QA) -> list[Package]:
    """Packages from ``rpm -qa --qf RPM_QUERYFORMAT`` output (also the form ``collect`` records
    them in); lines that do not have five fields, or lack a name or version, are skipped.

    >>> [p.evr for p in parse_rpm_qa("qemu-kvm\\t17\\t8.2.0\\t11.el9_4\\tx86_64\\nbad line\\n")]
    ['17:8.2.0-11.el9_4']
    """
    out: list[Package] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or not parts[0] or not parts[2]:
            continue
        name, epoch, version, release, arch = parts
        out.append(Package(name, version, release, epoch, arch, db))
    return out


def format_rpm_qa(packages: Iterable[Package]) -> list[str]:
    """The :func:`parse_rpm_qa` lines of ``packages`` (without newlines): how ``collect``
    records an RPM database in a snapshot's marker."""
    return [
        "\t".join((p.name, p.epoch, p.version, p.release, p.arch))
        for p in packages
        if "\t" not in "".join((p.name, p.epoch, p.version, p.release, p.arch))
    ]


# ---------------------------------------------------------------------------------- snap.yaml
_WS = " \t"  # YAML's white space: only these two (a no-break space is content)
_KEY = r"([A-Za-z0-9_][A-Za-z0-9_.-]*)[ \t]*:(?:[ \t]+(.*))?$"  # compiled where a snap.yaml is read
_DQ_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_LEN = {"x": 2, "u": 4, "U": 8}


def _after_quote(rest: str) -> bool:
    """What follows a closing quote is nothing, or a comment."""
    rest = rest.strip(_WS)
    return not rest or rest.startswith("#")


def _quote_end(s: str, quote: str) -> int:
    """Index in ``s`` (the text after an opening quote) of the closing quote, -1 if none:
    ``''`` is an escaped quote in single quotes, a backslash escapes in double quotes."""
    i = 0
    while i < len(s):
        c = s[i]
        if quote == "'" and c == "'":
            if s[i + 1 : i + 2] == "'":
                i += 2
                continue
            return i
        if quote == '"' and c == "\\":
            i += 2
            continue
        if c == quote:
            return i
        i += 1
    return -1


def _unquote(body: str, quote: str) -> Optional[str]:
    """The value of a one-line quoted scalar's ``body`` (between the quotes); None for an
    escape YAML refuses."""
    if quote == "'":
        return body.replace("''", "'")
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1 : i + 2]
        if e in _HEX_LEN:
            digits = body[i + 2 : i + 2 + _HEX_LEN[e]]
            if len(digits) != _HEX_LEN[e] or not all(d in "0123456789abcdefABCDEF" for d in digits):
                return None
            code = int(digits, 16)
            if code > 0x10FFFF:
                return None
            out.append(chr(code))
            i += 2 + len(digits)
            continue
        if e not in _DQ_ESCAPES:
            return None
        out.append(_DQ_ESCAPES[e])
        i += 2
    return "".join(out)


def _plain(raw: str) -> Optional[str]:
    # a comment starts at " #"; a plain scalar cannot start with an indicator character
    value = re.split(r"[ \t]#", raw, maxsplit=1)[0].strip(_WS)
    if not value or value[0] in "[]{},&*!|>%@`#'\"" or value in ("~", "null", "Null", "NULL"):
        return None
    if value[0] in "-?:" and (len(value) == 1 or value[1] in " \t"):
        return None
    if ": " in value or "\t:" in value or value.endswith(":") or " #" in value:
        return None  # a mapping on one line: YAML refuses it as a scalar
    return value


def _skip_flow(lines: list[str], i: int, raw: str) -> int:
    """The index of the line after a flow collection (``[...]``, ``{...}``) that starts in
    ``raw`` and may continue on the following lines."""
    depth = 0
    text = raw
    while True:
        j = 0
        while j < len(text):
            c = text[j]
            if c in "'\"":
                end = _quote_end(text[j + 1 :], c)
                if end < 0:
                    break
                j += end + 2
                continue
            if c == "#" and (j == 0 or text[j - 1] in " \t"):
                break
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            j += 1
        if depth <= 0 or i >= len(lines):
            return i
        text = lines[i]
        i += 1


def yaml_top_scalars(text: str) -> dict[str, str]:
    """The top-level ``key: value`` pairs of a YAML mapping whose value is a one-line string
    scalar (plain, ``'single'`` or ``"double"`` quoted), as YAML reads the text; nested
    blocks, flow collections, block scalars (``|``, ``>``) and multi-line quoted values are
    skipped. A plain value continued on more-indented lines is folded with spaces, as YAML
    folds it. A key given twice keeps its last value (PyYAML's rule). Plain values are
    returned as written (``1.0`` stays the text ``1.0``: snapd reads ``version`` as a string).

    >>> yaml_top_scalars("name: classic\\nversion: 16.04-3\\napps:\\n  create:\\n"
    ...                  "    command: bin/create\\n")
    {'name': 'classic', 'version': '16.04-3'}
    """
    out: dict[str, str] = {}
    lines = text.lstrip("\ufeff").splitlines()
    key_re = re.compile(_KEY)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = key_re.match(line)
        if not m:
            continue
        key, raw = m.group(1), (m.group(2) or "").strip(_WS)
        value: Optional[str] = None
        if raw[:1] in ("'", '"'):
            q = raw[0]
            end = _quote_end(raw[1:], q)
            if end >= 0 and _after_quote(raw[end + 2 :]):
                value = _unquote(raw[1 : end + 1], q)
            while end < 0 and i < len(lines):  # a quoted scalar over several lines: skipped
                end = _quote_end(lines[i], q)
                i += 1
        elif raw[:1] in ("[", "{"):
            i = _skip_flow(lines, i, raw)
        elif raw and not raw.startswith("#"):
            value = _plain(raw)
            # a plain scalar continues on more-indented lines (YAML line folding)
            while value is not None and i < len(lines) and lines[i][:1] in (" ", "\t"):
                more = lines[i].strip(_WS)
                if more.startswith("#"):
                    break
                if more:
                    part = _plain(more)
                    if part is None:
                        value = None
                        break
                    value += " " + part
                i += 1
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def parse_snap_yaml(text: str) -> Optional[Package]:
    """The snap a ``meta/snap.yaml`` describes (``name``, ``version``; db :data:`SNAP`), or
    None when it names none. A snap without ``version`` gets ""."""
    top = yaml_top_scalars(text)
    name = top.get("name", "").strip()
    if not name:
        return None
    return Package(name=name, version=top.get("version", "").strip(), db=SNAP)
