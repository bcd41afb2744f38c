"""Run work under a deadline: the one helper hvcheck has for it.

Each callable runs in a daemon thread. What has not finished by the deadline (a
``time.monotonic()`` instant) is abandoned: Python cannot stop a thread, so it runs on detached,
its answer is dropped, and being a daemon thread it does not keep the process alive at exit.
The caller returns on time even when a read hangs (a hung mount, a libvirt socket that never
answers, a plugin that sleeps): nagiosplugin's rule of one timeout for the whole run.

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


def run_until(fns: Mapping[str, Callable[[], Any]], deadline: float) -> dict[str, Outcome]:
    """Run every callable of ``fns`` at once, each in a daemon thread named ``hvcheck-<key>``.

    Returns the ``Outcome`` of each that finished by ``deadline``, in the order of ``fns``; a
    key that is absent did not finish in time. Never raises what a callable raises.
    """
    started = [(key, start(key, fn)) for key, fn in fns.items()]
    done: dict[str, Outcome] = {}
    for key, pending in started:
        got = pending.wait(deadline)
        if got is not None:
            done[key] = got
    return done


def call_until(fn: Callable[[], T], deadline: float, default: T) -> T:
    """``fn()`` when it returns by ``deadline``; ``default`` when it raises or is late."""
    got = run_until({"call": fn}, deadline).get("call")
    if got is None or got.error is not None:
        return default
    return got.value  # type: ignore[no-any-return]
