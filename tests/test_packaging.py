"""hvcheck as a host tool (issue 16): the Debian package built from this tree, its man page,
its completions, and the RPM spec.

- ``dpkg-buildpackage -us -uc -b`` builds ``hvcheck_<version>_all.deb`` on the distribution's
  python3 libraries; lintian reports no error.
- The package installs into a clean Debian 12 root made by debootstrap, as the README's
  newcomer would have, with ``apt-get install ./hvcheck_*.deb`` (nothing from PyPI), and runs
  there with the system Python: ``--version``, ``checks``, ``--root FIXTURE --json`` give the
  same verdict as the development venv.
- The man page is generated from the click command: every option of ``hvcheck --help`` and
  every subcommand is in it, with EXIT STATUS and FILES.
- ``packaging/hvcheck.spec`` parses with ``rpmspec -P`` and asks for the same libraries.

Needs root, dpkg-dev/debhelper/dh-python/lintian/debootstrap/rpm (``./run-tests`` installs them)
and Debian's archive (the machine's apt mirror).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE = "nova-kvm-tcg-instance"
BASE = Path("/var/tmp/hvcheck-test-bookworm")  # debootstrap's result, reused between runs
LOCK = Path("/run/hvcheck-test-bookworm.lock")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds and chroots: needs root")


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, text=True, capture_output=True, check=False, **kw)  # type: ignore[call-overload,no-any-return]


def _version() -> str:
    m = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert m
    return m.group(1)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree (tracked and untracked files, no .git/.venv) built into a .deb; its directory."""
    work = tmp_path_factory.mktemp("deb")
    src = work / "hvcheck"
    ignore = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", "build", "dist")
    shutil.copytree(REPO, src, ignore=ignore, symlinks=True)
    # the distribution's python3 builds it (a pyenv or venv python first on PATH would not have
    # the build's Build-Depends)
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    p = _run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, env=env)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return work


@pytest.fixture(scope="module")
def deb(built: Path) -> Path:
    path = built / f"hvcheck_{_version()}_all.deb"
    assert path.is_file(), sorted(os.listdir(built))
    return path


def _contents(deb: Path) -> list[str]:
    p = _run(["dpkg-deb", "-c", str(deb)])
    assert p.returncode == 0, p.stderr
    return [line.split()[-1].lstrip(".") for line in p.stdout.splitlines()]


def test_package_ships_command_man_pages_completions_examples(deb: Path) -> None:
    files = _contents(deb)
    for want in (
        "/usr/bin/hvcheck",
        "/usr/share/man/man1/hvcheck.1.gz",
        "/usr/share/man/man1/hvcheck-collect.1.gz",
        "/usr/share/bash-completion/completions/hvcheck",
        "/usr/share/zsh/vendor-completions/_hvcheck",
        "/usr/share/fish/vendor_completions.d/hvcheck.fish",
        "/usr/share/doc/hvcheck/examples/nagios/hvcheck.cfg",
        "/usr/share/doc/hvcheck/examples/zabbix/template_hvcheck.yaml",
        "/usr/share/doc/hvcheck/examples/README.md",
    ):
        assert want in files, want
    assert any(
        f.endswith("/hvcheck/cli.py") and "/usr/lib/python3/dist-packages/" in f for f in files
    )


def test_package_depends_on_the_distribution_libraries(deb: Path) -> None:
    p = _run(["dpkg-deb", "-f", str(deb), "Depends"])
    deps = p.stdout
    for lib in ("click", "psutil", "pyudev", "distro", "rich"):
        assert re.search(rf"python3-{lib} \(>= [0-9.]+\)", deps), (lib, deps)
    assert "python3:any" in deps or "python3 " in deps or "python3," in deps, deps


def test_lintian_reports_no_error(deb: Path) -> None:
    p = _run(["lintian", "--fail-on", "error", "--no-tag-display-limit", str(deb)])
    assert p.returncode == 0, p.stdout + p.stderr
    assert not [ln for ln in p.stdout.splitlines() if ln.startswith("E:")], p.stdout


def _man_text(deb: Path, tmp: Path, page: str) -> str:
    _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    import gzip

    return gzip.decompress((tmp / f"usr/share/man/man1/{page}.1.gz").read_bytes()).decode()


def test_man_page_matches_help(deb: Path, tmp_path: Path) -> None:
    man = _man_text(deb, tmp_path, "hvcheck").replace("\\-", "-").replace("\\fB", "")
    help_text = _run([sys.executable, "-m", "hvcheck", "--help"], cwd=REPO).stdout
    options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+|-[a-zA-Z])\b", help_text))
    assert {"--format", "--json", "--root", "--only", "--skip", "--timeout"} <= options
    # click adds --help to every command; click-man, like most man pages, leaves it out
    for opt in options - {"--help"}:
        assert opt in man, f"{opt} in --help but not in hvcheck(1)"
    for section in ("EXIT STATUS", "FILES", "OPTIONS", "COMMANDS"):
        assert f".SH {section}" in man
    for sub in ("checks", "collect", "schema", "value", "report"):
        assert f"\\fB{sub}\\fP".replace("\\fB", "") in man, sub
        sub_man = _man_text(deb, tmp_path, f"hvcheck-{sub}")
        assert sub_man.startswith(".TH"), sub
    assert "/proc/cpuinfo" in man and "/dev/kvm" in man  # FILES, from the checks' reads


