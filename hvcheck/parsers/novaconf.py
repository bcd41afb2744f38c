"""Parse nova's configuration and resolve ``[libvirt] virt_type`` the way nova-compute does.

Files parsed: ``/etc/nova/nova.conf`` and whatever else nova-compute loads
(``/etc/nova/nova.conf.d/*.conf``, Ubuntu's ``/etc/nova/nova-compute.conf``, kolla's
``/etc/kolla/nova-compute/nova.conf``, TripleO's ``puppet-generated`` copy, snaps' copies under
``/var/snap/...``), in oslo.config's ini dialect, plus the pre-Grizzly gflags "flagfile" format
(one ``--flag=value`` per line, no sections) that Diablo/Essex ``nova.conf`` used.

kolla-ansible's CI override (``tests/templates/nova-compute-overrides.j2``), verbatim:

>>> conf = parse_oslo_ini('''[libvirt]
... virt_type=qemu
... # NOTE(Jeffrey4l): fix the gate in iax-ord nodes for libvirt 2.0.
... cpu_mode=none
... ''', "/etc/kolla/nova-compute/nova.conf")
>>> [(e.section, e.key, e.value, e.line) for e in conf.entries]
[('libvirt', 'virt_type', 'qemu', 2), ('libvirt', 'cpu_mode', 'none', 4)]
>>> r = resolve_nova_libvirt([conf])
>>> r.virt_type.value, r.virt_type.spelling, r.virt_type.line, r.cpu_mode.value
('qemu', '[libvirt] virt_type', 2, 'none')

An Essex-era flagfile (``nerdalert/Openstack-Essex-install-config-files``, shortened):

>>> old = parse_oslo_ini("--libvirt_type=kvm\\n--connection_type=libvirt\\n", "nova.conf")
>>> old.format, resolve_nova_libvirt([old], nova_schema("2012.1")).virt_type.spelling
('flagfile', '--libvirt_type (flagfile)')

The same file under any nova from Grizzly (2013.1) on: oslo.config refuses it.

>>> resolve_nova_libvirt([old]).failures[0].message
"nova.conf: line 1: no section header before '--libvirt_type=kvm'"

Nothing here does I/O or raises: parse errors come back as ``ParsedConf.error`` (text), the way
oslo.config would refuse the file. Semantics follow oslo.config 9.8.0 (``oslo_config/iniparser.py``
``BaseParser.parse``; ``oslo_config/cfg.py`` ``ConfigParser``, ``_Namespace._get_file_value``,
``_get_config_dirs``, ``find_config_files``, ``find_config_dirs``,
``ConfigOpts._parse_config_files``, ``_ConfigDirOpt.ConfigDirAction``), read from the wheel.
What each nova release reads (option names, defaults, choices) is the table of
:mod:`hvcheck.parsers.nova_schema` (:class:`NovaSchema`, :class:`OptSpec` and :func:`nova_schema`
are re-exported here, as :func:`resolve_nova_libvirt` takes a schema).
"""

import fnmatch
import functools
import posixpath
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from typing import Callable, NamedTuple, Optional

from hvcheck.parsers.nova_schema import (
    ALL_NAMES,
    NEWEST_SCHEMA,
    NOVA_LIBVIRT_OPTS,
    NovaSchema,
    OptSpec,
    nova_schema,
)

__all__ = [
    "ConfEntry",
    "ConfigSources",
    "Failure",
    "NovaLibvirtConf",
    "NovaSchema",
    "OptSpec",
    "ParsedConf",
    "Setting",
    "config_sources_from_argv",
    "dist_name_version",
    "dpkg_versions",
    "environ_for_snapshot",
    "expand_config_dir",
    "nova_schema",
    "oslo_config_load_order",
    "oslo_default_config_dirs",
    "oslo_default_config_files",
    "oslo_list",
    "parse_environ",
    "parse_oslo_bytes",
    "parse_oslo_ini",
    "resolve_nova_libvirt",
    "unread_conf",
]


class ConfEntry(NamedTuple):
    """One assignment, as oslo.config's ``ConfigParser.assignment`` records it."""

    section: str  # normalised as oslo does: lower-cased, except exactly "DEFAULT"
    key: str  # as written (stripped); oslo matches option names case-sensitively
    value: str  # continuation lines joined with "\n"; one pair of outer quotes removed
    file: str  # the path the caller gave
    line: int  # 1-based line of the key (first line of a multi-line value)


class ParsedConf(NamedTuple):
    file: str
    entries: tuple[ConfEntry, ...]
    # e.g. "line 12: no section header before 'virt_type = kvm'". oslo.config aborts the whole
    # file at its first error (nova-compute then refuses to start); when set, ``entries`` holds
    # what was parsed before that line.
    error: Optional[str]
    # "ini", "flagfile", or "unread": nova-compute cannot read the file at all (missing, a
    # directory, not UTF-8...; ``error`` says which), see :func:`unread_conf`
    format: str
    error_line: Optional[int] = None  # the line ``error`` names
    # A flagfile only: what oslo.config's ini parser says about the same text. Nova read
    # flagfiles up to Folsom (2012.2); from Grizzly on the file is refused with this error.
    ini_error: Optional[str] = None
    ini_error_line: Optional[int] = None


class Setting(NamedTuple):
    # the value nova-compute uses: substituted ($name), as written otherwise; None when unset
    # (except virt_type, which reports nova's default)
    value: Optional[str]
    file: Optional[str]
    line: Optional[int]
    # How it was set: "[libvirt] virt_type", "[DEFAULT] libvirt_type (deprecated name of
    # [libvirt] virt_type)", "--libvirt_type (flagfile)", "environment OS_LIBVIRT__VIRT_TYPE",
    # or "default" when unset.
    spelling: str
    default: bool
    raw: Optional[str] = None  # the text as written, when substitution changed it
    env: Optional[str] = None  # the environment variable it came from
    items: Optional[tuple[str, ...]] = None  # a ListOpt's value (cpu_models from Train on)
    invalid: Optional[str] = None  # why nova refuses it (nova-compute does not start)
    unresolved: Optional[str] = None  # why hvcheck cannot evaluate it ($name it cannot follow)


