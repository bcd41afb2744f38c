"""Parse QEMU command lines: which accelerator (KVM, TCG, HVF, ...) a QEMU process asked for.

Input, handled here without any I/O:

* ``/proc/PID/cmdline`` bytes (NUL separated, trailing NUL) -> :func:`from_proc_cmdline`;
* an argv list -> :func:`parse_qemu_argv`, which mirrors QEMU's own option parser
  (``system/vl.c``, formerly ``softmmu/vl.c`` and ``vl.c``: ``lookup_opt`` and ``qemu_init``).

A shortened line from libvirt's ``tests/qemuxmlconfdata/kvm-features.x86_64-latest.args``
(its leading environment assignments dropped, split as the shell does):

>>> import shlex
>>> argv = shlex.split(
...     "/usr/bin/qemu-system-x86_64 -name guest=QEMUGuest1,debug-threads=on"
...     " -S -machine pc,usb=off,dump-guest-core=off -accel kvm,dirty-ring-size=4096"
...     " -cpu host,migratable=off,kvm=off,kvm-hint-dedicated=on -uuid"
...     " c7a5fdbd-edaf-9455-926a-d65c16db1809")
>>> q = parse_qemu_argv(argv)
>>> q.binary, q.name, q.machine, q.paused, q.debug_threads
('/usr/bin/qemu-system-x86_64', 'QEMUGuest1', 'pc', True, True)
>>> q.accel.decided, q.accel.source, q.accel.tokens
('kvm', '-accel', ('-accel', 'kvm,dirty-ring-size=4096'))
>>> parse_qemu_argv(["/usr/bin/kvm", "-m", "1024"]).accel.decided
'kvm:tcg'

QEMU also takes options from files: its default config :data:`DEFAULT_CONFIG` (unless
``-no-user-config``) and every ``-readconfig FILE``, in QEMU's own format
(:func:`parse_qemu_config`); ``-set GROUP.ID.PROP=VALUE`` then edits what they and the command
line defined. The caller reads the files (as the process saw them: through its root and working
directory) and passes their text as ``files``; :func:`config_files` says which ones QEMU read.

>>> q = parse_qemu_argv(["qemu-system-x86_64", "-machine", "accel=kvm", "-readconfig", "/x.cfg"],
...                     files={"/etc/qemu/qemu.conf": None,
...                            "/x.cfg": b'[machine]\\n  accel = "kvm:tcg"\\n'})
>>> q.accel.decided, q.accel.source, q.accel.after_kvm
('kvm:tcg', '-readconfig', ('tcg',))

Every function here returns a value for any input (garbage included) and never raises.
"""

import functools
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import NamedTuple, Optional, Union

__all__ = [
    "DEFAULT_CONFIG",
    "QEMU_ACCELERATORS",
    "AccelRequest",
    "ConfigSection",
    "QemuArgv",
    "QemuConfig",
    "config_files",
    "from_proc_cmdline",
    "is_qemu_binary",
    "parse_qemu_argv",
    "parse_qemu_config",
]

DEFAULT_CONFIG = "/etc/qemu/qemu.conf"
"""QEMU's default config file. ``qemu_read_default_config_file()`` (softmmu/vl.c, QEMU 7.2;
system/vl.c later) reads ``get_relocated_path(CONFIG_QEMU_CONFDIR "/qemu.conf")`` before the
second pass over the command line, unless ``-no-user-config`` is anywhere on it; a missing file
(ENOENT) is no error. CONFIG_QEMU_CONFDIR is ``<sysconfdir>/qemu``, ``/etc/qemu`` in the
distributions' builds (Debian 12's qemu-system-x86_64 7.2 holds the string
"/etc/qemu/qemu.conf"); get_relocated_path() moves it only for a relocated install."""

QEMU_ACCELERATORS = frozenset({"kvm", "tcg", "xen", "hax", "hvf", "whpx", "nvmm", "qtest", "mshv"})
"""Every accelerator name some QEMU build accepts (accel/*: ACCEL_CLASS_NAME("kvm"), ...; hax
was removed in QEMU 8.2, mshv is newer). accel_find() looks the name up exactly as written, so
case matters: QEMU 7.2 answers ``-machine accel=KVM:tcg`` with "invalid accelerator KVM" and
runs TCG, and ``-accel KVM`` alone with "invalid accelerator KVM" and no start at all. A given
binary has only some of them (Debian 12's qemu-system-x86_64: kvm and tcg, ``-accel help``)."""

# ---------------------------------------------------------------------------------------------
# Option table.
#
# QEMU's lookup_opt() (system/vl.c) matches argv[i] against the DEF() entries of
# qemu-options.hx; an option whose DEF has HAS_ARG always consumes the next argv element as
# its value, whatever that element looks like ("-name -accel" names the guest "-accel").
# The two sets below were taken from QEMU 7.2 itself (`qemu-system-x86_64 -version -OPT`
# answers "requires an argument" for HAS_ARG options) and extended with options that older or
# newer QEMUs and the qemu-kvm fork had, per docs/about/removed-features.rst.
# ---------------------------------------------------------------------------------------------

