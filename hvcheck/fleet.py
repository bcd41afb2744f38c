"""Merge many hosts' ``hvcheck --json`` documents into one fleet view.

Hosts that need attention first: TCG instances or KVM not usable, then by severity, then name.
A file that cannot be read or is not an hvcheck document is a row of its own (UNKNOWN), never
a crash.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Optional

from hvcheck.model import Status

_RANK = {s.label: s.rank for s in Status}


@dataclass(frozen=True)
class HostRow:
    file: str
    hostname: str
    status: str
    kvm_usable: Optional[bool]
    acceleration: str
    virt_type: Optional[str]
    instances: int
    tcg_instances: int
    summary: str
    error: Optional[str] = None

    @property
    def attention(self) -> bool:
        return self.tcg_instances > 0 or self.kvm_usable is False or self.error is not None


def _row(path: str, text: Optional[str], err: Optional[str]) -> HostRow:
    if text is None:
        return HostRow(path, "?", "UNKNOWN", None, "unknown", None, 0, 0, f"unreadable: {err}", err)
    try:
        doc = json.loads(text)
        v = doc["verdict"]
        counts = doc.get("counts") or {}
        inst = doc.get("instances") or []
        tcg = counts.get("tcg_instances")
        if not isinstance(tcg, int):
            tcg = sum(1 for i in inst if isinstance(i, dict) and i.get("accel") == "tcg")
        status = str(doc["status"])
        if status not in _RANK:
            raise ValueError(f"status {status!r}")
        usable = v.get("kvm_usable")
        return HostRow(
            path,
            str(doc.get("host", {}).get("hostname") or "?"),
            status,
            usable if isinstance(usable, bool) else None,
            str(v.get("acceleration", "unknown")),
            v.get("virt_type"),
            len(inst) if isinstance(inst, list) else 0,
            tcg,
            str(v.get("summary", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        msg = f"not an hvcheck JSON document ({type(e).__name__}: {e})"
        return HostRow(path, "?", "UNKNOWN", None, "unknown", None, 0, 0, msg, msg)


def load(paths: list[str], read: Any) -> list[HostRow]:
    """``read(path) -> str`` raises OSError when it cannot; rows sorted attention-first."""
    rows = []
    for p in paths:
        try:
            rows.append(_row(p, read(p), None))
        except (OSError, UnicodeDecodeError) as e:
            rows.append(_row(p, None, str(e)))
    return sorted(rows, key=lambda r: (not r.attention, -_RANK[r.status], r.hostname, r.file))


def worst(rows: list[HostRow]) -> Status:
    return Status.worst([Status[r.status] for r in rows])


def document(rows: list[HostRow]) -> dict[str, Any]:
    by_status = Counter(r.status for r in rows)
    usable = Counter({True: "yes", False: "no", None: "cannot_tell"}[r.kvm_usable] for r in rows)
    accel = Counter(r.acceleration for r in rows)
    st = worst(rows)
    return {
        "schema_version": 1,
        "kind": "fleet",
        "status": st.label,
        "exit_code": st.exit_code,
        "hosts_total": len(rows),
        "counts": {
            "status": dict(by_status),
            "kvm_usable": dict(usable),
            "acceleration": dict(accel),
            "tcg_instances": sum(r.tcg_instances for r in rows),
            "instances": sum(r.instances for r in rows),
        },
        "attention": [r.hostname for r in rows if r.attention],
        "hosts": [{**asdict(r), "attention": r.attention} for r in rows],
    }
