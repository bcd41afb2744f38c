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


def run_until(fns: Mapping[str, Callable[[], Any]], deadline: float) -> dict[str, Outcome]:
    """Run every callable of ``fns`` at once, each in a daemon thread named ``hvcheck-<key>``.

    Returns the ``Outcome`` of each that finished by ``deadline``, in the order of ``fns``; a
    key that is absent did not finish in time. Never raises what a callable raises.
    """
    started: list[tuple[str, threading.Thread, list[Outcome]]] = []
    for key, fn in fns.items():
        box: list[Outcome] = []

        def target(fn: Callable[[], Any] = fn, box: list[Outcome] = box) -> None:
            try:
                box.append(Outcome(fn()))
            except BaseException as e:  # reported to the caller, never lost in the thread
                box.append(Outcome(error=e))

        t = threading.Thread(target=target, name=f"hvcheck-{key}", daemon=True)
        t.start()
        started.append((key, t, box))
    done: dict[str, Outcome] = {}
    for key, t, box in started:
        t.join(max(0.0, deadline - time.monotonic()))
        if box:
            done[key] = box[0]
    return done


def call_until(fn: Callable[[], T], deadline: float, default: T) -> T:
    """``fn()`` when it returns by ``deadline``; ``default`` when it raises or is late."""
    got = run_until({"call": fn}, deadline).get("call")
    if got is None or got.error is not None:
        return default
    return got.value  # type: ignore[no-any-return]