# fmt: off
_OPTIONS_WITH_ARG = frozenset(
    {
        # QEMU 7.2 (qemu-system-x86_64), HAS_ARG
        "D", "L", "M", "accel", "acpitable", "action", "add-fd", "append", "audio", "audiodev",
        "bios", "blockdev", "boot", "cdrom", "chardev", "chroot", "compat", "cpu", "d",
        "debugcon", "device", "dfilter", "display", "drive", "dtb", "dump-vmstate", "echr",
        "fda", "fdb", "fsdev", "fw_cfg", "g", "gdb", "global", "hda", "hdb", "hdc", "hdd",
        "icount", "incoming", "initrd", "iscsi", "k", "kernel", "loadvm", "m", "machine",
        "mem-path", "mon", "monitor", "msg", "mtdblock", "name", "net", "netdev", "nic", "numa",
        "object", "option-rom", "overcommit", "parallel", "pflash", "pidfile", "plugin",
        "prom-env", "qmp", "qmp-pretty", "qtest", "qtest-log", "readconfig", "rotate", "rtc",
        "runas", "sandbox", "sd", "seed", "semihosting-config", "serial", "set", "smbios", "smp",
        "spice", "tpmdev", "trace", "usbdevice", "uuid", "vga", "virtfs", "vnc",
        "watchdog-action", "xen-domid",
        # newer QEMU (system/vl.c: QEMU_OPTION_shim, QEMU_OPTION_run_with)
        "run-with", "shim",
        # removed from QEMU (docs/about/removed-features.rst) or qemu-kvm only, all HAS_ARG
        "balloon", "bootp", "clock", "hdachs", "kvm-shadow-memory", "pcidevice", "realtime",
        "redir", "smb", "soundhw", "startdate", "tb-size", "tftp", "virtioconsole", "watchdog",
        "writeconfig",
    }
)

_FLAG_OPTIONS = frozenset(
    {
        # QEMU 7.2 (qemu-system-x86_64), no argument
        "S", "async-teardown", "audio-help", "daemonize", "enable-kvm", "enable-sync-profile",
        "full-screen", "h", "help", "mem-prealloc", "no-acpi", "no-fd-bootchk", "no-hpet",
        "no-reboot", "no-shutdown", "no-user-config", "nodefaults", "nographic", "old-param",
        "only-migratable", "portrait", "preconfig", "s", "semihosting", "singlestep",
        "snapshot", "usb", "version", "win2k-hack", "xen-attach", "xen-domid-restrict",
        # newer QEMU (QEMU_OPTION_perfmap / QEMU_OPTION_jitdump take no optarg)
        "jitdump", "perfmap",
        # removed from QEMU (docs/about/removed-features.rst), qemu-kvm fork, or old UI flags
        "alt-grab", "ctrl-grab", "curses", "enable-fips", "enable-hax", "enable-nesting",
        "localtime", "no-frame", "no-kvm", "no-kvm-irqchip", "no-kvm-pit",
        "no-kvm-pit-reinjection", "no-quit", "nodefconfig", "rtc-td-hack", "sdl", "show-cursor",
        "tdf", "xen-create",
    }
)
# fmt: on

# Flag options that write the machine's "accel" key, exactly like "-machine accel=VALUE":
# -enable-kvm: system/vl.c qdict_put_str(machine_opts_dict, "accel", "kvm") (older vl.c:
#   qemu_opts_parse_noisily(machine opts, "accel=kvm"));
# -no-kvm: "a synonym for setting -machine accel=tcg", removed in QEMU 5.2
#   (docs/about/removed-features.rst); qemu-kvm's way to turn KVM off;
# -enable-hax: vl.c with HAX support, qemu_opts_parse_noisily(machine opts, "accel=hax").
_MACHINE_ACCEL_FLAGS = {"enable-kvm": "kvm", "no-kvm": "tcg", "enable-hax": "hax"}

# is_help_option() in util/qemu-option.c: "help" and "?" ask for a listing, not an accelerator.
_HELP_VALUES = frozenset({"help", "?"})

# qapi_bool_parse() in qapi/qapi-util.c.
_TRUE_VALUES = frozenset({"on", "yes", "true", "y"})


class AccelRequest(NamedTuple):
    """The accelerators QEMU will try, in order, as its options (or the binary) decide."""

    accels: tuple[str, ...]
    """Ordered list QEMU tries, e.g. ("kvm",), ("kvm", "tcg"), ("tcg",), ("hvf",): the names
    it was given, less those it does not know (``dropped``). Empty when ``undetermined``."""
    source: str
    """"-accel", "-machine accel=", "-enable-kvm", "-no-kvm", "-enable-hax", "-readconfig",
    "default config", several joined by " + " (e.g. "-accel + -set"), "binary default", or
    "unknown" (empty argv, or ``undetermined``)."""
    tokens: tuple[str, ...]
    """The exact argv tokens that decided it, as evidence (e.g. ("-accel", "kvm")); for a
    config file also the line that did (``/x.cfg:2: [machine] accel = "tcg"``)."""
    conflict: bool = False
    """True when -accel (or an [accel] section) was mixed with "-machine accel=" / -enable-kvm
    / -no-kvm: current QEMU refuses to start then, so a running process with such a line is
    an older QEMU. The -accel list is reported."""
    dropped: tuple[str, ...] = ()
    """Names QEMU does not know ("KVM", "kvm:tcg" given to -accel, a name outside
    ``known_accels``): it says "invalid accelerator NAME" and tries the next one."""
    undetermined: Optional[str] = None
    """Why the request cannot be told (a config file QEMU read that cannot be read now, a line
    QEMU would refuse to start with); None when ``accels`` says it."""

    @property
    def wants_kvm(self) -> bool:
        """KVM is somewhere in the list QEMU will try."""
        return "kvm" in self.accels

    @property
    def after_kvm(self) -> tuple[str, ...]:
        """What QEMU tries when KVM fails: the accelerators after "kvm" in the list
        (("tcg",) for kvm:tcg; () for kvm alone, tcg:kvm, or no KVM at all)."""
        if "kvm" not in self.accels:
            return ()
        return self.accels[self.accels.index("kvm") + 1 :]

    @property
    def primary(self) -> str:
        """The accelerator QEMU tries first ("unknown" if none)."""
        return self.accels[0] if self.accels else "unknown"

    @property
    def decided(self) -> str:
        """The list joined by ":" like QEMU writes it: "kvm", "tcg", "kvm:tcg", "hvf", ..."""
        return ":".join(self.accels) if self.accels else "unknown"


