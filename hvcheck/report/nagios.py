"""Monitoring Plugins output: ``HVCHECK <STATE> - <summary> | <perfdata>``.

Follows the Monitoring Plugins development guidelines: a short first line, perfdata as
``'label'=value[UOM];[warn];[crit];[min];[max]``, and no ``|`` in the text.
"""

from __future__ import annotations

from hvcheck.model import Status, Verdict
from hvcheck.report.escape import inert

MAX_SUMMARY = 200


def clean(s: str) -> str:
    """Text for the plugin output: escaped once (``inert``), and no ``|``, which would start
    the perfdata."""
    return inert(s).replace("|", "¦")


def _range(r: object) -> str:
    """A threshold range as perfdata carries it: its own characters only (no ``;``, space)."""
    text = "" if r is None else str(r)
    return "".join(ch for ch in text if ch.isascii() and (ch.isalnum() or ch in "~:@.-+"))


def perfdata(v: Verdict) -> str:
    c = v.counts()
    usable = {True: 1, False: 0}.get(v.kvm_usable)  # type: ignore[arg-type]
    # thresholds come from the checks that judge a count: details["thresholds"][label]
    limits: dict[str, dict[str, str]] = {}
    for r in v.results:
        t = r.details.get("thresholds")
        if isinstance(t, dict):
            limits.update({k: lim for k, lim in t.items() if isinstance(lim, dict)})
    parts = []
    for k in ("instances", "kvm_instances", "tcg_instances", "unknown_instances"):
        lim = limits.get(k, {})
        w, cr = _range(lim.get("warning")), _range(lim.get("critical"))
        # the guidelines' "U": a value that could not be determined (an incomplete list)
        value = "U" if v.instances_unknown is not None else str(c[k])
        parts.append(f"'{k}'={value};{w};{cr};0;")
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
            lines.append(f"{r.status.label} {clean(r.id)}: {clean(r.summary)}{hint}")
    return "\n".join(lines) + "\n"
