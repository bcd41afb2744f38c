"""``hvcheck collect`` written safely and without secrets (issue 14, input 5).

- the snapshot goes through a fresh temporary file (``mkstemp``: O_EXCL|O_NOFOLLOW, 0600) in
  the target's directory: a symlink planted at any predictable name is never followed;
- only a regular file (or nothing) is replaced: ``-o /dev/null``, ``-o DIR``, a FIFO or a
  symlink are refused with exit 3 and left as they were; a failed write leaves nothing behind;
- secrets of configuration files are redacted, named in the marker, and the verdict does not
  change (every fixture, and a live run with a nova.conf full of secrets).
"""

from __future__ import annotations

import io
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import IO, Any

import pytest

from hvcheck.host.recorder import check_target, redact_files, write_exclusive
from snap import PROJECT, run_hvcheck, run_json

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="collect reads root-only files")
FIXTURES = sorted(p for p in (PROJECT / "fixtures").iterdir() if p.is_dir())

SECRETS = {
    "rabbit": "Rabb1t-S3cret-x9",
    "db": "Db-Pa55w0rd-q7",
    "api_db": "ApiDb-Pa55-k2",
    "keystone": "Keyst0ne-pw-m4",
    "memcache": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "neutron": "Neutr0n-pw-z8",
    "metadata": "Metadata-Shared-S3cret",
    "fixed_key": "fixedkey-00112233445566778899aabbccddeeff",
    "token": "gAAAAABlTokenValue-r5",
}
NOVA_CONF = f"""[DEFAULT]
compute_driver = libvirt.LibvirtDriver
transport_url = rabbit://nova:{SECRETS["rabbit"]}@mq1:5672,nova:{SECRETS["rabbit"]}@mq2:5672/
[api_database]
connection = mysql+pymysql://nova_api:{SECRETS["api_db"]}@db.example.org/nova_api
[database]
connection = mysql+pymysql://nova:{SECRETS["db"]}@db.example.org/nova
[keystone_authtoken]
auth_type = password
password = {SECRETS["keystone"]}
memcache_secret_key = {SECRETS["memcache"]}
admin_token = {SECRETS["token"]}
[neutron]
password = {SECRETS["neutron"]}
metadata_proxy_shared_secret = {SECRETS["metadata"]}
[key_manager]
fixed_key = {SECRETS["fixed_key"]}
[libvirt]
virt_type = kvm
cpu_mode = host-passthrough
"""


def _collect(out: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run_hvcheck("--no-api", "-t", "20", "collect", "-o", str(out), *args, **kw)


def _members(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball, "r:gz") as tf:
        return {m.name: m for m in tf}


def _all_bytes(tarball: Path) -> bytes:
    blob = b""
    with tarfile.open(tarball, "r:gz") as tf:
        for m in tf:
            f = tf.extractfile(m) if m.isreg() else None
            blob += m.name.encode() + b"\n" + (f.read() if f else m.linkname.encode()) + b"\n"
    return blob


def _marker(tarball: Path) -> dict[str, Any]:
    with tarfile.open(tarball, "r:gz") as tf:
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        return dict(json.load(f))


# ---- where and how the file is written ---------------------------------------------------------
@needs_root
def test_a_symlink_planted_at_a_predictable_temp_name_is_never_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    out = tmp_path / "snap.tar.gz"
    planted = [tmp_path / "snap.tar.gz.tmp", tmp_path / ".snap.tar.gz.tmp"]
    for p in planted:
        p.symlink_to(victim)
    before = os.lstat(victim)
    p = _collect(out)
    assert p.returncode == 0, p.stderr
    after = os.lstat(victim)
    assert victim.read_text() == "precious\n"
    assert (after.st_ino, after.st_size, after.st_mtime_ns, stat.S_IMODE(after.st_mode)) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
        0o644,
    )
    for link in planted:
        assert link.is_symlink() and os.readlink(link) == str(victim)
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    # nothing else was left in the directory: the temporary file was renamed into place
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        ["victim", "snap.tar.gz", "snap.tar.gz.tmp", ".snap.tar.gz.tmp"]
    )
    # and the snapshot is one: --root reads it
    _, doc = run_json("--root", str(out))
    assert doc["source"]["snapshot"] == str(out) and "error" not in doc


