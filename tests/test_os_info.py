"""The OS answer (``Host.os_info``, distro's reading of the release files) on the fixtures, on
made-up release files in a snapshot directory and a .tar.gz, and on this machine live."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from hvcheck.host import MARKER, LiveHost, OsInfo, SnapshotHost

REPO = Path(__file__).resolve().parent.parent

UBUNTU_2204 = OsInfo("ubuntu", "debian", "Ubuntu 22.04.4 LTS", "22.04", "jammy")
UBUNTU_1404 = OsInfo("ubuntu", "debian", "Ubuntu 14.04.5 LTS", "14.04", "Trusty Tahr")
RHEL_94 = OsInfo("rhel", "fedora", "Red Hat Enterprise Linux 9.4 (Plow)", "9.4", "Plow")
DEBIAN_12 = OsInfo("debian", "", "Debian GNU/Linux 12 (bookworm)", "12", "bookworm")
GENTOO = OsInfo("gentoo", "", "Gentoo Linux", "2.15", "")

# what each fixture's etc/os-release says, read by hand
FIXTURES = {
    "aarch64-kvm-host": UBUNTU_2204,
    "amd-builtin-kvm-intel-noise": GENTOO,
    "amd-nested-mismatch": RHEL_94,
    # VERSION="39 (Workstation Edition)" but VERSION_CODENAME="": the empty codename wins
    "amd-svm-disabled-in-firmware": OsInfo(
        "fedora", "", "Fedora Linux 39 (Workstation Edition)", "39", ""
    ),
    "builtin-kvm-intel-nested-modprobe-ignored": GENTOO,
    "cloud-guest-no-vmx": UBUNTU_2204,
    "debian12-amd-svm-disabled-by-bios": DEBIAN_12,
    "debian12-compute-no-qemu": DEBIAN_12,
    "devstack-nova-cpu-conf-virt-type-qemu": UBUNTU_2204,
    "intel-sgx-disabled-kvm-ok": UBUNTU_2204,
    "juju-nova-compute-virt-type-qemu": UBUNTU_2204,
    "kolla-pivot-root-qemu-user-ok": UBUNTU_2204,
    "kolla-virt-type-qemu-on-kvm-host": UBUNTU_2204,
    "kubevirt-vmi-emulated": UBUNTU_2204,
    # hvcheck guest fixtures: os-release as the guest images write it (no VERSION_CODENAME)
    "guest-bare-metal": OsInfo(
        "rhel", "fedora", "Red Hat Enterprise Linux Server 7.1 (Maipo)", "7.1", "Maipo"
    ),
    "guest-hyperv-azure": OsInfo("ubuntu", "debian", "Ubuntu 22.04.5 LTS", "22.04", ""),
    "guest-kvm-openstack-nested": OsInfo("ubuntu", "debian", "Ubuntu 22.04.4 LTS", "22.04", ""),
    "guest-tcg-debian12-cloud-kernel": OsInfo("", "", "", "", ""),  # an initramfs: no os-release
    "guest-vmware": OsInfo("rhel", "fedora", "Red Hat Enterprise Linux 9.4 (Plow)", "9.4", ""),
    "guest-xen-aws-hvm": OsInfo("amzn", "centos rhel fedora", "Amazon Linux 2", "2", ""),
    "kvm-without-vendor-module": OsInfo("arch", "", "Arch Linux", "", ""),  # rolling: no version
    "live-libvirt-dev-kvm-0600": DEBIAN_12,
    "lxd-container-device-cgroup-denies-kvm": OsInfo(
        "ubuntu", "debian", "Ubuntu 20.04.6 LTS", "20.04", "focal"
    ),
    "live-libvirt-kvm-and-qemu-domains": DEBIAN_12,
    "live-qemu-kvm-tcg-fallback": DEBIAN_12,
    "nova-kvm-all-instances-kvm": DEBIAN_12,
    "nova-kvm-dev-kvm-0600": DEBIAN_12,
    "nova-kvm-dev-kvm-0600-acl-qemu-user": DEBIAN_12,
    "nova-kvm-dev-kvm-0600-no-udev-rule": DEBIAN_12,
    "nova-kvm-dev-kvm-0600-udev-rule-not-applied": DEBIAN_12,
    "nova-kvm-tcg-instance": DEBIAN_12,
    "openstack-helm-virt-type-qemu": UBUNTU_2204,
    "own-machine-kvm-pvm": DEBIAN_12,
    "plain-libvirt-nova-virt-type-qemu": DEBIAN_12,
    "ppc64le-powernv": DEBIAN_12,
    "proxmox-vm-kvm-disabled": DEBIAN_12,
    "qemu-default-accel-build-sandbox-user": UBUNTU_2204,
    "qemu-binary-replaced-by-upgrade": DEBIAN_12,
    "rhel9-compute-rpmdb-sqlite": RHEL_94,
    "s390x-sie": RHEL_94,
    "snap-openstack-hypervisor-virt-type-qemu": UBUNTU_2204,
    "static-only": DEBIAN_12,
    "tripleo-nova-compute-virt-type-qemu": RHEL_94,
    # no VERSION_CODENAME: the codename comes from VERSION="14.04.5 LTS, Trusty Tahr"
    "ubuntu1404-kvm-intel-nested": UBUNTU_1404,
    "ubuntu1404-kvm-intel-nosudo": UBUNTU_1404,
    "virtualbox-guest-no-vmx": OsInfo("ubuntu", "debian", "Ubuntu 20.04.6 LTS", "20.04", "focal"),
    "vt-disabled-in-firmware": UBUNTU_2204,
    "vt-disabled-kmsg-rotated": OsInfo("ubuntu", "debian", "Ubuntu 24.04.1 LTS", "24.04", "noble"),
    "wsl2-hyperv-guest-no-nested": UBUNTU_2204,
}


def test_every_fixture_has_its_expected_os() -> None:
    on_disk = {p.parent.name for p in REPO.glob("fixtures/*/hvcheck-snapshot.json")}
    assert on_disk == set(FIXTURES)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_os(name: str) -> None:
    assert SnapshotHost(str(REPO / "fixtures" / name)).os_info() == FIXTURES[name]


# made-up release files: (etc/os-release text, other files, what distro answers)
COMPOSED: dict[str, tuple[str, dict[str, str], OsInfo]] = {
    "rocky9": (
        'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\n'
        'ID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\nPLATFORM_ID="platform:el9"\n'
        'PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n',
        {},
        OsInfo("rocky", "rhel centos fedora", "Rocky Linux 9.3 (Blue Onyx)", "9.3", "Blue Onyx"),
    ),
    # distro normalises some ids (distro.NORMALIZED_OS_ID)
    "ol8": (
        'NAME="Oracle Linux Server"\nVERSION="8.9"\nID="ol"\nID_LIKE="fedora"\n'
        'VERSION_ID="8.9"\nPRETTY_NAME="Oracle Linux Server 8.9"\n',
        {},
        OsInfo("oracle", "fedora", "Oracle Linux Server 8.9", "8.9", ""),
    ),
    "leap": (
        'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
        'VERSION_ID="15.5"\nPRETTY_NAME="openSUSE Leap 15.5"\n',
        {},
        OsInfo("opensuse", "suse opensuse", "openSUSE Leap 15.5", "15.5", ""),
    ),
    "escapes": (
        '# comment\nID=my\\ os\nPRETTY_NAME=\'Quoted "name"\'\nVERSION_ID=1\nVERSION_CODENAME=""\n',
        {},
        OsInfo("my_os", "", 'Quoted "name"', "1", ""),
    ),
    # no os-release: a distro release file answers (CentOS 6 ships both, the same text)
    "centos6": (
        "",
        {
            "etc/centos-release": "CentOS release 6.10 (Final)\n",
            "etc/redhat-release": "CentOS release 6.10 (Final)\n",
        },
        OsInfo("centos", "", "CentOS 6.10 (Final)", "6.10", "Final"),
    ),
    "nothing": ("", {}, OsInfo("", "", "", "", "")),
}


def _snapshot_dir(root: Path, os_release: str, others: dict[str, str]) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / MARKER).write_text(json.dumps({"format": 1}))
    if os_release:
        (root / "etc/os-release").write_text(os_release)
    for rel, text in others.items():
        (root / rel).write_text(text)
    return root


def _tarball(src: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                ti = tarfile.TarInfo(str(p.relative_to(src)))
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return out


@pytest.mark.parametrize("name", sorted(COMPOSED))
def test_composed_os_in_a_directory_and_a_tarball(name: str, tmp_path: Path) -> None:
    text, others, expected = COMPOSED[name]
    d = _snapshot_dir(tmp_path / "snap", text, others)
    assert SnapshotHost(str(d)).os_info() == expected
    assert SnapshotHost(str(_tarball(d, tmp_path / "snap.tar.gz"))).os_info() == expected


def test_an_unparseable_os_release_says_so(tmp_path: Path) -> None:
    d = _snapshot_dir(tmp_path / "snap", 'ID="debian\nPRETTY_NAME=x\nVERSION_ID=1\n', {})
    with pytest.raises(ValueError, match="os-release cannot be parsed"):
        SnapshotHost(str(d)).os_info()


def test_a_release_file_linking_out_of_the_snapshot_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside-os-release"
    outside.write_text('ID=evil\nPRETTY_NAME="Not the snapshot"\nVERSION_ID=6\n')
    d = _snapshot_dir(tmp_path / "snap", "", {})
    (d / "etc/os-release").symlink_to(outside)
    assert SnapshotHost(str(d)).os_info().id != "evil"


def test_live_answer_is_the_answer_from_a_copy_of_its_release_files(tmp_path: Path) -> None:
    """The live host (distro on /) and a snapshot of the same release files agree."""
    d = _snapshot_dir(tmp_path / "snap", "", {})
    copied = 0
    for rel in ["etc/os-release", "usr/lib/os-release"]:
        src = Path("/") / rel
        if src.is_file():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, d / rel)
            copied += 1
    for src in [*Path("/etc").glob("*-release"), *Path("/etc").glob("*_version")]:
        if src.is_file():
            shutil.copyfile(src, d / "etc" / src.name)
    if not copied:
        pytest.skip("no os-release on this machine")
    live = LiveHost().os_info()
    assert live.id and live.name
    assert SnapshotHost(str(d)).os_info() == live
