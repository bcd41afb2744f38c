"""Command line (click): options → engine → report; no judgement happens here.

Exit status is the Verdict's (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Usage errors, aborts
and internal failures exit 3, never click's own 2 and 1, which Nagios would read as CRITICAL
and WARNING; in ``--format nagios`` and ``--json`` they come out in that format
(``Verdict.failed`` through ``report.render``).

Shell completion is click's: ``eval "$(_HVCHECK_COMPLETE=bash_source hvcheck)"`` (also
``zsh_source``, ``fish_source``); check ids complete after ``--only``/``--skip``.
"""

from __future__ import annotations

import os
import sys
import time
from types import SimpleNamespace
from typing import Any, NoReturn, Optional

import click

from hvcheck import __version__
from hvcheck.model import DEFAULT_TIMEOUT, UNKNOWN, live_record
from hvcheck.report import ERROR_FORMATS, FORMATS
from hvcheck.report.zabbix import ITEMS as VALUE_ITEMS

UNKNOWN_EXIT = UNKNOWN.exit_code
# what the tests and contrib/ catch: every parse error is one (NoSuchOption, BadParameter, ...)
UsageError = click.UsageError


def _range(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Any:
    """A Nagios range (hvcheck.nagrange.Range), or None when the option is not given."""
    if value is None:
        return None
    from hvcheck.nagrange import Range

    try:
        return Range.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def _seconds(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value != value:  # FloatRange lets nan through
        raise click.BadParameter("nan is not a number of seconds", ctx, param)
    return value


def _complete_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Check ids and their dotted prefixes that start with what is typed, each with its title."""
    from click.shell_completion import CompletionItem

    from hvcheck import engine

    checks = engine.load_checks()
    titles = {lc.id: lc.title for lc in checks}
    return [
        CompletionItem(s, help=titles.get(s))
        for s in engine.selectors(checks)
        if s.startswith(incomplete)
    ]


HELP_EPILOG = (
    "Run as root for a full answer: /dev/kvm and QEMU processes' fds are open to root "
    "only. Without root, what cannot be read is UNKNOWN (cannot tell), never a false CRITICAL."
    "\n\n\b\nShell completion (bash; zsh_source and fish_source for zsh and fish):\n"
    '  eval "$(_HVCHECK_COMPLETE=bash_source hvcheck)"'
)


@click.group(
    invoke_without_command=True,
    subcommand_metavar="[COMMAND [ARGS]...]",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=HELP_EPILOG,
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default: table).",
)
@click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")
@click.option(
    "--root",
    metavar="PATH",
    type=click.Path(),
    default=None,
    help="Read a snapshot (directory or .tar.gz from `hvcheck collect`) instead of the live host.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="ID",
    shell_complete=_complete_ids,
    help="Run only this check id or dotted prefix (repeatable).",
)
@click.option(
    "--skip",
    multiple=True,
    metavar="ID",
    shell_complete=_complete_ids,
    help="Skip this check id or prefix (repeatable).",
)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    callback=_seconds,
    help="The whole run ends within this many seconds; unfinished checks are UNKNOWN.",
)
@click.option(
    "-w",
    "--warning",
    "warn_range",
    metavar="RANGE",
    default=None,
    callback=_range,
    help="Nagios range for the number of TCG instances (10, 10:, ~:10, 10:20, @10:20).",
)
@click.option(
    "-c",
    "--critical",
    "crit_range",
    metavar="RANGE",
    default=None,
    callback=_range,
    help="Nagios range for the number of TCG instances; default: CRITICAL on any TCG "
    "instance when nova virt_type=kvm.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="More detail (nagios: one line per non-OK check)."
)
@click.option(
    "--no-api", is_flag=True, help="Do not contact the OpenStack APIs (nova.api is SKIPped)."
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Nova API: do not verify the server's TLS certificate (verified by default).",
)
@click.option(
    "--os-cacert",
    "os_cacert",
    metavar="PATH",
    envvar="OS_CACERT",
    show_envvar=True,
    default=None,
    help="Nova API: CA bundle that verifies the server's TLS certificate.",
)
@click.version_option(__version__, "-V", "--version", prog_name="hvcheck")
@click.pass_context
def cli(
    ctx: click.Context,
    fmt: Optional[str],
    as_json: bool,
    root: Optional[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    timeout: float,
    warn_range: Any,
    crit_range: Any,
    verbose: bool,
    no_api: bool,
    insecure: bool,
    os_cacert: Optional[str],
) -> int:
    """Can this host run KVM guests, and do its QEMU instances really get KVM?

    Without a COMMAND, runs every check and prints the verdict.

    Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    given_fmt = fmt
    fmt = _chosen_format(ctx, fmt, as_json, "table")
    api = {"no_api": no_api, "insecure": insecure, "os_cacert": os_cacert}
    state = ctx.ensure_object(dict)
    options = {"tcg_warning": warn_range, "tcg_critical": crit_range, **api}
    state.update(fmt=fmt, root=root, timeout=timeout, api=api, options=options)
    state.update(only=only, skip=skip)
    sub = ctx.invoked_subcommand
    if sub == "value" and (given_fmt is not None or as_json):
        raise click.UsageError(
            "`hvcheck value` prints one bare value (for Zabbix): --format/--json do not apply",
            ctx,
        )
    if sub not in RUN_COMMANDS:
        # never silently dropped: a Zabbix or cron line that names them expects them to count
        given = [o for o, v in (("--only", only), ("--skip", skip)) if v]
        given += [o for o, v in (("-w", warn_range), ("-c", crit_range)) if v is not None]
        if given:
            raise click.UsageError(
                f"{'/'.join(given)} appl{'ies' if len(given) == 1 else 'y'} to a run of the "
                f"checks (`hvcheck`, `hvcheck value`), not to `hvcheck {sub}`",
                ctx,
            )
        return 0
    from hvcheck import engine

    checks = engine.load_checks()
    _check_selection(ctx, checks, only, skip)
    state.update(checks=checks)
    if sub is not None:
        return 0
    from hvcheck.host import SnapshotError, open_host

    try:
        host = open_host(root)
    except SnapshotError as e:
        return _failed(fmt, str(e))
    verdict = engine.run(host, checks, timeout=timeout, only=only, skip=skip, options=options)
    from hvcheck import report

    report.render(verdict, fmt, verbose)
    return verdict.exit_code


def _chosen_format(ctx: click.Context, fmt: Optional[str], as_json: bool, default: str) -> str:
    """``--format``, ``--json`` (its shorthand) or ``default``; both naming different formats
    is a usage error, never one silently preferred."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError(f"--json is --format json: it contradicts --format {fmt}", ctx)
    return "json" if as_json else (fmt or default)


# The commands that run the checks and so take the group's --only/--skip/-w/-c (None: the
# group itself, without a command)
RUN_COMMANDS = (None, "value")


def _check_selection(
    ctx: click.Context, checks: list[Any], only: tuple[str, ...], skip: tuple[str, ...]
) -> None:
    """A usage error (exit 3) for an ``--only``/``--skip`` id that selects no check, with the
    nearest ids, and for options that together select none (``--only kvm --skip kvm``): a
    typo must never make a green probe."""
    from hvcheck import engine

    for name, patterns in (("only", only), ("skip", skip)):
        for pattern, near in engine.unmatched(patterns, checks).items():
            hint = f"did you mean {', '.join(near)}?" if near else "see `hvcheck checks`"
            param = next(p for p in ctx.command.params if p.name == name)
            raise click.BadParameter(f"{pattern!r} selects no check; {hint}", ctx, param)
    if (only or skip) and not any(engine.selected(lc.id, only, skip) for lc in checks):
        given = " ".join([*(f"--only {p}" for p in only), *(f"--skip {p}" for p in skip)])
        raise click.UsageError(f"{given} selects no check: nothing would be run", ctx)


def _failed(fmt: str, message: str) -> int:
    """Print the failed run's verdict (``Verdict.failed``) in ``fmt``; its exit code (3)."""
    from hvcheck import report
    from hvcheck.model import Verdict

    verdict = Verdict.failed(message)
    report.render(verdict, fmt)
    return verdict.exit_code


@cli.command("checks")
@click.pass_obj
def list_checks(state: dict[str, Any]) -> int:
    """List the checks: id, title and what each reads (guest.* run in `hvcheck guest`)."""
    from hvcheck import engine, report

    report.render_checks(engine.load_checks("all"), state["fmt"])
    return 0


def _verdict(state: dict[str, Any]) -> Any:
    """The run's Verdict on the live host or ``--root``, with the group's ``--only``/``--skip``
    and ``-w``/``-c`` as the default command applies them; None when the snapshot cannot be
    opened (reported on stderr)."""
    from hvcheck import engine
    from hvcheck.host import SnapshotError, open_host

    try:
        host = open_host(state["root"])
    except SnapshotError as e:
        _failed("table", str(e))
        return None
    return engine.run(
        host,
        state["checks"],
        timeout=state["timeout"],
        only=state["only"],
        skip=state["skip"],
        options=dict(state["options"]),
    )


def _needs_instance(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Any:
    if ctx.params.get("item") == "instance_accel" and not value:
        raise click.UsageError("instance_accel needs an instance name, uuid or pid", ctx)
    return value


@cli.command(
    "value",
    short_help="Print one value (Zabbix UserParameters).",
    epilog=f"ITEM is one of: {', '.join(VALUE_ITEMS)}.",
)
@click.argument("item", metavar="ITEM", type=click.Choice(VALUE_ITEMS))
@click.argument("arg", required=False, callback=_needs_instance)
@click.pass_obj
def value(state: dict[str, Any], item: str, arg: Optional[str]) -> int:
    """Print one value (for Zabbix UserParameters): status (0-3), kvm_usable (1/0/-1),
    instance counts, or instance_accel NAME|UUID|PID (kvm/tcg/unknown/absent)."""
    from hvcheck.report import zabbix

    verdict = _verdict(state)
    if verdict is None:
        return UNKNOWN_EXIT
    click.echo(zabbix.value(verdict, item, arg))
    return 0


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """``3600``, ``90s``, ``30m``, ``1h``, ``2d`` as seconds; ``0`` turns the limit off."""
    text = value.strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:], 0)
    try:
        seconds = float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise click.BadParameter(f"{value!r} is not a duration (3600, 90s, 30m, 1h, 2d)")
    return seconds


FLEET_FORMATS = ("table", "json")


@cli.command("report", short_help="Fleet view of many hosts' --json files.")
@click.argument("files", nargs=-1, required=True, metavar="FILE...", type=click.Path())
@click.option(
    "--max-age",
    metavar="DURATION",
    default="1h",
    show_default=True,
    callback=_duration,
    help="A document whose evidence is older (its generated_at) is UNKNOWN: 3600, 30m, 1h, "
    "2d; 0 for no limit.",
)
@click.pass_obj
def fleet_report(state: dict[str, Any], files: tuple[str, ...], max_age: float) -> int:
    """Merge many hosts' `hvcheck --json` files into one fleet view (table, or --json).

    Only regular files are read; each file is one row, and a file that is not a valid hvcheck
    document, is older than --max-age or names a host another file names too is flagged."""
    if state["fmt"] not in FLEET_FORMATS:
        raise click.UsageError(
            f"hvcheck report prints {' or '.join(FLEET_FORMATS)}, not {state['fmt']!r}"
        )
    from hvcheck import fleet, report

    rows = fleet.load(list(files), fleet.read_document, max_age=max_age)
    report.render_fleet(rows, state["fmt"], max_age=max_age)
    return fleet.worst(rows).exit_code


@cli.command("schema")
def schema() -> int:
    """Print the JSON Schema (draft 2020-12) of --format json."""
    click.echo(schema_text(), nl=False)
    return 0


def schema_text() -> str:
    from importlib.resources import files

    return files("hvcheck").joinpath("schema.json").read_text(encoding="utf-8")


@cli.command("collect", short_help="Write a snapshot (replay it with --root).")
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Snapshot file to write (.tar.gz). Default: hvcheck-HOST-TIME.tar.gz",
)
@click.pass_obj
def collect(state: dict[str, Any], output: Optional[str]) -> int:
    """Write a snapshot of everything the checks read (replay it with --root).

    The file is created 0600 and secrets in configuration files are redacted (see
    docs/SECURITY.md); an existing FILE must be a regular file."""
    from hvcheck import engine
    from hvcheck.host import RecordingHost
    from hvcheck.host.recorder import check_target

    if state["root"]:
        return _failed("table", "collect reads the live host; --root makes no sense here")
    host = RecordingHost()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    name = host.uname().hostname.replace("/", "_").lstrip(".") or "host"
    out = output or f"hvcheck-{name}-{stamp.replace(':', '')}.tar.gz"
    try:
        check_target(out)  # before the run: a target that cannot be written fails at once
    except OSError as e:
        return _failed("table", f"cannot write {out}: {e.strerror or e}")
    verdict = engine.run(
        host, engine.load_checks(), timeout=state["timeout"], options=dict(state["api"])
    )
    # the guest checks too, so that `hvcheck guest --root` replays a snapshot taken in a VM
    gv = engine.run_guest(host, engine.load_checks("guest"), timeout=state["timeout"])
    try:
        host.write_snapshot(out, stamp, live_record(verdict, gv))
    except OSError as e:
        return _failed("table", f"cannot write {out}: {e.strerror or e}")
    from hvcheck import report

    report.render_collected(out, os.path.getsize(out), verdict, redacted=host.redacted)
    return 0