class Failure(NamedTuple):
    """Something that stops nova-compute from starting."""

    message: str  # e.g. "[libvirt] virt_type = 'xen' is not one of kvm, lxc, qemu, parallels"
    file: Optional[str]
    line: Optional[int]
    # "file" (oslo.config refuses a file), "value" (a value nova refuses: ``option`` names it),
    # "cpu" (init_host's _check_cpu_compatibility refuses the CPU options)
    kind: str = "file"
    option: Optional[str] = None  # "virt_type", "cpu_mode", "cpu_models"
    env: Optional[str] = None  # the environment variable that set the value


class NovaLibvirtConf(NamedTuple):
    virt_type: Setting  # unset -> "kvm", default=True (nova's default)
    cpu_mode: Setting  # unset -> None, default=True
    cpu_models: Setting  # unset -> None, default=True; the ListOpt text, its list in ``items``
    files: tuple[str, ...]  # files consulted, in order
    errors: tuple[str, ...]  # parse errors, "file: message"
    # [DEFAULT] compute_driver (or a flagfile's --connection_type): which virt driver nova-compute
    # loads at all; virt_type only matters for libvirt.LibvirtDriver. Unset -> None.
    compute_driver: Setting = Setting(None, None, None, "default", True)
    # what stops nova-compute from starting, in the order it meets them: unreadable and
    # unparsable files, values outside the release's choices, init_host's CPU checks
    failures: tuple[Failure, ...] = ()
    schema: Optional[NovaSchema] = None  # the release schema applied
    ignored: tuple[ConfEntry, ...] = ()  # settings under names the release no longer reads


# --------------------------------------------------------------------------------------------
# oslo.config ini dialect
# --------------------------------------------------------------------------------------------

# oslo opens the file in text mode (universal newlines: \r\n and lone \r become \n) and iterates
# ``readlines()``; splitting on exactly these three keeps line numbers equal to oslo's lineno.
_NEWLINE = re.compile(r"\r\n|\r|\n")


def _lines(text: str) -> list[str]:
    lines = _NEWLINE.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # text ending in a newline has no extra (empty) last line
    return lines


def _normalize_group_name(name: str) -> str:
    # oslo_config/cfg.py _normalize_group_name: only the exact spelling "DEFAULT" is the DEFAULT
    # group; "[default]" or "[Default]" become a group literally named "default".
    return name if name == "DEFAULT" else name.lower()


