"""Run work under a deadline: the one helper hvcheck has for it.

The callables run in daemon threads. What has not finished by the deadline (a
``time.monotonic()`` instant) is abandoned: Python cannot stop a thread, so it runs on detached,
its answer is dropped, and being a daemon thread it does not keep the process alive at exit.
The caller returns on time even when a read hangs (a hung mount, a libvirt socket that never
answers, a plugin that sleeps): nagiosplugin's rule of one timeout for the whole run.

``run_until`` starts one worker thread that takes the callables in turn, and another each time
:data:`STALL` seconds pass without one finishing: work that waits (a socket, a child process,
a hang) holds only its own thread, and the rest goes on in the next one. Most of a run's
callables take a millisecond or less: one thread each (two dozen, contending for the GIL) cost
a probe ~10 ms more than this, on a 40 ms run.

>>> import time
>>> got = run_until({"quick": lambda: 42, "slow": lambda: time.sleep(5)}, time.monotonic() + 0.2)
>>> got["quick"].value, "slow" in got
(42, False)
>>> call_until(lambda: 1 / 0, time.monotonic() + 1, "fallback")
'fallback'
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Optional, TypeVar

T = TypeVar("T")


class Outcome(NamedTuple):
    """How one callable ended in time: its return value, or the exception it raised."""

    value: Any = None
    error: Optional[BaseException] = None


class Pending:
    """One callable started now, in a daemon thread named ``hvcheck-<key>``, whose outcome is
    collected later with ``wait`` (work that overlaps other work, e.g. a DNS lookup started
    before the requests that may need it)."""

    def __init__(self, key: str, fn: Callable[[], Any]) -> None:
        self._box: list[Outcome] = []

        def target() -> None:
            try:
                self._box.append(Outcome(fn()))
            except BaseException as e:  # reported to the caller, never lost in the thread
                self._box.append(Outcome(error=e))

        self._thread = threading.Thread(target=target, name=f"hvcheck-{key}", daemon=True)
        self._thread.start()

    def wait(self, deadline: float) -> Optional[Outcome]:
        """The outcome when the callable has ended by ``deadline``; None when it is still
        running (it is abandoned, not stopped)."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return self._box[0] if self._box else None


def start(key: str, fn: Callable[[], Any]) -> Pending:
    """Start ``fn`` now; collect it with ``Pending.wait(deadline)``."""
    return Pending(key, fn)


# seconds without any callable finishing after which run_until starts one more worker thread
STALL = 0.025


def run_until(fns: Mapping[str, Callable[[], Any]], deadline: float) -> dict[str, Outcome]:
    """Run every callable of ``fns`` (in order; see the module: a worker thread each time the
    work stalls for :data:`STALL` s), each in a daemon thread named ``hvcheck-<key>`` while it
    runs.

    Returns the ``Outcome`` of each that finished by ``deadline``, in the order of ``fns``; a
    key that is absent did not finish (or start) in time. Never raises what a callable raises.
    """
    items = list(fns.items())
    done: dict[str, Outcome] = {}
    cond = threading.Condition()
    taken = [0]  # how many items workers have taken

    def worker() -> None:
        me = threading.current_thread()
        while True:
            with cond:
                if taken[0] >= len(items):
                    return
                key, fn = items[taken[0]]
                taken[0] += 1
            me.name = f"hvcheck-{key}"
            try:
                out = Outcome(fn())
            except BaseException as e:  # reported to the caller, never lost in the thread
                out = Outcome(error=e)
            with cond:
                done[key] = out
                if len(done) == len(items):
                    cond.notify_all()

    def spawn() -> None:
        threading.Thread(target=worker, name="hvcheck-worker", daemon=True).start()

    with cond:
        if items:
            spawn()
        while len(done) < len(items):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            before = len(done)
            cond.wait(min(STALL, left))
            if len(done) == before and taken[0] < len(items):
                spawn()  # nothing finished meanwhile: what runs waits; go on beside it
        return {key: done[key] for key, _ in items if key in done}


def call_until(fn: Callable[[], T], deadline: float, default: T) -> T:
    """``fn()`` when it returns by ``deadline``; ``default`` when it raises or is late."""
    got = run_until({"call": fn}, deadline).get("call")
    if got is None or got.error is not None:
        return default
    return got.value  # type: ignore[no-any-return]