GUEST_FORMATS = ("table", "json", "nagios")


@cli.command("guest", short_help="Inside a VM: KVM-accelerated, or emulated by TCG?")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(GUEST_FORMATS),
    default=None,
    help="Output format (default: the group's --format, else table).",
)
@click.option("--json", "as_json", is_flag=True, help="Shorthand for --format json.")
@click.option(
    "--root",
    metavar="PATH",
    type=click.Path(),
    default=None,
    help="Read a guest's snapshot (from `hvcheck collect` run inside it) instead of this VM.",
)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    callback=lambda c, p, v: v if v is None else _seconds(c, p, v),
    help=f"The whole run ends within this many seconds (default {DEFAULT_TIMEOUT:g}).",
)
@click.option("-v", "--verbose", is_flag=True, help="More detail (nagios: non-OK checks).")
@click.pass_obj
def guest(
    state: dict[str, Any],
    fmt: Optional[str],
    as_json: bool,
    root: Optional[str],
    timeout: Optional[float],
    verbose: bool,
) -> int:
    """Run inside a VM: does it run with hardware acceleration (KVM, or another hypervisor's)
    or under QEMU's TCG emulation, and is nested virtualization offered to it?

    Exit status: 0 OK (KVM, another hypervisor, bare metal), 1 WARNING (TCG), 3 UNKNOWN
    (cannot tell).
    """
    fmt = _chosen_format(click.get_current_context(), fmt, as_json, state["fmt"])
    if fmt not in GUEST_FORMATS:
        raise click.UsageError(f"hvcheck guest prints {', '.join(GUEST_FORMATS)}, not {fmt!r}")
    state["fmt"] = fmt
    from hvcheck import engine, report
    from hvcheck.host import SnapshotError, open_host
    from hvcheck.model import GuestVerdict

    try:
        host = open_host(root or state["root"])
    except SnapshotError as e:
        failed = GuestVerdict.failed(str(e))
        report.render_guest(failed, fmt)
        return failed.exit_code
    verdict = engine.run_guest(
        host, engine.load_checks("guest"), timeout=timeout or state["timeout"]
    )
    report.render_guest(verdict, fmt, verbose)
    return verdict.exit_code


