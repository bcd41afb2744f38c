"""The udev rules directories: which rule sets a device node's owner, group and mode.

Pure: (path, text) pairs in, the governing rules out; no I/O. The caller reads the files of
``RULES_DIRS`` (``hvcheck.devaccess`` does, through the host layer) and passes a file that is
a symlink to /dev/null as empty text.

What udev does, and where this follows it (systemd src/udev/udev-rules.c, src/basic/conf-files.c,
src/udev/udev-node.c; udev(7) "Rules Files"):

* Files ending in ``.rules`` in ``/etc/udev/rules.d``, ``/run/udev/rules.d``,
  ``/usr/local/lib/udev/rules.d``, ``/usr/lib/udev/rules.d`` (and ``/lib/udev/rules.d`` on a
  split-/usr system), in that order of priority: a file masks every file of the same name in a
  later directory; a symlink to /dev/null (or an empty file) disables the name. All files are
  then processed together, sorted by file name, whatever their directory.
* A line whose first non-blank character is ``#`` is a comment, also inside a continuation;
  a line ending in a backslash continues on the next one. udev numbers a continued rule by
  its last physical line, and so does ``Rule.line`` (``Rule.first_line`` is where it starts).
* ``KEY{attr}<op>"value"`` pairs separated by commas; ``e"..."`` is C-escaped, ``i"..."``
  matches case-insensitively. A match value is a ``|`` list of shell globs (fnmatch).
  A line with a malformed pair or an unknown key is ignored as a whole.
* ``OWNER``/``GROUP``/``MODE``: ``=`` (and ``+=``, taken as ``=``) assigns, ``:=`` assigns
  finally (later assignments are ignored). A ``GROUP`` or ``OWNER`` naming no known group or
  user makes udev drop the whole line ("Failed to resolve group name"). When a group is set
  and no mode, udev makes the node 0660 (``udev_node_apply_permissions_impl``).
* ``TAG+=`` adds a tag (``uaccess``: logind gives the user at the seat an ACL on the node),
  ``TAG-=`` removes one, ``TAG=`` replaces them. ``OPTIONS+="static_node=<name>"`` applies the
  line's owner, group, mode and tags to ``/dev/<name>`` when udevd starts, before the module
  that creates the device is loaded.
* ``GOTO`` jumps to the ``LABEL`` of that name further down the same file.

What a file alone cannot tell (``ATTR``, ``TEST``, ``PROGRAM``, ``IMPORT``, parents' keys, a
property an uncertain rule set) leaves a rule *uncertain*: it is reported, not applied. The
properties ``IMPORT`` would add are not known; without udev's own record (``Device.properties``)
a property is what the kernel's uevent and the rules read so far gave it, else empty.
"""

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple, Optional, Union

# Highest priority first (systemd CONF_PATHS("udev/rules.d"); /lib only on split-/usr builds).
RULES_DIRS: tuple[str, ...] = (
    "/etc/udev/rules.d",
    "/run/udev/rules.d",
    "/usr/local/lib/udev/rules.d",
    "/usr/lib/udev/rules.d",
    "/lib/udev/rules.d",
)

