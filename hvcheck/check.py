"""The check interface and the per-run context that memoises shared facts.

A check declares what it reads (``reads``, fed to ``hvcheck checks`` and the JSON) and returns
one ``Result``. Facts several checks need (the parsed cpuinfo, the loaded modules, the KVM
judgement) are computed once per run through ``Context.fact`` — thread-safe, since checks run
in parallel under one deadline.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, ClassVar, Optional, TypeVar

from hvcheck.host import Host
from hvcheck.model import DEFAULT_TIMEOUT, Result, Status

T = TypeVar("T")


class Context:
    """One run: the host, and facts computed at most once."""

    def __init__(self, host: Host, options: Optional[dict[str, Any]] = None) -> None:
        self.host = host
        self.options: dict[str, Any] = options or {}
        self._facts: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        # time.monotonic() by which the run must end (set by the engine); None = unbounded
        self.deadline: Optional[float] = None

    def remaining(self, default: float = DEFAULT_TIMEOUT) -> float:
        """Seconds left before the run's deadline (``default`` when the run is unbounded).

        Checks that wait on something outside hvcheck (a daemon, the network) bound the wait
        by this, so they can report their own UNKNOWN before the engine gives up on them.
        """
        if self.deadline is None:
            return default
        return self.deadline - time.monotonic()

    def fact(self, name: str, compute: Callable[[Context], T]) -> T:
        # a fact is stored once, under its lock, and never changed: one that is already
        # there is read without the locks (per-instance facts are asked thousands of times)
        v = self._facts.get(name, _MISSING)
        if v is not _MISSING:
            if isinstance(v, _Failed):
                raise v.error
            return v  # type: ignore[no-any-return]
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._facts:
                try:
                    self._facts[name] = compute(self)
                except BaseException as e:  # remembered: every caller sees the same failure
                    self._facts[name] = _Failed(e)
            v = self._facts[name]
        if isinstance(v, _Failed):
            raise v.error
        return v  # type: ignore[no-any-return]


_MISSING: Any = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Check:
    """Base class for built-in and third-party checks."""

    id: ClassVar[str] = ""
    title: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...]] = ()
    # True for a check that waits on something outside the host's files (a daemon's socket,
    # the network): the engine starts it before the others, so that its wait overlaps their
    # work (hvcheck.deadline.run_until leaves work that computes to itself a while); its place
    # in the report is unchanged
    waits: ClassVar[bool] = False

    def run(self, ctx: Context) -> Result:
        raise NotImplementedError

    # helpers so a check reads as its judgement
    def result(
        self,
        status: Status,
        summary: str,
        *,
        hint: Optional[str] = None,
        code: str = "",
        evidence: tuple[str, ...] | list[str] = (),
        details: Optional[dict[str, Any]] = None,
        **more: Any,
    ) -> Result:
        """A ``Result`` of this check; ``more`` keywords join ``details``.

        Two ``details`` keys are read by the engine and the renderers (never a check id):
        ``counts_instances`` (true: the summary already gives the instance counts, so the
        verdict's summary does not repeat them) and ``thresholds`` (``{perfdata label:
        {"warning": range, "critical": range}}``, Monitoring Plugins ranges for the Nagios
        perfdata of that count).
        """
        return Result(
            id=self.id,
            status=status,
            summary=summary,
            hint=hint,
            code=code,
            evidence=tuple(evidence),
            details={**(details or {}), **more},
            title=self.title,
        )
