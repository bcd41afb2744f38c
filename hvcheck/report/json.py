"""The JSON document (contract schema_version 1).

Strings go in raw and ``json`` escapes them (``ensure_ascii``: control characters and non-ASCII
as ``\\uXXXX``), so a hostile name round-trips exactly and prints no control character.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from hvcheck import __version__
from hvcheck.model import Result, Verdict


def _result(r: Result) -> dict[str, Any]:
    return {
        "id": r.id,
        "title": r.title,
        "status": r.status.label,
        "summary": r.summary,
        "hint": r.hint,
        "code": r.code,
        "evidence": list(r.evidence),
        "details": r.details,
    }


def utc(t: Optional[float]) -> str:
    """``t`` (seconds since the epoch; now when None) as the contract's ``generated_at``:
    ISO 8601 UTC to the second, ``2026-11-30T00:00:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def document(v: Verdict) -> dict[str, Any]:
    """The document of ``v``. A run that reached no verdict (``Verdict.failed``) carries its
    reason in ``error`` and no ``counts`` or ``source``: nothing was counted or read. A run
    whose instance list may be incomplete says why in ``verdict.instances_unknown`` and has no
    ``counts``: never a count of 0 for instances it could not see."""
    head: dict[str, Any] = {
        "schema_version": 1,
        "tool": {"name": "hvcheck", "version": __version__},
        # when the evidence was read: the run on the live host, collect's time for a
        # snapshot; a run that read nothing (Verdict.failed) says when it failed
        "generated_at": utc(v.generated_at),
        "status": v.status.label,
        "exit_code": v.exit_code,
    }
    if v.error is not None:
        head["error"] = v.error
    doc = {
        **head,
        "host": {
            "hostname": v.host.hostname,
            "arch": v.host.arch,
            "kernel": v.host.kernel,
            "os": v.host.os,
            "virtual": v.host.virtual,
        },
        "verdict": {
            "kvm_usable": v.kvm_usable,
            "kvm_usable_reason": v.kvm_usable_reason,
            "acceleration": v.acceleration,
            "virt_type": v.virt_type,
            "summary": v.summary,
        },
        "checks": [_result(r) for r in v.results],
        "instances": [
            {
                "pid": i.pid,
                "name": i.name,
                "uuid": i.uuid,
                "accel": i.accel,
                "evidence": list(i.evidence),
                **i.details,
            }
            for i in v.instances
        ],
    }
    if v.instances_unknown is not None:
        doc["verdict"]["instances_unknown"] = v.instances_unknown
    if v.error is None:
        if v.instances_unknown is None:  # a list that may lack instances counts nothing
            doc["counts"] = v.counts()
        doc["source"] = {"live": v.snapshot is None, "snapshot": v.snapshot}
        doc["deployment"] = v.deployment
    return doc


def render(v: Verdict, verbose: bool = False) -> str:
    # ensure_ascii: control characters and non-ASCII tenant strings are \u-escaped
    return json.dumps(document(v), indent=2, ensure_ascii=True, default=str) + "\n"