# Keys udev accepts (src/udev/udev-rules.c parse_token); any other key invalidates the line.
MATCH_KEYS = frozenset(
    [
        "ACTION",
        "DEVPATH",
        "KERNEL",
        "SYMLINK",
        "NAME",
        "ENV",
        "CONST",
        "TAG",
        "SUBSYSTEM",
        "DRIVER",
        "ATTR",
        "SYSCTL",
        "KERNELS",
        "SUBSYSTEMS",
        "DRIVERS",
        "ATTRS",
        "TAGS",
        "TEST",
        "PROGRAM",
        "IMPORT",
        "RESULT",
    ]
)
ASSIGN_KEYS = frozenset(["OPTIONS", "OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "GOTO", "LABEL"])
_OPS = ("==", "!=", "+=", "-=", ":=", "=")
_WS = " \t\n\r"
_LINE_END = re.compile(r"\r\n|\r|\n|\0")
# One KEY{attr}op"value" pair in the shape almost every rule has (a value without a
# backslash), read at once; anything else (a backslash, a malformed pair, the end of the line)
# is left to the character-by-character reading below, which this must agree with: the key
# runs to white space, "=", "{" or an operator; the first operator of _OPS that fits is taken.
# The key's first character is no comma: the skip before it takes every one, and must not
# give one back to make a key of it (", =" is an empty key, as below).
_PAIR = re.compile(
    r"[ \t\n\r,]*((?:[^ \t\n\r={+\-!:,]|[+\-!:](?!=))(?:[^ \t\n\r={+\-!:]|[+\-!:](?!=))*)"
    r"(?:\{([^}]*)\})?[ \t\n\r]*"
    r'(==|!=|\+=|-=|:=|=)[ \t\n\r]*(ei|ie|e|i)?"([^"\\]*)"'
)
_CESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class Token(NamedTuple):
    key: str  # KERNEL, ENV, GROUP, ...
    attr: Optional[str]  # the {...} of ENV{MAJOR}, ATTR{name}, IMPORT{builtin}
    op: str  # == != = += -= :=
    value: str
    nocase: bool = False  # i"..." prefix


class Rule(NamedTuple):
    """One logical line of a rules file."""

    file: str  # path of the rules file
    line: int  # udev's line number (the last physical line of a continued rule)
    first_line: int
    text: str  # the logical line, continuations joined
    tokens: tuple[Token, ...]
    error: Optional[str] = None  # why udev ignores the line (tokens is then empty)

    @property
    def where(self) -> str:
        """``file:line`` as udev prints it: ``/lib/udev/rules.d/50-udev-default.rules:108``."""
        return f"{self.file}:{self.line}"

    def values(self, key: str) -> list[Token]:
        return [t for t in self.tokens if t.key == key]


class RulesFiles(NamedTuple):
    """The rules files udev reads, in its processing order."""

    files: tuple[tuple[str, Optional[str]], ...]  # (path, text) by file name; text None: unreadable
    overridden: tuple[tuple[str, str], ...]  # (path, the path that masks it)
    disabled: tuple[str, ...]  # paths that disable their name (a /dev/null link or empty)


class Device(NamedTuple):
    """What the rules match on, for one device node's "add" event."""

    kernel: str  # the kernel name (sysname): kvm, tun, vhost-net
    subsystem: str  # misc
    devname: str  # /dev/kvm
    major: Optional[int] = None
    minor: Optional[int] = None
    devpath: Optional[str] = None  # /devices/virtual/misc/kvm
    action: str = "add"
    # udev's own properties for the device (pyudev). When None, the device has the properties
    # of its kernel uevent (/sys/devices/virtual/misc/kvm/uevent: MAJOR, MINOR, DEVNAME) and
    # udev's ACTION, DEVPATH, SUBSYSTEM: what a virtual misc device carries; any other is empty
    properties: Optional[Mapping[str, str]] = None
    tags: tuple[str, ...] = ()  # tags the device already carries (static_node tags)


class Setting(NamedTuple):
    value: str
    rule: Rule
    op: str  # = or := (+= is taken as =)


class NodeRules(NamedTuple):
    """The rules that set a node's owner, group, mode and tags, as udev would apply them."""

    device: Device
    owner: Optional[Setting]
    group: Optional[Setting]
    mode: Optional[Setting]
    tags: tuple[Setting, ...]  # TAG assignments still in force (uaccess, seat, ...)
    static_node: Optional[Rule]  # a rule with OPTIONS+="static_node=<this node>"
    uncertain: tuple[Rule, ...]  # rules setting OWNER/GROUP/MODE/TAG that may or may not apply
    dropped: tuple[tuple[Rule, str], ...]  # matching rules udev drops, and why
    files: RulesFiles

    @property
    def managed(self) -> bool:
        """A rule sets the node's group or mode."""
        return self.group is not None or self.mode is not None

    @property
    def expected_mode(self) -> Optional[str]:
        """The mode udev gives the node: MODE=, else 0660 when GROUP= names a group other than
        root (src/udev/udev-node.c), else None (udev leaves the kernel's mode)."""
        if self.mode is not None:
            return self.mode.value
        if self.group is not None and self.group.value not in ("root", "0"):
            return "0660"
        return None

    def has_tag(self, tag: str) -> bool:
        return any(s.value == tag for s in self.tags)


# ------------------------------------------------------------------------------ files
def rules_files(files: Iterable[tuple[str, Optional[str]]]) -> RulesFiles:
    """Order ``(path, text)`` pairs as udev reads them.

    ``text`` is the file's content, ``""`` for a symlink to /dev/null, ``None`` when it could
    not be read. Paths outside ``RULES_DIRS`` rank after them, in the order given. Names not
    ending in ``.rules`` and hidden names are skipped, as udev skips them.
    """

    def rank(path: str) -> int:
        d = posixpath.dirname(path)
        return RULES_DIRS.index(d) if d in RULES_DIRS else len(RULES_DIRS)

    by_name: dict[str, list[tuple[int, int, str, Optional[str]]]] = {}
    for i, (path, text) in enumerate(files):
        name = posixpath.basename(path)
        if not name.endswith(".rules") or name.startswith("."):
            continue
        by_name.setdefault(name, []).append((rank(path), i, path, text))
    order: list[tuple[str, Optional[str]]] = []
    overridden: list[tuple[str, str]] = []
    disabled: list[str] = []
    for name in sorted(by_name):
        cands = sorted(by_name[name])
        _, _, path, text = cands[0]
        overridden += [(c[2], path) for c in cands[1:] if c[2] != path]
        if text is not None and not text.strip(_WS):
            disabled.append(path)
            continue
        order.append((path, text))
    return RulesFiles(tuple(order), tuple(overridden), tuple(disabled))


# ------------------------------------------------------------------------------ lines
def _logical_lines(text: str) -> Iterable[tuple[int, int, str]]:
    """(first line, udev's line number, logical line) as udev_rules_parse_file builds them."""
    continuation: Optional[str] = None
    first = 0
    nr = 0
    parts = _LINE_END.split(text)
    if parts and parts[-1] == "":
        parts.pop()  # the terminator of the last line
    for raw in parts:
        nr += 1
        line = raw.lstrip(_WS)
        if line.startswith("#"):
            continue  # a comment, even inside a continuation
        if continuation is not None:
            line = continuation + line
        if line.endswith("\\"):
            if continuation is None:
                first = nr
            continuation = line[:-1]
            continue
        if line:
            yield (first if continuation is not None else nr), nr, line
        continuation = None
    # udev: "Unexpected EOF after line continuation, line ignored."


def _unescape_c(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            n = s[i + 1]
            if n in _CESCAPES:
                out.append(_CESCAPES[n])
                i += 2
                continue
            if n == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", s[i + 2 : i + 4]):
                out.append(chr(int(s[i + 2 : i + 4], 16)))
                i += 4
                continue
            out.append(n)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse_pair(line: str, pos: int) -> tuple[Optional[Token], int]:
    """One ``KEY{attr}op"value"`` from ``pos`` (udev-rules.c parse_line); (None, end) at the
    end of the line. Raises ValueError for a malformed pair."""
    m = _PAIR.match(line, pos)
    if m is not None:
        # no backslash in the value: nothing for an "e" (C escapes) to change
        flags = m.group(4) or ""
        return Token(m.group(1), m.group(2), m.group(3), m.group(5), "i" in flags), m.end()
    n = len(line)
    while pos < n and line[pos] in _WS + ",":
        pos += 1
    if pos >= n:
        return None, pos
    start = pos
    while True:
        if pos >= n:
            raise ValueError("no operator")
        c = line[pos]
        if c in _WS + "={" or (c in "+-!:" and line[pos + 1 : pos + 2] == "="):
            break
        pos += 1
    key = line[start:pos]
    attr: Optional[str] = None
    if pos < n and line[pos] == "{":
        end = line.find("}", pos)
        if end < 0:
            raise ValueError("unterminated {")
        attr = line[pos + 1 : end]
        pos = end + 1
    while pos < n and line[pos] in _WS:
        pos += 1
    op = next((o for o in _OPS if line.startswith(o, pos)), None)
    if op is None:
        raise ValueError(f"invalid operator after {key}")
    pos += len(op)
    while pos < n and line[pos] in _WS:
        pos += 1
    escaped = nocase = False
    for _ in range(2):
        if pos < n and line[pos] == "e" and not escaped:
            escaped, pos = True, pos + 1
        elif pos < n and line[pos] == "i" and not nocase:
            nocase, pos = True, pos + 1
    if pos >= n or line[pos] != '"':
        raise ValueError(f"value of {key} is not in double quotes")
    pos += 1
    close = line.find('"', pos)
    if close >= 0 and "\\" not in line[pos:close]:
        # no backslash before the closing quote: the loop below would copy it as it is
        value = line[pos:close]
        return Token(key, attr, op, _unescape_c(value) if escaped else value, nocase), close + 1
    buf: list[str] = []
    while True:
        if pos >= n:
            raise ValueError(f"unterminated value of {key}")
        c = line[pos]
        if c == '"':
            break
        if c == "\\" and pos + 1 < n and (escaped or line[pos + 1] == '"'):
            if escaped:
                buf.append(line[pos : pos + 2])
            else:
                buf.append('"')
            pos += 2
            continue
        buf.append(c)
        pos += 1
    value = "".join(buf)
    if escaped:
        value = _unescape_c(value)
    return Token(key, attr, op, value, nocase), pos + 1


def parse_rules(path: str, text: str) -> list[Rule]:
    """The rules of one file (comments and blank lines dropped), in order.

    A line udev would reject keeps its place with ``error`` set and no tokens.

    >>> # systemd 252 (Debian 12 udev), /lib/udev/rules.d/50-udev-default.rules line 108
    >>> [r] = parse_rules("/lib/udev/rules.d/50-udev-default.rules",
    ...     '# The static_node is required on s390x and ppc (they are using MODULE_ALIAS)\\n'
    ...     'KERNEL=="kvm", GROUP="kvm", MODE="0660", OPTIONS+="static_node=kvm"\\n')
    >>> r.line, [(t.key, t.op, t.value) for t in r.tokens]
    (2, [('KERNEL', '==', 'kvm'), ('GROUP', '=', 'kvm'), ('MODE', '=', '0660'), \
('OPTIONS', '+=', 'static_node=kvm')])
    """
    rules: list[Rule] = []
    for first, nr, line in _logical_lines(text):
        tokens: list[Token] = []
        error: Optional[str] = None
        pos = 0
        try:
            while True:
                tok, pos = _parse_pair(line, pos)
                if tok is None:
                    break
                if tok.key not in MATCH_KEYS and tok.key not in ASSIGN_KEYS:
                    raise ValueError(f"invalid key '{tok.key}'")
                tokens.append(tok)
        except ValueError as e:
            error, tokens = f"invalid key/value pair ({e}): udev ignores the line", []
        rules.append(Rule(path, nr, first, line, tuple(tokens), error))
    return rules


# ------------------------------------------------------------------------------ matching
def _glob_match(patterns: str, value: str, nocase: bool) -> bool:
    if nocase:
        patterns, value = patterns.lower(), value.lower()
    for p in patterns.split("|"):
        p = p.replace("[^", "[!")  # glibc fnmatch takes both spellings
        if p == value or (any(c in p for c in "*?[") and fnmatch.fnmatchcase(value, p)):
            return True
    return False


def _env(env: dict[str, Optional[str]], key: str) -> Optional[str]:
    # a property nobody set is empty; one set by an uncertain rule is unknown (None)
    return env.get(key, "")


def _initial_env(dev: Device) -> dict[str, Optional[str]]:
    env: dict[str, Optional[str]] = {}
    if dev.properties is not None:
        env.update(dev.properties)
    derived = {
        "SUBSYSTEM": dev.subsystem,
        "DEVNAME": dev.devname,
        "MAJOR": None if dev.major is None else str(dev.major),
        "MINOR": None if dev.minor is None else str(dev.minor),
        "DEVPATH": dev.devpath,
        "ACTION": dev.action,
    }
    for k, v in derived.items():
        env.setdefault(k, v)  # None: not known
    return env


class _State:
    def __init__(self, dev: Device) -> None:
        self.dev = dev
        self.env = _initial_env(dev)
        self.tags: dict[str, Optional[Setting]] = dict.fromkeys(dev.tags)
        self.maybe_tags: set[str] = set()

    def match(self, t: Token) -> Optional[bool]:
        """True, False, or None when the rule depends on what a file cannot tell."""
        d = self.dev
        value: Optional[str]
        if t.key == "KERNEL":
            value = d.kernel
        elif t.key == "SUBSYSTEM":
            value = d.subsystem
        elif t.key == "ACTION":
            value = d.action
        elif t.key == "DEVPATH":
            value = d.devpath
        elif t.key == "NAME":
            value = ""  # a network interface's name; empty for a device node
        elif t.key == "ENV" and t.attr:
            value = _env(self.env, t.attr)
        elif t.key == "TAG":
            hit = any(_glob_match(t.value, tag, t.nocase) for tag in self.tags)
            if not hit and any(_glob_match(t.value, tag, t.nocase) for tag in self.maybe_tags):
                return None
            return hit if t.op == "==" else not hit
        elif t.key in ("KERNELS", "SUBSYSTEMS"):
            # the device itself or any parent: the device decides only when it matches
            own = d.kernel if t.key == "KERNELS" else d.subsystem
            if _glob_match(t.value, own, t.nocase):
                return t.op == "=="
            return None
        else:
            return None  # ATTR, ATTRS, DRIVER(S), TEST, PROGRAM, RESULT, IMPORT, CONST, ...
        if value is None:
            return None
        hit = _glob_match(t.value, value, t.nocase)
        return hit if t.op == "==" else not hit


def _matches(state: _State, rule: Rule) -> Optional[bool]:
    result: Optional[bool] = True
    for t in rule.tokens:
        if t.op not in ("==", "!="):
            if t.key in ("IMPORT", "PROGRAM"):
                result = None  # runs something: whether it succeeds is unknown
            continue
        m = state.match(t)
        if m is False:
            return False
        if m is None:
            result = None
    return result


def node_rules(
    files: Union[Iterable[tuple[str, Optional[str]]], RulesFiles],
    device: Device,
    *,
    groups: Optional[Iterable[str]] = None,
    users: Optional[Iterable[str]] = None,
) -> NodeRules:
    """The rules governing ``device``'s node, evaluated as udev does for its "add" event.

    ``groups``/``users``: the names in /etc/group and /etc/passwd; when given, a rule whose
    GROUP/OWNER names another one is dropped as udev drops it (a numeric id is always fine).

    >>> text = (  # Debian 12's 50-udev-default.rules, lines 31 and 108
    ...     'ACTION!="add", GOTO="default_end"\\n'
    ...     'KERNEL=="kvm", GROUP="kvm", MODE="0660", OPTIONS+="static_node=kvm"\\n'
    ...     'LABEL="default_end"\\n')
    >>> nr = node_rules([("/lib/udev/rules.d/50-udev-default.rules", text)],
    ...                 Device("kvm", "misc", "/dev/kvm", 10, 232))
    >>> nr.group.value, nr.mode.value, nr.mode.rule.line, nr.static_node.line
    ('kvm', '0660', 2, 2)
    """
    rf = files if isinstance(files, RulesFiles) else rules_files(files)
    known_groups = None if groups is None else set(groups)
    known_users = None if users is None else set(users)
    st = _State(device)
    owner: Optional[Setting] = None
    group: Optional[Setting] = None
    mode: Optional[Setting] = None
    final: set[str] = set()
    static: Optional[Rule] = None
    uncertain: list[Rule] = []
    dropped: list[tuple[Rule, str]] = []
    static_name = device.devname.removeprefix("/dev/")
    for path, text in rf.files:
        if text is None:
            continue
        rules = parse_rules(path, text)
        i = 0
        maybe_skipping: set[str] = set()  # labels of GOTOs that may have been taken
        while i < len(rules):
            rule = rules[i]
            i += 1
            if rule.error:
                continue
            label = next((t.value for t in rule.tokens if t.key == "LABEL"), None)
            if label is not None:
                maybe_skipping.discard(label)
            if any(
                t.key == "OPTIONS" and t.value == f"static_node={static_name}" for t in rule.tokens
            ):
                static = rule
            why = _drop_reason(rule, known_groups, known_users)
            m = _matches(st, rule)
            if m is not False and why:
                dropped.append((rule, why))
                continue
            if m is not False and maybe_skipping:
                m = None
            goto = next((t.value for t in rule.tokens if t.key == "GOTO"), None)
            sets = [
                t
                for t in rule.tokens
                if t.key in ("OWNER", "GROUP", "MODE", "TAG") and t.op not in ("==", "!=")
            ]
            if m is None:
                if sets:
                    uncertain.append(rule)
                    st.maybe_tags.update(t.value for t in sets if t.key == "TAG")
                if goto is not None:
                    maybe_skipping.add(goto)
                for t in rule.tokens:
                    if t.key == "ENV" and t.op not in ("==", "!=") and t.attr:
                        st.env[t.attr] = None
                continue
            if m is False:
                continue
            for t in rule.tokens:
                if t.op in ("==", "!="):
                    continue
                if t.key in ("OWNER", "GROUP", "MODE"):
                    if t.key in final:
                        continue
                    s = Setting(t.value, rule, ":=" if t.op == ":=" else "=")
                    if t.op == ":=":
                        final.add(t.key)
                    if t.key == "OWNER":
                        owner = s
                    elif t.key == "GROUP":
                        group = s
                    else:
                        mode = s
                elif t.key == "TAG":
                    if t.op == "=":
                        st.tags.clear()
                    if t.op == "-=":
                        st.tags.pop(t.value, None)
                    else:
                        st.tags[t.value] = Setting(t.value, rule, t.op)
                elif t.key == "ENV" and t.attr:
                    plain = not any(c in t.value for c in "$%") and t.op in ("=", ":=")
                    st.env[t.attr] = t.value if plain else None
            if goto is not None:
                target = next(
                    (
                        j
                        for j in range(i, len(rules))
                        if any(t.key == "LABEL" and t.value == goto for t in rules[j].tokens)
                    ),
                    None,
                )
                if target is not None:
                    i = target
    return NodeRules(
        device,
        owner,
        group,
        mode,
        tuple(s for s in st.tags.values() if s is not None),
        static,
        tuple(uncertain),
        tuple(dropped),
        rf,
    )


def _drop_reason(
    rule: Rule, groups: Optional[set[str]], users: Optional[set[str]]
) -> Optional[str]:
    for t in rule.tokens:
        if t.key not in ("GROUP", "OWNER") or t.op in ("==", "!="):
            continue
        if t.value.isdigit() or any(c in t.value for c in "$%"):
            continue
        known = groups if t.key == "GROUP" else users
        if known is not None and t.value not in known:
            what = "group" if t.key == "GROUP" else "user"
            return f'{t.key}="{t.value}" names no {what} of this host: udev drops the rule'
    return None
