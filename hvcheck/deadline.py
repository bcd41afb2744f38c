"""Run work under a deadline: the one helper hvcheck has for it.

The callables run in daemon threads. What has not finished by the deadline (a
``time.monotonic()`` instant) is abandoned: Python cannot stop a thread, so it runs on detached,
its answer is dropped, and being a daemon thread it does not keep the process alive at exit.
The caller returns on time even when a read hangs (a hung mount, a libvirt socket that never
answers, a plugin that sleeps): nagiosplugin's rule of one timeout for the whole run.

``run_until`` starts one worker thread that takes the callables in turn, and one more for
each callable that has run :data:`SLOW` seconds (it waits: a socket, a child process, a hang).
Work that waits holds only its own thread, and the rest goes on in the next ones. Most of a
run's callables take a millisecond or less: one thread each (two dozen, contending for the
GIL) cost a probe ~10 ms more than this, on a 40 ms run.

>>> import time
>>> got = run_until({"quick": lambda: 42, "slow": lambda: time.sleep(5)}, time.monotonic() + 0.2)
>>> got["quick"].value, "slow" in got
(42, False)
>>> call_until(lambda: 1 / 0, time.monotonic() + 1, "fallback")
'fallback'
"""

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


# seconds a callable may run before it counts as waiting (a socket, a child process, a hang)
SLOW = 0.01


def run_until(fns: Mapping[str, Callable[[], Any]], deadline: float) -> dict[str, Outcome]:
    """Run every callable of ``fns``, in order, on worker threads (see the module), each in a
    daemon thread named ``hvcheck-<key>`` while it runs.

    Every :data:`SLOW` s, a new worker starts for each callable that has run that long since
    the last look (it waits, or computes at length) while callables are left: what waits holds
    its own thread and the rest goes on beside it; fifty reads of a dead mount, or thirty
    checks needing one hung fact, cost the others ~10 ms each at most.

    Returns the ``Outcome`` of each that finished by ``deadline``, in the order of ``fns``; a
    key that is absent did not finish (or start) in time: nothing starts after the deadline.
    Never raises what a callable raises.
    """
    items = list(fns.items())
    done: dict[str, Outcome] = {}
    cond = threading.Condition()
    taken = [0]  # how many items workers have taken
    running: dict[int, float] = {}  # worker number -> when its current callable started
    closed = [False]  # the caller has returned: take nothing more

    def worker(me: int) -> None:
        thread = threading.current_thread()
        while True:
            with cond:
                if closed[0] or taken[0] >= len(items) or time.monotonic() >= deadline:
                    return
                key, fn = items[taken[0]]
                taken[0] += 1
                running[me] = time.monotonic()
            thread.name = f"hvcheck-{key}"
            try:
                out = Outcome(fn())
            except BaseException as e:  # reported to the caller, never lost in the thread
                out = Outcome(error=e)
            with cond:
                running.pop(me, None)
                done[key] = out
                if len(done) == len(items):
                    cond.notify_all()

    workers = [0]
    covered: dict[int, float] = {}  # worker -> the start of the callable it was replaced for

    def spawn(n: int) -> None:
        for _ in range(n):
            workers[0] += 1
            threading.Thread(
                target=worker, args=(workers[0],), name="hvcheck-worker", daemon=True
            ).start()

    with cond:
        if items:
            spawn(1)
        while len(done) < len(items):
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                break
            cond.wait(min(SLOW, left))
            now = time.monotonic()
            waiting = [w for w, t in running.items() if now - t >= SLOW and covered.get(w) != t]
            left_items = len(items) - taken[0]
            if waiting and left_items:
                spawn(min(len(waiting), left_items))  # one more worker for each that waits
                covered.update((w, running[w]) for w in waiting)
        closed[0] = True
        return {key: done[key] for key, _ in items if key in done}


def call_until(fn: Callable[[], T], deadline: float, default: T) -> T:
    """``fn()`` when it returns by ``deadline``; ``default`` when it raises or is late."""
    got = run_until({"call": fn}, deadline).get("call")
    if got is None or got.error is not None:
        return default
    return got.value  # type: ignore[no-any-return]