class QemuArgv(NamedTuple):
    """What a QEMU command line says about the guest and its accelerator."""

    binary: str
    """argv[0] as given ("" for an empty argv). QEMU's default accelerator depends on it."""
    name: Optional[str]
    """Guest name from ``-name guest=NAME,...`` or ``-name NAME``, ",," un-doubled."""
    uuid: Optional[str]
    """``-uuid`` value, as given."""
    debug_threads: bool
    """``-name ...,debug-threads=on`` (libvirt always sets it when QEMU supports it)."""
    paused: bool
    """``-S`` present: CPUs start stopped (libvirt always starts guests this way)."""
    accel: AccelRequest
    machine: Optional[str]
    """Machine type from ``-M``/``-machine`` (first positional or ``type=``), last one wins."""
    config_files: tuple[str, ...] = ()
    """The config files QEMU read at start, in order, as it named them: :data:`DEFAULT_CONFIG`
    unless ``-no-user-config``, then each ``-readconfig FILE`` (relative to the directory QEMU
    started in)."""
    runas: Optional[str] = None
    """``-runas USER`` (or ``-run-with user=USER``): QEMU opened /dev/kvm as the user that
    started it and only then dropped to USER (os_setup_post)."""
    chroot: Optional[str] = None
    """``-chroot DIR`` (or ``-run-with chroot=DIR``): QEMU changed its root after reading its
    config files, so its root now is not the one it read them in."""
    daemonize: bool = False
    """``-daemonize``: QEMU changed its working directory to "/" after reading its files."""


# ---------------------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------------------


def from_proc_cmdline(raw: bytes) -> list[str]:
    """Turn ``/proc/PID/cmdline`` bytes into argv.

    The kernel writes each argument followed by a NUL (proc(5)); empty arguments survive as
    empty strings. Bytes that are not UTF-8 become U+FFFD (errors="replace") so that the
    result is always safe to put in JSON.

    >>> from_proc_cmdline(b"/usr/bin/qemu-system-x86_64\\x00-accel\\x00kvm\\x00-append\\x00\\x00")
    ['/usr/bin/qemu-system-x86_64', '-accel', 'kvm', '-append', '']
    """
    try:
        if isinstance(raw, str):
            data = raw
        else:
            data = bytes(raw).decode("utf-8", errors="replace")
        if not data:
            return []
        parts = data.split("\x00")
        if parts and parts[-1] == "":
            parts.pop()  # the terminating NUL of the last argument
        return parts
    except Exception:  # never raise on garbage
        return []


def _basename(path_or_comm: str) -> str:
    base = path_or_comm.strip()
    # readlink(/proc/PID/exe) after a package upgrade replaced the binary (proc(5)).
    if base.endswith(" (deleted)"):
        base = base[: -len(" (deleted)")]
    return base.rsplit("/", 1)[-1]


def is_qemu_binary(path_or_comm: str) -> bool:
    """True for QEMU *system* emulators, by path or ``comm`` name.

    ``qemu-system-*`` (``comm`` truncates it to 15 characters, e.g. ``qemu-system-x86``),
    ``qemu-kvm`` (RHEL's ``/usr/libexec/qemu-kvm``; Ubuntu's ``qemu-kvm-spice``), ``kvm`` and
    ``kvm-spice`` (Debian/Ubuntu wrappers), and plain ``qemu`` (what QEMU < 1.0 called
    the i386 system emulator; libvirt's older tests use ``/usr/bin/qemu``). False for the tools
    (qemu-img, qemu-nbd, qemu-io, qemu-ga, qemu-storage-daemon, qemu-pr-helper, ...), the
    user-mode emulators (qemu-x86_64, qemu-arm-static) and kvm-ok.

    >>> [is_qemu_binary(p) for p in ("/usr/libexec/qemu-kvm", "qemu-system-x86", "qemu-img")]
    [True, True, False]
    """
    try:
        base = _basename(path_or_comm)
    except Exception:
        return False
    if base.startswith("qemu-system-") and len(base) > len("qemu-system-"):
        return True
    return base in ("qemu-kvm", "qemu-kvm-spice", "kvm", "kvm-spice", "qemu")


# ---------------------------------------------------------------------------------------------
# QemuOpts parsing (util/qemu-option.c: opts_do_parse / get_opt_name_value / get_opt_value)
# ---------------------------------------------------------------------------------------------


