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
>>> old.format, resolve_nova_libvirt([old]).virt_type.spelling
('flagfile', '--libvirt_type (flagfile)')

Nothing here does I/O or raises: parse errors come back as ``ParsedConf.error`` (text), the way
oslo.config would refuse the file. Semantics follow oslo.config 9.8.0 (``oslo_config/iniparser.py``
``BaseParser.parse``; ``oslo_config/cfg.py`` ``ConfigParser``, ``_Namespace._get_file_value``,
``_get_config_dirs``, ``find_config_files``, ``find_config_dirs``,
``ConfigOpts._parse_config_files``, ``_ConfigDirOpt.ConfigDirAction``), read from the wheel.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterator, Sequence
from typing import Callable, NamedTuple, Optional

__all__ = [
    "ConfEntry",
    "ConfigSources",
    "NovaLibvirtConf",
    "ParsedConf",
    "Setting",
    "config_sources_from_argv",
    "expand_config_dir",
    "known_nova_config_locations",
    "oslo_config_load_order",
    "oslo_default_config_dirs",
    "oslo_default_config_files",
    "parse_oslo_ini",
    "resolve_nova_libvirt",
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
    format: str  # "ini" or "flagfile"


class Setting(NamedTuple):
    value: Optional[str]  # None when unset (except virt_type, which reports nova's default)
    file: Optional[str]
    line: Optional[int]
    # How it was set: "[libvirt] virt_type", "[DEFAULT] libvirt_type (deprecated, pre-Icehouse)",
    # "--libvirt_type (flagfile)", or "default" when unset.
    spelling: str
    default: bool


class NovaLibvirtConf(NamedTuple):
    virt_type: Setting  # unset -> "kvm", default=True (nova's default)
    cpu_mode: Setting  # unset -> None, default=True
    cpu_models: Setting  # unset -> None, default=True; the raw comma-separated ListOpt text
    files: tuple[str, ...]  # files consulted, in order
    errors: tuple[str, ...]  # parse errors, "file: message"
    # [DEFAULT] compute_driver (or a flagfile's --connection_type): which virt driver nova-compute
    # loads at all; virt_type only matters for libvirt.LibvirtDriver. Unset -> None.
    compute_driver: Setting = Setting(None, None, None, "default", True)


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


def _parse_oslo_ini(text: str, file: str) -> ParsedConf:
    lines = _lines(text)
    if _looks_like_flagfile(lines):
        return _parse_flagfile(lines, file)

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

    def fail(message: str) -> ParsedConf:
        return ParsedConf(file, tuple(entries), message, "ini")

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip()
        if not line:
            # blank line: ends a multi-line value
            if key:
                err = flush(key)
                if err:
                    return fail(err)
                key, value = None, []
            continue
        if line.startswith((" ", "\t")):
            if key is None:
                return fail(
                    f"line {lineno}: unexpected continuation line {_show(line)} "
                    "(oslo.config refuses indented lines outside a value)"
                )
            value.append(line.lstrip())
            continue
        if key:
            err = flush(key)
            if err:
                return fail(err)
            key, value = None, []
        if line.startswith("["):
            if not line.endswith("]"):
                return fail(f"line {lineno}: invalid section (must end with ]): {_show(line)}")
            if len(line) <= 2:
                return fail(f"line {lineno}: empty section name: {_show(line)}")
            section = line[1:-1]
        elif line.startswith(("#", ";")):
            continue
        else:
            colon, equal = line.find(":"), line.find("=")
            if colon < 0 and equal < 0:
                return fail(
                    f"line {lineno}: no '=' or ':' in {_show(line)} (oslo.config: "
                    "No ':' or '=' found in assignment)"
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
                return fail(f"line {lineno}: empty key in {_show(line)}")
            key, value, key_line, key_text = k, [v], lineno, line
    if key:
        err = flush(key)
        if err:
            return fail(err)
    return ParsedConf(file, tuple(entries), None, "ini")


# --------------------------------------------------------------------------------------------
# Resolution: which value nova-compute ends up with
# --------------------------------------------------------------------------------------------

# (group, option name, spelling) in oslo's lookup order: the current name first, then the
# deprecated ones (oslo_config/cfg.py Opt._get_from_namespace builds exactly this list).
_Names = tuple[tuple[str, str, str], ...]

# [libvirt] virt_type: Icehouse moved the libvirt options from [DEFAULT] libvirt_* into the
# [libvirt] group and kept the old spelling through
#   cfg.StrOpt('virt_type', default='kvm', deprecated_group='DEFAULT',
#              deprecated_name='libvirt_type')   (Icehouse nova/virt/libvirt/driver.py)
# Icehouse's sample config says "Deprecated group/name - [DEFAULT]/libvirt_type". nova 34.0.0's
# nova/conf/libvirt.py no longer lists it (choices=('kvm', 'lxc', 'qemu', 'parallels'),
# default 'kvm'; Icehouse also allowed uml and xen), so a current nova-compute ignores
# [DEFAULT] libvirt_type. It is still resolved here: it is what the operator meant, and the
# spelling lets the check say it is deprecated. nova compares choices case-sensitively
# (oslo_config/types.py String without ignore_case): "KVM" is kept as written and is invalid.
_VIRT_TYPE: _Names = (
    ("libvirt", "virt_type", "[libvirt] virt_type"),
    ("DEFAULT", "libvirt_type", "[DEFAULT] libvirt_type (deprecated, pre-Icehouse)"),
)
# [libvirt] cpu_mode (choices host-model, host-passthrough, custom, none; no default value).
# When unset nova picks host-model for virt_type kvm/qemu and none otherwise
# (nova/conf/libvirt.py help text; nova/virt/libvirt/driver.py _get_guest_cpu_model_config;
# aarch64 hosts default to host-passthrough in recent releases). Reported here as None (unset).
_CPU_MODE: _Names = (
    ("libvirt", "cpu_mode", "[libvirt] cpu_mode"),
    ("DEFAULT", "libvirt_cpu_mode", "[DEFAULT] libvirt_cpu_mode (deprecated, pre-Icehouse)"),
)
# [libvirt] cpu_models: ListOpt, deprecated_name='cpu_model' (nova 34.0.0 nova/conf/libvirt.py);
# [libvirt] cpu_model itself was [DEFAULT] libvirt_cpu_model before Icehouse.
_CPU_MODELS: _Names = (
    ("libvirt", "cpu_models", "[libvirt] cpu_models"),
    ("libvirt", "cpu_model", "[libvirt] cpu_model (deprecated name of cpu_models)"),
    ("DEFAULT", "libvirt_cpu_model", "[DEFAULT] libvirt_cpu_model (deprecated, pre-Icehouse)"),
)
# [DEFAULT] compute_driver (e.g. libvirt.LibvirtDriver); Diablo/Essex flagfiles chose the
# driver with --connection_type=libvirt instead.
_COMPUTE_DRIVER: _Names = (
    ("DEFAULT", "compute_driver", "[DEFAULT] compute_driver"),
    ("DEFAULT", "connection_type", "[DEFAULT] connection_type (pre-Folsom)"),
)


def _lookup(confs: Sequence[ParsedConf], names: _Names) -> Optional[Setting]:
    # oslo_config/cfg.py _Namespace._get_file_value: files are searched newest first (each parsed
    # file is inserted at the front of _parsed/_normalized); inside one file the option's names
    # are tried in order, current name first. So within one file [libvirt] virt_type beats
    # [DEFAULT] libvirt_type, but a *later* file's deprecated spelling beats an earlier file's
    # current one. A file holds a list of values per key; a non-multi option takes the last
    # (_get_value: ``values[-1]``), i.e. the last duplicate in the file wins.
    for conf in reversed(confs):
        for group, name, spelling in names:
            found: Optional[ConfEntry] = None
            for e in conf.entries:
                if e.section == group and e.key == name:
                    found = e
            if found is not None:
                if conf.format == "flagfile":
                    spelling = f"--{name} (flagfile)"
                return Setting(found.value, found.file, found.line, spelling, False)
    return None


def resolve_nova_libvirt(confs: Sequence[ParsedConf]) -> NovaLibvirtConf:
    """Effective ``virt_type``, ``cpu_mode``, ``cpu_models`` over files in load order.

    Later files win; within a file the last duplicate wins; per file the current option name is
    tried before its deprecated names (see ``_lookup``). Files with a parse error still
    contribute what parsed before the error (a best guess of intent: nova-compute itself would
    not start) and the error is listed in ``errors``. Values are reported as written, valid or
    not; judging them is the check's job. oslo's ``$other_option`` interpolation is not done.
    """
    virt_type = _lookup(confs, _VIRT_TYPE) or Setting("kvm", None, None, "default", True)
    unset = Setting(None, None, None, "default", True)
    return NovaLibvirtConf(
        virt_type=virt_type,
        cpu_mode=_lookup(confs, _CPU_MODE) or unset,
        cpu_models=_lookup(confs, _CPU_MODELS) or unset,
        files=tuple(c.file for c in confs),
        errors=tuple(f"{c.file}: {c.error}" for c in confs if c.error),
        compute_driver=_lookup(confs, _COMPUTE_DRIVER) or unset,
    )


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


def known_nova_config_locations() -> tuple[str, ...]:
    """Where nova-compute's config lives when no nova-compute process shows it, override order.

    Globs (``*``) are to be expanded by the caller and sorted (as :func:`expand_config_dir`).

    * ``/etc/nova/nova.conf``, then ``/etc/nova/nova.conf.d/*.conf``: what a bare
      ``nova-compute`` (no ``--config-file``/``--config-dir``) loads, in this order (oslo's
      default file, then default dir).
    * ``/etc/nova/nova-compute.conf``: Ubuntu's nova-compute-kvm/-qemu packages, loaded with
      ``--config-file`` after nova.conf. (Ubuntu + a nova.conf.d would really load the dir
      first, see :func:`oslo_config_load_order`; neither distribution ships both.)
    * ``/etc/kolla/nova-compute/nova.conf``: kolla-ansible's host copy; ``kolla_start`` copies
      it to ``/etc/nova/nova.conf`` inside the nova_compute container.
    * ``/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf``: TripleO's
      generated config, bind-mounted into the nova_compute container.
    * MicroStack snap (CanonicalLtd/microstack ``snap-overlay/snap-openstack.yaml``, entry
      point ``nova-compute``): ``config-files`` ``{snap}/etc/nova/nova.conf``, replaced by
      ``config-files-override`` ``{snap_common}/etc/nova/nova.conf`` when present, then
      ``config-dirs`` ``{snap_common}/etc/nova/nova.conf.d`` (snap = /snap/microstack/current,
      snap_common = /var/snap/microstack/common).
    * openstack-hypervisor snap (Sunbeam; canonical/snap-openstack-hypervisor
      ``openstack_hypervisor/hooks.py``: TEMPLATES renders ``etc/nova/nova.conf`` under
      ``$SNAP_COMMON`` and COMMON_DIRS creates ``etc/nova/nova.conf.d``).
    """
    return (
        "/etc/nova/nova.conf",
        "/etc/nova/nova.conf.d/*.conf",
        "/etc/nova/nova-compute.conf",
        "/etc/kolla/nova-compute/nova.conf",
        "/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf",
        "/snap/microstack/current/etc/nova/nova.conf",
        "/var/snap/microstack/common/etc/nova/nova.conf",
        "/var/snap/microstack/common/etc/nova/nova.conf.d/*.conf",
        "/var/snap/openstack-hypervisor/common/etc/nova/nova.conf",
        "/var/snap/openstack-hypervisor/common/etc/nova/nova.conf.d/*.conf",
    )
