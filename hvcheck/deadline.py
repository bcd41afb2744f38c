"""Run work under a deadline: the one helper hvcheck has for it.

The callables run in daemon threads. What has not finished by the deadline (a
``time.monotonic()`` instant) is abandoned: Python cannot stop a thread, so it runs on detached,
its answer is dropped, and being a daemon thread it does not keep the process alive at exit.
The caller returns on time even when a read hangs (a hung mount, a libvirt socket that never
answers, a plugin that sleeps): nagiosplugin's rule of one timeout for the whole run.

``run_until`` starts one worker thread that takes the callables in turn, and one more for
each callable that has run :data:`SLOW` seconds while waiting (a socket, a child process, a
hang: its thread has used under a quarter of that time on the CPU), or :data:`COMPUTING`
seconds while computing. Work that waits holds only its own thread, and the rest goes on in
the next ones. Work that computes (a scan of a thousand QEMU processes) keeps the interpreter
to itself a while: beside it, other Python work would only take turns with it for the GIL,
which cost a 1,000-instance snapshot ~10 % more CPU (thread switches on a 2-vCPU VM) for no
answer sooner. Most of a run's callables take a millisecond or less: one thread each (two
dozen, contending for the GIL) cost a probe ~10 ms more than this, on a 40 ms run.

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


# seconds a callable may run before it counts as waiting (a socket, a child process, a hang),
# when its thread has used under WAITING of that time on the CPU
SLOW = 0.01
WAITING = 0.25
# a callable found computing is looked at again this much later (a computation that turns
# into a wait is noticed within it), and gets a worker beside it once it has run COMPUTING s,
# or a quarter of the time the run had left when it started: a scan of thousands of
# processes must not keep the other checks from answering before the deadline
RELOOK = 0.05
COMPUTING = 1.0


def _cpu_clock(ident: Optional[int]) -> Optional[int]:
    """The CPU-time clock of the thread ``ident`` (``pthread_getcpuclockid``), None where
    there is none to read (not Unix)."""
    try:
        return time.pthread_getcpuclockid(ident) if ident is not None else None
    except (AttributeError, OSError):
        return None


def _cpu_seconds(clock: Optional[int]) -> Optional[float]:
    try:
        return time.clock_gettime(clock) if clock is not None else None
    except OSError:  # the thread ended meanwhile
        return None


class _Running(NamedTuple):
    started: float  # time.monotonic() when the worker took the callable
    look: float  # when to look at it next
    seen: float  # when last looked at (its start at first)
    cpu: float  # its thread's CPU time then (time.thread_time())
    computing: float  # seconds it may compute before the rest goes on beside it


def run_until(fns: Mapping[str, Callable[[], Any]], deadline: float) -> dict[str, Outcome]:
    """Run every callable of ``fns``, in order, on worker threads (see the module), each in a
    daemon thread named ``hvcheck-<key>`` while it runs.

    A new worker starts, while callables are left, for each callable that has run :data:`SLOW`
    s waiting (its thread on the CPU under :data:`WAITING` of the time since the last look at
    it), or :data:`COMPUTING` s in all (a quarter of the time left when it started, if less):
    what waits holds its own thread and the rest goes on beside it; fifty reads of a dead
    mount, or thirty checks needing one hung fact, cost the others ~10 ms each at most. Where
    a thread's CPU time cannot be read, every callable that has run :data:`SLOW` s counts as
    waiting. The caller's thread sleeps between looks (a callable found computing is looked at
    again :data:`RELOOK` s later), not waking on a fixed tick: each wake takes the GIL from the
    worker that computes.

    Returns the ``Outcome`` of each that finished by ``deadline``, in the order of ``fns``; a
    key that is absent did not finish (or start) in time: nothing starts after the deadline.
    Never raises what a callable raises.
    """
    items = list(fns.items())
    done: dict[str, Outcome] = {}
    cond = threading.Condition()
    taken = [0]  # how many items workers have taken
    running: dict[int, _Running] = {}  # worker number -> its current callable, not yet covered
    clocks: dict[int, Optional[int]] = {}  # worker number -> its thread's CPU-time clock
    asleep = [False]  # the caller's thread sleeps past SLOW: a new callable must wake it
    closed = [False]  # the caller has returned: take nothing more

    def worker(me: int) -> None:
        thread = threading.current_thread()
        clocks[me] = _cpu_clock(threading.get_ident())
        while True:
            with cond:
                if closed[0] or taken[0] >= len(items) or time.monotonic() >= deadline:
                    return
                key, fn = items[taken[0]]
                taken[0] += 1
                now = time.monotonic()
                running[me] = _Running(
                    now, now + SLOW, now, time.thread_time(), min(COMPUTING, (deadline - now) / 4)
                )
                if asleep[0]:
                    cond.notify_all()
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

    def spawn(n: int) -> None:
        for _ in range(n):
            workers[0] += 1
            threading.Thread(
                target=worker, args=(workers[0],), name="hvcheck-worker", daemon=True
            ).start()

    def look(w: int, r: _Running, now: float) -> bool:
        """Does worker ``w``'s callable need a worker beside it now? Schedules its next look
        when not."""
        cpu = _cpu_seconds(clocks.get(w))
        if cpu is None or now - r.started >= r.computing:
            return True
        if cpu - r.cpu < WAITING * (now - r.seen):
            return True  # it waits
        # looked at again after at least SLOW s: over a shorter span, a thread that computes
        # but waits for the GIL (held by this one, looking) would seem to wait
        nxt = max(now + SLOW, min(now + RELOOK, r.started + r.computing))
        running[w] = r._replace(look=nxt, seen=now, cpu=cpu)
        return False

    with cond:
        if items:
            spawn(1)
        while len(done) < len(items):
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                break
            due = [w for w, r in running.items() if r.look <= now]
            cover = [w for w in due if look(w, running[w], now)]
            for w in cover:
                del running[w]  # it has its worker beside it: not looked at again
            left_items = len(items) - taken[0]
            if cover and left_items:
                spawn(min(len(cover), left_items))  # one more worker for each that waits
            # nothing to look at: a worker is between callables (look again soon), or all
            # are taken and what runs has its worker beside it (sleep till done or deadline)
            idle = now + SLOW if taken[0] < len(items) else deadline
            wake = min((r.look for r in running.values()), default=idle)
            asleep[0] = wake - now > SLOW
            cond.wait(max(0.0, min(wake - now, left)))
            asleep[0] = False
        closed[0] = True
        return {key: done[key] for key, _ in items if key in done}


def call_until(fn: Callable[[], T], deadline: float, default: T) -> T:
    """``fn()`` when it returns by ``deadline``; ``default`` when it raises or is late."""
    got = run_until({"call": fn}, deadline).get("call")
    if got is None or got.error is not None:
        return default
    return got.value  # type: ignore[no-any-return]
