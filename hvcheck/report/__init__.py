"""Renderers: they read a Verdict and print it; they never judge.

``render`` picks the renderer for a ``--format``; each is imported only when asked for, so the
nagios and json paths never import rich (the table's library).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from hvcheck.engine import LoadedCheck
    from hvcheck.fleet import HostRow
    from hvcheck.model import GuestVerdict, Verdict

FORMATS = ("table", "json", "nagios", "prometheus", "zabbix-discovery")
# formats with an error form of their own on stdout (the Nagios line, the JSON document with
# "error"); the others report a failed run as one line on stderr and leave stdout empty, so a
# textfile collector keeps its last good file
ERROR_FORMATS = ("json", "nagios")


def render(
    verdict: Verdict,
    fmt: str,
    verbose: bool = False,
    stream: Optional[IO[str]] = None,
    errors: Optional[IO[str]] = None,
) -> None:
    """Write ``verdict`` in ``fmt`` (one of FORMATS) to ``stream`` (default stdout) and flush.

    A failed run (``Verdict.failed``: ``verdict.error`` set) in a format outside ERROR_FORMATS
    is the line ``hvcheck: <error>`` on ``errors`` (default stderr). Raises ValueError for an
    unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    out = sys.stdout if stream is None else stream
    if verdict.error is not None and fmt not in ERROR_FORMATS:
        from hvcheck.report.escape import inert

        err = sys.stderr if errors is None else errors
        err.write(f"hvcheck: {inert(verdict.error)}\n")
        err.flush()
        return
    if fmt == "json":
        from hvcheck.report import json as rjson

        out.write(rjson.render(verdict, verbose))
    elif fmt == "nagios":
        from hvcheck.report import nagios

        out.write(nagios.render(verdict, verbose))
    elif fmt == "prometheus":
        from hvcheck.report import prometheus

        write_utf8(out, prometheus.render(verdict, verbose))
    elif fmt == "zabbix-discovery":
        from hvcheck.report import zabbix

        out.write(zabbix.discovery(verdict, verbose))
    else:
        from hvcheck.report import table

        table.render_to(verdict, out, verbose)
    out.flush()


def write_utf8(out: IO[str], text: str) -> None:
    """Write ``text`` to ``out`` as UTF-8 whatever ``out``'s encoding: for a format defined
    as UTF-8 (the Prometheus text exposition format), where bytes in the locale's encoding
    would make node_exporter reject the whole file. A stream without a binary ``buffer``
    (a test's StringIO) gets the text."""
    import codecs

    buf = getattr(out, "buffer", None)
    enc = getattr(out, "encoding", None) or "utf-8"
    try:
        utf8 = codecs.lookup(enc).name == "utf-8"
    except LookupError:
        utf8 = False
    if utf8 or buf is None:
        out.write(text)
        return
    out.flush()
    buf.write(text.encode("utf-8", "backslashreplace"))
    buf.flush()


def render_checks(
    checks: Sequence[LoadedCheck], fmt: str, stream: Optional[IO[str]] = None
) -> None:
    """``hvcheck checks``: id, title and what each check reads; ``fmt`` "json" gives a list of
    {id, title, reads, source, error}, any other format the plain listing."""
    out = sys.stdout if stream is None else stream
    if fmt == "json":
        import json

        doc = [
            {
                "id": lc.id,
                "title": lc.title,
                "reads": list(lc.reads),
                "source": lc.source,
                "error": lc.error,
            }
            for lc in checks
        ]
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        from hvcheck.report.escape import inert

        for lc in checks:  # plugins name themselves: their strings are escaped like any other
            out.write(f"{inert(lc.id):<18} {inert(lc.title)}\n")
            if lc.error:
                out.write(f"{'':<18} ! {inert(lc.error)}\n")
            for r in lc.reads:
                out.write(f"{'':<18}   reads {inert(r)}\n")
    out.flush()


def render_collected(
    path: str,
    size: int,
    verdict: Verdict,
    stream: Optional[IO[str]] = None,
    redacted: Optional[dict[str, list[str]]] = None,
) -> None:
    """``hvcheck collect``'s closing lines (on stderr by default): the snapshot written, its size
    in bytes, and the live verdict it records; then, when secrets were redacted, which files
    (``redacted``: path -> what, as the marker's ``redacted`` key holds it)."""
    from hvcheck.report.escape import inert

    out = sys.stderr if stream is None else stream
    out.write(
        f"wrote {inert(path)} ({size} bytes, mode 0600); live verdict: "
        f"{verdict.status.label} - {inert(verdict.summary)}\n"
    )
    if redacted:
        n = sum(len(w) for w in redacted.values())
        out.write(
            f"redacted {n} secret(s) in {len(redacted)} file(s): "
            + ", ".join(inert(p) for p in sorted(redacted))
            + " (values replaced by ********; listed under 'redacted' in the marker)\n"
        )
    out.flush()


def render_fleet(
    rows: list[HostRow],
    fmt: str,
    stream: Optional[IO[str]] = None,
    max_age: Optional[float] = None,
) -> None:
    """``hvcheck report``: the fleet view, a JSON document when ``fmt`` is "json", else the
    table (``max_age``: the --max-age in seconds the rows were judged with)."""
    from hvcheck.report import fleet

    out = sys.stdout if stream is None else stream
    if fmt == "json":
        out.write(fleet.render_json(rows, max_age))
    else:
        fleet.render_table(rows, out)
    out.flush()


def render_guest(
    verdict: GuestVerdict,
    fmt: str,
    verbose: bool = False,
    stream: Optional[IO[str]] = None,
    errors: Optional[IO[str]] = None,
) -> None:
    """``hvcheck guest``: write ``verdict`` in ``fmt`` (table, json or nagios) to ``stream``
    (default stdout) and flush; a failed run in the table format is one line on ``errors``
    (default stderr), as ``render`` does. Raises ValueError for another ``fmt``."""
    from hvcheck.report import guest

    if fmt not in guest.FORMATS:
        raise ValueError(f"unknown guest format {fmt!r} (one of {', '.join(guest.FORMATS)})")
    out = sys.stdout if stream is None else stream
    if verdict.error is not None and fmt not in ERROR_FORMATS:
        from hvcheck.report.escape import inert

        err = sys.stderr if errors is None else errors
        err.write(f"hvcheck: {inert(verdict.error)}\n")
        err.flush()
        return
    if fmt == "json":
        out.write(guest.render_json(verdict))
    elif fmt == "nagios":
        out.write(guest.render_nagios(verdict, verbose))
    else:
        guest.render_table(verdict, out, verbose)
    out.flush()