def _opt_value(params: str, pos: int) -> tuple[str, int]:
    """get_opt_value(): read up to a single ',' (",," is a literal comma); return end index."""
    out: list[str] = []
    n = len(params)
    while pos < n:
        comma = params.find(",", pos)
        if comma < 0:
            out.append(params[pos:])
            return "".join(out), n
        out.append(params[pos:comma])
        if comma + 1 < n and params[comma + 1] == ",":
            out.append(",")
            pos = comma + 2
            continue
        return "".join(out), comma
    return "".join(out), n


_KEY_END = re.compile(r"[=,]")


def _parse_opts(params: str, implied: Optional[str]) -> list[tuple[str, str]]:
    """``a,b=c,,d,flag`` -> [(implied, "a"), ("b", "c,d"), ("flag", "on")], order kept.

    As QemuOpts does: only the first element may omit ``key=`` (it then belongs to the
    implied key, e.g. "type" for -machine, "accel" for -accel, "guest" for -name); any later
    element without "=" is a boolean flag (``noX`` means X=off).
    """
    out: list[tuple[str, str]] = []
    pos, n, first = 0, len(params), True
    while pos < n:
        m = _KEY_END.search(params, pos)  # the key (or flag) ends at the next "=" or ","
        end = m.start() if m else n
        if end >= n or params[end] != "=":
            if first and implied is not None:
                value, pos = _opt_value(params, pos)
                out.append((implied, value))
            else:
                flag = params[pos:end]
                pos = end
                if flag.startswith("no"):
                    out.append((flag[2:], "off"))
                else:
                    out.append((flag, "on"))
        else:
            key = params[pos:end]
            value, pos = _opt_value(params, end + 1)
            out.append((key, value))
        first = False
        if pos < n and params[pos] == ",":
            pos += 1
    return out


@functools.lru_cache(maxsize=256)
def _parse_opts_cached(params: str, implied: Optional[str]) -> tuple[tuple[str, str], ...]:
    return tuple(_parse_opts(params, implied))


def _parse_opts_shared(params: str, implied: Optional[str]) -> Sequence[tuple[str, str]]:
    """:func:`_parse_opts` of a value the instances of a node share (``-machine``,
    ``-accel``: the same few strings for every guest of a libvirt or Nova host), parsed once
    per run; a long one (a hostile command line's) is parsed each time, never kept."""
    if len(params) > 256:
        return _parse_opts(params, implied)
    return _parse_opts_cached(params, implied)


def _last(pairs: Sequence[tuple[str, str]], key: str) -> Optional[str]:
    """qemu_opt_get(): the last value given for ``key`` wins."""
    found: Optional[str] = None
    for k, v in pairs:
        if k == key:
            found = v
    return found


def _split_accels(value: str) -> list[str]:
    """``kvm:tcg`` -> ["kvm", "tcg"]: g_strsplit(accelerators, ":", 0) in
    configure_accelerators(); empty names are dropped (accel_find("") finds nothing)."""
    return [a for a in value.split(":") if a]


def _binary_default(binary: str, known: frozenset[str]) -> tuple[str, ...]:
    """The accelerator list QEMU picks when no option names one.

    configure_accelerators() in softmmu/vl.c (QEMU 7.2): with no -accel and no
    "-machine accel=", a binary with both TCG and KVM takes "kvm:tcg" when
    ``g_str_has_suffix(progname, "kvm")`` — progname is argv[0], so /usr/bin/kvm,
    /usr/libexec/qemu-kvm and ``exec -a my-kvm qemu-system-x86_64`` all prefer KVM — and
    "tcg:kvm" otherwise (QEMU < 4.2: "tcg"); with only one of them, that one. TCG does not fail
    to initialise, so "tcg:kvm" runs TCG and is reported as ("tcg",).
    """
    have_kvm, have_tcg = "kvm" in known, "tcg" in known
    if have_kvm and have_tcg:
        return ("kvm", "tcg") if binary.endswith("kvm") else ("tcg",)
    if have_kvm:
        return ("kvm",)
    if have_tcg:
        return ("tcg",)
    return ()


# ---------------------------------------------------------------------------------------------
# Config files (util/qemu-config.c: qemu_config_foreach, QEMU 6.0 and later)
# ---------------------------------------------------------------------------------------------


class ConfigSection(NamedTuple):
    """One ``[group]`` or ``[group "id"]`` section of a QEMU config file."""

    group: str
    """The group as QEMU read it ("machine", "accel", ...)."""
    items: tuple[tuple[str, str], ...]
    """(key, value) pairs; a later key replaces an earlier one (qdict_put_str). A header
    with an id adds ("id", ID) first."""
    line: int
    """Line number (1-based) of the section's header."""

    def get(self, key: str) -> Optional[str]:
        found: Optional[str] = None
        for k, v in self.items:
            if k == key:
                found = v
        return found


class QemuConfig(NamedTuple):
    """A QEMU config file (``-readconfig`` / :data:`DEFAULT_CONFIG`) as QEMU reads it."""

    sections: tuple[ConfigSection, ...]
    error: Optional[str]
    """"line N: parse error" / "line N: no group defined" when QEMU would refuse the file
    (and so not start); None otherwise."""


_C_SPACE = b" \t\n\v\f\r"  # isspace() in the C locale: what %s and " " skip in sscanf


def _c_lines(data: bytes) -> Iterator[bytes]:
    """What successive ``fgets(line, 1024, fp)`` calls return: up to 1023 bytes, through the
    next newline; a longer line comes back in pieces, each parsed as a line of its own."""
    pos, n = 0, len(data)
    while pos < n:
        nl = data.find(b"\n", pos, pos + 1023)
        end = nl + 1 if nl >= 0 else min(pos + 1023, n)
        yield data[pos:end]
        pos = end