@needs_root
def test_members_are_private_too(tmp_path: Path) -> None:
    out = tmp_path / "s.tar.gz"
    assert _collect(out).returncode == 0
    for m in _members(out).values():
        if m.isreg():
            assert m.mode == 0o600, m.name
        elif m.isdir():
            assert m.mode == 0o700, m.name


def test_dev_null_is_refused_and_untouched() -> None:
    before = os.lstat("/dev/null")
    p = run_hvcheck("collect", "-o", "/dev/null")
    after = os.lstat("/dev/null")
    assert p.returncode == 3 and "Traceback" not in p.stderr
    assert "character device" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev, after.st_mode) == (
        before.st_ino,
        before.st_rdev,
        before.st_mode,
    )


@pytest.mark.parametrize("kind", ["dir", "dir/", "fifo", "symlink", "missing-parent"])
def test_other_targets_are_refused_and_nothing_is_left(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "t"
    arg = str(target)
    if kind.startswith("dir"):
        target.mkdir()
        arg += "/" if kind == "dir/" else ""
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink":
        (tmp_path / "real").write_text("x")
        target.symlink_to(tmp_path / "real")
    else:
        arg = str(tmp_path / "no-such-dir" / "s.tar.gz")
    listing = sorted(os.listdir(tmp_path))
    t0 = time.monotonic()
    p = run_hvcheck("collect", "-o", arg)
    assert p.returncode == 3 and "Traceback" not in p.stderr, p.stderr
    assert time.monotonic() - t0 < 10  # refused before the run, not after it
    assert sorted(os.listdir(tmp_path)) == listing
    if kind.startswith("dir"):
        assert os.listdir(target) == []
    if kind == "symlink":
        assert (tmp_path / "real").read_text() == "x"


@needs_root
def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    # a file size limit of 4 KiB: the gzip stream outgrows it; Python ignores SIGXFSZ, so the
    # write fails with EFBIG like a full disk would
    out = tmp_path / "s.tar.gz"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    p = subprocess.run(
        [sys.executable, "-m", "hvcheck", "--no-api", "collect", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=limit,
    )
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert "cannot write" in p.stderr and "Traceback" not in p.stderr
    assert os.listdir(tmp_path) == []


def test_write_exclusive_replaces_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "s.tar.gz"
    out.write_bytes(b"old")

    def broken(f: IO[bytes]) -> None:
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_exclusive(str(out), broken)
    assert out.read_bytes() == b"old" and os.listdir(tmp_path) == ["s.tar.gz"]
    write_exclusive(str(out), lambda f: f.write(b"new") and None)
    assert out.read_bytes() == b"new" and stat.S_IMODE(os.lstat(out).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["s.tar.gz"]
    check_target(str(out))  # a regular file may be replaced
    with pytest.raises(OSError):
        check_target(str(tmp_path))


# ---- redaction ---------------------------------------------------------------------------------
def _redacted_copy(src: Path, dst: Path) -> dict[str, list[str]]:
    """``src`` (a snapshot directory) copied to ``dst`` with every regular file passed through
    collect's redaction, as ``write_snapshot`` applies it."""
    shutil.copytree(src, dst, symlinks=True)
    files: dict[str, bytes] = {}
    for p in dst.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.name != "hvcheck-snapshot.json":
            files["/" + str(p.relative_to(dst))] = p.read_bytes()
    originals = dict(files)
    redacted = redact_files(files)
    for path, data in files.items():
        if data != originals[path]:
            (dst / path.lstrip("/")).write_bytes(data)
    return redacted


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc.pop("source", None)
    return doc


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_redaction_changes_no_verdict(fixture: Path, tmp_path: Path) -> None:
    # every fixture, with secrets added to whichever nova.conf and qemu.conf it has
    src = tmp_path / "src"
    shutil.copytree(fixture, src, symlinks=True)
    added = 0
    for conf in [*src.rglob("nova*.conf"), *src.rglob("qemu.conf")]:
        if conf.is_symlink() or not conf.is_file():
            continue
        if conf.name == "qemu.conf":
            conf.write_text(conf.read_text() + '\nvnc_password = "Vnc-S3cret-1"\n')
        else:
            conf.write_text(conf.read_text() + "\n" + NOVA_CONF.replace("[libvirt]\n", "[x]\n"))
        added += 1
    redacted = _redacted_copy(src, tmp_path / "red")
    assert bool(redacted) == bool(added)
    rc1, a = run_json("--root", str(src))
    rc2, b = run_json("--root", str(tmp_path / "red"))
    assert rc1 == rc2 and _comparable(a) == _comparable(b)
    blob = b"".join(p.read_bytes() for p in (tmp_path / "red").rglob("*") if p.is_file())
    for s in [*SECRETS.values(), "Vnc-S3cret-1"]:
        assert s.encode() not in blob


@pytest.fixture()
def nova_compute(tmp_path: Path) -> Any:
    """A process that is nova-compute to hvcheck (argv: python .../nova-compute
    --config-file nova.conf), running as root, with a root-only nova.conf full of secrets."""
    d = tmp_path / "nova"
    d.mkdir()
    conf = d / "nova.conf"
    conf.write_text(NOVA_CONF)
    conf.chmod(0o600)
    script = d / "nova-compute"
    script.write_text("import time\ntime.sleep(120)\n")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--config-file", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    try:
        yield conf
    finally:
        proc.kill()
        proc.wait(10)


@needs_root
def test_collect_redacts_nova_conf_and_replays_the_same_verdict(
    nova_compute: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s.tar.gz"
    p = _collect(out)
    assert p.returncode == 0, p.stderr
    # a note on stderr says secrets were redacted, and where
    assert "redacted" in p.stderr and str(nova_compute) in p.stderr
    blob = _all_bytes(out)
    assert str(nova_compute).lstrip("/").encode() in blob  # the file is in the snapshot
    for name, s in SECRETS.items():
        assert s.encode() not in blob, name
        assert s not in p.stdout + p.stderr
    marker = _marker(out)
    what = marker["redacted"][str(nova_compute)]
    assert "[DEFAULT] transport_url: URL password" in what
    assert "[database] connection: URL password" in what
    assert "[keystone_authtoken] password" in what and "[key_manager] fixed_key" in what
    with tarfile.open(out, "r:gz") as tf:
        f = tf.extractfile(str(nova_compute).lstrip("/"))
        assert f is not None
        kept = f.read().decode()
    assert "rabbit://nova:********@mq1:5672,nova:********@mq2:5672/" in kept
    assert "mysql+pymysql://nova:********@db.example.org/nova" in kept
    assert "virt_type = kvm\ncpu_mode = host-passthrough\n" in kept
    # the replay reaches the collecting run's verdict
    live = marker["live_verdict"]
    rc, doc = run_json("--root", str(out))
    assert doc["status"] == live["status"] and rc == doc["exit_code"]
    assert {c["id"]: c["status"] for c in doc["checks"]} == live["checks"]
    assert doc["verdict"]["virt_type"] == live["virt_type"]
    nova = next(c for c in doc["checks"] if c["id"] == "nova.virt_type")
    if nova["details"].get("source", {}).get("file") == str(nova_compute):
        assert doc["verdict"]["virt_type"] == "kvm"  # ours was the nova-compute judged
    # --root output never carries a secret either
    for fmt in ("table", "nagios", "prometheus"):
        text = run_hvcheck("--root", str(out), "--format", fmt, "-v").stdout
        assert not any(s in text for s in SECRETS.values())


def test_marker_documents_redaction() -> None:
    doc = (PROJECT / "docs" / "SNAPSHOT.md").read_text()
    assert "`redacted`" in doc and "0600" in doc
    sec = (PROJECT / "docs" / "SECURITY.md").read_text()
    assert "redact" in sec and "0600" in sec and "EPIPE" in sec


def test_redact_files_reports_names_never_values() -> None:
    files = {
        "/etc/nova/nova.conf": b"[database]\nconnection = mysql://nova:zz-TOP-zz@db/nova\n",
        "/proc/cpuinfo": b"flags : vmx\n",
    }
    what = redact_files(files)
    assert what == {"/etc/nova/nova.conf": ["[database] connection: URL password"]}
    assert b"zz-TOP-zz" not in files["/etc/nova/nova.conf"]
    assert "zz-TOP-zz" not in json.dumps(what)
    assert io.BytesIO(files["/proc/cpuinfo"]).read() == b"flags : vmx\n"
