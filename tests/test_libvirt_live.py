"""A real libvirtd (started by hand, as on this project's machines): the 0600 /dev/kvm that
makes type='kvm' domains fail for libvirt-qemu is detected before any domain starts; then a
type='kvm' and a type='qemu' domain are classified, with libvirt's status XML and Nova metadata
as evidence."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from libvirt_harness import defined_domain, dev_kvm_mode, domain_xml, libvirtd, start_paused
from snap import run_json

__all__ = ["libvirtd"]  # the module-scoped fixture


def _check(doc: dict, cid: str) -> dict:  # type: ignore[type-arg]
    return next(c for c in doc["checks"] if c["id"] == cid)


def test_dev_kvm_0600_is_detected_before_a_kvm_domain_fails(libvirtd: None, tmp_path: Path) -> None:
    with dev_kvm_mode(0o600, "root"):
        _, doc = run_json("--only", "libvirt", "--only", "kvm.device")
        qu = _check(doc, "libvirt.qemu_user")
        assert qu["status"] in ("WARNING", "CRITICAL"), qu
        assert "cannot open /dev/kvm" in qu["summary"] and "0660" in qu["hint"]
        assert _check(doc, "kvm.device")["status"] == "OK"  # root's probe still works
        name = f"hvcheck-t-{uuid.uuid4().hex[:8]}"
        with defined_domain(
            name, domain_xml(name, "kvm", str(uuid.uuid4()), "web-1"), str(tmp_path)
        ):
            r = start_paused(name)
            assert r.returncode != 0, "the prediction was wrong: the kvm domain started"
            assert "Permission denied" in r.stderr or "kvm" in r.stderr.lower(), r.stderr


def test_kvm_and_qemu_domains_are_classified(libvirtd: None, tmp_path: Path) -> None:
    with dev_kvm_mode(0o660, "kvm"):
        _, doc = run_json("--only", "libvirt")
        assert _check(doc, "libvirt.qemu_user")["status"] == "OK"
        k, q = f"hvcheck-k-{uuid.uuid4().hex[:8]}", f"hvcheck-q-{uuid.uuid4().hex[:8]}"
        ku, qu = str(uuid.uuid4()), str(uuid.uuid4())
        with (
            defined_domain(k, domain_xml(k, "kvm", ku, "web-kvm"), str(tmp_path)),
            defined_domain(q, domain_xml(q, "qemu", qu, "web-tcg"), str(tmp_path)),
        ):
            for n in (k, q):
                r = start_paused(n)
                assert r.returncode == 0, r.stderr
            _, doc = run_json("--only", "instances")
            inst = {i["name"]: i for i in doc["instances"]}
            assert inst[k]["accel"] == "kvm" and inst[q]["accel"] == "tcg"
            for n, u, disp in ((k, ku, "web-kvm"), (q, qu, "web-tcg")):
                assert inst[n]["uuid"] == u
                assert "libvirt-xml" in inst[n]["evidence"] and "fd" in inst[n]["evidence"]
                # libvirt starts QEMU in a mount namespace of its own (qemu.conf namespaces):
                # the status XML is read through the process's root (issue 13)
                assert inst[n]["libvirt_xml"] in (
                    f"/run/libvirt/qemu/{n}.xml",
                    f"/proc/{inst[n]['pid']}/root/run/libvirt/qemu/{n}.xml",
                )
                assert inst[n]["nova"]["display_name"] == disp
                assert inst[n]["nova"]["instance_uuid"] == u
                assert inst[n]["nova"]["flavor"] == "m1.tiny"
                assert inst[n]["nova"]["project"] == "demo"
            assert inst[k]["domain_type"] == "kvm" and inst[q]["domain_type"] == "qemu"


def test_dev_kvm_0600_gives_one_status_on_every_run_in_time(libvirtd: None) -> None:
    """Issue 14, input 6: libvirtd running, /dev/kvm 0600 root:root, so libvirt-qemu cannot
    open it and libvirt re-probes QEMU on every capabilities request (9 s each here). Four
    consecutive runs: each ends under 2 s, libvirt.caps is the WARNING naming that cause
    every time (libvirt's cache says what it offers; libvirt is not asked), and the run's
    status is the same four times: nothing for Nagios to flap on."""
    with dev_kvm_mode(0o600, "root"):
        time.sleep(1.1)  # a ctime libvirt has not seen (virQEMUCapsKVMUsable keys on it)
        seen = []
        for _ in range(4):
            t0 = time.monotonic()
            rc, doc = run_json("--no-api")
            took = time.monotonic() - t0
            assert took < 2.0, took
            c = _check(doc, "libvirt.caps")
            assert c["status"] == "WARNING", c
            assert c["code"] in ("contradiction", "qemu-user-no-kvm"), c
            assert "libvirt-qemu cannot open /dev/kvm" in c["summary"], c
            assert "0600 root:root" in c["summary"] and "0660" in c["hint"]
            assert c["details"].get("via") in ("cache", None), c  # libvirt was not asked
            seen.append((doc["status"], rc, c["status"]))
        assert len(set(seen)) == 1, seen
