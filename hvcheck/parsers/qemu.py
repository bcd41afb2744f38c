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

Every function here returns a value for any input (garbage included) and never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "AccelRequest",
    "QemuArgv",
    "from_proc_cmdline",
    "is_qemu_binary",
    "parse_qemu_argv",
]

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
    """The accelerators QEMU will try, in order, as the command line (or binary) decides."""

    accels: tuple[str, ...]
    """Ordered list QEMU tries, e.g. ("kvm",), ("kvm", "tcg"), ("tcg",), ("hvf",)."""
    source: str
    """"-accel", "-machine accel=", "-enable-kvm", "-no-kvm", "-enable-hax",
    "binary default", or "unknown" (empty argv)."""
    tokens: tuple[str, ...]
    """The exact argv tokens that decided it, as evidence (e.g. ("-accel", "kvm"))."""
    conflict: bool = False
    """True when -accel was mixed with "-machine accel=" / -enable-kvm / -no-kvm: current QEMU
    refuses to start then, so a running process with such a line is an older QEMU."""

    @property
    def wants_kvm(self) -> bool:
        """KVM is somewhere in the list QEMU will try."""
        return "kvm" in self.accels

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
    """argv[0] as given ("" for an empty argv)."""
    name: str | None
    """Guest name from ``-name guest=NAME,...`` or ``-name NAME``, ",," un-doubled."""
    uuid: str | None
    """``-uuid`` value, as given."""
    debug_threads: bool
    """``-name ...,debug-threads=on`` (libvirt always sets it when QEMU supports it)."""
    paused: bool
    """``-S`` present: CPUs start stopped (libvirt always starts guests this way)."""
    accel: AccelRequest
    machine: str | None
    """Machine type from ``-M``/``-machine`` (first positional or ``type=``), last one wins."""


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


def _parse_opts(params: str, implied: str | None) -> list[tuple[str, str]]:
    """``a,b=c,,d,flag`` -> [(implied, "a"), ("b", "c,d"), ("flag", "on")], order kept.

    As QemuOpts does: only the first element may omit ``key=`` (it then belongs to the
    implied key, e.g. "type" for -machine, "accel" for -accel, "guest" for -name); any later
    element without "=" is a boolean flag (``noX`` means X=off).
    """
    out: list[tuple[str, str]] = []
    pos, n, first = 0, len(params), True
    while pos < n:
        end = pos
        while end < n and params[end] not in "=,":
            end += 1
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


def _last(pairs: list[tuple[str, str]], key: str) -> str | None:
    """qemu_opt_get(): the last value given for ``key`` wins."""
    found: str | None = None
    for k, v in pairs:
        if k == key:
            found = v
    return found


def _split_accels(value: str) -> tuple[str, ...]:
    """``kvm:tcg`` -> ("kvm", "tcg") (g_strsplit(accelerators, ":") in configure_accelerators),
    dropping empty names and help requests."""
    return tuple(a for a in value.split(":") if a and a not in _HELP_VALUES)


def _binary_default(binary: str) -> tuple[str, ...]:
    """The accelerator list QEMU picks when the command line names none.

    configure_accelerators() in system/vl.c: with no -accel and no "-machine accel=",
    ``g_str_has_suffix(progname, "kvm")`` (progname is argv[0]) selects "kvm:tcg"
    (so /usr/bin/kvm, qemu-kvm, /usr/libexec/qemu-kvm prefer KVM); otherwise current QEMU
    selects "tcg:kvm" and QEMU < 4.2 selected "tcg". TCG does not fail to initialise, so for
    those binaries TCG is what runs, and we report ("tcg",). (A binary built without TCG
    defaults to "kvm"; argv cannot show how QEMU was built.)
    """
    if binary.endswith("kvm"):
        return ("kvm", "tcg")
    return ("tcg",)


# ---------------------------------------------------------------------------------------------
# argv parsing
# ---------------------------------------------------------------------------------------------


