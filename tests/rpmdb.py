"""Build real RPM databases for tests with the system's rpm (Debian's ``rpm`` package: rpm 4.18,
whose ``%_db_backend`` is ``sqlite``): one empty package per (name, epoch, version, release,
arch), built by ``rpmbuild`` from a trivial spec, recorded with ``rpm --dbpath DIR -i --justdb``.
The headers in the database are rpm's own; only the package contents are empty.

``python tests/rpmdb.py DIR`` writes the RHEL 9.4 compute node's database that
fixtures/rhel9-compute-rpmdb-sqlite holds (var/lib/rpm/rpmdb.sqlite).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# (name, epoch, version, release, arch): a RHEL 9.4 compute node with RDO's nova (Caracal)
RHEL94_COMPUTE = (
    ("bash", "", "5.1.8", "9.el9", "x86_64"),
    ("kernel", "", "5.14.0", "427.13.1.el9_4", "x86_64"),
    ("qemu-kvm", "17", "8.2.0", "11.el9_4", "x86_64"),
    ("qemu-kvm-core", "17", "8.2.0", "11.el9_4", "x86_64"),
    ("qemu-img", "17", "8.2.0", "11.el9_4", "x86_64"),
    ("libvirt-daemon-kvm", "", "10.0.0", "6.el9_4", "x86_64"),
    ("libvirt-daemon-driver-qemu", "", "10.0.0", "6.el9_4", "x86_64"),
    ("libvirt-daemon-common", "", "10.0.0", "6.el9_4", "x86_64"),
    ("libvirt-libs", "", "10.0.0", "6.el9_4", "x86_64"),
    ("openstack-nova-common", "1", "29.0.1", "1.el9s", "noarch"),
    ("openstack-nova-compute", "1", "29.0.1", "1.el9s", "noarch"),
    ("python3-nova", "1", "29.0.1", "1.el9s", "noarch"),
)

SPEC = """Name: %{pname}
Version: %{pver}
Release: %{prel}
%{?pepoch:Epoch: %{pepoch}}
Summary: hvcheck test package
License: MIT
%description
An empty package carrying a distribution package's name and version (hvcheck test data).
%files
"""


def have_rpm() -> bool:
    return shutil.which("rpm") is not None and shutil.which("rpmbuild") is not None


def _run(args: list[str]) -> None:
    p = subprocess.run(args, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({p.returncode}): {p.stderr[-2000:]}")


def build_rpmdb(dbdir: Path, packages: tuple[tuple[str, str, str, str, str], ...]) -> Path:
    """An rpmdb.sqlite in ``dbdir`` holding ``packages``; returns its path."""
    dbdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hvcheck-rpmbuild-") as tmp:
        top = Path(tmp)
        spec = top / "pkg.spec"
        spec.write_text(SPEC)
        rpms: list[str] = []
        for name, epoch, version, release, arch in packages:
            args = [
                "rpmbuild",
                "--quiet",
                "--define",
                f"_topdir {top}",
                "--define",
                f"pname {name}",
                "--define",
                f"pver {version}",
                "--define",
                f"prel {release}",
                "--target",
                arch,
                "-bb",
                str(spec),
            ]
            if epoch:
                args[2:2] = ["--define", f"pepoch {epoch}"]
            _run(args)
            rpms.append(str(top / "RPMS" / arch / f"{name}-{version}-{release}.{arch}.rpm"))
        _run(["rpm", "--dbpath", str(dbdir.resolve()), "--initdb"])
        env_args = ["--justdb", "--nodeps", "--ignorearch", "--ignoreos", "--noscripts"]
        _run(["rpm", "--dbpath", str(dbdir.resolve()), "-i", *env_args, *rpms])
    return dbdir / "rpmdb.sqlite"


if __name__ == "__main__":
    out = Path(sys.argv[1])
    db = build_rpmdb(out, RHEL94_COMPUTE)
    for extra in ("rpmdb.sqlite-shm", "rpmdb.sqlite-wal", ".rpm.lock"):
        if (out / extra).exists():
            os.unlink(out / extra)
    print(db)
