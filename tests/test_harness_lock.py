"""The suite's machine-wide lock (tests/libvirt_harness.py ``system_lock``), which the fixtures
that change /dev/kvm or the system libvirtd hold: two runs on one machine take turns.

Exercised on a lock file of its own (never /run/hvcheck-tests.lock, never /dev/kvm): a second
process waits while the first holds it, gets it once the first is done or killed, and a run
fails naming the holder when it waited too long."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libvirt_harness import LOCK_PATH, dev_kvm_mode, system_lock

TESTS = Path(__file__).resolve().parent


def _holder(lock: Path, seconds: float) -> subprocess.Popen[str]:
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from libvirt_harness import system_lock\n"
        f"with system_lock({str(lock)!r}, timeout=5):\n"
        "    print('held', flush=True)\n"
        f"    time.sleep({seconds})\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def test_the_default_lock_lives_under_run() -> None:
    expected = os.environ.get("HVCHECK_TEST_LOCK", "/run/hvcheck-tests.lock")
    assert expected == LOCK_PATH


def test_a_second_run_waits_for_the_first(tmp_path: Path) -> None:
    lock = tmp_path / "suite.lock"
    p = _holder(lock, 2.0)
    try:
        t0 = time.monotonic()
        with system_lock(str(lock), timeout=30):
            waited = time.monotonic() - t0
        assert waited >= 1.5  # the holder's 2 s, less its start-up
        assert p.wait(10) == 0
    finally:
        p.kill()
        p.wait(10)


def test_too_long_a_wait_fails_naming_the_holder(tmp_path: Path) -> None:
    lock = tmp_path / "suite.lock"
    p = _holder(lock, 30.0)
    try:
        names = rf"pid {p.pid}\)"
        with pytest.raises(pytest.fail.Exception, match=names), system_lock(str(lock), 0.5):
            pass
    finally:
        p.kill()
        p.wait(10)


def test_a_killed_holder_releases_it(tmp_path: Path) -> None:
    lock = tmp_path / "suite.lock"
    p = _holder(lock, 60.0)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    t0 = time.monotonic()
    with system_lock(str(lock), timeout=5):
        assert time.monotonic() - t0 < 1.0


def test_it_nests_within_one_process(tmp_path: Path) -> None:
    lock = tmp_path / "suite.lock"
    with system_lock(str(lock), timeout=1):
        with system_lock(str(lock), timeout=1):  # a fixture's block inside the module's hold
            pass
        # still held after the inner block: another process cannot take it
        assert _taken_elsewhere(lock)
    p = _holder(lock, 0.1)  # released at the end: another process gets it at once
    p.wait(10)


def test_a_symlink_at_the_lock_path_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep\n")
    lock = tmp_path / "suite.lock"
    lock.symlink_to(target)
    with pytest.raises(OSError), system_lock(str(lock), timeout=1):
        pass
    assert target.read_text() == "keep\n"


def _taken_elsewhere(lock: Path) -> bool:
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
            "from libvirt_harness import system_lock\n"
            f"with system_lock({str(lock)!r}, timeout=0.3): pass\n",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return probe.returncode != 0 and "holds" in probe.stdout + probe.stderr


def test_dev_kvm_mode_holds_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import libvirt_harness

    # the lock moved to a file of its own, and /dev/kvm's chmod/chown recorded, never done
    lock = tmp_path / "suite.lock"
    monkeypatch.setattr(libvirt_harness, "LOCK_PATH", str(lock))
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(libvirt_harness.os, "chmod", lambda p, m: calls.append(("chmod", m)))
    monkeypatch.setattr(libvirt_harness.os, "chown", lambda p, u, g: calls.append(("chown", g)))
    if not os.path.exists("/dev/kvm"):
        pytest.skip("no /dev/kvm to stat")
    with dev_kvm_mode(0o600, "root"):
        assert calls[:2] == [("chown", 0), ("chmod", 0o600)]
        assert _taken_elsewhere(lock)
    assert not _taken_elsewhere(lock)
    assert len(calls) == 4  # restored
