"""Monitoring Plugins output: ``HVCHECK <STATE> - <summary> | <perfdata>``.

Follows the Monitoring Plugins development guidelines: a short first line, perfdata as
``'label'=value[UOM];[warn];[crit];[min];[max]``, and no ``|`` in the text.
"""

from __future__ import annotations

from hvcheck.model import Status, Verdict
from hvcheck.text import inert

MAX_SUMMARY = 200


def clean(s: str) -> str:
    return inert(s).replace("|", "¦").replace("\n", " ")


def perfdata(v: Verdict) -> str:
    c = v.counts()
    usable = {True: 1, False: 0}.get(v.kvm_usable)  # type: ignore[arg-type]
    inst = next((r for r in v.results if r.id == "instances.accel"), None)
    det = inst.details if inst else {}
    tw = det.get("warning_range") or ""
    tc = det.get("critical_range") or ("0" if det.get("virt_type") == "kvm" else "")
    items = [
        ("instances", c["instances"], "", ""),
        ("kvm_instances", c["kvm_instances"], "", ""),
        ("tcg_instances", c["tcg_instances"], tw, tc),
        ("unknown_instances", c["unknown_instances"], "", ""),
    ]
    parts = [f"'{k}'={val};{w};{cr};0;" for k, val, w, cr in items]
    if usable is not None:
        parts.append(f"'kvm_usable'={usable};;;0;1")
    n = {s: sum(1 for r in v.results if r.status is s) for s in Status}
    parts.append(f"'checks_critical'={n[Status.CRITICAL]};;;0;")
    parts.append(f"'checks_warning'={n[Status.WARNING]};;;0;")
    parts.append(f"'checks_unknown'={n[Status.UNKNOWN]};;;0;")
    return " ".join(parts)


def render(v: Verdict, verbose: bool = False) -> str:
    summary = clean(v.summary)
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    # a run that reached no verdict (Verdict.failed) measured nothing: no perfdata
    perf = "" if v.error is not None else f" | {perfdata(v)}"
    lines = [f"HVCHECK {v.status.label} - {summary}{perf}"]
    if verbose:
        for r in v.results:
            if r.status in (Status.OK, Status.SKIP):
                continue
            hint = f" (hint: {clean(r.hint)})" if r.hint else ""
            lines.append(f"{r.status.label} {r.id}: {clean(r.summary)}{hint}")
    return "\n".join(lines) + "\n"
