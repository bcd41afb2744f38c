"""Redact secrets from the files ``hvcheck collect`` archives (pure: bytes in, bytes out).

The approach is insights-core's cleaner (``insights/cleaner/password.py``): line by line, a
value whose *name* says it is a secret is replaced by ``********`` and the name, the separator
and the rest of the file are kept, so the file still parses and every setting a check reads
(``virt_type``, ``cpu_mode``, qemu.conf's ``user``...) survives unchanged. hvcheck adds what a
compute node's files hold:

- **ini files** (nova.conf and its ``--config-dir``/``nova.conf.d`` pieces, oslo.config's
  format; libvirt's ``*.conf`` in virconf syntax): a value whose key is ``password``,
  ``passwd``, ``pass``, ``pwd``, ``token``, ``secret``, ``key``, ``passphrase`` or
  ``credential(s)``, or ends in ``_`` + one of them (``admin_password``, ``memcache_secret_key``,
  ``fixed_key``, ``auth_token``, libvirt's ``vnc_password`` and ``spice_password``); the
  ``[section]`` is tracked for the report; commented-out settings too (an old password in a
  comment is still a password); a quoted value keeps its quotes (only when nothing follows
  the closing quote, or in virconf ``;`` and another statement: oslo.config strips quotes
  only from a value that opens and closes with one); oslo.config's continuation lines
  (indented lines after the value) are part of the value, and with them the whole value is
  redacted, whatever its first line holds. libvirt's ``*.conf`` are read as virconf, the
  rest as oslo.config. A value that can hold no
  secret is kept: empty, a boolean (``inject_password = False`` is a nova setting, not a
  password) or oslo's sample placeholder ``<None>``.
- **URL credentials anywhere** (``transport_url = rabbit://nova:PASS@mq1:5672,nova:PASS@mq2``,
  ``connection = mysql+pymysql://nova:PASS@db/nova``, ``redis://:PASS@cache``): scheme, user,
  hosts and path are kept, each password replaced. The authority runs to the URL's *last*
  ``@`` (as ``urllib.parse`` splits user info), so a password holding an unescaped ``@``,
  ``,`` or ``/`` widens what is redacted (possibly a host too) rather than leaking a part.
- **libvirt domain XML** (``/run/libvirt/qemu/*.xml`` holds a VNC/SPICE ``passwd`` attribute
  when one is set): ``passwd`` and ``password`` attributes.
- **QEMU command lines** (``/proc/PID/cmdline``): ``password=``/``passwd=`` options
  (``-spice ...,password=...``, ``-vnc`` of old QEMU) and the inline ``data=`` of
  ``-object secret``.

>>> r = redact_file("/etc/nova/nova.conf", b'''[DEFAULT]
... transport_url = rabbit://nova:Sup3rS3cret@mq1:5672,nova:Sup3rS3cret@mq2:5672/
... [database]
... connection = mysql+pymysql://nova:Db-Pa55@db.example.org/nova?charset=utf8
... [libvirt]
... virt_type = kvm
... [keystone_authtoken]
... password = hunter2
... memcache_secret_key = 0123456789abcdef
... ''')
>>> print(r.data.decode(), end="")
[DEFAULT]
transport_url = rabbit://nova:********@mq1:5672,nova:********@mq2:5672/
[database]
connection = mysql+pymysql://nova:********@db.example.org/nova?charset=utf8
[libvirt]
virt_type = kvm
[keystone_authtoken]
password = ********
memcache_secret_key = ********
>>> r.what
('[DEFAULT] transport_url: URL password', '[database] connection: URL password', \
'[keystone_authtoken] password', '[keystone_authtoken] memcache_secret_key')
>>> redact_file("/etc/libvirt/qemu.conf", b'user = "libvirt-qemu"\\nvnc_password = "XYZ12345"\\n')
Redaction(data=b'user = "libvirt-qemu"\\nvnc_password = "********"\\n', what=('vnc_password',))
"""

import re
from typing import NamedTuple, Optional

__all__ = ["REDACTED", "Redaction", "redact_argv", "redact_config", "redact_file", "redact_xml"]

REDACTED = "********"

_SECRET_WORDS = "password|passwd|pass|pwd|token|secret|key|passphrase|credentials?"
# the key itself, or a key ending in _/-/. + the word (admin_password, memcache_secret_key)
_SECRET_KEY = re.compile(rf"(?:.*[_.\-])?(?:{_SECRET_WORDS})", re.IGNORECASE)

# values that hold no secret: a boolean (nova's inject_password = False), oslo's sample
# placeholder, nothing
_NOT_SECRET = re.compile(r"|true|false|yes|no|on|off|none|<none>", re.IGNORECASE)