def _show(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def _looks_like_flagfile(lines: Sequence[str]) -> bool:
    """A pre-Grizzly gflags flagfile: no ``[section]`` line, at least one ``--flag`` line."""
    flag = False
    for raw in lines:
        s = raw.strip()
        if not s or raw.startswith("#"):
            continue
        if raw.rstrip().startswith("["):
            return False
        if s.startswith("--"):
            flag = True
    return flag


def _parse_flagfile(lines: Sequence[str], file: str) -> ParsedConf:
    # nova's flagfile handling (Essex nova/compat/flagfile.py _read_lines, after gflags): lines
    # that are blank or start with "#" in column 0 are skipped, the others stripped and inserted
    # into argv as one argument each. Anything that is not an option became a positional argument
    # that nova ignored, so it is skipped here too, not reported. A bare "--flag" is a boolean
    # flag set to true; "--noflag" (gflags' false) is kept literally as key "noflag". Nested
    # "--flagfile=..." lines are kept as entries, not followed (no I/O here).
    entries: list[ConfEntry] = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        s = raw.strip()
        if not s.startswith("-") or s in ("-", "--"):
            continue
        body = s[2:] if s.startswith("--") else s[1:]
        key, sep, value = body.partition("=")
        if not key:
            continue
        entries.append(ConfEntry("DEFAULT", key, value if sep else "True", file, n))
    return ParsedConf(file, tuple(entries), None, "flagfile")


def parse_oslo_ini(text: str, file: str) -> ParsedConf:
    """Parse one nova config file as oslo.config does; never raises.

    Mirrors ``oslo_config.iniparser.BaseParser.parse`` line by line (oslo.config 9.8.0):

    * each line is ``rstrip()``-ed; an empty line ends a multi-line value;
    * a line starting with a space or tab continues the previous value (even one that looks
      like a comment); with no value pending it is an error ("Unexpected continuation line"),
      so an *indented* ``# comment`` right after a section header makes oslo refuse the file;
    * ``[name]``: section header; must end with ``]`` and not be empty; the name is not
      stripped (``[ libvirt ]`` is the group " libvirt ", which nova never reads);
    * ``#`` or ``;`` in column 0: comment. There are no inline comments:
      ``virt_type = kvm  # fast`` has the value ``kvm  # fast`` (which nova then rejects);
    * otherwise ``key = value`` or ``key: value``, split at whichever of ``=``/``:`` comes
      first; key and value stripped; one pair of matching outer quotes (``"`` or ``'``) is
      removed from the first line of the value; no ``=``/``:`` is an error, so is an empty key;
    * an assignment before any section header is an error (``ConfigParser.assignment``:
      "Section must be started before assignment").

    oslo stops at the first error and nova-compute exits, so this stops too: ``error`` names the
    line and ``entries`` keeps what was complete before it. oslo reports a missing section at
    the line where it flushes the assignment (possibly the next line); this reports the key's
    own line. A file with no section header and ``--flag`` lines is parsed as a flagfile.
    """
    try:
        return _parse_oslo_ini(text, file)
    except Exception as e:  # pragma: no cover - defensive: the parser must never raise
        return ParsedConf(file, (), f"internal parser error: {type(e).__name__}", "ini")


def parse_oslo_bytes(data: bytes, file: str) -> ParsedConf:
    """Parse a file's bytes as nova-compute reads them: UTF-8 text, then :func:`parse_oslo_ini`.

    oslo.config opens the file in text mode with the locale's encoding, which is UTF-8 for
    every Python 3.7+ service in a UTF-8 or the C/POSIX locale (PEP 538/540); bytes that are
    not UTF-8 raise ``UnicodeDecodeError`` and nova-compute exits. That comes back as an
    ``"unread"`` conf naming the line of the first bad byte. A BOM is kept as a character, as
    oslo keeps it (``open()`` without ``utf-8-sig``): the first line then starts with
    U+FEFF, which makes oslo refuse ``\ufeff[libvirt]`` and every other first line but a blank.

    >>> parse_oslo_bytes(b"[libvirt]\\nvirt_type = kvm\\n# caf\\xe9\\n", "x").error
    'line 3: not UTF-8 (byte 0xe9): nova-compute cannot decode the file'
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = len(_lines(data[: e.start].decode("utf-8", "replace") + "x"))
        bad = data[e.start : e.start + 1].hex()
        return unread_conf(
            file,
            f"line {line}: not UTF-8 (byte 0x{bad}): nova-compute cannot decode the file",
            line,
        )
    return parse_oslo_ini(text, file)


def unread_conf(file: str, message: str, line: Optional[int] = None) -> ParsedConf:
    """A file nova-compute loads but cannot read (missing, a directory, not UTF-8...).

    oslo.config raises for each of these (``ConfigFilesNotFoundError``, ``OSError``,
    ``UnicodeDecodeError``), so nova-compute does not start.
    """
    return ParsedConf(file, (), message, "unread", line)


def _parse_oslo_ini(text: str, file: str) -> ParsedConf:
    lines = _lines(text)
    if _looks_like_flagfile(lines):
        ini = _parse_ini(lines, file)
        return _parse_flagfile(lines, file)._replace(
            ini_error=ini.error, ini_error_line=ini.error_line
        )
    return _parse_ini(lines, file)


def _parse_ini(lines: Sequence[str], file: str) -> ParsedConf:
    entries: list[ConfEntry] = []
    section: Optional[str] = None
    key: Optional[str] = None
    key_line = 0
    key_text = ""
    value: list[str] = []

    def flush(key: str) -> Optional[str]:
        """ConfigParser.assignment: record the pending key, or say why oslo would refuse it."""
        if not section:
            return f"line {key_line}: no section header before {_show(key_text)}"
        entries.append(
            ConfEntry(_normalize_group_name(section), key, "\n".join(value), file, key_line)
        )
        return None

    def fail(message: str, line: int) -> ParsedConf:
        return ParsedConf(file, tuple(entries), message, "ini", line)

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line:
            # blank line: ends a multi-line value
            if key:
                err = flush(key)
                if err:
                    return fail(err, key_line)
                key, value = None, []
            continue
        if line.startswith((" ", "\t")):
            if key is None:
                return fail(
                    f"line {lineno}: unexpected continuation line {_show(line)} "
                    "(oslo.config refuses indented lines outside a value)",
                    lineno,
                )
            value.append(line.lstrip())
            continue
        if key:
            err = flush(key)
            if err:
                return fail(err, key_line)
            key, value = None, []
        if line.startswith("["):
            if not line.endswith("]"):
                return fail(
                    f"line {lineno}: invalid section (must end with ]): {_show(line)}", lineno
                )
            if len(line) <= 2:
                return fail(f"line {lineno}: empty section name: {_show(line)}", lineno)
            section = line[1:-1]
        elif line.startswith(("#", ";")):
            continue
        else:
            colon, equal = line.find(":"), line.find("=")
            if colon < 0 and equal < 0:
                return fail(
                    f"line {lineno}: no '=' or ':' in {_show(line)} (oslo.config: "
                    "No ':' or '=' found in assignment)",
                    lineno,
                )
            if colon < 0 or (0 <= equal < colon):
                k, v = line[:equal], line[equal + 1 :]
            else:
                k, v = line[:colon], line[colon + 1 :]
            v = v.strip()
            if v and v[0] == v[-1] and v.startswith(('"', "'")):
                v = v[1:-1]
            k = k.strip()
            if not k:
                return fail(f"line {lineno}: empty key in {_show(line)}", lineno)
            key, value, key_line, key_text = k, [v], lineno, line
    if key:
        err = flush(key)
        if err:
            return fail(err, key_line)
    return ParsedConf(file, tuple(entries), None, "ini")


# --------------------------------------------------------------------------------------------
# Resolution: which value nova-compute ends up with
# --------------------------------------------------------------------------------------------


class _Unresolved(Exception):
    """A ``$name`` hvcheck cannot evaluate (an option it does not know, set nowhere)."""


class _Invalid(Exception):
    """oslo.config raises while evaluating the value: nova-compute stops."""


@functools.cache
def _template() -> type[string.Template]:
    """oslo's Template class, made on first use: string.Template compiles its pattern when
    the class is made, and with re.IGNORECASE that costs ~0.7 ms a run that reads no nova.conf
    value with a ``$`` never needs."""

    class _Template(string.Template):
        # oslo_config/cfg.py ConfigOpts.Template: "$name", "${name}", "${group.name}", "$$";
        # string.Template's re.IGNORECASE applies, as in oslo (``$HOST`` is matched, then not
        # found)
        idpattern = r"[_a-z][\._a-z0-9]*"

    return _Template


def oslo_list(value: str) -> list[str]:
    """oslo_config.types.List with String items: how a ListOpt value becomes a list.

    >>> oslo_list(" Haswell, Broadwell-noTSX ,"), oslo_list("")
    (['Haswell', 'Broadwell-noTSX'], [])
    """
    s = value.strip().rstrip(",")
    return [v.strip() for v in s.split(",")] if s else []


def _env_name(group: str, name: str) -> str:
    # oslo_config/sources/_environment.py EnvironmentConfigurationSource.get_name
    return f"OS_{group.upper()}__{name.upper()}"


class _Resolver:
    """oslo_config/cfg.py ``ConfigOpts._do_get`` for the schema's options, over parsed files.

    Order: the environment (``OS_<GROUP>__<NAME>``, current name only), then the files newest
    first (per file the current name, then the deprecated ones; the last duplicate of a key),
    then the default. The value is then substituted (``_substitute``) and converted
    (``types.String`` choices, ``types.List``).
    """

    def __init__(
        self, confs: Sequence[ParsedConf], schema: NovaSchema, env: Optional[Mapping[str, str]]
    ) -> None:
        self.confs = confs
        self.schema = schema
        self.env: Mapping[str, str] = env if (env is not None and schema.environment) else {}
        self.specs = {(o.group, o.name): o for o in schema.options()}
        # oslo_config/cfg.py _track_deprecated_opts files a deprecated name under its
        # deprecated_group, or "DEFAULT" when it has none (cpu_model of Train on): "$cpu_model"
        # is only found through the [DEFAULT] fallback, "${libvirt.cpu_model}" never
        self.deprecated = {("DEFAULT", n): o for o in schema.options() for _, n in o.deprecated}
        self.has_libvirt = any(o.group == "libvirt" for o in schema.options())
        # the names other releases read and this one has no option for (in either group)
        known = {p for o in schema.options() for p in o.names()}
        every = {n for names in ALL_NAMES.values() for _, n in names}
        self.absent = {(g, n) for n in every for g in ("libvirt", "DEFAULT")} - known
        self.done: dict[tuple[str, str], Setting] = {}
        self.stack: list[tuple[str, str]] = []

    # ---- raw values -------------------------------------------------------------------------
    def _file_value(self, names: Sequence[tuple[str, str]], current: OptSpec) -> Optional[Setting]:
        for conf in reversed(self.confs):
            for group, name in names:
                found: Optional[ConfEntry] = None
                for e in conf.entries:
                    if e.section == group and e.key == name:
                        found = e
                if found is None:
                    continue
                if conf.format == "flagfile":
                    spelling = f"--{name} (flagfile)"
                elif (group, name) == (current.group, current.name):
                    spelling = current.spelling
                else:
                    spelling = f"[{group}] {name} (deprecated name of {current.spelling})"
                return Setting(found.value, found.file, found.line, spelling, False)
        return None

    def _raw(self, spec: OptSpec, key: Optional[str] = None) -> Setting:
        """The text oslo finds for ``spec``; with ``key`` (a deprecated name reached through
        the [DEFAULT] fallback of a substitution), what ``_do_get(key, group=None)`` finds:
        oslo then looks the option up in [DEFAULT] and the environment as OS_DEFAULT__<KEY>."""
        group = "DEFAULT" if key else spec.group
        var = _env_name(group, key or spec.name)
        if var in self.env:
            return Setting(self.env[var], None, None, f"environment {var}", False, env=var)
        found = self._file_value(spec.names(group), spec)
        if found is not None:
            return found
        return Setting(spec.default, None, None, "default", True)

    # ---- evaluation ---------------------------------------------------------------------------
    def setting(self, spec: OptSpec, key: Optional[str] = None) -> Setting:
        """The option evaluated (``key``: reached as a deprecated name, see ``_raw``)."""
        memo = ("DEFAULT", key) if key else (spec.group, spec.name)
        if memo in self.done:
            return self.done[memo]
        if memo in self.stack:
            chain = " -> ".join(f"${n}" for _, n in [*self.stack[self.stack.index(memo) :], memo])
            raise _Invalid(f"substitution loop {chain}")
        self.stack.append(memo)
        try:
            s = self._evaluate(spec, self._raw(spec, key), "DEFAULT" if key else spec.group)
        finally:
            self.stack.pop()
        self.done[memo] = s
        return s

    def _evaluate(self, spec: OptSpec, raw: Setting, group: str) -> Setting:
        if raw.value is None:
            return raw._replace(items=() if spec.is_list else None)
        try:
            value = self._substitute(raw.value, group)
        except _Unresolved as e:
            return raw._replace(unresolved=str(e))
        except _Invalid as e:
            return raw._replace(invalid=str(e))
        s = raw if value == raw.value else raw._replace(value=value, raw=raw.value)
        if spec.is_list:
            return s._replace(items=tuple(oslo_list(value)))
        if spec.choices is not None and value not in spec.choices:
            return s._replace(
                invalid=f"{spec.spelling} = {value!r} is not one of {', '.join(spec.choices)}"
            )
        return s

    def _substitute(self, text: str, group: str) -> str:
        # oslo_config/cfg.py ConfigOpts._substitute: "\$" is read as "$$" first
        if r"\$" in text:
            text = text.replace(r"\$", "$$")
        if "$" not in text:
            return text  # nothing to substitute: safe_substitute would return it unchanged
        return _template()(text).safe_substitute(_Refs(self, group))

    def ref(self, key: str, group: str) -> str:
        """``StrSubWrapper.__getitem__``: the text ``$key`` stands for, seen from ``group``.

        ``$name`` is the option ``name`` of ``group`` when that group has one, else (oslo's
        ``NoSuchOptError`` fallback) the [DEFAULT] option ``name``, a deprecated name filed
        under [DEFAULT] included; ``${g.name}`` is only the option of the registered group
        ``g`` ("DEFAULT" is none: ``NoSuchGroupError``). A name no option has stops
        nova-compute (the error propagates out of ``safe_substitute``).

        hvcheck knows the schema's options, nova's [libvirt] option names and the names no
        release has in a group; any other [DEFAULT] name set in the files or environment is
        taken as a string option. A registered option that is set nowhere has a default hvcheck
        does not know, and a [DEFAULT] name set nowhere may or may not be an option: both are
        unresolved (the check says UNKNOWN), never guessed.
        """
        if "." in key:
            g, name = key.split(".", 1)
            if g == "DEFAULT" or g != g.lower() or (g == "libvirt" and not self.has_libvirt):
                raise _Invalid(f"${{{key}}}: oslo.config has no group {g!r}")
            found = self._in_group(g, name, key)
            if found is not None:
                return found
            if (g, name) in self.absent:
                raise _Invalid(f"${{{key}}}: no such option in {self.schema.name}")
            raise _Unresolved(f"${{{key}}} is set nowhere: hvcheck does not know its default")
        if group != "DEFAULT":
            found = self._in_group(group, key, key)
            if found is not None:
                return found
        spec = self.specs.get(("DEFAULT", key))
        if spec is not None:
            return self._text(self.setting(spec), key)
        spec = self.deprecated.get(("DEFAULT", key))
        if spec is not None:
            return self._text(self.setting(spec, key), key)
        if key in NOVA_LIBVIRT_OPTS and ("DEFAULT", key) not in self.absent:
            # a [libvirt] name: as a [DEFAULT] option it is most likely no option at all
            # (NoSuchOptError), which hvcheck cannot be sure of
            raise _Unresolved(f"${key} from [{group}]: not an option of [{group}] or [DEFAULT]")
        if ("DEFAULT", key) not in self.absent:
            other = self._other("DEFAULT", key)
            if other is not None:
                return other
            raise _Unresolved(f"${key} is set nowhere: hvcheck does not know its default")
        raise _Invalid(f"${key}: no such option in {self.schema.name}")

    def _in_group(self, group: str, name: str, key: str) -> Optional[str]:
        """The option ``name`` of a group other than [DEFAULT]; None when it has none."""
        spec = self.specs.get((group, name))
        if spec is not None:
            return self._text(self.setting(spec), key)
        if group == "libvirt" and not (self.has_libvirt and name in NOVA_LIBVIRT_OPTS):
            return None
        if (group, name) in self.absent:
            return None
        other = self._other(group, name)
        if other is None:
            raise _Unresolved(f"${key} is set nowhere: hvcheck does not know its default")
        return other

    def _text(self, s: Setting, key: str) -> str:
        # the referenced option's converted value, as str() makes it ('' for None)
        if s.invalid:
            raise _Invalid(f"${key} refers to a value nova refuses ({s.invalid})")
        if s.unresolved:
            raise _Unresolved(s.unresolved)
        if s.items is not None:
            return str(list(s.items))
        return s.value or ""

    def _other(self, group: str, name: str) -> Optional[str]:
        """An option outside the schema, as a string option set in the files or environment."""
        key = (group, name)
        if key in self.stack:
            chain = " -> ".join(f"${n}" for _, n in [*self.stack[self.stack.index(key) :], key])
            raise _Invalid(f"substitution loop {chain}")
        var = _env_name(group, name)
        if var in self.env:
            raw: Optional[str] = self.env[var]
        else:
            found = self._file_value(((group, name),), OptSpec(group, name))
            raw = found.value if found else None
        if raw is None:
            return None
        self.stack.append(key)
        try:
            return self._substitute(raw, group)
        finally:
            self.stack.pop()


class _Refs(Mapping[str, str]):
    """The mapping string.Template reads; lookups that fail raise, as oslo's wrapper does."""

    def __init__(self, resolver: _Resolver, group: str) -> None:
        self.resolver = resolver
        self.group = group

    def __getitem__(self, key: str) -> str:
        return self.resolver.ref(key, self.group)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _effective(confs: Sequence[ParsedConf], schema: NovaSchema) -> list[ParsedConf]:
    # a flagfile where the release no longer reads them is what oslo's ini parser makes of it
    out = []
    for c in confs:
        if c.format == "flagfile" and not schema.flagfiles:
            c = ParsedConf(c.file, (), c.ini_error, "ini", c.ini_error_line)
        out.append(c)
    return out


def _failures(
    confs: Sequence[ParsedConf], schema: NovaSchema, settings: Sequence[Setting]
) -> list[Failure]:
    out = [Failure(f"{c.file}: {c.error}", c.file, c.error_line) for c in confs if c.error]
    for opt, s in zip(("virt_type", "cpu_mode", "cpu_models"), settings):
        if s.invalid:
            out.append(Failure(s.invalid, s.file, s.line, "value", opt, s.env))
    if out or not schema.cpu_checks_at_start:
        return out
    # nova/virt/libvirt/driver.py LibvirtDriver._check_cpu_compatibility (Train on), in order
    vt, mode, models = settings
    if vt.value not in ("kvm", "qemu") and mode.value not in (None, "none"):
        out.append(
            Failure(
                f"[libvirt] cpu_mode = {mode.value} with virt_type={vt.value}: nova refuses an "
                "explicit CPU model for a hypervisor that cannot select one",
                mode.file,
                mode.line,
                "cpu",
                "cpu_mode",
                mode.env,
            )
        )
    elif mode.value != "custom" and models.items:
        out.append(
            Failure(
                f"[libvirt] cpu_models is set but cpu_mode is {mode.value or 'unset'}: nova "
                "requires cpu_mode = custom with cpu_models",
                models.file,
                models.line,
                "cpu",
                "cpu_models",
                models.env,
            )
        )
    elif mode.value == "custom" and not models.items:
        out.append(
            Failure(
                "[libvirt] cpu_mode = custom without cpu_models: nova requires a model",
                mode.file,
                mode.line,
                "cpu",
                "cpu_mode",
                mode.env,
            )
        )
    return out


def _ignored(confs: Sequence[ParsedConf], schema: NovaSchema) -> list[ConfEntry]:
    read = {p for o in schema.options() for p in o.names()}
    out = []
    for c in confs:
        if c.format == "flagfile" and schema.flagfiles:
            continue
        for e in c.entries:
            for names in ALL_NAMES.values():
                if (e.section, e.key) in names and (e.section, e.key) not in read:
                    out.append(e)
    return out


def resolve_nova_libvirt(
    confs: Sequence[ParsedConf],
    schema: Optional[NovaSchema] = None,
    env: Optional[Mapping[str, str]] = None,
) -> NovaLibvirtConf:
    """Effective ``virt_type``, ``cpu_mode``, ``cpu_models`` over files in load order.

    ``schema`` is the running release's (:func:`nova_schema`; the newest when None), ``env``
    nova-compute's environment (read only where the release's oslo.config reads it).

    Later files win; within a file the last duplicate wins; per file the current option name is
    tried before its deprecated names (oslo_config/cfg.py ``_Namespace._get_file_value``: files
    newest first, names in order within each, so a *later* file's deprecated spelling beats an
    earlier file's current one); the environment beats every file. Values are substituted as
    oslo does (``$name``, ``${group.name}``, ``$$``) and checked against the release's choices.

    Files with a parse error still contribute what parsed before the error (what the operator
    meant); the error is in ``errors`` and, like every value nova refuses, in ``failures``:
    nova-compute does not start.
    """
    schema = schema or NEWEST_SCHEMA
    confs = _effective(confs, schema)
    r = _Resolver(confs, schema, env)
    unset = Setting(None, None, None, "default", True)

    def get(spec: Optional[OptSpec]) -> Setting:
        if spec is None:
            return unset
        try:
            return r.setting(spec)
        except _Invalid as e:  # a loop through this very option
            return r._raw(spec)._replace(invalid=str(e))

    vt, mode, models = get(schema.virt_type), get(schema.cpu_mode), get(schema.cpu_models)
    driver = r._file_value(_COMPUTE_DRIVER, OptSpec("DEFAULT", "compute_driver"))
    if driver is not None and "connection_type (deprecated" in driver.spelling:
        driver = driver._replace(spelling="[DEFAULT] connection_type (pre-Folsom)")
    return NovaLibvirtConf(
        virt_type=vt,
        cpu_mode=mode,
        cpu_models=models,
        files=tuple(c.file for c in confs),
        errors=tuple(f"{c.file}: {c.error}" for c in confs if c.error),
        compute_driver=driver or unset,
        failures=tuple(_failures(confs, schema, (vt, mode, models))),
        schema=schema,
        ignored=tuple(_ignored(confs, schema)),
    )


# [DEFAULT] compute_driver (e.g. libvirt.LibvirtDriver); Diablo/Essex flagfiles chose the
# driver with --connection_type=libvirt instead.
_COMPUTE_DRIVER = (("DEFAULT", "compute_driver"), ("DEFAULT", "connection_type"))


# --------------------------------------------------------------------------------------------
# Which files nova-compute loads
# --------------------------------------------------------------------------------------------


class ConfigSources:
    """``--config-file`` / ``--config-dir`` options of a command line, in argv order.

    Iterating yields ``(kind, path)`` pairs, kind ``"file"`` or ``"dir"``, paths as given.
    """

    __slots__ = ("sources",)

    def __init__(self, sources: tuple[tuple[str, str], ...]) -> None:
        self.sources = tuple(sources)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigSources) and other.sources == self.sources

    def __hash__(self) -> int:
        return hash(self.sources)

    def __repr__(self) -> str:
        return f"ConfigSources({self.sources!r})"

    @property
    def has_config_file(self) -> bool:
        """False: oslo also loads its default files (before anything on the command line)."""
        return any(k == "file" for k, _ in self.sources)

    @property
    def has_config_dir(self) -> bool:
        """False: oslo also loads its default ``*.conf.d`` dirs (before the command line)."""
        return any(k == "dir" for k, _ in self.sources)


