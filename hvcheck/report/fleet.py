"""Print the fleet view (table or JSON).

The hosts' documents are other runs' output, read back raw: the table prints each of their
strings through ``inert`` once; JSON is escaped by ``json`` (ASCII only).
"""

from __future__ import annotations

import json
from typing import IO, Optional

from hvcheck.fleet import HostRow, document
from hvcheck.model import Status
from hvcheck.report.escape import inert
from hvcheck.report.table import STYLE, console_to


def render_json(rows: list[HostRow], max_age: Optional[float] = None) -> str:
    return json.dumps(document(rows, max_age), indent=2, ensure_ascii=True) + "\n"


def render_table(rows: list[HostRow], out: IO[str]) -> None:
    from rich.table import Table
    from rich.text import Text

    doc = document(rows)
    console = console_to(out)
    c = doc["counts"]
    console.print(
        Text(
            f"Fleet: {doc['hosts_total']} host(s); status "
            + ", ".join(f"{k} {v}" for k, v in sorted(c["status"].items()))
            + f"; KVM usable: {c['kvm_usable'].get('yes', 0)} yes, "
            f"{c['kvm_usable'].get('no', 0)} no, "
            f"{c['kvm_usable'].get('cannot_tell', 0)} cannot tell; "
            f"{c['tcg_instances']} TCG of {c['instances']} instances"
        )
    )
    for what, key in (("duplicate host(s)", "duplicates"), ("stale", "stale")):
        if doc[key]:
            console.print(Text(f"{what}: {len(doc[key])}", style="yellow"))
    t = Table()
    for col in ("Host", "Status", "KVM usable", "Accel", "virt_type", "TCG", "Summary", "File"):
        t.add_column(col)
    for r in rows:
        usable = {True: "yes", False: "NO", None: "?"}[r.kvm_usable]
        summary = Text(inert(r.summary))
        for f in r.flags:
            if not r.summary.startswith(f):  # a stale row's summary starts with its flag
                summary.append("\n! " + inert(f), style="yellow")
        t.add_row(
            Text(inert(r.hostname)),
            Text(inert(r.status), style=STYLE[Status[r.status]]),
            usable,
            inert(r.acceleration),
            inert(r.virt_type or "-"),
            Text(str(r.tcg_instances), style="bold red" if r.tcg_instances else ""),
            summary,
            Text(inert(r.file)),
        )
    console.print(t)
