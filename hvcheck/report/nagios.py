"""Monitoring Plugins output: ``HVCHECK <STATE> - <summary> | <perfdata>``.

Follows the Monitoring Plugins development guidelines: a short first line, perfdata as
``'label'=value[UOM];[warn];[crit];[min];[max]``, and no ``|`` in the text. Thresholds are
written in the guidelines' range grammar whatever spelling the operator used (``threshold``).
"""

from __future__ import annotations

from hvcheck.model import Status, Verdict
from hvcheck.report.escape import inert

MAX_SUMMARY = 200


def clean(s: str) -> str:
    """Text for the plugin output: escaped once (``inert``), and no ``|``, which would start
    the perfdata."""
    return inert(s).replace("|", "¦")


def _number(x: float) -> str:
    """A threshold number in the guidelines' characters ``[-0-9.]``: no exponent, no ``+``,
    no trailing zeros (``1e1`` -> ``10``, ``5.50`` -> ``5.5``)."""
    if float(x).is_integer():
        return str(int(x))
    text = format(x, "f").rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def threshold(r: object) -> str:
    """A threshold range as the Monitoring Plugins guidelines write it (``[@]start:end``:
    ``start`` and ``:`` left out when start is 0, ``~`` for negative infinity, an empty
    ``end`` for positive infinity): ``" 1e1 "`` -> ``10``, ``0:5`` -> ``5``, ``10:inf`` ->
    ``10:``, ``@-inf:5.50`` -> ``@~:5.5``. Empty for no threshold or a text that is no
    range (never an invalid perfdata field).

    >>> [threshold(t) for t in ("", "0", " 1e1 ", "0:5", "10:inf", "~:", "@-inf:5.50", "x")]
    ['', '0', '10', '5', '10:', '~:', '@~:5.5', '']
    """
    text = "" if r is None else str(getattr(r, "text", r))
    if not text.strip():
        return ""  # no threshold (the usual run): nothing to parse, no parser to import
    import math

    from hvcheck.nagrange import Range

    try:
        rng = Range.parse(text)
    except ValueError:
        return ""
    at = "@" if rng.inside else ""
    start = "~" if rng.start == -math.inf else _number(rng.start)
    end = "" if rng.end == math.inf else _number(rng.end)
    if start == "0" and end:
        return f"{at}{end}"
    return f"{at}{start}:{end}"


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
        w, cr = threshold(lim.get("warning")), threshold(lim.get("critical"))
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