# ---------------------------------------------------------------- a clean Debian 12 root
@pytest.fixture(scope="module")
def bookworm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh copy of a debootstrap'd Debian 12 (minbase) with /proc, /sys, /dev bound."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (BASE / "usr/bin/apt-get").exists():
            shutil.rmtree(BASE, ignore_errors=True)
            mirror = "http://deb.debian.org/debian"
            sources = Path("/etc/apt/sources.list.d/debian.sources")
            if sources.exists():
                m = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.M)
                mirror = m.group(1) if m else mirror
            p = _run(["debootstrap", "--variant=minbase", "bookworm", str(BASE), mirror])
            assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    root = tmp_path_factory.mktemp("bookworm") / "root"
    p = _run(["cp", "-a", str(BASE), str(root)])
    assert p.returncode == 0, p.stderr
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    mounted: list[Path] = []
    try:
        for m in ("proc", "sys", "dev"):
            assert _run(["mount", "--bind", f"/{m}", str(root / m)]).returncode == 0
            mounted.append(root / m)
        yield root
    finally:
        for m in reversed(mounted):
            _run(["umount", "-l", str(m)])
        shutil.rmtree(root, ignore_errors=True)


def _chroot(root: Path, cmd: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "DEBIAN_FRONTEND": "noninteractive",
    }
    return _run(["chroot", str(root), "/bin/sh", "-c", cmd], env=env, timeout=1200)


def test_package_installs_and_runs_in_a_clean_debian_12(
    deb: Path, bookworm: Path, tmp_path: Path
) -> None:
    shutil.copy(deb, bookworm / "tmp" / deb.name)
    fixture = bookworm / "tmp" / "fixture"
    shutil.copytree(REPO / "fixtures" / FIXTURE, fixture, symlinks=True)
    p = _chroot(
        bookworm,
        f"apt-get update -q && apt-get install -y -q --no-install-recommends /tmp/{deb.name}",
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    # the system Python and the distribution's libraries only: no pip, no venv in that root
    assert not (bookworm / "usr/bin/pip3").exists()
    p = _chroot(bookworm, "hvcheck --version")
    assert p.returncode == 0 and _version() in p.stdout, p.stdout + p.stderr
    p = _chroot(bookworm, "hvcheck checks")
    assert p.returncode == 0 and "kvm.device" in p.stdout, p.stdout + p.stderr
    p = _chroot(bookworm, "hvcheck --root /tmp/fixture --json")
    packaged = json.loads(p.stdout)
    dev = _run(
        [sys.executable, "-m", "hvcheck", "--root", str(REPO / "fixtures" / FIXTURE), "--json"]
    )
    venv = json.loads(dev.stdout)
    assert p.returncode == dev.returncode
    for key in ("status", "exit_code", "verdict"):
        assert packaged[key] == venv[key], key
    assert [(c["id"], c["status"]) for c in packaged["checks"]] == [
        (c["id"], c["status"]) for c in venv["checks"]
    ]
    p = _chroot(bookworm, "apt-get remove -y -q hvcheck && ! command -v hvcheck")
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- RPM spec
def _spec_requires(text: str, tag: str) -> dict[str, str]:
    out = {}
    for m in re.finditer(rf"^{tag}:\s*python3dist\(([\w-]+)\)\s*(?:>=\s*([\d.]+))?", text, re.M):
        out[m.group(1)] = m.group(2) or ""
    return out


def test_rpm_spec_parses_and_matches_the_project() -> None:
    p = _run(["rpmspec", "-P", str(REPO / "packaging/hvcheck.spec")])
    assert p.returncode == 0, p.stderr
    text = p.stdout
    assert re.search(rf"^Version:\s+{re.escape(_version())}$", text, re.M)
    assert re.search(r"^BuildArch:\s+noarch$", text, re.M)
    requires = _spec_requires(text, "Requires")
    assert set(requires) == {"click", "psutil", "pyudev", "distro", "rich"}, requires
    # every runtime library of pyproject.toml is required by the spec and by debian/control
    deps = re.search(
        r"^dependencies = \[(.*?)\]", (REPO / "pyproject.toml").read_text(), re.S | re.M
    )
    assert deps
    names = set(re.findall(r'"([A-Za-z0-9_-]+)', deps.group(1)))
    assert names == set(requires), (names, requires)
    control = (REPO / "debian/control").read_text()
    for n in names:
        assert f"python3-{n} (>=" in control, n
    assert "%{_mandir}/man1/hvcheck" in (REPO / "packaging/hvcheck.spec").read_text()


def test_tarball_of_tree_has_debian_dir() -> None:
    # dpkg-buildpackage needs these files; a stray edit that drops one fails here first
    for f in ("control", "rules", "changelog", "copyright", "source/format"):
        assert (REPO / "debian" / f).is_file(), f
    assert os.access(REPO / "debian/rules", os.X_OK)
    ch = (REPO / "debian/changelog").read_text().splitlines()[0]
    assert f"({_version()})" in ch, "debian/changelog's version must match pyproject.toml"
