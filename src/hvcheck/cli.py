"""Command line: options and the choice of renderer; no judgement happens here.

Exit status is the Verdict's (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Usage errors and
internal failures exit 3, never click's default 1/2, which Nagios would read as WARNING and
CRITICAL.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional

import click

from hvcheck import __version__
from hvcheck.report.zabbix import ITEMS as VALUE_ITEMS

FORMATS = ("table", "json", "nagios", "prometheus", "zabbix-discovery")
UNKNOWN_EXIT = 3


def _fail(fmt: str, message: str) -> None:
    """Report a failure that prevented a verdict, in the requested format, and exit 3."""
    msg = message.replace("\n", " ")
    if fmt == "nagios":
        click.echo(f"HVCHECK UNKNOWN - {msg.replace('|', '¦')}")
    elif fmt == "json":
        import json

        doc = {
            "schema_version": 1,
            "tool": {"name": "hvcheck", "version": __version__},
            "status": "UNKNOWN",
            "exit_code": UNKNOWN_EXIT,
            "error": msg,
            "host": {"hostname": "", "arch": "", "kernel": "", "os": "", "virtual": None},
            "verdict": {
                "kvm_usable": None,
                "kvm_usable_reason": msg,
                "acceleration": "unknown",
                "virt_type": None,
                "summary": msg,
            },
            "checks": [],
            "instances": [],
        }
        click.echo(json.dumps(doc, ensure_ascii=True))
    else:
        click.echo(f"hvcheck: {msg}", err=True)
    sys.exit(UNKNOWN_EXIT)


def _range(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Any:
    if value is None:
        return None
    from hvcheck.nagrange import Range

    try:
        return Range.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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
    type=click.Path(),
    default=None,
    help="Read a snapshot (directory or .tar.gz from `hvcheck collect`) instead of the live host.",
)
@click.option(
    "--only",
    multiple=True,
    metavar="ID",
    help="Run only this check id or dotted prefix (repeatable).",
)
@click.option(
    "--skip", multiple=True, metavar="ID", help="Skip this check id or prefix (repeatable)."
)
@click.option(
    "-t",
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
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
    "--no-api",
    is_flag=True,
    help="Do not contact the OpenStack APIs (nova.api is SKIPped).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Nova API: do not verify the server's TLS certificate (verification is on by default).",
)
@click.option(
    "--os-cacert",
    "os_cacert",
    metavar="PATH",
    envvar="OS_CACERT",
    default=None,
    help="Nova API: CA bundle that verifies the server's TLS certificate [env OS_CACERT].",
)
@click.version_option(__version__, "-V", "--version", prog_name="hvcheck")
@click.pass_context
def cli(
    ctx: click.Context,
    warn_range: Any,
    crit_range: Any,
    fmt: Optional[str],
    as_json: bool,
    root: Optional[str],
    only: tuple[str, ...],
    skip: tuple[str, ...],
    timeout: float,
    verbose: bool,
    no_api: bool,
    insecure: bool,
    os_cacert: Optional[str],
) -> None:
    """Can this host run KVM guests, and do its QEMU instances really get KVM?

    Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    """
    fmt = "json" if as_json else (fmt or "table")
    api = {"no_api": no_api, "insecure": insecure, "os_cacert": os_cacert}
    ctx.obj = {"fmt": fmt, "root": root, "timeout": timeout, "api": api}
    if ctx.invoked_subcommand is not None:
        return
    from hvcheck import engine
    from hvcheck.host import SnapshotError, open_host

    try:
        host = open_host(root)
    except SnapshotError as e:
        _fail(fmt, str(e))
        return
    options = {"tcg_warning": warn_range, "tcg_critical": crit_range, **api}
    verdict = engine.run(
        host, engine.load_checks(), timeout=timeout, only=only, skip=skip, options=options
    )
    _emit(verdict, fmt, verbose)
    sys.exit(verdict.exit_code)


def _emit(verdict: Any, fmt: str, verbose: bool) -> None:
    if fmt == "json":
        from hvcheck.report import json as rjson

        sys.stdout.write(rjson.render(verdict, verbose))
    elif fmt == "nagios":
        from hvcheck.report import nagios

        sys.stdout.write(nagios.render(verdict, verbose))
    elif fmt == "prometheus":
        from hvcheck.report import prometheus

        sys.stdout.write(prometheus.render(verdict, verbose))
    elif fmt == "zabbix-discovery":
        from hvcheck.report import zabbix

        sys.stdout.write(zabbix.discovery(verdict, verbose))
    else:
        from hvcheck.report import table

        table.render_to(verdict, sys.stdout, verbose)
    sys.stdout.flush()


@cli.command("checks")
@click.pass_context
def list_checks(ctx: click.Context) -> None:
    """List the checks: id, title and what each reads."""
    from hvcheck import engine

    loaded = engine.load_checks()
    if ctx.obj["fmt"] == "json":
        import json

        click.echo(
            json.dumps(
                [
                    {
                        "id": lc.id,
                        "title": lc.title,
                        "reads": list(lc.reads),
                        "source": lc.source,
                        "error": lc.error,
                    }
                    for lc in loaded
                ],
                indent=2,
            )
        )
        return
    for lc in loaded:
        click.echo(f"{lc.id:<18} {lc.title}")
        if lc.error:
            click.echo(f"{'':<18} ! {lc.error}")
        for r in lc.reads:
            click.echo(f"{'':<18}   reads {r}")


def _live_or_root_verdict(ctx: click.Context) -> Any:
    from hvcheck import engine
    from hvcheck.host import SnapshotError, open_host

    try:
        host = open_host(ctx.obj["root"])
    except SnapshotError as e:
        _fail("table", str(e))
    return engine.run(
        host, engine.load_checks(), timeout=ctx.obj["timeout"], options=dict(ctx.obj["api"])
    )


@cli.command("value")
@click.argument(
    "item",
    type=click.Choice(VALUE_ITEMS),
)
@click.argument("arg", required=False)
@click.pass_context
def value(ctx: click.Context, item: str, arg: Optional[str]) -> None:
    """Print one value (for Zabbix UserParameters): status (0-3), kvm_usable (1/0/-1),
    instance counts, or instance_accel NAME|UUID|PID (kvm/tcg/unknown/absent)."""
    from hvcheck.report import zabbix

    if item == "instance_accel" and not arg:
        raise click.UsageError("instance_accel needs an instance name, uuid or pid")
    click.echo(zabbix.value(_live_or_root_verdict(ctx), item, arg))


@cli.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.pass_context
def report(ctx: click.Context, files: tuple[str, ...]) -> None:
    """Merge many hosts' `hvcheck --json` files into one fleet view (table, or --json)."""
    from hvcheck import fleet
    from hvcheck.report import fleet as rfleet

    def read(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read(16 * 1024 * 1024)

    rows = fleet.load(list(files), read)
    if ctx.obj["fmt"] == "json":
        sys.stdout.write(rfleet.render_json(rows))
    else:
        rfleet.render_table(rows, sys.stdout)
    sys.exit(fleet.worst(rows).exit_code)


@cli.command("schema")
def schema() -> None:
    """Print the JSON Schema (draft 2020-12) of --format json."""
    click.echo(schema_text(), nl=False)


def schema_text() -> str:
    from importlib.resources import files

    return files("hvcheck").joinpath("schema.json").read_text(encoding="utf-8")


@cli.command("collect")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Snapshot file to write (.tar.gz). Default: hvcheck-HOST-TIME.tar.gz",
)
@click.pass_context
def collect(ctx: click.Context, output: Optional[str]) -> None:
    """Write a snapshot of everything the checks read (replay it with --root)."""
    from hvcheck import engine
    from hvcheck.host import RecordingHost

    if ctx.obj["root"]:
        _fail("table", "collect reads the live host; --root makes no sense here")
    host = RecordingHost()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    verdict = engine.run(
        host, engine.load_checks(), timeout=ctx.obj["timeout"], options=dict(ctx.obj["api"])
    )
    out = output or f"hvcheck-{host.uname().hostname}-{stamp.replace(':', '')}.tar.gz"
    try:
        live = {
            "status": verdict.status.label,
            "kvm_usable": verdict.kvm_usable,
            "acceleration": verdict.acceleration,
            "checks": {r.id: r.status.label for r in verdict.results},
        }
        host.write_snapshot(out, stamp, live)
    except OSError as e:
        _fail("table", f"cannot write {out}: {e}")
    click.echo(
        f"wrote {out} ({os.path.getsize(out)} bytes); live verdict: "
        f"{verdict.status.label} - {verdict.summary}",
        err=True,
    )


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: click in non-standalone mode so every exit status is ours."""
    args = sys.argv[1:] if argv is None else argv
    fmt = (
        "nagios"
        if any(a in ("nagios", "--format=nagios") for a in args)
        else ("json" if "--json" in args or "--format=json" in args else "table")
    )
    try:
        cli.main(args=args, prog_name="hvcheck", standalone_mode=False)
    except click.exceptions.Exit as e:  # --help / --version
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        _fail(fmt, "aborted")
    except click.ClickException as e:
        if fmt == "table":
            e.show()
            sys.exit(UNKNOWN_EXIT)
        _fail(fmt, f"usage error: {e.format_message()}")
    except BrokenPipeError:
        os._exit(UNKNOWN_EXIT)
    except KeyboardInterrupt:
        _fail(fmt, "interrupted")
    except SystemExit:
        raise
    except BaseException as e:
        if os.environ.get("HVCHECK_DEBUG"):
            raise
        _fail(fmt, f"internal error: {type(e).__name__}: {e} (set HVCHECK_DEBUG=1 for details)")
    sys.exit(0)
