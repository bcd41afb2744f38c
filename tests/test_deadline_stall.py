"""hvcheck.deadline.run_until when work waits: what waits holds only its own thread, so the
rest answers by the deadline however many callables wait, and however briefly each waits."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from hvcheck.check import Context
from hvcheck.deadline import run_until
from hvcheck.host import SnapshotHost
from snap import healthy_host


def test_many_hangs_do_not_starve_the_quick_callables_after_them() -> None:
    """50 reads that never return (a dead NFS mount under each), then three quick ones: the
    quick ones answer within a 1 s deadline."""
    release = threading.Event()
    try:
        fns: dict[str, Callable[[], object]] = {f"hang{i}": release.wait for i in range(50)}
        fns.update({f"quick{i}": (lambda i=i: i) for i in range(3)})  # type: ignore[misc]
        t0 = time.monotonic()
        got = run_until(fns, t0 + 1.0)
        assert time.monotonic() - t0 < 1.5
        assert {k: o.value for k, o in got.items()} == {"quick0": 0, "quick1": 1, "quick2": 2}
    finally:
        release.set()


def test_callables_waiting_on_one_hung_fact_do_not_starve_the_others(tmp_path: Path) -> None:
    """The engine's shape: thirty checks need one shared fact whose read hangs (Context.fact
    holds its lock while computing); a check that does not need it still answers."""
    ctx = Context(SnapshotHost(str(healthy_host(tmp_path / "s"))))
    release = threading.Event()

    def hung(c: Context) -> int:
        release.wait()
        return 1

    try:
        fns: dict[str, Callable[[], object]] = {
            f"needs{i}": (lambda: ctx.fact("hung", hung)) for i in range(30)
        }
        fns["other"] = lambda: ctx.fact("other", lambda c: 2)
        got = run_until(fns, time.monotonic() + 0.5)
        assert "other" in got and got["other"].value == 2
    finally:
        release.set()


def test_short_waits_still_overlap() -> None:
    """Sixty callables that each wait 20 ms (a socket or child process that answers quickly,
    under STALL): side by side they take ~20 ms, one after another 1.2 s."""
    t0 = time.monotonic()
    got = run_until({f"w{i}": (lambda: time.sleep(0.02)) for i in range(60)}, t0 + 0.6)
    assert len(got) == 60, f"{len(got)} of 60 answered in {time.monotonic() - t0:.2f} s"


def test_nothing_starts_after_run_until_returned() -> None:
    """A callable not started by the deadline is abandoned, never started later behind the
    caller's back (the docstring: absent = did not finish, or start, in time): work that runs
    on after the run has answered competes with the report for the GIL, and may read the host
    after the verdict was given."""
    release = threading.Event()
    started: list[float] = []

    def slow() -> None:
        started.append(time.monotonic())
        time.sleep(0.2)

    fns: dict[str, Callable[[], object]] = {"hang": release.wait}
    fns.update({f"slow{i}": slow for i in range(10)})
    try:
        run_until(fns, time.monotonic() + 0.1)
        returned = time.monotonic()
        time.sleep(0.5)
        late = [round(t - returned, 3) for t in started if t > returned]
        assert late == [], f"{len(late)} callables started after run_until returned"
    finally:
        release.set()


# ---- work that computes: it keeps the interpreter (no worker beside it, which would only
# take turns with it for the GIL) until it has computed COMPUTING s, or a quarter of the time
# the run had left; work that computes and then waits is noticed waiting
def _compute(seconds: float) -> float:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return time.monotonic()


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"), reason="no thread CPU clocks")
def test_a_short_computation_keeps_the_interpreter_to_itself() -> None:
    """A 150 ms computation, then a quick callable: the quick one starts after it ended (the
    same worker takes it), not beside it. (A computation starved of the CPU by other work on
    the machine counts as waiting, rightly: one run of three must show it alone.)"""
    alone = []
    for _ in range(3):
        got = run_until(
            {"compute": lambda: _compute(0.15), "quick": time.monotonic}, time.monotonic() + 10
        )
        alone.append(got["quick"].value >= got["compute"].value)
        if alone[-1]:
            break
    assert any(alone)


def test_a_long_computation_lets_the_rest_answer_before_the_deadline() -> None:
    """A computation longer than a quarter of a 1 s run's time: a quick callable behind it
    answers long before the computation ends, and within the deadline."""
    t0 = time.monotonic()
    got = run_until({"compute": lambda: _compute(0.7), "quick": time.monotonic}, t0 + 1.0)
    assert got["quick"].value - t0 < 0.45
    assert got["quick"].value < got["compute"].value


def test_a_computation_that_turns_into_a_wait_gets_a_worker_beside_it() -> None:
    """60 ms of computing, then a read that takes 0.8 s: the quick callable behind it answers
    within ~RELOOK of the wait beginning, not after the read nor at the computing allowance."""
    release = threading.Event()

    def compute_then_wait() -> None:
        _compute(0.06)
        release.wait(0.8)  # a read that answers late

    t0 = time.monotonic()
    got = run_until({"slow": compute_then_wait, "quick": time.monotonic}, t0 + 10)
    assert got["quick"].value - t0 < 0.5  # not after "slow", nor at its 1 s allowance
    assert "slow" in got


def test_a_check_that_waits_outside_starts_before_the_computing_ones(tmp_path: Path) -> None:
    """The engine starts the checks marked ``waits`` (Nova's API, libvirt's socket) first: a
    0.4 s wait overlaps a 0.4 s computation declared before it, instead of queueing behind
    it; the report keeps the declared order."""
    from hvcheck import engine
    from hvcheck.check import Check
    from hvcheck.model import OK, Result

    class Computes(Check):
        id = "test.computes"
        title = "computes"

        def run(self, ctx: Context) -> Result:
            _compute(0.4)
            return self.result(OK, "computed")

    class Waits(Check):
        id = "test.waits"
        title = "waits"
        waits = True

        def run(self, ctx: Context) -> Result:
            time.sleep(0.4)
            return self.result(OK, "answered")

    checks = [engine.LoadedCheck(c, c.id, c.title, (), "test") for c in (Computes(), Waits())]
    host = SnapshotHost(str(healthy_host(tmp_path / "s")))
    t0 = time.monotonic()
    verdict = engine.run(host, checks, timeout=10)
    elapsed = time.monotonic() - t0
    assert [r.id for r in verdict.results] == ["test.computes", "test.waits"]
    assert all(r.status is OK for r in verdict.results)
    assert elapsed < 0.7, elapsed  # one after the other: 0.8 s