def _skip_space(s: bytes, i: int) -> int:
    while i < len(s) and s[i] in _C_SPACE:
        i += 1
    return i


def _scan_word(s: bytes, i: int, width: int) -> Optional[tuple[bytes, int]]:
    """sscanf ``%<width>s``: skip white space, then 1..width non-space bytes."""
    i = _skip_space(s, i)
    j = i
    while j < len(s) and j - i < width and s[j] not in _C_SPACE:
        j += 1
    return (s[i:j], j) if j > i else None


def _scan_not(s: bytes, i: int, width: int, stop: bytes) -> Optional[tuple[bytes, int]]:
    """sscanf ``%<width>[^stop]``: 1..width bytes not in ``stop`` (no space skipping)."""
    j = i
    while j < len(s) and j - i < width and s[j] not in stop:
        j += 1
    return (s[i:j], j) if j > i else None


def _scan_literal(s: bytes, i: int, lit: bytes) -> Optional[int]:
    """A format's `` X`` : optional white space, then the byte X."""
    i = _skip_space(s, i)
    return i + 1 if s[i : i + 1] == lit else None


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="replace")


def parse_qemu_config(data: Union[bytes, str]) -> QemuConfig:
    """Read a QEMU config file exactly as qemu_config_foreach() (util/qemu-config.c) does.

    A line is read with ``fgets(line, 1024, fp)``; one starting with "\\n" or "#" is skipped;
    one starting with "[" opens a section when ``sscanf(line, "[%63s \\"%63[^\\"]\\"]")``
    matches both fields (group and id) or ``sscanf(line, "[%63[^]]]")`` matches (group);
    any other line is ``key = "value"`` by ``sscanf(line, " %63s = \\"%1023[^\\"]\\"")``, or,
    when only the key matches, the key with the value "" (the fallback
    ``sscanf(line, " %63s = \\"\\"") == 1`` holds for any line with a word on it: QEMU 7.2
    reads ``accel = kvm`` as accel "" and ``accel="kvm"`` as a key named 'accel="kvm"').
    A line with no word (only white space, "\\r\\n") is a parse error, and so is a key line
    before any section ("no group defined"). The last section is handed on under the name
    the last "[" line scanned, as QEMU's ``cb(group, ...)`` does.

    >>> c = parse_qemu_config('# comment\\n[machine]\\n  accel = "kvm:tcg"\\n[accel "a0"]\\n'
    ...                       '  accel = "tcg"\\n')
    >>> [(s.group, s.items, s.line) for s in c.sections]
    [('machine', (('accel', 'kvm:tcg'),), 2), ('accel', (('id', 'a0'), ('accel', 'tcg')), 4)]
    >>> c.error is None
    True
    >>> parse_qemu_config('[machine]\\naccel = kvm\\n').sections[0].items
    (('accel', ''),)
    >>> parse_qemu_config('[machine]\\n   \\n').error
    'line 2: parse error'
    """
    try:
        raw = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data
        return _parse_qemu_config(bytes(raw))
    except Exception:  # never raise on garbage
        return QemuConfig((), "unreadable")


def _parse_qemu_config(data: bytes) -> QemuConfig:
    sections: list[ConfigSection] = []
    group = b""  # the C variable `group`: whatever the last "[" line's sscanf stored in it
    current: Optional[dict[str, str]] = None  # the open section's QDict
    current_group = b""  # prev_group: the open section's name
    current_line = 0

    def close() -> None:
        if current is not None:
            sections.append(
                ConfigSection(_text(current_group), tuple(current.items()), current_line)
            )

    for lno, chunk in enumerate(_c_lines(data), 1):
        first = chunk[:1]
        if first in (b"\n", b"#"):
            continue
        line = chunk.split(b"\0", 1)[0]  # sscanf stops at a NUL that fgets read
        if first == b"[":
            opened: Optional[dict[str, str]] = None
            word = _scan_word(line, 1, 63)  # "[%63s \"%63[^\"]\"]"
            if word is not None:
                group = word[0]
                quote = _scan_literal(line, word[1], b'"')
                ident = _scan_not(line, quote, 63, b'"') if quote is not None else None
                if ident is not None:
                    opened = {"id": _text(ident[0])}
            if opened is None:
                plain = _scan_not(line, 1, 63, b"]")  # "[%63[^]]]"
                if plain is not None:
                    group = plain[0]
                    opened = {}
            if opened is not None:
                close()
                current, current_group, current_line = opened, group, lno
                continue
        key = _scan_word(line, 0, 63)  # " %63s = \"%1023[^\"]\"", else " %63s = \"\""
        if key is None:
            return QemuConfig(tuple(sections), f"line {lno}: parse error")
        value = b""
        eq = _scan_literal(line, key[1], b"=")
        quote = _scan_literal(line, eq, b'"') if eq is not None else None
        if quote is not None:
            got = _scan_not(line, quote, 1023, b'"')
            if got is not None:
                value = got[0]
        if current is None:
            return QemuConfig(tuple(sections), f"line {lno}: no group defined")
        current[_text(key[0])] = _text(value)
    if current is not None:
        current_group = group
        close()
    return QemuConfig(tuple(sections), None)


# ---------------------------------------------------------------------------------------------
# The accelerator request, built up in QEMU's order
# ---------------------------------------------------------------------------------------------


