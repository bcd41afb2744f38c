"""Run the checks under one deadline and assemble the ``Verdict``.

Checks come from the ``hvcheck.checks`` entry-point group (the built-ins are registered there
too). A plugin that fails to import, raises, or hangs becomes one UNKNOWN result and never hides
the other checks (nagiosplugin's rule). The checks and the verdict's own facts run at once
under one deadline (``hvcheck.deadline``); whatever has not finished by then is reported UNKNOWN
and abandoned, so the run ends within ``--timeout``.
"""

import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Callable, NamedTuple, Optional

from hvcheck import facts
from hvcheck.check import Check, Context
from hvcheck.deadline import call_until, run_until
from hvcheck.host import Host, ProcessGone
from hvcheck.model import (
    DEFAULT_TIMEOUT,
    GuestVerdict,
    HostFacts,
    Instance,
    Result,
    Status,
    Verdict,
)

GROUP = "hvcheck.checks"


class LoadedCheck(NamedTuple):
    check: Optional[Check]
    id: str
    title: str
    reads: tuple[str, ...]
    source: str  # entry point "name = value"
    error: Optional[str] = None  # why it could not be loaded


def _entry_points() -> list[Any]:
    """The ``hvcheck.checks`` entry points of the installed distributions
    (``importlib.metadata``; one per name and value, as Python 3.10+ de-duplicates
    distributions found twice on ``sys.path``)."""
    import importlib.metadata as md
    import sys

    if sys.version_info >= (3, 10):
        return list(md.entry_points(group=GROUP))
    found = md.entry_points().get(GROUP, ())  # Python 3.9: a dict of groups
    return list({(e.name, e.value): e for e in found}.values())


def _as_checks(obj: Any) -> list[Check]:
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    out: list[Check] = []
    for it in items:
        inst = it() if isinstance(it, type) else it
        if not isinstance(inst, Check) and not (hasattr(inst, "run") and hasattr(inst, "id")):
            raise TypeError(f"{it!r} is not an hvcheck Check")
        if not isinstance(getattr(inst, "id", None), str) or not inst.id:
            raise TypeError(f"{it!r} has no check id")
        out.append(inst)
    return out


GUEST_SCOPE = "guest"  # checks whose id is under "guest." run in `hvcheck guest` only


def in_scope(check_id: str, scope: str) -> bool:
    """Whether a check of id ``check_id`` runs in ``scope``: "host" (the normal run: every
    check but those under ``guest.``), "guest" (``hvcheck guest``: those only) or "all"."""
    guest = check_id == GUEST_SCOPE or check_id.startswith(GUEST_SCOPE + ".")
    return scope == "all" or guest == (scope == GUEST_SCOPE)


def load_checks(scope: str = "host") -> list[LoadedCheck]:
    """The checks of ``scope`` (``in_scope``): built-ins first (in their declared order), then
    plugins sorted by entry-point name."""
    return [lc for lc in _load_all() if in_scope(lc.id, scope)]


def _load_all() -> list[LoadedCheck]:
    eps = sorted(_entry_points(), key=lambda e: (e.name != "builtin", e.name))
    loaded: list[LoadedCheck] = []
    seen: set[str] = set()
    for ep in eps:
        source = f"{ep.name} = {ep.value}"
        try:
            checks = _as_checks(ep.load())
        except BaseException as e:
            if isinstance(e, (KeyboardInterrupt, SystemExit)) and not isinstance(e, SystemExit):
                raise
            loaded.append(
                LoadedCheck(
                    None,
                    f"plugin.{ep.name}",
                    f"plugin {ep.name}",
                    (),
                    source,
                    f"failed to load {source}: {type(e).__name__}: {e}",
                )
            )
            continue
        for c in checks:
            if c.id in seen:
                continue
            seen.add(c.id)
            loaded.append(
                LoadedCheck(
                    c,
                    c.id,
                    getattr(c, "title", "") or c.id,
                    tuple(getattr(c, "reads", ()) or ()),
                    source,
                )
            )
    if not any(lc.source.startswith("builtin ") for lc in loaded):
        # Running from a source tree without installed metadata: fall back to the tuple itself.
        from hvcheck.checks import BUILTIN

        for c in _as_checks(BUILTIN):
            if c.id not in seen:
                loaded.insert(0, LoadedCheck(c, c.id, c.title, c.reads, "builtin (direct)"))
    return loaded


