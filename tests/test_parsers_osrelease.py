"""parsers.osrelease gives what distro gives, whenever it answers at all."""

from __future__ import annotations

import tempfile
from pathlib import Path

import distro
import pytest

from hvcheck.host import LiveHost, OsInfo, _os_info_from_distro
from hvcheck.parsers.osrelease import quick_os_info

REPO = Path(__file__).resolve().parent.parent

COMPOSED = {
    "rocky9": 'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\nID_LIKE="rhel centos '
    'fedora"\nVERSION_ID="9.3"\nPLATFORM_ID="platform:el9"\nPRETTY_NAME="Rocky Linux 9.3 (Blue '
    'Onyx)"\n',
    "ubuntu1404": 'NAME="Ubuntu"\nVERSION="14.04.6 LTS, Trusty Tahr"\nID=ubuntu\nID_LIKE=debian\n'
    'PRETTY_NAME="Ubuntu 14.04.6 LTS"\nVERSION_ID="14.04"\n',
    "ol8": 'NAME="Oracle Linux Server"\nVERSION="8.9"\nID="ol"\nID_LIKE="fedora"\n'
    'VERSION_ID="8.9"\nPRETTY_NAME="Oracle Linux Server 8.9"\n',
    "leap": 'NAME="openSUSE Leap"\nVERSION="15.5"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'
    'VERSION_ID="15.5"\nPRETTY_NAME="openSUSE Leap 15.5"\n',
    "escapes": "# comment\nID=my\\ os\nPRETTY_NAME='Quoted \"name\"'\nVERSION_ID=1\n"
    'VERSION_CODENAME=""\n',
    "sid": 'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nNAME="Debian GNU/Linux"\nID=debian\n',
    "unbalanced": 'ID="debian\nPRETTY_NAME=x\nVERSION_ID=1\n',
    "empty": "",
}

# the common compute-node cases must not need distro
QUICK = {"rocky9", "ubuntu1404", "escapes", "/etc/os-release", "/usr/lib/os-release"}


def _distro(text: str) -> OsInfo:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "etc").mkdir()
        (Path(tmp) / "etc/os-release").write_text(text)
        try:
            dist = distro.LinuxDistribution(root_dir=tmp, include_lsb=False, include_uname=False)
            return _os_info_from_distro(dist)
        except ValueError:  # distro's lexer on unbalanced quotes
            return OsInfo("", "", "", "", "")


def _cases() -> list[tuple[str, str]]:
    out = sorted(COMPOSED.items())
    for p in sorted(REPO.glob("fixtures/*/etc/os-release")):
        out.append((p.parent.parent.name, p.read_text()))
    for p in ("/etc/os-release", "/usr/lib/os-release"):
        if Path(p).is_file():
            out.append((p, Path(p).read_text()))
    return out


@pytest.mark.parametrize(("name", "text"), _cases(), ids=[n for n, _ in _cases()])
def test_same_answer_as_distro_or_none(name: str, text: str) -> None:
    q = quick_os_info(text)
    if q is None:  # distro decides (no version, no codename, unreadable): nothing to compare
        assert name not in QUICK, f"{name}: expected an answer without distro"
        return
    assert OsInfo(*q) == _distro(text), name


def test_live_host_matches_distro() -> None:
    live = LiveHost().os_info()
    assert live == _os_info_from_distro(
        distro.LinuxDistribution(include_lsb=False, include_uname=False)
    )
    assert live.id and live.name