_OPTS = {"--config-file": "file", "--config-dir": "dir"}


def config_sources_from_argv(argv: Sequence[str]) -> Optional[ConfigSources]:
    """The ``--config-file``/``--config-dir`` options of a nova-compute argv, or None.

    >>> config_sources_from_argv(["/usr/bin/python3", "/usr/bin/nova-compute",
    ...     "--config-file=/etc/nova/nova.conf", "--config-file", "/etc/nova/nova-compute.conf",
    ...     "--log-file=/var/log/nova/nova-compute.log"]).sources
    (('file', '/etc/nova/nova.conf'), ('file', '/etc/nova/nova-compute.conf'))

    Accepts ``--config-file=PATH`` and ``--config-file PATH`` (argparse's two forms; the
    interpreter and script in front are skipped naturally); stops at ``--``. None when neither
    option is present: oslo then loads its defaults (see :func:`oslo_config_load_order`), as
    under kolla, whose ``kolla_start`` runs a bare ``nova-compute``. argparse would also accept
    unambiguous abbreviations (``--config-f``); oslo's own default-file test does not, and
    neither does this.
    """
    out: list[tuple[str, str]] = []
    args = [a for a in argv if isinstance(a, str)]
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        if a in _OPTS:
            if i + 1 < len(args):
                out.append((_OPTS[a], args[i + 1]))
            i += 2
            continue
        opt, sep, val = a.partition("=")
        if sep and opt in _OPTS:
            out.append((_OPTS[opt], val))
        i += 1
    return ConfigSources(tuple(out)) if out else None