_SECTION = re.compile(r"\s*\[([^\]\r\n]+)\]\s*$")
# [comment marks] key separator value  (oslo.config accepts "=" and ":"; virconf "=")
_SETTING = re.compile(r"(\s*[#;]*\s*)([A-Za-z0-9_.\-]+)(\s*[=:]\s*)(.*)", re.DOTALL)

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_HOST = re.compile(r"[A-Za-z0-9_.\-%]+(?::[0-9]*)?|\[[0-9A-Fa-f:.%A-Za-z]+\](?::[0-9]*)?")
_PIECE = re.compile(r"([^:@,]*):([^@,]*)@([^@,]*)")
_XML_ATTR = re.compile(r"""(\b(?:passwd|password)\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE)
_ARGV_OPT = re.compile(r"((?:^|,)(?:password|passwd)=)((?:[^,]|,,)*)", re.IGNORECASE)
_SECRET_DATA = re.compile(r"((?:^|,)data=)((?:[^,]|,,)*)")


class Redaction(NamedTuple):
    data: bytes  # the file with its secrets replaced (the input itself when nothing was)
    what: tuple[str, ...]  # what was replaced, by name ("[database] connection: URL
    # password", "vnc_password"); never a value


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# oslo.config reads in universal-newline mode: \r\n, \r and \n end a line, nothing else
# (str.splitlines would also split at \f, \x1c, U+2028..., mid-value for oslo)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _authority(netloc: str) -> str:
    """``user:PASS@host`` pieces of one URL's authority (up to and including its last ``@``,
    then the host) with each password replaced.

    oslo.messaging's multi-host form (``u1:p1@h1:5672,u2:p2@h2``) keeps every user and host
    when each piece is plainly ``user:password@host``. Anything else (a password holding an
    unescaped ``@``, ``,`` or ``/``) is redacted wide: from the first ``:`` to the last ``@``,
    which may hide a host or user as well but never leaves part of a password behind."""
    pieces = netloc.split(",")
    clean = [_PIECE.fullmatch(p) for p in pieces]
    if len(pieces) > 1 and all(m is not None and _HOST.fullmatch(m[3]) for m in clean):
        return ",".join(f"{m[1]}:{REDACTED}@{m[3]}" for m in clean if m is not None)
    at = netloc.rfind("@")
    userinfo, host = netloc[:at], netloc[at:]
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{REDACTED}{host}" if colon else netloc


def _url_passwords(text: str) -> tuple[str, int]:
    """Every ``scheme://user:PASSWORD@host`` in ``text`` with the password replaced; the
    number of URLs changed. A URL runs to the next blank; its authority to the first ``/``,
    ``?``, ``#`` or quote after the URL's last ``@``."""
    out: list[str] = []
    pos = 0
    changed = 0
    for m in _SCHEME.finditer(text):
        if m.start() < pos:
            continue  # inside a URL already handled
        end = m.end()
        while end < len(text) and not text[end].isspace():
            end += 1
        token = text[m.end() : end]
        at = token.rfind("@")
        if at < 0:
            continue
        stop = at + 1
        while stop < len(token) and token[stop] not in "/?#\"'<>":
            stop += 1
        new = _authority(token[:stop])
        if new != token[:stop]:
            changed += 1
            out.append(text[pos : m.end()] + new)
            pos = m.end() + stop
    if not changed:
        return text, 0
    out.append(text[pos:])
    return "".join(out), changed


def _quoted(value: str) -> Optional[tuple[str, str, str]]:
    """A value that opens with a quote: (quote, inside, what follows the closing quote)."""
    if not value or value[0] not in "\"'":
        return None
    q = value[0]
    end = value.find(q, 1)
    if end < 0:
        return None
    return q, value[1:end], value[end + 1 :]


def _stays_quoted(rest: str, virconf: bool) -> bool:
    """Whether what follows a closing quote leaves the value quoted: nothing (blanks), or in
    libvirt's virconf syntax ``;`` and another statement. Anything else (``password=""0000``;
    in an oslo.config file also ``"abc";def``) makes the whole value one unquoted string, as
    oslo.config reads it (its ini parser strips quotes only from a value that both opens and
    closes with the same one), and it is redacted whole."""
    return not rest.strip() or (virconf and rest.lstrip().startswith(";"))


def _continues(line: str) -> bool:
    """An oslo.config continuation line (iniparser: not blank, starts with a space or tab)."""
    return line[:1] in (" ", "\t") and bool(line.strip())


def _statement(
    text: str, section: str, what: list[str], virconf: bool = False, continued: bool = False
) -> tuple[str, bool]:
    """One ``key = value`` statement (and, in virconf syntax, those after ``;``): the text with
    a secret value replaced; True when the lines after it that continue it (oslo.config's
    indented lines) are to be redacted too. ``continued``: such lines follow (never in
    virconf), so a secret key's value is all of them with this one, and is redacted whole
    whatever this line holds (``password = false`` then ``  hunter2`` is "false\nhunter2")."""
    eol = text[len(text.rstrip("\r\n")) :]  # matched without: "key =" then a line end
    m = _SETTING.match(text[: len(text) - len(eol)])  # is an empty value, not "\n" as its sep
    if m is None:
        return text, False
    lead, key, sep, value = m.groups()
    name = f"[{section}] {key}" if section else key
    secret = _SECRET_KEY.fullmatch(key) is not None
    if secret and continued and not virconf:
        what.append(name)
        return f"{lead}{key}{sep}{REDACTED}{eol}", True
    q = _quoted(value)
    if q is not None and _stays_quoted(q[2], virconf):
        quote, inside, rest = q
        if secret and not _NOT_SECRET.fullmatch(inside.strip()):
            inside = REDACTED
            what.append(name)
        more = re.match(r"(\s*;\s*)(.*)", rest, re.DOTALL) if virconf else None
        if more is not None:  # virconf: another statement on the same line
            tail, cont = _statement(more.group(2), section, what, virconf)
            return f"{lead}{key}{sep}{quote}{inside}{quote}{more.group(1)}{tail}{eol}", cont
        return f"{lead}{key}{sep}{quote}{inside}{quote}{rest}{eol}", False
    if secret and not _NOT_SECRET.fullmatch(value.strip()):
        what.append(name)
        return f"{lead}{key}{sep}{REDACTED}{eol}", True
    return text, False


