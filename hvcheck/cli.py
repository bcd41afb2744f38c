"""Command line: options and the choice of renderer; no judgement happens here.

Exit status is the Verdict's (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Usage errors and
internal failures exit 3, never argparse's default 2, which Nagios would read as CRITICAL.

argparse (not click): the probe runs every minute, and click's import alone was ~15 ms of a
~80 ms run (bench/RESULTS.md); argparse costs ~2 ms and parses the same command lines.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, NoReturn, Optional

from hvcheck import __version__
from hvcheck.report.zabbix import ITEMS as VALUE_ITEMS

FORMATS = ("table", "json", "nagios", "prometheus", "zabbix-discovery")
UNKNOWN_EXIT = 3


class UsageError(Exception):
    """A command line hvcheck cannot run (exit 3)."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


def _columns() -> int:
    # shutil.get_terminal_size's rules: $COLUMNS, else the terminal, else 80
    try:
        return int(os.environ.get("COLUMNS", "")) or 80
    except ValueError:
        pass
    out = sys.__stdout__
    try:
        return (os.get_terminal_size(out.fileno()).columns or 80) if out is not None else 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Help(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, given its width: left to itself it imports shutil (and with it
    bz2, lzma, ...: ~1.5 ms) on every add_argument, to validate metavars."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: Optional[int] = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


def _fail(fmt: str, message: str) -> None:
    """Report a failure that prevented a verdict, in the requested format, and exit 3."""
    msg = message.replace("\n", " ")
    if fmt == "nagios":
        print(f"HVCHECK UNKNOWN - {msg.replace('|', '¦')}")
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
        print(json.dumps(doc, ensure_ascii=True))
    else:
        print(f"hvcheck: {msg}", file=sys.stderr)
    sys.exit(UNKNOWN_EXIT)


def _timeout(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not v >= 0.1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not >= 0.1 seconds")
    return v


def _range(text: str) -> Any:
    from hvcheck.nagrange import Range

    try:
        return Range.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hvcheck",
        description="Can this host run KVM guests, and do its QEMU instances really get KVM?\n\n"
        "Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        choices=FORMATS,
        default=None,
        help="Output format (default: table).",
    )
    p.add_argument(
        "--json", dest="as_json", action="store_true", help="Shorthand for --format json."
    )
    p.add_argument(
        "--root",
        metavar="PATH",
        help="Read a snapshot (directory or .tar.gz from `hvcheck collect`) instead of the live "
        "host.",
    )
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="ID",
        help="Run only this check id or dotted prefix (repeatable).",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="ID",
        help="Skip this check id or prefix (repeatable).",
    )
    p.add_argument(
        "-t",
        "--timeout",
        type=_timeout,
        default=10.0,
        metavar="SECONDS",
        help="The whole run ends within this many seconds; unfinished checks are UNKNOWN "
        "(default: 10).",
    )
    p.add_argument(
        "-w",
        "--warning",
        dest="warn_range",
        type=_range,
        default=None,
        metavar="RANGE",
        help="Nagios range for the number of TCG instances (10, 10:, ~:10, 10:20, @10:20).",
    )
    p.add_argument(
        "-c",
        "--critical",
        dest="crit_range",
        type=_range,
        default=None,
        metavar="RANGE",
        help="Nagios range for the number of TCG instances; default: CRITICAL on any TCG "
        "instance when nova virt_type=kvm.",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="More detail (nagios: one line per non-OK check).",
    )
    p.add_argument(
        "--no-api",
        action="store_true",
        help="Do not contact the OpenStack APIs (nova.api is SKIPped).",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="Nova API: do not verify the server's TLS certificate (verified by default).",
    )
    p.add_argument(
        "--os-cacert",
        metavar="PATH",
        default=os.environ.get("OS_CACERT") or None,
        help="Nova API: CA bundle that verifies the server's TLS certificate [env OS_CACERT].",
    )
    p.add_argument("-V", "--version", action="version", version=f"hvcheck, version {__version__}")
    sub = p.add_subparsers(dest="command", metavar="[COMMAND]")
    sub.add_parser("checks", help="List the checks: id, title and what each reads.")
    c = sub.add_parser(
        "collect",
        help="Write a snapshot of everything the checks read (replay it with --root).",
    )
    c.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="Snapshot file to write (.tar.gz). Default: hvcheck-HOST-TIME.tar.gz",
    )
    sub.add_parser("schema", help="Print the JSON Schema (draft 2020-12) of --format json.")
    v = sub.add_parser(
        "value",
        help="Print one value (for Zabbix UserParameters): status (0-3), kvm_usable (1/0/-1), "
        "instance counts, or instance_accel NAME|UUID|PID (kvm/tcg/unknown/absent).",
    )
    v.add_argument("item", choices=VALUE_ITEMS)
    v.add_argument("arg", nargs="?", default=None)
    r = sub.add_parser(
        "report",
        help="Merge many hosts' `hvcheck --json` files into one fleet view (table, or --json).",
    )
    r.add_argument("files", nargs="+", metavar="FILE")
    return p


_TAKES_RANGE = ("-w", "--warning", "-c", "--critical")