def _oslo_config_dirs(
    project: Optional[str], home: Optional[str], snap: Optional[str], snap_common: Optional[str]
) -> list[str]:
    # oslo_config/cfg.py _get_config_dirs: ~/.PROJECT/, ~/, /etc/PROJECT/, /etc/, then
    # $SNAP_COMMON/etc/PROJECT and $SNAP/etc/PROJECT when those variables are set. "~" is the
    # home of the user nova-compute runs as (HOME; /var/lib/nova for the packaged nova user);
    # without ``home`` the two home-directory candidates are left out.
    dirs: list[Optional[str]] = [
        posixpath.join(home, "." + project) if home and project else None,
        home,
        posixpath.join("/etc", project) if project else None,
        "/etc",
        posixpath.join(snap_common, "etc", project) if snap_common and project else None,
        posixpath.join(snap, "etc", project) if snap and project else None,
    ]
    return [d for d in dirs if d]


def _find(
    project: Optional[str],
    prog: Optional[str],
    extension: str,
    exists: Optional[Callable[[str], bool]],
    home: Optional[str],
    snap: Optional[str],
    snap_common: Optional[str],
) -> list[str]:
    # oslo_config/cfg.py _find_config_files/_search_dirs: for PROJECT then PROG, the first
    # directory holding NAME+extension; at most one path per name.
    dirs = _oslo_config_dirs(project, home, snap, snap_common)
    out: list[str] = []
    for name in (project, prog):
        if not name:
            continue
        candidates = [posixpath.join(d, name + extension) for d in dirs]
        if exists is None:
            out.extend(candidates)
            continue
        for c in candidates:
            try:
                hit = bool(exists(c))
            except Exception:
                hit = False
            if hit:
                out.append(c)
                break
    return out


