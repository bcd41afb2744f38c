"""Third-party checks through the `hvcheck.checks` entry-point group: a good plugin runs; one that
raises, hangs or fails to import is UNKNOWN for that check only, within --timeout."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

from snap import healthy_host, run_json

PLUGIN = """
import time
from hvcheck.check import Check
from hvcheck.model import Status


class Good(Check):
    id = "acme.cpus"
    title = "ACME: processors counted through the host layer"
    reads = ("/proc/cpuinfo",)

    def run(self, ctx):
        text = ctx.host.read_text("/proc/cpuinfo")
        n = text.count("processor")
        return self.result(Status.OK, f"{n} processor(s)", evidence=["/proc/cpuinfo"], count=n)


class Boom(Check):
    id = "acme.boom"
    title = "ACME: raises"

    def run(self, ctx):
        raise RuntimeError("acme exploded")


class Hang(Check):
    id = "acme.hang"
    title = "ACME: never returns"

    def run(self, ctx):
        time.sleep(3600)
"""


def _install_plugin(site: Path) -> None:
    site.mkdir()
    (site / "acme_hvcheck.py").write_text(PLUGIN)
    dist = site / "acme_hvcheck-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-hvcheck\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""
        [hvcheck.checks]
        good = acme_hvcheck:Good
        boom = acme_hvcheck:Boom
        hang = acme_hvcheck:Hang
        missing = acme_hvcheck_not_installed:Check
    """)
    )


def test_plugins_run_and_failures_are_contained(tmp_path: Path) -> None:
    _install_plugin(tmp_path / "site")
    snap = healthy_host(tmp_path / "snap")
    t0 = time.monotonic()
    rc, doc = run_json("--root", str(snap), "-t", "3", env={"PYTHONPATH": str(tmp_path / "site")})
    elapsed = time.monotonic() - t0
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["acme.cpus"]["status"] == "OK"
    assert checks["acme.cpus"]["details"]["count"] == 1
    assert checks["acme.boom"]["status"] == "UNKNOWN"
    assert "acme exploded" in checks["acme.boom"]["summary"]
    assert checks["acme.hang"]["status"] == "UNKNOWN"
    assert "timeout" in checks["acme.hang"]["summary"]
    assert checks["plugin.missing"]["status"] == "UNKNOWN"
    assert "ModuleNotFoundError" in checks["plugin.missing"]["summary"]
    # the built-ins still answered, and the run ended within the timeout (+ interpreter start)
    assert checks["kvm.device"]["status"] == "OK"
    assert doc["verdict"]["kvm_usable"] is True
    assert elapsed < 3 + 3
    assert rc == 3  # UNKNOWN from the broken plugins; nothing CRITICAL
    listed = [c["id"] for c in doc["checks"]]
    assert listed.index("kvm.device") < listed.index("acme.cpus")  # built-ins first