def redact_config(data: bytes, virconf: bool = False) -> Redaction:
    """Secrets of an ini (oslo.config) file, or with ``virconf`` of a libvirt ``*.conf`` file
    (where ``;`` separates statements and indented lines continue nothing); see the module."""
    what: list[str] = []
    out: list[str] = []
    section = ""
    continuing = False  # the lines after an unquoted secret value that continue it
    lines = _LINE.findall(_decode(data))
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        if continuing and _continues(body):
            out.append(line[: len(line) - len(line.lstrip())] + REDACTED + line[len(body) :])
            continue
        continuing = False
        sec = _SECTION.match(body)
        if sec is not None:
            section = sec.group(1).strip()
            out.append(line)
            continue
        nxt = lines[i + 1].rstrip("\r\n") if i + 1 < len(lines) else ""
        line, continuing = _statement(line, section, what, virconf, _continues(nxt))
        line, n = _url_passwords(line)
        if n:
            m = _SETTING.match(line)
            key = m.group(2) if m else "value"
            what.append(f"[{section}] {key}: URL password" if section else f"{key}: URL password")
        out.append(line)
    if not what:
        return Redaction(data, ())
    return Redaction(_encode("".join(out)), tuple(what))


def redact_xml(data: bytes) -> Redaction:
    """``passwd``/``password`` attributes (libvirt ``<graphics ... passwd='...'>``) and URL
    credentials in an XML document."""
    text = _decode(data)
    text, n = _XML_ATTR.subn(lambda m: f"{m[1]}{m[2]}{REDACTED}{m[2]}", text)
    text, u = _url_passwords(text)
    what = (["passwd attribute"] * bool(n)) + (["URL password"] * bool(u))
    return Redaction(_encode(text), tuple(what)) if what else Redaction(data, ())


def redact_argv(data: bytes) -> Redaction:
    """A NUL-separated command line (``/proc/PID/cmdline``): ``password=``/``passwd=`` option
    values (QEMU's ``,,`` escape kept inside a value), the ``data=`` of the argument after
    ``-object`` when it is a ``secret``, and URL credentials."""
    args = _decode(data).split("\0")
    what: list[str] = []
    for i, a in enumerate(args):
        found: list[str] = []

        def hide(m: re.Match[str], found: list[str] = found) -> str:
            # QEMU's -vnc/-spice ``password=on`` is a switch (the password comes by QMP or a
            # secret object), not a secret: booleans are kept, as in config files
            if _NOT_SECRET.fullmatch(m[2]):
                return m[0]
            found.append(m[2])
            return m[1] + REDACTED

        new = _ARGV_OPT.sub(hide, a)
        if found:
            what.append("password option")
        if i and args[i - 1] in ("-object", "--object") and new.startswith("secret,"):
            new, d = _SECRET_DATA.subn(lambda m: m[1] + REDACTED, new)
            if d:
                what.append("-object secret data")
        new, u = _url_passwords(new)
        if u:
            what.append("URL password")
        args[i] = new
    if not what:
        return Redaction(data, ())
    return Redaction(_encode("\0".join(args)), tuple(what))


_PROC_INNER = re.compile(r"/proc/[0-9]+/(?:root|cwd)(/.*)")
_PROC_CMDLINE = re.compile(r"/proc/[0-9]+/cmdline")


def redact_file(path: str, data: bytes) -> Redaction:
    """``data`` of the host file ``path`` with its secrets replaced, by the kind of file:
    a process's ``cmdline``, an ``.xml`` document, other files under ``/proc``, ``/sys`` and
    ``/dev`` (kernel data) untouched, everything else read as a configuration file. A file
    reached through ``/proc/PID/root`` (a containerised service's) counts as the file it is."""
    inner = _PROC_INNER.fullmatch(path)
    if inner is not None:
        path = inner.group(1)
    if _PROC_CMDLINE.fullmatch(path):
        return redact_argv(data)
    if path.startswith(("/proc/", "/sys/", "/dev/")):
        return Redaction(data, ())
    if path.endswith(".xml"):
        return redact_xml(data)
    # libvirt's own configuration files are virconf (src/util/virconf.c); the rest oslo.config
    return redact_config(data, virconf="/libvirt/" in path and path.endswith(".conf"))