class _Entry:
    """One QemuOpts of the "accel" list: an -accel option or an [accel] section."""

    __slots__ = ("ident", "name", "origins", "tokens")

    def __init__(
        self, ident: Optional[str], name: Optional[str], origin: str, tokens: list[str]
    ) -> None:
        self.ident = ident
        self.name = name
        self.origins = [origin]
        self.tokens = tokens


class _Request:
    """The two places QEMU keeps its accelerator choice, written in command-line order:
    the "accel" QemuOpts list (-accel, [accel] sections; -set edits an entry) and the machine
    dict's "accel" key (-machine accel=, -enable-kvm, [machine] accel; the last writer wins)."""

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.machine: Optional[str] = None
        self.machine_source = ""
        self.machine_tokens: tuple[str, ...] = ()
        self.unread: list[str] = []  # files QEMU read whose content we do not have
        self.unread_last = False  # one came after the last known machine writer
        self.impossible: Optional[str] = None  # QEMU would refuse this line: not running

    def set_machine(self, value: str, source: str, tokens: tuple[str, ...]) -> None:
        self.machine, self.machine_source, self.machine_tokens = value, source, tokens
        self.unread_last = False

    def add_entry(
        self, ident: Optional[str], name: Optional[str], origin: str, tokens: list[str]
    ) -> None:
        self.entries.append(_Entry(ident, name, origin, tokens))

    def file_unknown(self, why: str) -> None:
        self.unread.append(why)
        self.unread_last = True

    def refuse(self, why: str) -> None:
        if self.impossible is None:
            self.impossible = why

    def apply_config(
        self, path: str, text: Union[bytes, str], source: str, lead: tuple[str, ...]
    ) -> None:
        cfg = parse_qemu_config(text)
        if cfg.error is not None:
            # QEMU read this file at start without error, or it would not run: it changed since
            self.file_unknown(f"{path} does not parse now ({cfg.error}): it changed since")
            return
        for sec in cfg.sections:
            if sec.group == "machine":
                acc = sec.get("accel")
                if acc is not None:
                    line = f'{path}:{sec.line}: [machine] accel = "{acc}"'
                    self.set_machine(acc, source, (*lead, line))
            elif sec.group == "accel":
                ident, name = sec.get("id"), sec.get("accel")
                head = f'[accel "{ident}"]' if ident is not None else "[accel]"
                self.add_entry(
                    ident, name, source, [*lead, f'{path}:{sec.line}: {head} accel = "{name}"']
                )

    def set_option(self, value: str, token: str) -> None:
        """-set GROUP.ID.PROP=VALUE, as qemu_set_option(): sscanf(str,
        "%63[^.].%63[^.].%63[^=]%n") and an "=" right after; only QemuOpts groups."""
        group, dot1, rest = value.partition(".")
        ident, dot2, rest = rest.partition(".")
        prop, eq, val = rest.partition("=")
        if (
            not (dot1 and dot2 and eq and group and ident and prop)
            or max(len(group), len(ident), len(prop)) > 63
        ):
            self.refuse(f"QEMU cannot parse -set {value}")
            return
        if group in ("object", "machine", "smp-opts", "boot-opts"):
            self.refuse(f"QEMU refuses -set {value} (-set is not supported with {group})")
            return
        if group != "accel":
            return
        entry = next((e for e in self.entries if e.ident == ident), None)
        if entry is None:
            if self.unread:
                self.file_unknown(f"-set {value} edits an accelerator defined in {self.unread[-1]}")
            else:
                self.refuse(f'QEMU refuses -set {value}: there is no accel "{ident}" defined')
            return
        if prop == "accel":
            entry.name = val
            entry.origins.append("-set")
            entry.tokens += [token, value]

    def result(self, binary: str, known: frozenset[str]) -> AccelRequest:
        def undetermined(why: str, tokens: tuple[str, ...] = ()) -> AccelRequest:
            return AccelRequest((), "unknown", tokens, undetermined=why)

        if self.impossible is not None:
            return undetermined(self.impossible)
        if self.unread_last:
            # that file may have set the machine's accel, or added [accel] sections, and
            # nothing after it on the command line overrides what it says
            return undetermined(self.unread[-1])
        conflict = False
        if self.entries:
            named = [e for e in self.entries if e.name is not None]
            asked = [e.name for e in named if e.name is not None]
            origins: list[str] = []
            for e in named:
                origins += [o for o in e.origins if o not in origins]
            source = " + ".join(origins) or "-accel"
            tokens = tuple(t for e in named for t in e.tokens)
            conflict = self.machine is not None
        elif self.machine is not None:
            asked = _split_accels(self.machine)
            source, tokens = self.machine_source, self.machine_tokens
        else:
            accels = _binary_default(binary, known)
            if not accels:
                return undetermined("this QEMU has neither KVM nor TCG", (binary,))
            return AccelRequest(accels, "binary default", (binary,))
        accels = tuple(a for a in asked if a in known)
        dropped = tuple(a for a in asked if a not in known)
        if not accels:
            names = ", ".join(repr(a) for a in dropped) or "none"
            why = (
                f"QEMU knows no accelerator named {names} (names are case-sensitive), "
                "so it would not start"
            )
            return AccelRequest((), "unknown", tokens, conflict, dropped, why)
        return AccelRequest(accels, source, tokens, conflict, dropped)


# ---------------------------------------------------------------------------------------------
# argv parsing
# ---------------------------------------------------------------------------------------------


