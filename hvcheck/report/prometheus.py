"""node_exporter textfile-collector format (Prometheus text exposition format 0.0.4).

Every label value is made inert once (``inert``: no control character reaches a scrape), then
escaped as the format requires (backslash, double quote, newline).

Each series is unique (a scrape with two samples of the same series is rejected whole):
``hvcheck_instance_accel`` is labelled by the instance's name and uuid, and also by its
``pid`` where the name alone would not tell instances apart (a name two instances share, or
no name at all).
"""

from __future__ import annotations

import time
from collections import Counter

from hvcheck.model import Status, Verdict
from hvcheck.report.escape import inert


def _label(value: object) -> str:
    s = inert("" if value is None else value)
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(v: Verdict, verbose: bool = False) -> str:
    out: list[str] = []

    def metric(name: str, help_: str, kind: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = str(int(value)) if float(value).is_integer() else repr(float(value))
            out.append(f"{name}{labels} {text}")

    metric(
        "hvcheck_status",
        "Overall state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        "gauge",
        [("", v.exit_code)],
    )
    metric(
        "hvcheck_check_status",
        "State of each check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, -1 SKIP.",
        "gauge",
        [
            (f'{{check="{_label(r.id)}"}}', -1 if r.status is Status.SKIP else r.status.exit_code)
            for r in v.results
        ],
    )
    usable = {True: 1, False: 0, None: -1}[v.kvm_usable]
    metric(
        "hvcheck_kvm_usable",
        "Can a guest get KVM on this host: 1 yes, 0 no, -1 cannot tell.",
        "gauge",
        [("", usable)],
    )
    c = v.counts()
    metric(
        "hvcheck_instances",
        "QEMU instances by proven accelerator.",
        "gauge",
        # no sample when the list may be incomplete: an absent series, never a false 0
        []
        if v.instances_unknown is not None
        else [(f'{{accel="{a}"}}', c[f"{a}_instances"]) for a in ("kvm", "tcg", "unknown")],
    )
    names = Counter(i.name for i in v.instances)

    def instance(i: object) -> str:
        name, uuid, accel, pid = (getattr(i, k) for k in ("name", "uuid", "accel", "pid"))
        labels = f'name="{_label(name)}",uuid="{_label(uuid)}",accel="{_label(accel)}"'
        if not name or names[name] > 1:
            labels += f',pid="{int(pid)}"'
        return "{" + labels + "}"

    metric(
        "hvcheck_instance_accel",
        "One series per QEMU instance; the accel label is what it runs with (value always 1); "
        "pid where names repeat or are missing.",
        "gauge",
        [(instance(i), 1) for i in v.instances],
    )
    metric(
        "hvcheck_last_run_timestamp_seconds",
        "When this hvcheck run finished.",
        "gauge",
        [("", round(time.time(), 3))],
    )
    return "\n".join(out) + "\n"