def parse_qemu_argv(argv: Sequence[str]) -> QemuArgv:
    """Read a QEMU argv the way QEMU's option parser does and decide the accelerator request.

    Accelerator rules (system/vl.c, qemu_init and configure_accelerators; checked against
    QEMU 7.2):

    * each ``-accel NAME[,prop=...]`` (also ``-accel accel=NAME``, ``--accel``) adds NAME to
      a list QEMU tries in order: ``-accel kvm -accel tcg`` is "kvm:tcg";
    * ``-machine``/``-M`` ``accel=a:b`` sets the machine's "accel" key to a ":"-separated
      fallback list; ``-enable-kvm`` sets that same key to "kvm", and ``-no-kvm`` (removed in
      QEMU 5.2; "a synonym for -machine accel=tcg", docs/about/removed-features.rst) to "tcg",
      ``-enable-hax`` to "hax"; among these the last one on the command line wins;
    * -accel together with any of those: current QEMU exits with 'The -accel and
      "-machine accel=" options are incompatible'. A running process with such a line is an
      older QEMU, where -accel was sugar for "-machine accel=". We report the -accel list
      (what libvirt means when it writes -accel) and set ``conflict``;
    * nothing selects an accelerator: the binary's default (see :func:`_binary_default`).

    Option values are consumed like QEMU does, so ``-name -accel`` names a guest "-accel",
    and properties such as ``-cpu host,kvm=off`` or ``-global kvm-pit.lost_tick_policy=delay``
    never count as accelerator choices.
    """
    try:
        return _parse_qemu_argv(argv)
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


def _parse_qemu_argv(argv: Sequence[str]) -> QemuArgv:
    args = [argv] if isinstance(argv, str) else [a if isinstance(a, str) else str(a) for a in argv]
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

    name: str | None = None
    uuid: str | None = None
    debug_threads = False
    paused = False
    machine: str | None = None

    accel_list: list[str] = []  # from -accel options, in order
    accel_tokens: list[str] = []
    machine_accel: str | None = None  # the machine "accel" key, last writer wins
    machine_accel_source = ""
    machine_accel_tokens: tuple[str, ...] = ()

    i, n = 1, len(args)
    while i < n:
        token = args[i]
        i += 1
        if token[:1] != "-":
            continue  # a positional argument: QEMU takes it as a disk image (drive_add)
        # lookup_opt(): "-foo" and "--foo" name option "foo" ("Treat --foo the same as -foo.")
        opt = token[2:] if token[:2] == "--" else token[1:]
        value: str | None = None
        if opt in _OPTIONS_WITH_ARG:
            if i < n:
                value = args[i]
                i += 1
            # else: QEMU exits "requires an argument"; nothing more to read
        elif opt not in _FLAG_OPTIONS:
            # Not in our table (a newer/older QEMU or a fork). QEMU has far more options with
            # an argument than without, so take a following non-option token as its value.
            if i < n and not args[i].startswith("-"):
                i += 1
            continue

        if opt == "accel" and value is not None:
            # QemuOptsList "accel" has implied_opt_name "accel" (system/vl.c qemu_accel_opts);
            # -accel kvm,accel=tcg is tcg (qemu_opt_get returns the last value).
            acc = _last(_parse_opts(value, "accel"), "accel")
            if acc is not None:
                # ":" is not a separator for -accel in current QEMU ("invalid accelerator
                # kvm:tcg"); QEMU < 3.1 passed it through to "-machine accel=", where it was.
                names = _split_accels(acc)
                if names:
                    accel_list.extend(names)
                    accel_tokens.extend((token, value))
        elif opt in ("machine", "M") and value is not None:
            # keyval_parse_into(machine_opts_dict, optarg, "type", ...): implied key "type".
            pairs = _parse_opts(value, "type")
            mtype = _last(pairs, "type")
            if mtype is not None and mtype not in _HELP_VALUES:
                machine = mtype
            acc = _last(pairs, "accel")
            if acc is not None:
                machine_accel = acc
                machine_accel_source = "-machine accel="
                machine_accel_tokens = (token, value)
        elif opt in _MACHINE_ACCEL_FLAGS:
            machine_accel = _MACHINE_ACCEL_FLAGS[opt]
            machine_accel_source = "-" + opt
            machine_accel_tokens = (token,)
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

    machine_accels = _split_accels(machine_accel) if machine_accel is not None else ()
    if accel_list:
        accel = AccelRequest(
            accels=tuple(accel_list),
            source="-accel",
            tokens=tuple(accel_tokens),
            conflict=machine_accel is not None,
        )
    elif machine_accels:
        accel = AccelRequest(
            accels=machine_accels, source=machine_accel_source, tokens=machine_accel_tokens
        )
    else:
        accel = AccelRequest(
            accels=_binary_default(binary), source="binary default", tokens=(binary,)
        )

    return QemuArgv(
        binary=binary,
        name=name,
        uuid=uuid,
        debug_threads=debug_threads,
        paused=paused,
        accel=accel,
        machine=machine,
    )
