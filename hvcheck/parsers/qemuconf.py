"""Parse libvirt's ``/etc/libvirt/qemu.conf``: who QEMU runs as (``user``, ``group``).

The file is libvirt's "virconf" format (``src/util/virconf.c``, a subset of Python syntax):
``name = "string"`` (``'...'`` and ``\"\"\"...\"\"\"`` too, no escapes), ``name = 1``, lists
``[ "a", "b" ]`` that may span lines, ``#`` comments, statements separated by newlines or
``;``. The qemu driver reads ``user``/``group`` with ``virConfGetValueString`` and
``dynamic_ownership`` with ``virConfGetValueBool`` (``src/qemu/qemu_conf.c``,
``virQEMUDriverConfigLoadSecurityEntry``).

libvirt's own ``src/qemu/qemu.conf`` (installed by Debian/Ubuntu as /etc/libvirt/qemu.conf)
has every setting commented out; unset means the build default (``libvirt-qemu`` on Debian,
``qemu`` on Fedora/RHEL):

>>> parse_qemu_conf('''# Some examples of valid values are:
... #
... #       user = "qemu"   # A user named "qemu"
... #       user = "+0"     # Super user (uid=0)
... #
... #user = "root"
...
... # The group for QEMU processes run by the system instance. It can be
... # specified in a similar way to user.
... #group = "root"
... ''').user is None
True
>>> c = parse_qemu_conf('user = "libvirt-qemu"\\ngroup = "kvm"\\ndynamic_ownership = 0\\n')
>>> c.user, c.group, c.user_line, c.group_line, c.dynamic_ownership, c.error
('libvirt-qemu', 'kvm', 1, 2, False, None)

Values are kept as written: ``"+107"`` (a uid, by libvirt's leading-plus convention) stays
``+107``. Never raises: a syntax error (libvirt refuses the whole file, the qemu driver does not
load) or a value of the wrong type comes back in ``error``.
"""

import re
from typing import NamedTuple, Optional, Union

__all__ = ["QemuConf", "parse_qemu_conf"]


class QemuConf(NamedTuple):
    user: Optional[str]  # None when unset (or not a string: see error)
    group: Optional[str]
    # "line 3: expecting a value" (libvirt's wording), or a wrong-typed setting such as
    # "line 5: 'user' must be a string"; None when libvirt would accept what is read here.
    error: Optional[str]
    dynamic_ownership: Optional[bool]  # None when unset; libvirt's default is 1 (true)
    user_line: Optional[int]  # 1-based line of the effective "user =" entry
    group_line: Optional[int]


_ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGIT = frozenset("0123456789")
_NAME = _ALPHA | _DIGIT | {"_"}
_BLANK = frozenset(" \t")
_EOL = frozenset("\r\n")
_BLANK_EOL = _BLANK | _EOL
# A run of comment lines (with blank lines between them): what virConfParseStatement's "#"
# case and virConfParseSeparator's newline consume, one line per loop, matched at once (a
# distribution's qemu.conf is ~800 comment lines around a few settings). It ends at the end of
# the last comment's text, where the separator is read as after any comment.
_COMMENT_LINES = re.compile(r"(?:[ \t\r\n]*#[^\r\n]*)+")
_MAX_DEPTH = 64  # nested lists; libvirt recurses without limit, Python should not

# A parsed value: ("string", str) | ("ullong", int) | ("llong", int) | ("list", [values])
_Value = tuple[str, Union[str, int, list["_Value"]]]


class _SyntaxError(Exception):
    def __init__(self, pos: int, info: str) -> None:
        super().__init__(info)
        self.pos = pos
        self.info = info