def selected(check_id: str, only: Sequence[str], skip: Sequence[str]) -> bool:
    def match(pat: str) -> bool:
        return check_id == pat or check_id.startswith(pat.rstrip(".") + ".")

    if only and not any(match(p) for p in only):
        return False
    return not any(match(p) for p in skip)


def selectors(checks: Sequence[LoadedCheck]) -> list[str]:
    """Every ``--only``/``--skip`` id that selects one of ``checks``: each id and each of its
    dotted prefixes ("kvm" for kvm.device), sorted."""
    out: set[str] = set()
    for lc in checks:
        parts = lc.id.split(".")
        out.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return sorted(out)


def unmatched(patterns: Sequence[str], checks: Sequence[LoadedCheck]) -> dict[str, list[str]]:
    """The ``patterns`` that select none of ``checks`` (``selected``'s rule), each with the
    nearest selectors (difflib.get_close_matches, best first; empty when none is near)."""
    bad = [p for p in patterns if not any(selected(lc.id, (p,), ()) for lc in checks)]
    if not bad:
        return {}
    from difflib import get_close_matches  # only for a usage error

    known = selectors(checks)
    # ids are lower case: "KVM" is near "kvm" only once lowered
    return {
        p: get_close_matches(p, known, n=3) or get_close_matches(p.lower(), known, n=3) for p in bad
    }


def _error_result(lc: LoadedCheck, e: BaseException) -> Result:
    if isinstance(e, PermissionError):
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        why = e.strerror or "permission denied"
        if "snapshot" in why:  # the snapshot host refused a path (symlink escaping it, ...)
            return Result(
                lc.id,
                Status.UNKNOWN,
                f"refused to read{where}: {why}",
                hint="re-collect the snapshot with `hvcheck collect`",
                code="snapshot-refused",
                title=lc.title,
            )
        return Result(
            lc.id,
            Status.UNKNOWN,
            f"permission denied reading{where}: this check needs more privileges",
            hint="re-run with sudo",
            code="permission-denied",
            title=lc.title,
        )
    if isinstance(e, ProcessGone):
        return Result(
            lc.id,
            Status.UNKNOWN,
            f"process {e} exited while being read; run again",
            code="process-gone",
            title=lc.title,
        )
    if isinstance(e, OSError) and e.strerror:
        # a file that could not be read (a FIFO or a link loop where a snapshot should hold a
        # file, an I/O error): what it is and why, not a failure of hvcheck's to report
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        snapshot = "snapshot" in e.strerror
        return Result(
            lc.id,
            Status.UNKNOWN,
            f"{'refused to read' if snapshot else 'cannot read'}{where}: {e.strerror}",
            hint="re-collect the snapshot with `hvcheck collect`"
            if snapshot
            else "check that file: hvcheck reads it as it is (a snapshot: collect it again)"
            if where
            else None,
            code="snapshot-refused" if snapshot else "unreadable",
            title=lc.title,
        )
    import traceback

    tb = traceback.extract_tb(e.__traceback__)
    where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
    return Result(
        lc.id,
        Status.UNKNOWN,
        f"check failed: {type(e).__name__}: {e}{where}",
        hint="please report this with `hvcheck collect` output",
        code="check-error",
        title=lc.title,
    )