def oslo_default_config_files(
    project: Optional[str] = "nova",
    prog: Optional[str] = "nova-compute",
    *,
    exists: Optional[Callable[[str], bool]] = None,
    home: Optional[str] = None,
    snap: Optional[str] = None,
    snap_common: Optional[str] = None,
) -> list[str]:
    """oslo.config's ``find_config_files(project, prog)``: the files loaded without --config-file.

    oslo looks for ``nova.conf`` then ``nova-compute.conf`` in ``~/.nova/``, ``~/``,
    ``/etc/nova/``, ``/etc/`` (and ``$SNAP_COMMON/etc/nova``, ``$SNAP/etc/nova`` inside a
    snap) and keeps, for each name, only the first directory where it exists. With ``exists``
    this returns exactly that pick; without it, every candidate in search order (a caller that
    loads all existing ones over-approximates only when one name exists in two places).

    >>> for path in oslo_default_config_files():
    ...     print(path)
    /etc/nova/nova.conf
    /etc/nova.conf
    /etc/nova/nova-compute.conf
    /etc/nova-compute.conf
    >>> oslo_default_config_files(exists={"/etc/nova/nova.conf", "/etc/nova.conf"}.__contains__)
    ['/etc/nova/nova.conf']
    """
    return _find(project, prog, ".conf", exists, home, snap, snap_common)