def parse_args(argv: list[str]) -> SimpleNamespace:
    """Parse a command line as ``main`` would, without running it: the group's options, then
    ``command`` (None without one) and the subcommand's own parameters. Raises UsageError
    (``--help``/``--version`` raise click.exceptions.Exit). For tests and contrib/ checks."""
    ctx = cli.make_context("hvcheck", list(argv))
    params = dict(ctx.params)
    # click 8.2 renamed Context.protected_args (still there, deprecated) to _protected_args
    protected = getattr(ctx, "_protected_args", None)
    rest = [*(ctx.protected_args if protected is None else protected), *ctx.args]
    params["command"] = None
    if rest:
        name, cmd, args = cli.resolve_command(ctx, rest)
        assert cmd is not None and name is not None  # resolve_command raises otherwise
        params["command"] = name
        params.update(cmd.make_context(name, args, parent=ctx).params)
    return SimpleNamespace(**params)


def _requested_format(args: list[str]) -> str:
    """The output format asked for, read from the raw arguments: what a usage error is
    reported in. A mistyped option before ``nagios`` (``--formt nagios``) still answers
    with a Nagios line."""
    fmt = "table"
    for i, a in enumerate(args):
        if a == "--":
            break
        if a.startswith("--format="):
            fmt = a.partition("=")[2]
        elif a == "--format" and i + 1 < len(args):
            fmt = args[i + 1]
    if "--json" in args:
        fmt = "json"
    if fmt not in ERROR_FORMATS and "nagios" in args:
        fmt = "nagios"
    return fmt if fmt in FORMATS else "table"


