"""The human table (rich). Every string of the verdict is printed through ``inert()`` once, as a
plain ``Text`` (the console has markup off): control characters show as visible escapes."""

from __future__ import annotations

import errno
from typing import IO, TYPE_CHECKING, Any

from hvcheck.model import Status, Verdict
from hvcheck.report.escape import inert

STYLE = {
    Status.OK: "green",
    Status.WARNING: "yellow",
    Status.CRITICAL: "bold red",
    Status.UNKNOWN: "magenta",
    Status.SKIP: "dim",
}


if TYPE_CHECKING:
    from rich.console import Console


def console_to(out: IO[str]) -> Console:
    """A rich Console printing plain text (no markup, highlighting or emoji) to ``out``.

    rich answers a broken pipe itself (``Console.on_broken_pipe``: stdout onto /dev/null, then
    ``SystemExit(1)``, a WARNING to Nagios); here the error is raised again, for the caller's
    output policy (``report.channel``) to decide the exit code."""
    from rich.console import Console

    class _Console(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    kwargs: dict[str, Any] = {"highlight": False, "emoji": False, "markup": False}
    return _Console(file=out, **kwargs)


def render_to(v: Verdict, out: IO[str], verbose: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    console = console_to(out)
    usable = {True: "yes", False: "NO", None: "cannot tell"}[v.kvm_usable]
    head = Text()
    head.append(f"hvcheck {v.status.label}", style=STYLE[v.status])
    head.append(f"  {inert(v.host.hostname)} ({inert(v.host.arch)}, {inert(v.host.os)})")
    if v.snapshot:
        head.append(f"  [snapshot {inert(v.snapshot)}]", style="dim")
    console.print(head)
    console.print(Text(f"KVM usable: {usable} — {inert(v.kvm_usable_reason)}"))
    c = v.counts()
    console.print(
        Text(
            f"Instances: {c['instances']} ({c['kvm_instances']} KVM, "
            f"{c['tcg_instances']} TCG, {c['unknown_instances']} unknown); "
            f"acceleration: {inert(v.acceleration)}; nova virt_type: {inert(v.virt_type or '-')}"
        )
    )
    table = Table(show_lines=False, expand=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Finding")
    for r in v.results:
        if r.status is Status.SKIP and not verbose:
            continue
        finding = Text(inert(r.summary))
        if r.hint and r.status not in (Status.OK, Status.SKIP):
            finding.append("\n→ " + inert(r.hint), style="cyan")
        if verbose and r.evidence:
            finding.append("\nevidence: " + "; ".join(inert(e) for e in r.evidence), style="dim")
        table.add_row(Text(r.status.label, style=STYLE[r.status]), Text(inert(r.id)), finding)
    console.print(table)
    if v.instances:
        it = Table(title="Instances")
        for col in ("PID", "Name", "UUID", "Accel", "Evidence"):
            it.add_column(col)
        for i in v.instances:
            style = {"kvm": "green", "tcg": "bold red"}.get(i.accel, "magenta")
            it.add_row(
                str(i.pid),
                Text(inert(i.name or "-")),
                Text(inert(i.uuid or "-")),
                Text(inert(i.accel), style=style),
                Text(", ".join(inert(e) for e in i.evidence)),
            )
        console.print(it)
    console.print(Text(f"Verdict: {inert(v.summary)}", style=STYLE[v.status]))
