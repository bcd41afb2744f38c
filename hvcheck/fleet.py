"""Merge many hosts' ``hvcheck --json`` documents into one fleet view (``hvcheck report``).

Reads the files the operator names (``read_document``: regular files only, opened without
blocking, at most 16 MiB each). Each file is one row, whatever it holds:

- a file that cannot be read, is not a regular file (a FIFO, a directory, a device), is not
  JSON or is not a valid hvcheck document (``problems``: schema_version 1, the tool's name, a
  known ``status`` whose ``exit_code`` matches it, counts that are integers >= 0, the verdict,
  host, checks and instances of the right types) is a row of its own, UNKNOWN, with the reason;
- a document older than ``max_age`` seconds (by its ``generated_at``: when the evidence was
  read) or without one is UNKNOWN too: it says what a host *was*, not what it is; the status
  it reported is kept in ``reported_status``;
- a host that appears in more than one file is flagged in each of its rows (``flags``) and
  listed in the document's ``duplicates``.

Hosts that need attention first: TCG instances, KVM not usable, a flag or an error; then by
severity, then name.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from hvcheck.model import Status

_RANK = {s.label: s.rank for s in Status}
_STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")  # a document's own status (never SKIP)
_EXIT = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
MAX_DOCUMENT = 16 * 1024 * 1024
MAX_DEPTH = 64  # an hvcheck document nests 6 levels (checks[].details.thresholds...)
DEFAULT_MAX_AGE = 3600.0
_COUNTS = ("instances", "kvm_instances", "tcg_instances", "unknown_instances")
_FUTURE_SLACK = 300.0  # clocks of a fleet disagree a little


@dataclass(frozen=True)
class HostRow:
    file: str
    hostname: str
    status: str  # the row's status: the document's, or UNKNOWN (unreadable, invalid, stale)
    kvm_usable: Optional[bool]
    acceleration: str
    virt_type: Optional[str]
    instances: int
    tcg_instances: int
    summary: str
    error: Optional[str] = None
    generated_at: Optional[str] = None
    age_seconds: Optional[float] = None
    reported_status: Optional[str] = None  # what the document itself said
    flags: tuple[str, ...] = ()  # "duplicate host ...", "stale ...", "no generated_at"

    @property
    def attention(self) -> bool:
        return (
            self.tcg_instances > 0
            or self.kvm_usable is False
            or self.error is not None
            or bool(self.flags)
        )


def read_document(path: str, limit: int = MAX_DOCUMENT) -> str:
    """The text of ``path`` (UTF-8). Raises OSError unless it is a regular file (opened
    ``O_NONBLOCK``, so a FIFO never blocks the report) of at most ``limit`` bytes;
    UnicodeDecodeError when it is not UTF-8."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise OSError(errno.EINVAL, f"{kind}; only regular files are read", path)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit // 2**20} MiB", path)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8")