def main(argv: Optional[list[str]] = None) -> NoReturn:
    """Entry point: click in non-standalone mode, so every exit status is ours.

    The process's own stdout and stderr are guarded first (``report.channel``): a closed
    stdout or a reader that went away (EPIPE) leaves the exit code the verdict's; any other
    failure to write the output exits 3 with one line on stderr."""
    from hvcheck.report import channel

    channel.install()
    code = _main(sys.argv[1:] if argv is None else list(argv))
    sys.exit(channel.settle(code))


def _main(args: list[str]) -> int:
    state: dict[str, Any] = {}  # the parsed options, once the group has seen them
    try:
        rv = cli.main(args=args, prog_name="hvcheck", standalone_mode=False, obj=state)
    except click.exceptions.Abort:  # click's name for Ctrl-C (and EOF at a prompt)
        return _failed(state.get("fmt") or _requested_format(args), "interrupted")
    except click.ClickException as e:  # usage errors (click: 2) and others (click: 1)
        fmt = state.get("fmt") or _requested_format(args)
        if fmt not in ERROR_FORMATS:
            e.show()
            return UNKNOWN_EXIT
        return _failed(fmt, f"usage error: {e.format_message()}")
    except BrokenPipeError:  # only where the streams are not guarded (called in-process)
        os._exit(UNKNOWN_EXIT)
    except KeyboardInterrupt:
        return _failed(state.get("fmt") or _requested_format(args), "interrupted")
    except SystemExit:
        raise
    except BaseException as e:
        if os.environ.get("HVCHECK_DEBUG"):
            raise
        return _failed(
            state.get("fmt") or _requested_format(args),
            f"internal error: {type(e).__name__}: {e} (set HVCHECK_DEBUG=1 for details)",
        )
    # --help and --version return click's exit code (0); a misuse of them is a usage error
    return rv if isinstance(rv, int) else 0


def console() -> NoReturn:
    """The ``hvcheck`` command: ``main``, then out without the interpreter's teardown.

    hvcheck has written and flushed everything by then and holds no other resource; tearing
    down ~100 modules and the engine's idle threads cost ~4 ms of every monitoring run.
    The cyclic garbage collector is off for the run: a run lives well under a second and what
    it builds is acyclic (freed by reference counting); the collector only walked the growing
    heap, ~8 % of a 1,000-instance scan, for no memory saved (bench/RESULTS.md §4).
    """
    import gc

    gc.disable()
    code: Any = 0
    try:
        main()
    except SystemExit as e:
        code = e.code
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # main has settled the output already
        pass
    if code is None:
        os._exit(0)
    if isinstance(code, int):
        os._exit(code)
    try:  # sys.exit("message"), as the interpreter would print it; but an internal failure
        print(code, file=sys.stderr)  # exits 3 (UNKNOWN), never the interpreter's 1
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    os._exit(UNKNOWN_EXIT if code else 0)