def run(
    host: Host,
    checks: Sequence[LoadedCheck],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    options: Optional[dict[str, Any]] = None,
) -> Verdict:
    read_at = _read_at(host)
    ctx, deadline = _context(host, timeout, options)
    chosen = [lc for lc in checks if selected(lc.id, only, skip)]
    # The verdict's own facts run alongside the checks, under the same deadline; each apart,
    # so that one that hangs (a config file on a dead mount) costs only what depends on it.
    verdict_work: dict[str, Callable[[], dict[str, Any]]] = {
        "_verdict": partial(_verdict_facts, ctx),
        "_verdict_instances": partial(_verdict_instances, ctx),
        "_verdict_deployment": partial(_verdict_deployment, ctx),
        "_verdict_virt_type": partial(_verdict_virt_type, ctx),
    }
    results, vf = _run_checks(ctx, chosen, deadline, timeout, verdict_work, _verdict_missing)
    return _assemble(ctx, results, vf, deadline)._replace(generated_at=read_at)


def _read_at(host: Host) -> float:
    """When the evidence was read (seconds since the epoch): now on the live host, a
    snapshot's ``taken_at`` (now when it does not say)."""
    return host.taken_at() or time.time()


def _context(
    host: Host, timeout: float, options: Optional[dict[str, Any]]
) -> tuple[Context, float]:
    start = time.monotonic()
    # Leave a margin for assembling and printing the report within the caller's timeout.
    deadline = start + max(0.1, timeout - min(0.5, timeout * 0.1))
    ctx = Context(host, options)
    ctx.deadline = deadline
    return ctx, deadline


def _run_checks(
    ctx: Context,
    chosen: Sequence[LoadedCheck],
    deadline: float,
    timeout: float,
    facts_work: Mapping[str, Callable[[], dict[str, Any]]],
    on_missing: Optional[Callable[[str, str], dict[str, Any]]] = None,
) -> tuple[list[Result], dict[str, Any]]:
    """Run ``chosen`` and ``facts_work`` (the verdict's own facts, each item apart: its key
    -> what computes a dict of facts) at once under ``deadline``: one Result per check
    (UNKNOWN for a check that failed to load, raised, returned something else or did not
    finish), and the facts merged (an item that failed or did not finish adds nothing, or
    what ``on_missing(key, why)`` says of it)."""
    # checks that wait outside (Check.waits) start first: their wait overlaps the rest
    waiting = [lc for lc in chosen if lc.check is not None and getattr(lc.check, "waits", False)]
    ids = {lc.id for lc in waiting}
    work: dict[str, Callable[[], Any]] = {
        lc.id: partial(lc.check.run, ctx)
        for lc in [*waiting, *(lc for lc in chosen if lc.id not in ids)]
        if lc.check is not None
    }
    work.update(facts_work)
    done = run_until(work, deadline)
    results: list[Result] = []
    for lc in chosen:
        if lc.error is not None:
            results.append(
                Result(
                    lc.id,
                    Status.UNKNOWN,
                    lc.error,
                    hint="reinstall or remove the plugin",
                    code="plugin-load-error",
                    title=lc.title,
                )
            )
            continue
        got = done.get(lc.id)
        if got is None:
            results.append(
                Result(
                    lc.id,
                    Status.UNKNOWN,
                    f"did not finish within the {timeout:g} s timeout",
                    hint="raise -t/--timeout, or find what hangs "
                    "(a hung mount, libvirt socket or plugin)",
                    code="timeout",
                    title=lc.title,
                )
            )
        elif got.error is not None:
            results.append(_error_result(lc, got.error))
        elif not isinstance(got.value, Result):
            results.append(
                Result(
                    lc.id,
                    Status.UNKNOWN,
                    f"check returned {type(got.value).__name__}, not a Result",
                    code="check-error",
                    title=lc.title,
                )
            )
        else:
            r: Result = got.value
            results.append(r if r.id == lc.id and r.title else r.with_id(lc.id, lc.title))
    vfacts: dict[str, Any] = {}
    for key in facts_work:
        vf = done.get(key)
        if vf is not None and vf.error is None and isinstance(vf.value, dict):
            vfacts.update(vf.value)
        elif on_missing is not None:
            why = "not read within the timeout" if vf is None else "could not be read"
            vfacts.update(on_missing(key, why))
    return results, vfacts