# option token -> (option, kind) for the tokens of the tables: 0 takes an argument, 1 is a
# flag. A node's command lines repeat the same few dozen (-device, -drive, -name...), and
# this is asked for every token of every instance. Bounded by the tables (each option
# spelled "-x" or "--x"); a token not in them is not kept.
_TOKEN_KINDS: dict[str, tuple[str, int]] = {}


def _options(
    args: list[str], keep: Optional[Collection[str]] = None
) -> list[tuple[str, Optional[str], str]]:
    """(option, value, token) for each option, as lookup_opt() consumes them; with ``keep``,
    only those of the options it names (the values of the others are still consumed). (A
    list built in one loop, not a generator: it runs over every argument of every instance.)"""
    out: list[tuple[str, Optional[str], str]] = []
    append = out.append
    kinds = _TOKEN_KINDS
    i, n = 1, len(args)
    while i < n:
        token = args[i]
        i += 1
        hit = kinds.get(token)
        if hit is None:
            if token[:1] != "-":
                continue  # a positional argument: QEMU takes it as a disk image (drive_add)
            # lookup_opt(): "-foo" and "--foo" name option "foo" ("Treat --foo the same as
            # -foo.")
            opt = token[2:] if token[:2] == "--" else token[1:]
            if opt in _OPTIONS_WITH_ARG:
                hit = kinds[token] = (opt, 0)
            elif opt in _FLAG_OPTIONS:
                hit = kinds[token] = (opt, 1)
            else:
                # Not in our table (a newer/older QEMU or a fork). QEMU has far more options
                # with an argument than without, so take a following non-option token as its
                # value.
                if i < n and not args[i].startswith("-"):
                    i += 1
                continue
        opt, kind = hit
        if kind == 0:
            if i < n:
                if keep is None or opt in keep:
                    append((opt, args[i], token))
                i += 1
            elif keep is None or opt in keep:  # QEMU exits "requires an argument"
                append((opt, None, token))
        elif keep is None or opt in keep:
            append((opt, None, token))
    return out


def config_files(argv: Sequence[str]) -> tuple[str, ...]:
    """The config files QEMU read at start, in its order (see :attr:`QemuArgv.config_files`).

    >>> config_files(["qemu-system-x86_64", "-readconfig", "vm.cfg", "-m", "64"])
    ('/etc/qemu/qemu.conf', 'vm.cfg')
    >>> config_files(["qemu-system-x86_64", "-no-user-config", "-readconfig", "/a.cfg"])
    ('/a.cfg',)
    """
    return parse_qemu_argv(argv).config_files


def parse_qemu_argv(
    argv: Sequence[str],
    files: Optional[Mapping[str, Optional[Union[bytes, str]]]] = None,
    known_accels: Optional[Collection[str]] = None,
) -> QemuArgv:
    """Read a QEMU argv the way QEMU's option parser does and decide the accelerator request.

    ``files`` maps each of :attr:`QemuArgv.config_files` (as QEMU named it) to its content,
    or to None when it does not exist; a file missing from the map could not be read. With
    ``files=None`` no file is consulted: the default config counts as absent and each
    -readconfig file as unreadable. ``known_accels``: the accelerators this QEMU binary has
    (default :data:`QEMU_ACCELERATORS`, every name any QEMU knows).

    Accelerator rules (softmmu/vl.c, qemu_init and configure_accelerators; checked against
    QEMU 7.2 started with each variant):

    * QEMU reads :data:`DEFAULT_CONFIG` first (unless ``-no-user-config``), then the command
      line in order; ``-readconfig FILE`` is read where it stands;
    * each ``-accel NAME[,prop=...]`` (also ``-accel accel=NAME``, ``--accel``) and each
      ``[accel]`` section adds NAME to a list QEMU tries in order: ``-accel kvm -accel tcg``
      is "kvm:tcg". A ":" is not a separator there: ``-accel kvm:tcg`` is one name QEMU
      does not know ("invalid accelerator kvm:tcg");
    * ``-set accel.ID.accel=NAME`` renames the entry with that id (defined before it: QEMU
      refuses "there is no accel ID defined" otherwise; ``-set machine...`` is refused);
    * ``-machine``/``-M`` ``accel=a:b``, a ``[machine]`` section's ``accel``, ``-enable-kvm``
      ("kvm"), ``-no-kvm`` (removed in QEMU 5.2, "tcg") and ``-enable-hax`` ("hax") all write
      the machine's "accel" key, a ":"-separated fallback list; the last writer wins;
    * both an accel list and the machine key: current QEMU exits with 'The -accel and
      "-machine accel=" options are incompatible'. A running process with such a line is an
      older QEMU, where -accel was sugar for "-machine accel="; the -accel list is reported and
      ``conflict`` set;
    * names QEMU does not know (case-sensitive: "KVM" is not "kvm") are skipped with "invalid
      accelerator NAME", as QEMU skips them; nothing left means QEMU would not start;
    * nothing selects an accelerator: the binary's default (see :func:`_binary_default`).

    Option values are consumed like QEMU does, so ``-name -accel`` names a guest "-accel",
    and properties such as ``-cpu host,kvm=off`` or ``-global kvm-pit.lost_tick_policy=delay``
    never count as accelerator choices.
    """
    try:
        known = QEMU_ACCELERATORS if known_accels is None else frozenset(known_accels)
        return _parse_qemu_argv(argv, files, known)
    except Exception:  # never raise on garbage
        binary = ""
        try:
            if len(argv) and isinstance(argv[0], str):
                binary = argv[0]
        except Exception:
            binary = ""
        return QemuArgv(
            binary=binary,
            name=None,
            uuid=None,
            debug_threads=False,
            paused=False,
            accel=AccelRequest(accels=(), source="unknown", tokens=()),
            machine=None,
        )