def oslo_default_config_dirs(
    project: Optional[str] = "nova",
    prog: Optional[str] = "nova-compute",
    *,
    exists: Optional[Callable[[str], bool]] = None,
    home: Optional[str] = None,
    snap: Optional[str] = None,
    snap_common: Optional[str] = None,
) -> list[str]:
    """oslo.config's ``find_config_dirs``: ``nova.conf.d`` then ``nova-compute.conf.d``.

    Same search and pick as :func:`oslo_default_config_files`. oslo loads ``*.conf`` from these
    whenever ``--config-dir`` is absent, silently skipping the ones that do not exist.

    >>> oslo_default_config_dirs(exists={"/etc/nova/nova.conf.d"}.__contains__)
    ['/etc/nova/nova.conf.d']
    """
    return _find(project, prog, ".conf.d", exists, home, snap, snap_common)


def oslo_config_load_order(
    sources: Optional[ConfigSources],
    project: Optional[str] = "nova",
    prog: Optional[str] = "nova-compute",
    *,
    exists: Optional[Callable[[str], bool]] = None,
    home: Optional[str] = None,
    snap: Optional[str] = None,
    snap_common: Optional[str] = None,
) -> list[tuple[str, str]]:
    """Everything oslo parses, in order, as ``("file", path)`` / ``("dir", path)`` pairs.

    oslo_config/cfg.py ``ConfigOpts._parse_config_files``: first the default files, unless the
    command line has a ``--config-file``; then the default dirs, unless it has a
    ``--config-dir``; then argparse runs the command line's own options in order (each
    ``--config-file`` / ``--config-dir`` action parses right away). The two defaults are
    independent: Ubuntu's ``nova-compute --config-file=/etc/nova/nova.conf
    --config-file=/etc/nova/nova-compute.conf`` still reads ``/etc/nova/nova.conf.d/*.conf``
    if that exists, *before* (so overridden by) the two files. A ``"dir"`` expands to its
    ``*.conf`` files via :func:`expand_config_dir`.

    >>> oslo_config_load_order(None, exists={"/etc/nova/nova.conf",
    ...     "/etc/nova/nova.conf.d"}.__contains__)
    [('file', '/etc/nova/nova.conf'), ('dir', '/etc/nova/nova.conf.d')]
    >>> oslo_config_load_order(config_sources_from_argv(["nova-compute", "--config-file",
    ...     "/etc/nova/nova.conf"]), exists={"/etc/nova/nova.conf.d"}.__contains__)
    [('dir', '/etc/nova/nova.conf.d'), ('file', '/etc/nova/nova.conf')]
    """
    out: list[tuple[str, str]] = []
    if sources is None or not sources.has_config_file:
        files = _find(project, prog, ".conf", exists, home, snap, snap_common)
        out += [("file", f) for f in files]
    if sources is None or not sources.has_config_dir:
        dirs = _find(project, prog, ".conf.d", exists, home, snap, snap_common)
        out += [("dir", d) for d in dirs]
    if sources is not None:
        out += list(sources.sources)
    return out