def _verdict_missing(key: str, why: str) -> dict[str, Any]:
    """What a verdict item that failed or did not finish in time leaves: instances not read
    are not "none" (never a count of 0 for what was not seen)."""
    if key == "_verdict_instances":
        return {"instances_unknown": f"the QEMU processes were {why}"}
    return {}


def _why(e: BaseException) -> str:
    """An exception as a reason in the verdict: an OSError's own words and path (a refused
    snapshot record, a permission), anything else with its type (an internal failure)."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return f"{type(e).__name__}: {e}"


def _verdict_facts(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["kvm"] = facts.kvm_state(ctx)
    except Exception as e:
        out["kvm_error"] = _why(e)
    try:
        out["virtual"] = facts.virt_env(ctx).virtual
    except Exception:
        out["virtual"] = None
    try:
        i = facts.os_info(ctx)
        out["os"] = i.name or i.id
    except Exception:
        out["os"] = ""
    return out


def _verdict_instances(ctx: Context) -> dict[str, Any]:
    """The instances and ``verdict.acceleration``; ``instances_unknown`` when the process
    table may lack some (:attr:`hvcheck.processes.Discovery.incomplete`)."""
    out: dict[str, Any] = {}
    try:
        from hvcheck.processes import acceleration, discovery, qemu_processes

        procs = qemu_processes(ctx)
        incomplete = discovery(ctx).incomplete
        try:
            # does each run the binary now installed? (true: a replaced one; null: unknown)
            stale = {pid: b.stale for pid, b in facts.qemu_binaries(ctx).items()}
        except Exception:  # the binary check reports the failure itself
            stale = {}
        out["instances"] = tuple(
            Instance(
                pid=q.pid,
                name=q.name,
                uuid=q.uuid,
                accel=q.decision.accel,
                evidence=q.decision.kinds,
                details={**q.to_json(), "binary_stale": stale.get(q.pid)},
            )
            for q in procs
        )
        out["acceleration"] = acceleration(procs, incomplete)
        if incomplete:
            out["instances_unknown"] = incomplete
    except Exception as e:  # the instances check reports the failure itself
        out["acceleration"] = "unknown"
        out["instances_unknown"] = f"the QEMU processes could not be read ({type(e).__name__})"
    return out


def _verdict_deployment(ctx: Context) -> dict[str, Any]:
    try:
        return {"deployment": facts.deployment(ctx).to_json()}
    except Exception:  # the checks that use it report their own failures
        return {"deployment": None}


def _verdict_virt_type(ctx: Context) -> dict[str, Any]:
    try:
        from hvcheck.novaconfig import nova_conf

        conf = nova_conf(ctx)
        # null when nova-compute will not start (or its value cannot be known)
        return {"virt_type": conf.effective_virt_type if conf is not None else None}
    except Exception:  # nova.virt_type reports it
        return {"virt_type": None}


def _assemble(ctx: Context, results: list[Result], vf: dict[str, Any], deadline: float) -> Verdict:
    host = ctx.host
    u = call_until(host.uname, deadline, None)
    hf = HostFacts(
        hostname=u.hostname if u else "",
        arch=u.arch if u else "",
        kernel=u.kernel if u else "",
        os=str(vf.get("os", "")),
        virtual=vf.get("virtual"),
    )
    kvm = vf.get("kvm")
    if kvm is None:
        usable, reason = None, vf.get("kvm_error") or "not decided within the timeout"
    else:
        usable, reason = kvm.usable, kvm.reason
    instances: tuple[Instance, ...] = tuple(vf.get("instances", ()))
    instances_unknown = vf.get("instances_unknown")
    # instances not read in time are not "none": never a count of 0 for what was not seen
    acceleration = str(vf.get("acceleration", "unknown"))
    virt_type = vf.get("virt_type")
    status = Status.worst([r.status for r in results])
    summary = _summary(usable, reason, status, results, instances)
    return Verdict(
        host=hf,
        kvm_usable=usable,
        kvm_usable_reason=reason,
        acceleration=acceleration,
        virt_type=virt_type,
        summary=summary,
        results=tuple(results),
        instances=instances,
        snapshot=None if host.live else host.label,
        instances_unknown=str(instances_unknown) if instances_unknown else None,
        deployment=vf.get("deployment"),
    )


def _summary(
    usable: Optional[bool],
    reason: str,
    status: Status,
    results: list[Result],
    instances: tuple[Instance, ...],
) -> str:
    if usable is True:
        head = "KVM usable"
    elif usable is False:
        head = f"KVM NOT usable: {reason}"
    else:
        head = f"KVM usability unknown: {reason}"
    parts = [head]
    worst = [r for r in results if r.status is status and status not in (Status.OK, Status.SKIP)]
    # a result whose summary already gives the instance counts says so (details)
    if instances and not (worst and worst[0].details.get("counts_instances")):
        c = sum(1 for i in instances if i.accel == "kvm")
        t = sum(1 for i in instances if i.accel == "tcg")
        parts.append(f"{len(instances)} instance(s): {c} KVM, {t} TCG")
    if worst:
        # name the first problem in full unless it only repeats the KVM reason
        first = worst[0]
        said = first.summary if reason not in first.summary else ""
        ids = ", ".join(r.id for r in worst[1:4]) + (" ..." if len(worst) > 4 else "")
        text = f"{status.label}: {first.id}" + (f" ({said})" if said else "")
        if ids:
            text += f"; also {ids}"
        parts.append(text)
    return "; ".join(parts)


# ---------------------------------------------------------------------------------- guest
def run_guest(
    host: Host,
    checks: Sequence[LoadedCheck],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    options: Optional[dict[str, Any]] = None,
) -> GuestVerdict:
    """``hvcheck guest``: run ``checks`` (``load_checks("guest")``) and assemble the
    GuestVerdict, under one deadline like ``run``."""
    ctx, deadline = _context(host, timeout, options)
    generated_at = _read_at(host)
    work = {"_verdict": partial(_guest_facts, ctx)}
    results, gf = _run_checks(ctx, checks, deadline, timeout, work)
    u = call_until(host.uname, deadline, None)
    hf = HostFacts(
        hostname=u.hostname if u else "",
        arch=u.arch if u else "",
        kernel=u.kernel if u else "",
        os=str(gf.get("os", "")),
        virtual=gf.get("virtual"),
    )
    accel = gf.get("accel")
    nested = gf.get("nested")
    if accel is None:
        summary = str(gf.get("error") or "not decided within the timeout")
        return GuestVerdict(
            host=hf,
            accel="unknown",
            hypervisor=None,
            nested=None,
            evidence=(),
            summary=f"cannot tell: {summary}",
            results=tuple(results),
            generated_at=generated_at,
            snapshot=None if host.live else host.label,
        )
    nested_value = None if accel.accel == "none" or nested is None else nested.nested
    summary = accel.headline
    if accel.evidence:
        summary += f" (evidence: {', '.join(accel.evidence)})"
    if nested_value is not None:
        summary += f"; nested virtualization {'offered' if nested_value else 'not offered'}"
    return GuestVerdict(
        host=hf,
        accel=accel.accel,
        hypervisor=accel.hypervisor,
        nested=nested_value,
        evidence=accel.evidence,
        summary=summary,
        results=tuple(results),
        platform=accel.platform,
        generated_at=generated_at,
        snapshot=None if host.live else host.label,
    )


def _guest_facts(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        out["accel"] = facts.guest_accel(ctx)
        out["virtual"] = {"none": False, "unknown": None}.get(out["accel"].accel, True)
    except Exception as e:  # guest.accel reports the failure itself
        out["error"] = f"{type(e).__name__}: {e}"
    try:
        out["nested"] = facts.guest_nested(ctx)
    except Exception:
        out["nested"] = None
    try:
        i = facts.os_info(ctx)
        out["os"] = i.name or i.id
    except Exception:
        out["os"] = ""
    return out