_NO_USER_CONFIG = frozenset({"no-user-config", "nodefconfig"})  # -nodefconfig: before QEMU 2.12

# the options the loop of _parse_qemu_argv acts on; the others (-drive, -device, -netdev...:
# most of a command line) are passed over at once
_READ_OPTIONS = frozenset(
    {"accel", "machine", "M", "readconfig", "set", "name", "uuid", "S", "runas", "chroot"}
    | {"run-with", "daemonize"}
    | set(_MACHINE_ACCEL_FLAGS)
)
_KEPT_OPTIONS = _READ_OPTIONS | _NO_USER_CONFIG


def _parse_qemu_argv(
    argv: Sequence[str],
    files: Optional[Mapping[str, Optional[Union[bytes, str]]]],
    known: frozenset[str],
) -> QemuArgv:
    # str() of a str is the str itself: map keeps every argument, converts the odd one
    args = [argv] if isinstance(argv, str) else list(map(str, argv))
    if not args:
        return QemuArgv(
            binary="",
            name=None,
            uuid=None,
            debug_threads=False,
            paused=False,
            accel=AccelRequest(accels=(), source="unknown", tokens=()),
            machine=None,
        )
    binary = args[0]
    # only the options read below: most of a command line (-device, -drive, -netdev...) is
    # passed over without a tuple each
    options = _options(args, _KEPT_OPTIONS)

    name: Optional[str] = None
    uuid: Optional[str] = None
    debug_threads = False
    paused = False
    machine: Optional[str] = None
    runas: Optional[str] = None
    chroot: Optional[str] = None
    daemonize = False
    read: list[str] = []
    req = _Request()

    def config(path: str, source: str, lead: tuple[str, ...]) -> None:
        read.append(path)
        if files is None:
            if source != "default config":
                req.file_unknown(f"{path} was not read")
            return  # without files, the default config counts as absent
        if path not in files:
            req.file_unknown(f"{path} could not be read")
            return
        text = files[path]
        if text is None:
            if source != "default config":  # a missing default config is no error for QEMU
                req.file_unknown(f"{path} no longer exists")
            return
        req.apply_config(path, text, source, lead)

    # first pass (qemu_init): -no-user-config anywhere keeps the default config unread;
    # -nodefconfig did the same before QEMU 2.12
    if _NO_USER_CONFIG.isdisjoint([opt for opt, _, _ in options]):
        config(DEFAULT_CONFIG, "default config", ())

    for opt, value, token in options:
        if opt not in _READ_OPTIONS:
            continue
        if opt == "accel" and value is not None:
            # QemuOptsList "accel" has implied_opt_name "accel" (softmmu/vl.c qemu_accel_opts);
            # -accel kvm,accel=tcg is tcg (qemu_opt_get returns the last value). Without a
            # name, or with "help", QEMU lists its accelerators and exits.
            pairs = _parse_opts_shared(value, "accel")
            acc = _last(pairs, "accel")
            if acc is not None and acc not in _HELP_VALUES:
                req.add_entry(_last(pairs, "id"), acc, "-accel", [token, value])
        elif opt in ("machine", "M") and value is not None:
            # keyval_parse_into(machine_opts_dict, optarg, "type", ...): implied key "type".
            pairs = _parse_opts_shared(value, "type")
            mtype = _last(pairs, "type")
            if mtype is not None and mtype not in _HELP_VALUES:
                machine = mtype
            acc = _last(pairs, "accel")
            if acc is not None:
                req.set_machine(acc, "-machine accel=", (token, value))
        elif opt in _MACHINE_ACCEL_FLAGS:
            req.set_machine(_MACHINE_ACCEL_FLAGS[opt], "-" + opt, (token,))
        elif opt == "readconfig" and value is not None:
            config(value, "-readconfig", (token, value))
        elif opt == "set" and value is not None:
            req.set_option(value, token)
        elif opt == "name" and value is not None:
            # qemu_name_opts: implied_opt_name "guest", merge_lists (last value wins).
            pairs = _parse_opts(value, "guest")
            guest = _last(pairs, "guest")
            if guest is not None:
                name = guest
            threads = _last(pairs, "debug-threads")
            if threads is not None:
                debug_threads = threads in _TRUE_VALUES
        elif opt == "uuid" and value is not None:
            uuid = value
        elif opt == "S":
            paused = True
        elif opt == "runas" and value is not None:
            runas = value
        elif opt == "chroot" and value is not None:
            chroot = value
        elif opt == "run-with" and value is not None:
            pairs = _parse_opts(value, None)
            runas = _last(pairs, "user") or runas
            chroot = _last(pairs, "chroot") or chroot
        elif opt == "daemonize":
            daemonize = True

    return QemuArgv(
        binary=binary,
        name=name,
        uuid=uuid,
        debug_threads=debug_threads,
        paused=paused,
        accel=req.result(binary, known),
        machine=machine,
        config_files=tuple(read),
        runas=runas,
        chroot=chroot,
        daemonize=daemonize,
    )