def _join_negative_ranges(argv: list[str]) -> list[str]:
    """``-w -10:20``: a Nagios range may start with "-"; argparse would take it for an option
    (click did not), so it is passed on as ``--warning=-10:20``."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out.extend(argv[i:])
            break
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in _TAKES_RANGE and nxt[:1] == "-" and nxt[1:2].isdigit():
            long = "--warning" if a in ("-w", "--warning") else "--critical"
            out.append(f"{long}={nxt}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; raises UsageError (argparse's own exit only for -h/-V)."""
    ns = build_parser().parse_args(_join_negative_ranges(list(argv)))
    if ns.command == "value" and ns.item == "instance_accel" and not ns.arg:
        raise UsageError("instance_accel needs an instance name, uuid or pid")
    return ns


def run(ns: argparse.Namespace) -> None:
    fmt = "json" if ns.as_json else (ns.fmt or "table")
    api = {"no_api": ns.no_api, "insecure": ns.insecure, "os_cacert": ns.os_cacert}
    if ns.command == "checks":
        list_checks(fmt)
    elif ns.command == "collect":
        collect(ns.root, ns.timeout, api, ns.output)
    elif ns.command == "schema":
        sys.stdout.write(schema_text())
    elif ns.command == "value":
        value(ns.root, ns.timeout, api, ns.item, ns.arg)
    elif ns.command == "report":
        report(fmt, ns.files)
    else:
        check(ns, fmt, api)


def check(ns: argparse.Namespace, fmt: str, api: dict[str, Any]) -> None:
    from hvcheck import engine
    from hvcheck.host import SnapshotError, open_host

    try:
        host = open_host(ns.root)
    except SnapshotError as e:
        _fail(fmt, str(e))
        return
    options = {"tcg_warning": ns.warn_range, "tcg_critical": ns.crit_range, **api}
    verdict = engine.run(
        host,
        engine.load_checks(),
        timeout=ns.timeout,
        only=tuple(ns.only),
        skip=tuple(ns.skip),
        options=options,
    )
    _emit(verdict, fmt, ns.verbose)
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


def list_checks(fmt: str) -> None:
    """List the checks: id, title and what each reads."""
    from hvcheck import engine

    loaded = engine.load_checks()
    if fmt == "json":
        import json

        print(
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
        print(f"{lc.id:<18} {lc.title}")
        if lc.error:
            print(f"{'':<18} ! {lc.error}")
        for r in lc.reads:
            print(f"{'':<18}   reads {r}")


def _live_or_root_verdict(root: Optional[str], timeout: float, api: dict[str, Any]) -> Any:
    from hvcheck import engine
    from hvcheck.host import SnapshotError, open_host

    try:
        host = open_host(root)
    except SnapshotError as e:
        _fail("table", str(e))
    return engine.run(host, engine.load_checks(), timeout=timeout, options=dict(api))


def value(
    root: Optional[str], timeout: float, api: dict[str, Any], item: str, arg: Optional[str]
) -> None:
    from hvcheck.report import zabbix

    print(zabbix.value(_live_or_root_verdict(root, timeout, api), item, arg))


def report(fmt: str, files: list[str]) -> None:
    from hvcheck import fleet
    from hvcheck.report import fleet as rfleet

    def read(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read(16 * 1024 * 1024)

    rows = fleet.load(list(files), read)
    if fmt == "json":
        sys.stdout.write(rfleet.render_json(rows))
    else:
        rfleet.render_table(rows, sys.stdout)
    sys.exit(fleet.worst(rows).exit_code)


def schema_text() -> str:
    from importlib.resources import files

    return files("hvcheck").joinpath("schema.json").read_text(encoding="utf-8")


def collect(
    root: Optional[str], timeout: float, api: dict[str, Any], output: Optional[str]
) -> None:
    from hvcheck import engine
    from hvcheck.host import RecordingHost

    if root:
        _fail("table", "collect reads the live host; --root makes no sense here")
    host = RecordingHost()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    verdict = engine.run(host, engine.load_checks(), timeout=timeout, options=dict(api))
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
    print(
        f"wrote {out} ({os.path.getsize(out)} bytes); live verdict: "
        f"{verdict.status.label} - {verdict.summary}",
        file=sys.stderr,
    )


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: every exit status is ours (usage errors 3, never 2)."""
    args = sys.argv[1:] if argv is None else argv
    fmt = (
        "nagios"
        if any(a in ("nagios", "--format=nagios") for a in args)
        else ("json" if "--json" in args or "--format=json" in args else "table")
    )
    try:
        run(parse_args(args))
    except UsageError as e:
        if fmt == "table":
            sys.stderr.write(f"{e.usage}hvcheck: error: {e}\n")
            sys.exit(UNKNOWN_EXIT)
        _fail(fmt, f"usage error: {e}")
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
    except (BrokenPipeError, ValueError):
        os._exit(UNKNOWN_EXIT)
    if code is None:
        os._exit(0)
    if isinstance(code, int):
        os._exit(code)
    print(code, file=sys.stderr)  # sys.exit("message"), as the interpreter would
    sys.stderr.flush()
    os._exit(1 if code else 0)
