"""``hvcheck guest`` output: the GuestVerdict as JSON, a Nagios line or the table.

The JSON document is the host run's envelope (DESIGN.md: schema_version, tool, generated_at,
status, exit_code, host, checks) with a ``guest`` object where the host run has ``verdict``
and ``instances``. Strings are escaped here, once: ``json`` escapes them in the document,
``inert`` in the table and the Nagios line.
"""

from __future__ import annotations

import json
from typing import IO, Any

from hvcheck import __version__
from hvcheck.model import GuestVerdict, Status
from hvcheck.report.escape import inert
from hvcheck.report.json import _result, utc
from hvcheck.report.nagios import MAX_SUMMARY, clean

FORMATS = ("table", "json", "nagios")


def document(v: GuestVerdict) -> dict[str, Any]:
    """The ``hvcheck guest --json`` document of ``v`` (a failed run carries ``error`` and no
    ``source``: nothing was read)."""
    doc: dict[str, Any] = {
        "schema_version": 1,
        "tool": {"name": "hvcheck", "version": __version__},
        "generated_at": utc(v.generated_at),
        "status": v.status.label,
        "exit_code": v.exit_code,
    }
    if v.error is not None:
        doc["error"] = v.error
    doc.update(
        host={
            "hostname": v.host.hostname,
            "arch": v.host.arch,
            "kernel": v.host.kernel,
            "os": v.host.os,
            "virtual": v.host.virtual,
        },
        guest={
            "accel": v.accel,
            "hypervisor": v.hypervisor,
            "nested": v.nested,
            "evidence": list(v.evidence),
            "platform": v.platform,
            "summary": v.summary,
        },
        checks=[_result(r) for r in v.results],
    )
    if v.error is None:
        doc["source"] = {"live": v.snapshot is None, "snapshot": v.snapshot}
    return doc


def render_json(v: GuestVerdict) -> str:
    return json.dumps(document(v), indent=2, ensure_ascii=True, default=str) + "\n"


def render_nagios(v: GuestVerdict, verbose: bool = False) -> str:
    """``HVCHECK <STATE> - <summary> | perfdata``: 0/1 gauges ``kvm``, ``tcg`` and ``nested``
    (absent when not known) and the check counts."""
    summary = clean(v.summary)
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    if v.error is not None:
        return f"HVCHECK {v.status.label} - {summary}\n"
    perf = []
    if v.accel != "unknown":
        perf.append(f"'kvm'={int(v.accel == 'kvm')};;;0;1")
        perf.append(f"'tcg'={int(v.accel == 'tcg')};;;0;1")
    if v.nested is not None:
        perf.append(f"'nested'={int(v.nested)};;;0;1")
    n = {s: sum(1 for r in v.results if r.status is s) for s in Status}
    perf.append(f"'checks_critical'={n[Status.CRITICAL]};;;0;")
    perf.append(f"'checks_warning'={n[Status.WARNING]};;;0;")
    perf.append(f"'checks_unknown'={n[Status.UNKNOWN]};;;0;")
    lines = [f"HVCHECK {v.status.label} - {summary} | {' '.join(perf)}"]
    if verbose:
        for r in v.results:
            if r.status in (Status.OK, Status.SKIP):
                continue
            hint = f" (hint: {clean(r.hint)})" if r.hint else ""
            lines.append(f"{r.status.label} {clean(r.id)}: {clean(r.summary)}{hint}")
    return "\n".join(lines) + "\n"


def render_table(v: GuestVerdict, out: IO[str], verbose: bool = False) -> None:
    """The human view: the headline, one row per check (with its hint, OK ones included:
    how to offer nested virtualization is worth reading on an OK run), the verdict."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from hvcheck.report.table import STYLE

    console = Console(file=out, highlight=False, emoji=False, markup=False)
    head = Text()
    head.append(f"hvcheck guest {v.status.label}", style=STYLE[v.status])
    where = ", ".join(inert(x) for x in (v.host.arch, v.host.os) if x) or "-"
    head.append(f"  {inert(v.host.hostname) or '-'} ({where})")
    if v.snapshot:
        head.append(f"  [snapshot {inert(v.snapshot)}]", style="dim")
    console.print(head)
    hv = inert(v.hypervisor or "-")
    platform = f"; platform: {inert(v.platform)}" if v.platform else ""
    console.print(Text(f"Acceleration: {inert(v.accel)} (hypervisor: {hv}{platform})"))
    nested = {True: "offered", False: "not offered", None: "cannot tell"}[v.nested]
    console.print(Text(f"Nested virtualization: {nested}"))
    console.print(Text(f"Evidence: {', '.join(inert(e) for e in v.evidence) or '-'}"))
    table = Table(show_lines=False, expand=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Finding")
    for r in v.results:
        finding = Text(inert(r.summary))
        if r.hint:
            finding.append("\n→ " + inert(r.hint), style="cyan")
        if verbose and r.evidence:
            finding.append("\nevidence: " + "; ".join(inert(e) for e in r.evidence), style="dim")
        table.add_row(Text(r.status.label, style=STYLE[r.status]), Text(inert(r.id)), finding)
    console.print(table)
    console.print(Text(f"Verdict: {inert(v.summary)}", style=STYLE[v.status]))
