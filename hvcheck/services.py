"""The outside services hvcheck asks on a live host: libvirt's capabilities, Nova's API, and
``rpm -qa`` for an RPM database hvcheck cannot read as a file (Berkeley DB, ndb).

libvirt: ``virConnectGetCapabilities`` / ``virConnectGetDomainCapabilities`` through
libvirt-python when it is importable, else ``virsh -r``; reads the sockets in
``/run/libvirt``. Nova: :func:`hvcheck.openstack.nova_hypervisors`, imported only when
OpenStack credentials are configured (:func:`hvcheck.novaquery.credentials_configured`).
Only :class:`hvcheck.host.live.LiveHost` calls these; snapshots replay what ``collect``
recorded.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Optional

from hvcheck.host.base import CapsResult, RpmRead

if TYPE_CHECKING:
    from hvcheck.novaquery import NovaAnswer, NovaQuery


LIBVIRT_URI = "qemu:///system"
# The monolithic daemon's and the modular QEMU daemon's sockets (libvirt's docs/daemons.rst).
LIBVIRT_RO_SOCKETS = (
    "/run/libvirt/libvirt-sock-ro",
    "/run/libvirt/virtqemud-sock-ro",
    "/var/run/libvirt/libvirt-sock-ro",
    "/var/run/libvirt/virtqemud-sock-ro",
)


def libvirt_caps(timeout: float, arch: str, euid: int) -> CapsResult:
    """Ask libvirt for its capabilities and its kvm domain capabilities, within ``timeout``.

    Through libvirt-python when it is importable, else ``virsh``. Capabilities come over a
    read-only connection; domain capabilities need a read-write one (libvirt's ACL makes
    ``virConnectGetDomainCapabilities`` a ``connect:write`` operation, since it may probe QEMU:
    "read only access prevents virConnectGetDomainCapabilities"), so they are asked only as
    root. libvirt answers from its capability cache, but re-probes QEMU whenever /dev/kvm's
    ctime changes (``virQEMUCapsIsValid``) and on every call while the QEMU user cannot use
    /dev/kvm, and that probe takes seconds (4-30 s seen): past ``timeout`` it is abandoned
    (virsh killed), never waited for.
    """
    import time

    start = time.monotonic()
    if not any(os.path.exists(p) for p in LIBVIRT_RO_SOCKETS):
        return CapsResult(
            "unavailable",
            "none",
            error="libvirt is not running (no libvirtd or virtqemud socket in /run/libvirt)",
        )
    import importlib.util

    try:
        have_api = importlib.util.find_spec("libvirt") is not None
    except (ImportError, ValueError):
        have_api = False
    if have_api:
        return _libvirt_caps_api(timeout, arch, euid, start)
    return _libvirt_caps_virsh(timeout, arch, euid, start)


def _libvirt_caps_virsh(timeout: float, arch: str, euid: int, start: float) -> CapsResult:
    import shutil
    import subprocess
    import time

    virsh = shutil.which("virsh")
    if virsh is None:
        return CapsResult(
            "unavailable",
            "none",
            error="libvirt runs but neither libvirt-python nor virsh is installed "
            "(libvirt-clients / libvirt-client package)",
        )
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        left = timeout - (time.monotonic() - start)
        if left <= 0.05:
            raise subprocess.TimeoutExpired(args, max(0.0, left))
        return subprocess.run(
            [virsh, *args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=left,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    def err(p: subprocess.CompletedProcess[str]) -> str:
        lines = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
        lines = [ln[7:] if ln.startswith("error: ") else ln for ln in lines]
        return "; ".join(lines[:3]) or f"virsh exited with status {p.returncode}"

    try:
        p = run(["-r", "-c", LIBVIRT_URI, "capabilities"])
        if p.returncode != 0:
            e = err(p)
            status = "unavailable" if "failed to connect" in e.lower() else "error"
            return CapsResult(status, "virsh", error=e, elapsed=time.monotonic() - start)
        caps = p.stdout
        domcaps: Optional[str] = None
        dc_err: Optional[str] = None
        if euid == 0:
            args = ["-c", LIBVIRT_URI, "domcapabilities", "--virttype", "kvm"]
            if arch:
                args += ["--arch", arch]
            try:
                q = run(args)
            except subprocess.TimeoutExpired:
                # the capabilities came: report them; only the domain capabilities are missing
                q = None
                dc_err = f"libvirt did not answer domcapabilities within {timeout:.1f} s"
            if q is not None and q.returncode == 0:
                domcaps = q.stdout
            elif q is not None:
                dc_err = err(q)
        else:
            dc_err = "domain capabilities need a read-write libvirt connection (run as root)"
        return CapsResult(
            "ok",
            "virsh",
            capabilities=caps,
            domcapabilities=domcaps,
            domcaps_error=dc_err,
            elapsed=time.monotonic() - start,
        )
    except subprocess.TimeoutExpired as e:
        what = " ".join(str(a) for a in e.cmd[-3:]) if isinstance(e.cmd, list) else "virsh"
        return CapsResult(
            "timeout",
            "virsh",
            error=f"libvirt did not answer `virsh {what}` within {timeout:.1f} s",
            elapsed=time.monotonic() - start,
        )
    except OSError as e:
        return CapsResult(
            "error", "virsh", error=f"cannot run virsh: {e}", elapsed=time.monotonic() - start
        )


def _libvirt_caps_api(timeout: float, arch: str, euid: int, start: float) -> CapsResult:
    """The same through libvirt-python, in a daemon thread abandoned past ``timeout``."""
    import time

    box: list[CapsResult] = []
    step = ["connecting"]
    got_caps: list[str] = []

    def work() -> None:
        try:
            import libvirt

            # libvirt's default error handler prints every error to stderr
            libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
            try:
                conn = libvirt.openReadOnly(LIBVIRT_URI)
            except libvirt.libvirtError as e:
                box.append(
                    CapsResult("unavailable", "libvirt-python", error=str(e).strip() or "failed")
                )
                return
            try:
                step[0] = "capabilities"
                caps = conn.getCapabilities()
                got_caps.append(caps)
            finally:
                conn.close()
            domcaps: Optional[str] = None
            dc_err: Optional[str] = None
            if euid == 0:
                step[0] = "domcapabilities --virttype kvm"
                try:
                    rw = libvirt.open(LIBVIRT_URI)
                    try:
                        domcaps = rw.getDomainCapabilities(None, arch or None, None, "kvm", 0)
                    finally:
                        rw.close()
                except libvirt.libvirtError as e:
                    dc_err = str(e).strip()
            else:
                dc_err = "domain capabilities need a read-write libvirt connection (run as root)"
            box.append(
                CapsResult(
                    "ok",
                    "libvirt-python",
                    capabilities=caps,
                    domcapabilities=domcaps,
                    domcaps_error=dc_err,
                    elapsed=time.monotonic() - start,
                )
            )
        except Exception as e:
            box.append(CapsResult("error", "libvirt-python", error=f"{type(e).__name__}: {e}"))

    t = threading.Thread(target=work, name="hvcheck-libvirt-caps", daemon=True)
    t.start()
    t.join(max(0.0, timeout - (time.monotonic() - start)))
    if box:
        return box[0]
    if got_caps:  # only the domain capabilities are missing
        return CapsResult(
            "ok",
            "libvirt-python",
            capabilities=got_caps[0],
            domcaps_error=f"libvirt did not answer {step[0]} within {timeout:.1f} s",
            elapsed=time.monotonic() - start,
        )
    return CapsResult(
        "timeout",
        "libvirt-python",
        error=f"libvirt did not answer {step[0]} within {timeout:.1f} s",
        elapsed=time.monotonic() - start,
    )


def nova_hypervisors(query: NovaQuery) -> NovaAnswer:
    """Nova's record(s) of this hypervisor (:func:`hvcheck.openstack.nova_hypervisors`), or a
    ``skip`` answer without importing the client when no credentials are configured."""
    from hvcheck.novaquery import NO_CREDENTIALS, NovaAnswer, credentials_configured

    try:
        if credentials_configured(os.environ, os.getcwd(), os.path.expanduser("~")) is None:
            # nothing to ask: the client code (hvcheck.openstack) is not even imported
            return NovaAnswer("skip", NO_CREDENTIALS)
    except OSError:
        pass  # nova_hypervisors reports why it cannot look
    from hvcheck.openstack import nova_hypervisors as ask

    return ask(query)


def rpm_qa(dbpath: str, timeout: float) -> RpmRead:
    """``rpm --dbpath DBPATH -qa --qf RPM_QUERYFORMAT``: every package of an RPM database that
    is not SQLite (Berkeley DB ``Packages`` on RHEL/CentOS 7-8 and SLES 12, ndb ``Packages.db``
    on SUSE), within ``timeout`` s (killed past it).

    Also the fallback for an ``rpmdb.sqlite`` that could not be read as a file. A query opens
    the database read-only, but rpm may still touch its own files beside it, as every
    ``rpm -q`` does: a Berkeley DB's lock regions (``__db.00N``), an SQLite database's
    ``-wal``/``-shm`` (rpm keeps them on every host it manages; seen created by a query where
    they were missing). argv list, no shell, ``LC_ALL=C``, stdin closed.
    """
    import shutil
    import subprocess

    from hvcheck.parsers.pkgdb import RPM_QUERYFORMAT, parse_rpm_qa

    rpm = shutil.which("rpm")
    if rpm is None:
        return RpmRead(
            "unavailable",
            "rpm -qa",
            error=f"an RPM database is in {dbpath} but the rpm command is not on PATH",
        )
    if timeout <= 0.05:
        return RpmRead("timeout", "rpm -qa", error="no time left to run rpm -qa")
    try:
        p = subprocess.run(
            [rpm, "--dbpath", dbpath, "-qa", "--qf", RPM_QUERYFORMAT],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return RpmRead("timeout", "rpm -qa", error=f"rpm -qa did not finish within {timeout:.1f} s")
    except OSError as e:
        return RpmRead("error", "rpm -qa", error=f"cannot run rpm: {e}")
    packages = tuple(parse_rpm_qa(p.stdout))
    if p.returncode != 0:
        lines = [ln.strip() for ln in p.stderr.splitlines() if ln.strip()]
        why = "; ".join(lines[:3]) or f"rpm exited with status {p.returncode}"
        return RpmRead("error", "rpm -qa", packages, f"rpm -qa: {why}")
    return RpmRead("ok", "rpm -qa", packages)