def expand_config_dir(dir_listing: Sequence[str]) -> list[str]:
    """The entries of a ``--config-dir`` listing that oslo parses, in oslo's order.

    ``_ConfigDirOpt.ConfigDirAction``: ``sorted(glob.glob(os.path.join(dir, '*.conf')))``.
    glob's ``*`` skips names starting with ``.``, matching is case-sensitive on Linux, and the
    sort is plain string order (so ``10-x.conf`` sorts before ``9-x.conf``). Entries may be bare
    names or paths (matched on their last component, returned as given).

    >>> expand_config_dir(["nova.conf", "README", "02-libvirt.conf", ".hidden.conf",
    ...                    "01-base.conf", "x.conf.bak"])
    ['01-base.conf', '02-libvirt.conf', 'nova.conf']
    """
    out = []
    for entry in dir_listing:
        if not isinstance(entry, str):
            continue
        base = posixpath.basename(entry.rstrip("/")) if entry.rstrip("/") else entry
        if base.startswith(".") or not fnmatch.fnmatchcase(base, "*.conf"):
            continue
        out.append(entry)
    return sorted(out)


# --------------------------------------------------------------------------------------------
# Which nova runs, and its environment
# --------------------------------------------------------------------------------------------

_HEADER = re.compile(r"^(Name|Version):[ \t]*(\S.*?)\s*$", re.MULTILINE)


def dist_name_version(text: str) -> Optional[tuple[str, str]]:
    """``(Name, Version)`` of a Python distribution's ``METADATA`` or ``PKG-INFO``.

    Both are RFC 822 headers (core metadata spec); only the header block, before the first
    blank line, is read.

    >>> dist_name_version("Metadata-Version: 2.1\\nName: nova\\nVersion: 27.1.0\\n\\nName: x\\n")
    ('nova', '27.1.0')
    """
    block = _NEWLINE.sub("\n", text).split("\n\n", 1)[0]
    found: dict[str, str] = {m.group(1): m.group(2) for m in _HEADER.finditer(block)}
    if "Name" in found and "Version" in found:
        return found["Name"], found["Version"]
    return None


def dpkg_versions(status: str, packages: Sequence[str]) -> dict[str, str]:
    """Versions of the installed ``packages`` in a dpkg ``status`` database (deb-control text).

    A stanza counts when its ``Status`` ends in ``installed`` (``install ok installed``).

    >>> dpkg_versions("Package: python3-nova\\nStatus: install ok installed\\n"
    ...               "Version: 3:31.0.0-0ubuntu1\\n\\nPackage: nova-common\\n"
    ...               "Status: deinstall ok config-files\\nVersion: 3:30.0.0-0ubuntu1\\n",
    ...               ["python3-nova", "nova-common"])
    {'python3-nova': '3:31.0.0-0ubuntu1'}
    """
    want = set(packages)
    out: dict[str, str] = {}
    for stanza in re.split(r"\n[ \t]*\n", status.replace("\r\n", "\n")):
        fields: dict[str, str] = {}
        for line in stanza.split("\n"):
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
        name = fields.get("package")
        if name in want and fields.get("status", "").endswith(" installed"):
            out[name] = fields.get("version", "")
    return out


# what oslo.config's environment source can read, and what its default file search uses;
# everything else in nova-compute's environment stays out of a snapshot
_ENV_KEEP = re.compile(r"OS_[^=]*__[^=]*|HOME|SNAP|SNAP_COMMON")


def parse_environ(data: bytes) -> dict[str, str]:
    """``/proc/PID/environ`` (``NAME=value`` entries, each ended by a NUL) as a dict.

    >>> parse_environ(b"PATH=/usr/bin\\0OS_LIBVIRT__VIRT_TYPE=qemu\\0junk\\0")
    {'PATH': '/usr/bin', 'OS_LIBVIRT__VIRT_TYPE': 'qemu'}
    """
    out: dict[str, str] = {}
    for item in data.decode("utf-8", "replace").split("\0"):
        name, sep, value = item.partition("=")
        if sep and name:
            out[name] = value
    return out


def environ_for_snapshot(data: bytes) -> bytes:
    """The part of a ``/proc/PID/environ`` that ``hvcheck collect`` keeps.

    Only ``OS_<GROUP>__<NAME>`` variables (all oslo.config's environment source reads),
    ``HOME``, ``SNAP`` and ``SNAP_COMMON``: the rest of a service's environment is not hvcheck's
    business and may hold secrets.

    >>> environ_for_snapshot(b"AWS_SECRET=x\\0OS_LIBVIRT__VIRT_TYPE=kvm\\0HOME=/var/lib/nova\\0")
    b'OS_LIBVIRT__VIRT_TYPE=kvm\\x00HOME=/var/lib/nova\\x00'
    """
    keep = [
        i
        for i in data.split(b"\0")
        if _ENV_KEEP.fullmatch(i.split(b"=", 1)[0].decode("utf-8", "replace"))
    ]
    return b"".join(i + b"\0" for i in keep if b"=" in i)