def _depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting of a JSON text, without parsing it (Python's json
    recurses once per level): ``hvcheck.host.snapshot.json_depth``."""
    from hvcheck.host.snapshot import json_depth

    return json_depth(text.encode("utf-8", "surrogatepass"))


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def problems(doc: Any) -> list[str]:
    """What makes ``doc`` not a valid hvcheck document (contract schema_version 1); empty
    when it is one."""
    if not isinstance(doc, dict):
        return [f"a JSON {type(doc).__name__}, not an object"]
    out: list[str] = []
    if doc.get("schema_version") != 1 or isinstance(doc.get("schema_version"), bool):
        out.append(f"schema_version {doc.get('schema_version')!r}, not 1")
    tool = doc.get("tool")
    if not isinstance(tool, dict) or tool.get("name") != "hvcheck":
        out.append("not written by hvcheck (tool.name)")
    status = doc.get("status")
    if status not in _STATES:
        out.append(f"status {status!r} is none of {', '.join(_STATES)}")
    code = doc.get("exit_code")
    if not (isinstance(code, int) and not isinstance(code, bool)) or (
        status in _EXIT and code != _EXIT[status]
    ):
        out.append(f"exit_code {code!r} does not match status {status!r}")
    for key in ("host", "verdict"):
        if not isinstance(doc.get(key), dict):
            out.append(f"{key} is not an object")
    v: dict[str, Any] = doc["verdict"] if isinstance(doc.get("verdict"), dict) else {}
    if "kvm_usable" in v and v["kvm_usable"] not in (True, False, None):
        out.append("verdict.kvm_usable is not true, false or null")
    for key in ("acceleration", "summary"):
        if key in v and not isinstance(v[key], str):
            out.append(f"verdict.{key} is not a string")
    if v.get("virt_type") is not None and not isinstance(v.get("virt_type"), str):
        out.append("verdict.virt_type is not a string or null")
    host: dict[str, Any] = doc["host"] if isinstance(doc.get("host"), dict) else {}
    if "hostname" in host and not isinstance(host["hostname"], str):
        out.append("host.hostname is not a string")
    for key in ("checks", "instances"):
        if not isinstance(doc.get(key), list):
            out.append(f"{key} is not a list")
    checks: list[Any] = doc["checks"] if isinstance(doc.get("checks"), list) else []
    bad = [c for c in checks if not isinstance(c, dict) or c.get("status") not in _RANK]
    if bad:
        out.append(f"{len(bad)} check(s) without a valid status")
    inst: list[Any] = doc["instances"] if isinstance(doc.get("instances"), list) else []
    if any(not isinstance(i, dict) for i in inst):
        out.append("an instance is not an object")
    counts = doc.get("counts")
    if counts is not None:
        if not isinstance(counts, dict):
            out.append("counts is not an object")
        else:
            neg = [k for k in _COUNTS if k in counts and not _count(counts[k])]
            if neg:
                out.append(f"counts not integers >= 0: {', '.join(map(str, neg))}")
            elif _count(counts.get("instances")) and inst and counts["instances"] != len(inst):
                out.append(f"counts.instances {counts['instances']} but {len(inst)} listed")
    if "generated_at" in doc and _timestamp(doc["generated_at"]) is None:
        out.append(f"generated_at {str(doc['generated_at'])[:40]!r} is not an ISO 8601 time")
    return out


def _timestamp(v: Any) -> Optional[float]:
    if not isinstance(v, str) or len(v) > 64:
        return None
    try:
        t = datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp()


def _unknown(path: str, msg: str) -> HostRow:
    return HostRow(path, "?", "UNKNOWN", None, "unknown", None, 0, 0, msg, msg)


def _age(seconds: float) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= n:
            return f"{seconds / n:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"


def _row(path: str, text: Optional[str], err: Optional[str], now: float, max_age: float) -> HostRow:
    if text is None:
        return _unknown(path, f"unreadable: {err}")
    if _depth(text) > MAX_DEPTH:
        return _unknown(path, f"not an hvcheck JSON document (nested deeper than {MAX_DEPTH})")
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        return _unknown(path, f"not JSON ({e})")
    bad = problems(doc)
    if bad:
        return _unknown(path, "not a valid hvcheck document: " + "; ".join(bad))
    v = doc["verdict"]
    counts = doc.get("counts") or {}
    inst = doc["instances"]
    given = counts.get("tcg_instances")
    tcg = (
        given
        if isinstance(given, int) and _count(given)
        else sum(1 for i in inst if i.get("accel") == "tcg")
    )
    usable = v.get("kvm_usable")
    row = HostRow(
        path,
        str(doc["host"].get("hostname") or "?"),
        doc["status"],
        usable if isinstance(usable, bool) else None,
        str(v.get("acceleration", "unknown")),
        v.get("virt_type"),
        len(inst),
        tcg,
        str(v.get("summary", "")),
        generated_at=doc.get("generated_at"),
        reported_status=doc["status"],
    )
    t = _timestamp(doc.get("generated_at"))
    if max_age <= 0:
        return row if t is None else replace(row, age_seconds=round(now - t, 3))
    if t is None:
        flag = "no generated_at: how old it is cannot be told"
        return replace(row, status="UNKNOWN", flags=(flag,), summary=f"{flag}; {row.summary}")
    age = now - t
    row = replace(row, age_seconds=round(age, 3))
    if age > max_age:
        flag = f"stale: evidence read {_age(age)} ago, more than --max-age {_age(max_age)}"
        return replace(
            row,
            status="UNKNOWN",
            flags=(flag,),
            summary=f"{flag}; it said {row.reported_status}: {row.summary}",
        )
    if age < -_FUTURE_SLACK:
        flag = f"generated_at is {_age(-age)} in the future (a wrong clock)"
        return replace(row, status="UNKNOWN", flags=(flag,), summary=f"{flag}; {row.summary}")
    return row


def load(
    paths: list[str],
    read: Callable[[str], str] = read_document,
    now: Optional[float] = None,
    max_age: float = DEFAULT_MAX_AGE,
) -> list[HostRow]:
    """One row per path; ``read(path) -> str`` raises OSError (or UnicodeDecodeError) when it
    cannot. ``max_age`` seconds (0: no limit) against ``now`` (default: the clock). Rows
    sorted attention-first."""
    when = time.time() if now is None else now
    rows = []
    for p in paths:
        try:
            rows.append(_row(p, read(p), None, when, max_age))
        except (OSError, UnicodeDecodeError) as e:
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            rows.append(_row(p, None, msg, when, max_age))
    by_host: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r.error is None and r.hostname != "?":
            by_host[r.hostname].append(i)
    for idx in by_host.values():
        if len(idx) < 2:
            continue
        for i in idx:
            others = ", ".join(rows[j].file for j in idx if j != i)
            rows[i] = replace(rows[i], flags=(*rows[i].flags, f"duplicate host (also in {others})"))
    return sorted(rows, key=lambda r: (not r.attention, -_RANK[r.status], r.hostname, r.file))


def worst(rows: list[HostRow]) -> Status:
    return Status.worst([Status[r.status] for r in rows])


def document(rows: list[HostRow], max_age: Optional[float] = None) -> dict[str, Any]:
    by_status = Counter(r.status for r in rows)
    usable = Counter({True: "yes", False: "no", None: "cannot_tell"}[r.kvm_usable] for r in rows)
    accel = Counter(r.acceleration for r in rows)
    st = worst(rows)
    dups: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if any(f.startswith("duplicate host") for f in r.flags):
            dups[r.hostname].append(r.file)
    doc: dict[str, Any] = {
        "schema_version": 1,
        "kind": "fleet",
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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
        "duplicates": {h: sorted(files) for h, files in sorted(dups.items())},
        "stale": [r.file for r in rows if any(f.startswith("stale") for f in r.flags)],
        "invalid": [r.file for r in rows if r.error is not None],
        "hosts": [{**asdict(r), "flags": list(r.flags), "attention": r.attention} for r in rows],
    }
    if max_age is not None:
        doc["max_age_seconds"] = max_age
    return doc
