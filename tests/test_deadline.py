"""hvcheck.deadline: work that ends in time is answered, work that hangs is abandoned on time."""

from __future__ import annotations

import doctest
import threading
import time

from hvcheck import deadline
from hvcheck.deadline import call_until, run_until


def test_module_doctests() -> None:
    result = doctest.testmod(deadline)
    assert result.attempted > 0
    assert result.failed == 0


def test_run_until_answers_what_finished_and_abandons_the_rest() -> None:
    release = threading.Event()

    def boom() -> None:
        raise ValueError("broken")

    t0 = time.monotonic()
    got = run_until(
        {"a": lambda: 1, "hang": lambda: release.wait(30), "boom": boom, "b": lambda: "two"},
        t0 + 0.3,
    )
    elapsed = time.monotonic() - t0
    release.set()
    assert 0.25 <= elapsed < 2, elapsed
    assert list(got) == ["a", "boom", "b"]  # in the order given; "hang" did not finish
    assert got["a"].value == 1 and got["a"].error is None
    assert isinstance(got["boom"].error, ValueError) and got["boom"].value is None
    assert got["b"].value == "two"


def test_run_until_runs_the_work_at_once_and_names_its_threads() -> None:
    names: list[str] = []

    def slow() -> str:
        names.append(threading.current_thread().name)
        time.sleep(0.2)
        return "done"

    t0 = time.monotonic()
    got = run_until({f"w{i}": slow for i in range(5)}, t0 + 5)
    assert time.monotonic() - t0 < 0.9  # five 0.2 s sleeps side by side, not one after another
    assert {k: o.value for k, o in got.items()} == {f"w{i}": "done" for i in range(5)}
    assert sorted(names) == [f"hvcheck-w{i}" for i in range(5)]


def test_call_until_gives_the_default_when_late_or_failing() -> None:
    t0 = time.monotonic()
    assert call_until(lambda: 7, t0 + 5, None) == 7
    assert call_until(lambda: time.sleep(5), t0 + 0.2, "late") == "late"
    assert time.monotonic() - t0 < 2
    assert call_until(lambda: int("x"), time.monotonic() + 5, -1) == -1
    # a deadline already past still returns at once, with what finished meanwhile or the default
    assert call_until(lambda: time.sleep(1), time.monotonic() - 1, "past") == "past"