class _Parser:
    """A transcription of virconf.c's recursive-descent parser (default flags, no VMX/LXC)."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.entries: list[tuple[str, _Value, int]] = []  # name, value, position of the name

    def cur(self) -> str:
        # virFileReadAll NUL-terminates the buffer, so CUR at the end reads "\0"
        return self.s[self.i] if self.i < self.n else "\0"

    def skip(self, chars: frozenset[str]) -> None:
        while self.i < self.n and self.s[self.i] in chars:
            self.i += 1

    def fail(self, info: str) -> _SyntaxError:
        return _SyntaxError(self.i, info)

    def parse(self) -> None:
        # virConfParse: statement, separator, until the end of the buffer
        while self.i < self.n:
            m = _COMMENT_LINES.match(self.s, self.i)
            if m is not None:
                self.i = m.end()
            else:
                self.statement()
            self.separator()

    def statement(self) -> None:
        # virConfParseStatement
        self.skip(_BLANK_EOL)
        if self.cur() == "#":
            self.to_eol()
            return
        # virConfParseName: an ASCII letter, then letters, digits, "_". Reached at the very end
        # of the buffer (a file of only blank lines and spaces) CUR is "\0" and libvirt fails
        # with "expecting a name" too.
        self.skip(_BLANK)
        start = self.i
        if self.cur() not in _ALPHA:
            raise self.fail("expecting a name")
        while self.i < self.n and self.s[self.i] in _NAME:
            self.i += 1
        name = self.s[start : self.i]
        self.skip(_BLANK)
        if self.cur() != "=":
            raise self.fail("expecting an assignment")
        self.i += 1
        self.skip(_BLANK)
        value = self.value(0)
        self.skip(_BLANK)
        if self.cur() == "#":  # trailing comment
            self.to_eol()
        self.entries.append((name, value, start))

    def to_eol(self) -> None:
        # the next end-of-line character (a comment is most of a distribution's qemu.conf:
        # str.find rather than a character loop, ~10 ms less per run)
        nl = self.s.find("\n", self.i)
        cr = self.s.find("\r", self.i, nl if nl >= 0 else self.n)
        ends = [p for p in (nl, cr) if p >= 0]
        self.i = min(ends) if ends else self.n

    def separator(self) -> None:
        # virConfParseSeparator: end of buffer, newline(s), or ";"
        self.skip(_BLANK)
        if self.i >= self.n:
            return
        c = self.s[self.i]
        if c in _EOL:
            self.skip(_BLANK_EOL)
        elif c == ";":
            self.i += 1
            self.skip(_BLANK_EOL)
        else:
            raise self.fail("expecting a separator")

    def value(self, depth: int) -> _Value:
        # virConfParseValue
        self.skip(_BLANK)
        if self.i >= self.n:
            raise self.fail("expecting a value")
        c = self.s[self.i]
        if c in "\"'":
            return ("string", self.string())
        if c == "[":
            if depth >= _MAX_DEPTH:
                raise self.fail("lists nested too deeply")
            self.i += 1
            self.skip(_BLANK_EOL)
            items: list[_Value] = []
            if self.i < self.n and self.cur() != "]":
                items.append(self.value(depth + 1))
                self.skip(_BLANK_EOL)
            while self.i < self.n and self.cur() != "]":
                if self.cur() != ",":
                    raise self.fail("expecting a separator in list")
                self.i += 1
                self.skip(_BLANK_EOL)
                if self.cur() == "]":
                    break
                items.append(self.value(depth + 1))
                self.skip(_BLANK_EOL)
            if self.cur() != "]":
                raise self.fail("list is not closed with ]")
            self.i += 1
            return ("list", items)
        if c in _DIGIT or c in "+-":
            # virConfParseLong; a leading "-" makes it signed (VIR_CONF_LLONG)
            kind = "llong" if c == "-" else "ullong"
            if c in "+-":
                self.i += 1
            if self.i >= self.n or self.s[self.i] not in _DIGIT:
                raise self.fail("unterminated number")
            start = self.i
            while self.i < self.n and self.s[self.i] in _DIGIT:
                self.i += 1
            number = int(self.s[start : self.i])
            return (kind, -number if c == "-" else number)
        raise self.fail("expecting a value")

    def string(self) -> str:
        # virConfParseString: '...' and "..." end at the quote and may not cross a line end;
        # """...""" (only when more than 6 characters remain) may. No escape sequences.
        s, i = self.s, self.i
        if s[i] == '"' and i + 6 < self.n and s.startswith('"""', i):
            self.i = i + 3
            start = self.i
            while self.i + 2 < self.n and not s.startswith('"""', self.i):
                self.i += 1
            if not s.startswith('"""', self.i):
                raise self.fail("unterminated string")
            out = s[start : self.i]
            self.i += 3
            return out
        quote = s[i]
        self.i = i + 1
        start = self.i
        while self.i < self.n and s[self.i] != quote and s[self.i] not in _EOL:
            self.i += 1
        if self.cur() != quote:
            raise self.fail("unterminated string")
        out = s[start : self.i]
        self.i += 1
        return out


def _line(text: str, pos: int) -> int:
    # virconf counts "\n" (not a lone "\r") as it skips line ends; same count here
    return text.count("\n", 0, min(pos, len(text))) + 1


def parse_qemu_conf(text: str) -> QemuConf:
    """``user``, ``group``, ``dynamic_ownership`` of a qemu.conf; never raises.

    As libvirt does: the *first* entry of a name counts (``virConfGetValue`` returns the first
    match), ``user``/``group`` must be strings, ``dynamic_ownership`` the number 0 or 1. After
    a syntax error (libvirt rejects the whole file) what parsed before it is still returned,
    with ``error`` set.
    """
    try:
        return _parse(text)
    except Exception as e:  # pragma: no cover - defensive: the parser must never raise
        return QemuConf(None, None, f"internal parser error: {type(e).__name__}", None, None, None)


def _parse(text: str) -> QemuConf:
    p = _Parser(text)
    error: Optional[str] = None
    try:
        p.parse()
    except _SyntaxError as e:
        error = f"line {_line(text, e.pos)}: {e.info}"

    first: dict[str, tuple[_Value, int]] = {}
    for name, value, pos in p.entries:
        first.setdefault(name, (value, _line(text, pos)))

    def string(name: str) -> tuple[Optional[str], Optional[int], Optional[str]]:
        if name not in first:
            return None, None, None
        (kind, v), line = first[name]
        if kind != "string" or not isinstance(v, str):
            # virConfGetValueString: "expected a string for '%s' parameter"
            return None, line, f"line {line}: '{name}' must be a quoted string, not a {kind}"
        return v, line, None

    user, user_line, user_err = string("user")
    group, group_line, group_err = string("group")
    dynamic: Optional[bool] = None
    dyn_err: Optional[str] = None
    if "dynamic_ownership" in first:
        (kind, v), line = first["dynamic_ownership"]
        # virConfGetValueBool: an unsigned number, 0 or 1 ("-0" and "1 " in quotes are errors)
        if kind == "ullong" and isinstance(v, int) and v in (0, 1):
            dynamic = v == 1
        else:
            dyn_err = f"line {line}: 'dynamic_ownership' must be 0 or 1"
    error = error or user_err or group_err or dyn_err
    return QemuConf(user, group, error, dynamic, user_line, group_line)
