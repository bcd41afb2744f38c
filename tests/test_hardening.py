"""Hostile snapshots, hostile strings, vanishing processes, partial privileges."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from qemu_harness import skip_if_namespace_refused
from snap import PROJECT, healthy_host, run_hvcheck, run_json

SECRET = "TOP-SECRET-OUTSIDE-THE-SNAPSHOT"


@pytest.fixture()
def outside(tmp_path: Path) -> Path:
    f = tmp_path / "outside" / "shadow"
    f.parent.mkdir()
    f.write_text(f"root:{SECRET}:19000:0:99999:7:::\n")
    return f


def _all_output(root: Path, *extra: str) -> tuple[str, list[int]]:
    outs, codes = [], []
    for fmt in ("json", "table", "nagios", "prometheus"):
        p = run_hvcheck("--root", str(root), "--format", fmt, "-v", *extra)
        assert "Traceback" not in p.stdout + p.stderr
        outs.append(p.stdout + p.stderr)
        codes.append(p.returncode)
    return "\n".join(outs), codes


def test_symlink_out_of_a_snapshot_directory_is_not_followed(tmp_path: Path, outside: Path) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "etc/nova").mkdir(parents=True)
    os.symlink(outside, root / "etc/nova/nova.conf")
    os.symlink("../../outside/shadow", root / "etc/passwd")  # relative escape
    (root / "proc/cpuinfo").unlink()
    os.symlink("/dev/zero", root / "proc/cpuinfo")  # endless, and outside
    text, _ = _all_output(root)
    assert SECRET not in text
    _, doc = run_json("--root", str(root))
    nova = next(c for c in doc["checks"] if c["id"] == "nova.virt_type")
    assert nova["status"] == "UNKNOWN" and "not followed" in nova["summary"]
    assert "CRITICAL" not in {c["status"] for c in doc["checks"]}


def test_hostile_proc_entries_of_a_snapshot_directory_are_not_followed(
    tmp_path: Path, outside: Path
) -> None:
    """/proc/<pid> is read relative to a directory fd, one O_NOFOLLOW open per file: a link
    anywhere (the pid directory, a file, fd/, task/, task/<tid>, a comm) or a FIFO still goes
    through the checked path and is refused, never read."""
    root = healthy_host(tmp_path / "s")
    evil = outside.parent / "evilproc"  # an outside "process" whose files hold the secret
    (evil / "fd").mkdir(parents=True)
    (evil / "task/1").mkdir(parents=True)
    qemu = b"/usr/bin/qemu-system-x86_64\0"
    (evil / "cmdline").write_bytes(qemu + b"-name\0guest=" + SECRET.encode() + b"\0")
    (evil / "comm").write_text("qemu-system-x86\n")
    (evil / "status").write_text(f"Name:\t{SECRET}\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n")
    (evil / "task/1/comm").write_text(f"{SECRET}\n")
    os.symlink("anon_inode:kvm-vcpu:0", evil / "fd/3")
    os.symlink(f"/{SECRET}", evil / "fd/4")
    os.symlink(evil, root / "proc/4242")  # a whole pid directory that leaves the snapshot
    p = root / "proc/4243"  # a plain pid directory whose entries leave it
    p.mkdir()
    os.symlink(evil / "cmdline", p / "cmdline")
    (p / "comm").write_text("qemu-system-x86\n")
    os.symlink(evil / "fd", p / "fd")
    os.symlink(evil / "task", p / "task")
    os.mkfifo(p / "status")  # a reader would block
    q = root / "proc/4244"  # a sane process with hostile threads
    (q / "task/8").mkdir(parents=True)
    (q / "fd").mkdir()
    (q / "cmdline").write_bytes(qemu + b"-name\0guest=sane,debug-threads=on\0-accel\0tcg\0")
    (q / "comm").write_text("qemu-system-x86\n")
    os.symlink(evil / "task/1", q / "task/7")
    os.symlink(evil / "task/1/comm", q / "task/8/comm")
    os.symlink("/dev/null", q / "fd/0")
    os.symlink(evil / "status", q / "status")
    t0 = time.monotonic()
    text, _ = _all_output(root, "-t", "5")
    assert time.monotonic() - t0 < 60
    assert SECRET not in text
    _, doc = run_json("--root", str(root), "-t", "5")
    inst = {i["pid"]: i for i in doc["instances"]}
    assert 4242 not in inst  # nothing of it could be read
    assert inst[4244]["name"] == "sane" and inst[4244]["accel"] == "tcg"
    # its fds and threads were refused: only what the binary's name implies is left
    assert not {"fd", "threads"} & set(inst[4243]["evidence"])
    unreadable = " ".join(inst[4243]["unreadable"])
    assert "/proc/4243/fd" in unreadable and "/proc/4243/task" in unreadable
    assert "CRITICAL" not in {c["status"] for c in doc["checks"]}


def test_fifo_and_huge_files_inside_a_snapshot_do_not_hang(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "etc/nova").mkdir(parents=True)
    os.mkfifo(root / "etc/nova/nova.conf")  # a reader would block forever
    with open(root / "dev/kmsg", "wb") as f:  # 40 MiB of kernel log
        f.write(b"6,1,0,-;" + b"x" * 100 + b"\n")
        f.seek(40 * 1024 * 1024)
        f.write(b"\n")
    t0 = time.monotonic()
    p = run_hvcheck("--root", str(root), "--json", "-t", "5")
    assert time.monotonic() - t0 < 8
    doc = json.loads(p.stdout)
    assert doc["verdict"]["kvm_usable"] is True


def _tar_with(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for ti, data in members:
            tf.addfile(ti, io.BytesIO(data) if ti.isreg() else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    return ti, data


def test_hostile_tarball_members_are_ignored_and_nothing_is_written(
    tmp_path: Path, outside: Path
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    link = tarfile.TarInfo("etc/nova/nova.conf")
    link.type, link.linkname = tarfile.SYMTYPE, str(outside)
    hard = tarfile.TarInfo("etc/passwd")
    hard.type, hard.linkname = tarfile.LNKTYPE, str(outside)
    dev = tarfile.TarInfo("proc/cpuinfo")
    dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 5  # /dev/zero
    marker = json.dumps(
        {
            "format": 1,
            "probes": {"kvm": {"ok": True, "api_version": 12}},
            "devices": {
                "/dev/kvm": {
                    "type": "char",
                    "major": 10,
                    "minor": 232,
                    "mode": "0660",
                    "uid": 0,
                    "gid": 0,
                }
            },
        }
    )
    tar = _tar_with(
        tmp_path / "evil.tar.gz",
        [
            _file("hvcheck-snapshot.json", marker.encode()),
            _file("../escaped-relative", b"x"),
            _file(str(tmp_path / "escaped-absolute"), b"x"),
            _file("etc/../../escaped-dotdot", b"x"),
            (link, b""),
            (hard, b""),
            (dev, b""),
        ],
    )
    before = sorted(p.name for p in tmp_path.iterdir())
    p = subprocess.run(
        [sys.executable, "-m", "hvcheck", "--root", str(tar), "--json", "-v"],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert "Traceback" not in p.stderr and SECRET not in p.stdout + p.stderr
    doc = json.loads(p.stdout)
    assert doc["verdict"]["kvm_usable"] is True
    assert sorted(x.name for x in tmp_path.iterdir()) == before
    assert list(cwd.iterdir()) == []
    assert not (tmp_path.parent / "escaped-relative").exists()


def test_truncated_or_non_gzip_tarball_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.tar.gz"
    _tar_with(good, [_file("hvcheck-snapshot.json", b'{"format": 1}')])
    trunc = tmp_path / "trunc.tar.gz"
    trunc.write_bytes(good.read_bytes()[:20])
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(2000))
    for f in (trunc, junk):
        p = run_hvcheck("--root", str(f), "--format", "nagios")
        assert p.returncode == 3 and p.stdout.startswith("HVCHECK UNKNOWN - ")
        assert "Traceback" not in p.stderr


def test_hostile_config_values_are_inert(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "etc/nova").mkdir(parents=True)
    (root / "etc/nova/nova.conf").write_bytes(
        b"[libvirt]\nvirt_type = \x1b]52;c;cHduZWQ=\x07\x1b[2Jkvm\xff\n"
    )
    text, _ = _all_output(root)
    assert "\x1b" not in text and "\x07" not in text
    _, doc = run_json("--root", str(root))
    c = next(c for c in doc["checks"] if c["id"] == "nova.virt_type")
    # not UTF-8 (\xff): nova-compute cannot even decode the file
    assert c["status"] == "CRITICAL" and c["code"] == "will-not-start"
    # valid UTF-8: the hostile value itself reaches the summary, outside nova's choices
    (root / "etc/nova/nova.conf").write_bytes(
        b"[libvirt]\nvirt_type = \x1b]52;c;cHduZWQ=\x07\x1b[2Jkvm\n"
    )
    text, _ = _all_output(root)
    assert "\x1b" not in text and "\x07" not in text
    _, doc = run_json("--root", str(root))
    c = next(c for c in doc["checks"] if c["id"] == "nova.virt_type")
    assert c["status"] == "CRITICAL" and c["code"] == "will-not-start"
    assert "is not one of kvm" in c["summary"]


EVIL_NAME = "evil\x1b]52;c;aGk=\x07"  # OSC 52: sets the terminal's clipboard


def test_a_hostile_instance_name_is_escaped_once(tmp_path: Path) -> None:
    """Checks carry the name raw; each renderer escapes it once: ``evil\\x1b]52…`` with one
    backslash (never ``evil\\\\x1b…``), and JSON gives back the exact name."""
    root = healthy_host(tmp_path / "s")
    proc = root / "proc/4321"
    (proc / "fd").mkdir(parents=True)
    (proc / "task/4322").mkdir(parents=True)
    (proc / "cmdline").write_bytes(
        b"/usr/bin/qemu-system-x86_64\0-name\0guest="
        + EVIL_NAME.encode()
        + b",debug-threads=on\0-accel\0tcg\0"
    )
    (proc / "comm").write_text("qemu-system-x86\n")
    (proc / "status").write_text("Name:\tqemu-system-x86\nState:\tS (sleeping)\nUid:\t0\t0\t0\t0\n")
    (proc / "task/4322/comm").write_text("CPU 0/TCG\n")
    os.symlink("/dev/null", proc / "fd/0")
    once = "evil\\x1b]52;c;aGk=\\x07"  # as printed: a backslash, then x1b
    wide = {"COLUMNS": "400"}
    for fmt in ("table", "nagios"):
        out = run_hvcheck("--root", str(root), "--format", fmt, "-v", env=wide).stdout
        assert "\x1b" not in out and "\x07" not in out, fmt
        assert f"{once} (pid 4321)" in out, (fmt, out)  # the check's own finding
        assert "\\\\x1b" not in out and "\\\\x07" not in out, (fmt, out)
    nagios = run_hvcheck("--root", str(root), "--format", "nagios").stdout.splitlines()[0]
    assert f"{once} (pid 4321)" in nagios and nagios.count("|") == 1
    p = run_hvcheck("--root", str(root), "--json")
    assert "\x1b" not in p.stdout and "\\u001b" in p.stdout
    doc = json.loads(p.stdout)
    assert [i["name"] for i in doc["instances"]] == [EVIL_NAME]
    acc = next(c for c in doc["checks"] if c["id"] == "instances.accel")
    assert acc["status"] == "WARNING" and f"{EVIL_NAME} (pid 4321)" in acc["summary"]
    assert f"{EVIL_NAME} (pid 4321)" in doc["verdict"]["summary"]


needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None and not os.environ.get("CI"),
    reason="needs qemu-system-x86_64",
)


@needs_qemu
def test_processes_that_vanish_mid_scan_never_error_or_appear_as_phantoms() -> None:
    stop = threading.Event()
    started: list[int] = []

    def churn() -> None:
        rnd = random.Random(42)
        while not stop.is_set():
            p = subprocess.Popen(
                [
                    "qemu-system-x86_64",
                    "-name",
                    "guest=racer,debug-threads=on",
                    "-machine",
                    "none",
                    "-accel",
                    "tcg",
                    "-S",
                    "-display",
                    "none",
                    "-nodefaults",
                    "-no-user-config",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            started.append(p.pid)
            time.sleep(rnd.uniform(0.0, 0.05))
            p.kill()
            p.wait()

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        for _ in range(15):
            rc, doc = run_json("--only", "instances", "-t", "5")
            acc = next(c for c in doc["checks"] if c["id"] == "instances.accel")
            assert acc["code"] not in ("check-error", "process-gone", "timeout"), acc
            for inst in doc["instances"]:
                if inst["name"] == "racer":
                    # a racer that was reported was seen whole: a decision with evidence
                    assert inst["accel"] in ("tcg", "unknown") and inst["evidence"], inst
            assert rc in (0, 1, 2, 3)
    finally:
        stop.set()
        t.join(10)
    assert len(started) > 20
    for pid in started:
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().split()[2] == "Z"


def _run_json_asking_libvirt(*args: str) -> tuple[int, dict[str, Any]]:
    """hvcheck in a private mount namespace where libvirt has to be asked: its capability
    cache is an empty tmpfs, and /etc/libvirt holds only a qemu.conf running QEMU as root (who
    may open /dev/kvm, so the QEMU user's access does not answer for libvirt either). Nothing
    changes outside that namespace."""
    import tempfile

    d = tempfile.mkdtemp(prefix="hvcheck-asklibvirt-")
    os.chmod(d, 0o755)
    conf = os.path.join(d, "qemu.conf")
    Path(conf).write_text('user = "root"\ngroup = "root"\n')
    cache = "/var/cache/libvirt/qemu/capabilities"
    script = (
        f"{{ [ ! -d {cache} ] || mount -t tmpfs tmpfs {cache}; }} && "
        f'mount --bind {d} /etc/libvirt && exec "$@"'
    )
    try:
        p = subprocess.run(
            [
                "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                sys.executable, "-m", "hvcheck", "--json", *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
    finally:
        shutil.rmtree(d, ignore_errors=True)
    skip_if_namespace_refused(p, "private mount namespace with bind mounts")
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


def test_libvirt_socket_that_accepts_and_never_answers_is_bounded() -> None:
    """A hung libvirtd: its read-only socket accepts and then says nothing. When hvcheck has
    to ask it (no capability cache), the run still ends within --timeout, libvirt.caps is
    UNKNOWN and every other check answered."""
    import socket

    if shutil.which("virsh") is None or os.geteuid() != 0 or not Path("/etc/libvirt").is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must have virsh, libvirt's /etc/libvirt and root")
        pytest.skip("needs virsh, /etc/libvirt and root")
    run_dir = Path("/run/libvirt")
    socks = [run_dir / "libvirt-sock-ro", run_dir / "libvirt-sock"]
    if any(s.exists() for s in socks):
        pytest.skip("a real libvirtd is running here")
    created_dir = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    servers: list[socket.socket] = []
    accepted: list[socket.socket] = []
    stop = threading.Event()
    try:
        for path in socks:
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(str(path))
            srv.listen(8)
            srv.settimeout(0.2)
            servers.append(srv)

        def accept_forever() -> None:
            while not stop.is_set():
                for srv in servers:
                    try:
                        conn, _ = srv.accept()
                        accepted.append(conn)  # hold it open, never answer
                    except OSError:
                        continue

        t = threading.Thread(target=accept_forever, daemon=True)
        t.start()
        t0 = time.monotonic()
        rc, doc = _run_json_asking_libvirt("-t", "3", "--no-api")
        elapsed = time.monotonic() - t0
        assert elapsed < 3 + 2.5, elapsed
        checks = {c["id"]: c for c in doc["checks"]}
        assert checks["libvirt.caps"]["status"] == "UNKNOWN", checks["libvirt.caps"]
        assert accepted, "virsh never connected to the hung socket"
        assert checks["kvm.device"]["status"] != "UNKNOWN" or "sudo" in (
            checks["kvm.device"]["hint"] or ""
        )
        assert "did not finish" not in checks["cpu.arch"]["summary"]
        assert rc == 3 or doc["status"] == "CRITICAL"
    finally:
        stop.set()
        for c in accepted:
            c.close()
        for srv in servers:
            srv.close()
        for path in socks:
            path.unlink(missing_ok=True)
        if created_dir:
            shutil.rmtree(run_dir, ignore_errors=True)


QEMU_ROOT_STATUS = "Name:\tqemu-system-x86\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0\n"


def _snapshot_qemu(root: Path, pid: int, args: list[str], fds: list[str]) -> None:
    proc = root / f"proc/{pid}"
    proc.mkdir(parents=True)
    argv = ["qemu-system-x86_64", "-name", f"vm{pid}", *args]
    (proc / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "comm").write_text("qemu-system-x86\n")
    (proc / "status").write_text(QEMU_ROOT_STATUS)
    (proc / "exe").symlink_to("/usr/bin/qemu-system-x86_64")
    (proc / "fd").mkdir()
    for n, target in enumerate(fds):
        (proc / f"fd/{n}").symlink_to(target)


def test_an_empty_fd_directory_is_not_evidence_of_tcg(tmp_path: Path) -> None:
    # every QEMU holds fds (0-2 at least); an empty proc/PID/fd (a pruned snapshot, an
    # exiting process) is no evidence. It was read as "0 open fds, none is /dev/kvm" ->
    # accel tcg, verified, and a WARNING whose hint says "plain QEMU: -accel kvm" to a process
    # started with -accel kvm
    root = healthy_host(tmp_path / "s")
    _snapshot_qemu(root, 4242, ["-accel", "kvm"], [])
    _, doc = run_json("--root", str(root), "--only", "instances")
    (inst,) = doc["instances"]
    assert inst["accel"] != "tcg", inst
    assert doc["counts"]["tcg_instances"] == 0


def test_a_wrongly_typed_node_record_does_not_hide_an_fd_proven_fallback(tmp_path: Path) -> None:
    """A marker whose /dev/kvm record has the wrong type (mode 438, where the contract has the
    string "0600") is refused, and what depends on it is UNKNOWN; the instances' own fds still
    prove a silent fallback to TCG, which stays CRITICAL (it was UNKNOWN: the fallback hint's
    access judgement raised), and the verdict's reason is the refusal's words, not a Python
    exception's repr ("PermissionError: [Errno 22] ...")."""
    root = tmp_path / "s"
    shutil.copytree(PROJECT / "fixtures" / "live-qemu-kvm-tcg-fallback", root, symlinks=True)
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["devices"]["/dev/kvm"]["mode"] = 438
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    code, doc = run_json("--root", str(root))
    checks = {c["id"]: c for c in doc["checks"]}
    assert checks["kvm.device"]["status"] == "UNKNOWN", checks["kvm.device"]
    accel = checks["instances.accel"]
    assert accel["status"] == "CRITICAL" and accel["code"] == "silent-fallback", accel
    assert code == 2 and doc["verdict"]["kvm_usable"] is None
    reason = doc["verdict"]["kvm_usable_reason"]
    assert "wrong type" in reason and "Error" not in reason and "Errno" not in reason, reason


def test_tcg_instances_where_kvm_usability_cannot_be_told_do_not_say_it_is_not_usable(
    tmp_path: Path,
) -> None:
    """Instances asked for TCG and run it (their fds hold no KVM inode); whether KVM is usable
    here cannot be told (the /dev/kvm record is refused): a WARNING that says so, not "KVM is
    not usable on this host" (which the facts do not show), nor an UNKNOWN for the whole
    check."""
    root = healthy_host(tmp_path / "s")
    _snapshot_qemu(root, 4242, ["-accel", "tcg"], ["/dev/null", "pipe:[1]", "socket:[2]"])
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    marker["devices"]["/dev/kvm"]["mode"] = 438
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root), "--only", "instances.accel")
    (c,) = doc["checks"]
    assert c["status"] == "WARNING" and c["code"] == "tcg-kvm-unknown", c
    assert "not usable" not in c["summary"] and "cannot be told" in c["summary"], c


def test_a_fifo_or_a_link_loop_in_a_snapshot_is_a_clear_refusal(tmp_path: Path) -> None:
    """Where a snapshot holds a FIFO or a symlink loop instead of a file, the checks that read
    it say which file and why (UNKNOWN), not "check failed: OSError ... please report this",
    which reads as a bug of hvcheck's."""
    import os

    root = healthy_host(tmp_path / "s")
    (root / "proc/cpuinfo").unlink()
    os.mkfifo(root / "proc/cpuinfo")
    (root / "proc/modules").unlink(missing_ok=True)
    (root / "proc/modules").symlink_to("modules")  # a loop
    _, doc = run_json("--root", str(root))
    bad = [c for c in doc["checks"] if c["status"] == "UNKNOWN"]
    assert any("/proc/cpuinfo" in c["summary"] for c in bad), bad
    for c in doc["checks"]:
        assert c["code"] != "check-error" and "please report" not in (c["hint"] or ""), c


HOST_NS, CONTAINER_NS = "mnt:[4026531841]", "mnt:[4026532612]"


@pytest.mark.parametrize("probe", [{"ok": False, "stage": "open", "errno": "ENOENT"}, None])
@pytest.mark.parametrize("where", ["container", "host"])
def test_kvm_guests_in_another_mount_namespace_than_hvcheck_without_dev_kvm(
    tmp_path: Path, probe: Optional[dict[str, Any]], where: str
) -> None:
    """No /dev/kvm in hvcheck's mount namespace (the probe: ENOENT; or a snapshot without a
    probe) while a QEMU process in another one holds KVM vCPU fds: this kernel runs KVM
    guests. hvcheck in a container sharing the host's pid namespace (its mount namespace is
    not pid 1's) cannot probe the device: kvm.device UNKNOWN with how to give it the device.
    hvcheck in the host's namespace, beside a container with a /dev of its own: a WARNING that
    the host lacks the node. Never CRITICAL "guests cannot get KVM", which the running guest
    contradicts; the vendor module counts as started (it said "did not start"), kvm_usable is
    unknown, not false."""
    root = healthy_host(tmp_path / "s")
    fds = ["/dev/null", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0", "anon_inode:kvm-vcpu:1"]
    _snapshot_qemu(root, 4242, ["-accel", "kvm"], fds)
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    del marker["devices"]["/dev/kvm"]
    if probe is None:
        del marker["probes"]["kvm"]
    else:
        marker["probes"]["kvm"] = probe
    own = CONTAINER_NS if where == "container" else HOST_NS
    marker["mount_ns"] = {"self": own, "processes": {"1": HOST_NS, "4242": CONTAINER_NS}}
    if where == "container":
        marker["mount_ns"]["processes"]["4242"] = HOST_NS
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root))
    checks = {c["id"]: c for c in doc["checks"]}
    dev = checks["kvm.device"]
    assert "QEMU pid 4242, in another mount namespace, runs KVM vCPUs" in dev["summary"], dev
    if where == "container":
        assert dev["status"] == "UNKNOWN" and dev["code"] == "not-visible", dev
        assert "--device /dev/kvm" in dev["hint"], dev["hint"]
    else:
        assert dev["status"] == "WARNING" and dev["code"] == "missing-on-host", dev
        assert dev["hint"].startswith("recreate the host's node: mknod"), dev["hint"]
    assert doc["verdict"]["kvm_usable"] is None, doc["verdict"]
    assert checks["kvm.modules"]["status"] == "OK", checks["kvm.modules"]
    assert checks["instances.accel"]["status"] == "OK", checks["instances.accel"]
    assert not [c for c in doc["checks"] if c["status"] == "CRITICAL"], doc["checks"]
    # without such processes, a missing /dev/kvm is what it was: CRITICAL
    shutil.rmtree(root / "proc/4242")
    _, doc = run_json("--root", str(root), "--only", "kvm.device")
    (c,) = doc["checks"]
    assert c["status"] == "CRITICAL" and c["code"] == "missing", c


DELETED_KVM_FDS = ["/dev/null", "/dev/kvm (deleted)", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"]


def _without_dev_kvm(root: Path, **extra: Any) -> None:
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    del marker["devices"]["/dev/kvm"]
    marker["probes"]["kvm"] = {
        "ok": False,
        "stage": "open",
        "errno": "ENOENT",
        "error": "No such file or directory",
        "uid": 0,
    }
    marker.update(extra)
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))


def test_dev_kvm_deleted_on_the_host_while_guests_run_is_critical(tmp_path: Path) -> None:
    """hvcheck runs on the host (no container marker, taken as root) in the same mount
    namespace as the QEMU process, whose fd reads "/dev/kvm (deleted)": the node was removed
    after the guest opened it. Running guests keep KVM; a new guest cannot open /dev/kvm.
    That is CRITICAL (it was before 250181a), not UNKNOWN "run hvcheck on the host itself"."""
    root = healthy_host(tmp_path / "s")
    _snapshot_qemu(root, 4242, ["-accel", "kvm"], DELETED_KVM_FDS)
    ns = "mnt:[4026531841]"
    _without_dev_kvm(root, mount_ns={"self": ns, "processes": {"4242": ns}})
    code, doc = run_json("--root", str(root))
    dev = {c["id"]: c for c in doc["checks"]}["kvm.device"]
    assert dev["status"] == "CRITICAL", dev
    assert "run hvcheck on the host itself" not in (dev["hint"] or ""), dev
    assert code == 2


def test_no_dev_kvm_on_the_host_with_kolla_qemu_does_not_say_run_on_the_host(
    tmp_path: Path,
) -> None:
    """The kolla fixture (hvcheck on the host, QEMU in nova_libvirt's mount namespace, whose
    /dev/kvm the snapshot recorded at /proc/3301/root/dev/kvm) with the host's /dev/kvm gone:
    the hints must not tell to run hvcheck on the host (it did) or to re-run with sudo (it ran
    as root)."""
    root = tmp_path / "s"
    shutil.copytree(PROJECT / "fixtures/kolla-pivot-root-qemu-user-ok", root, symlinks=True)
    _without_dev_kvm(root)
    _, doc = run_json("--root", str(root))
    checks = {c["id"]: c for c in doc["checks"]}
    assert "run hvcheck on the host itself" not in (checks["kvm.device"]["hint"] or "")
    assert "sudo" not in (checks["nova.virt_type"]["hint"] or ""), checks["nova.virt_type"]


def test_a_built_in_vendor_module_counts_as_started_where_kvm_guests_run(tmp_path: Path) -> None:
    """A built-in kvm_intel keeps /sys/module/kvm_intel whether or not its init succeeded; with
    no /dev/kvm in hvcheck's mount namespace, nothing of its own shows it started. A QEMU in
    another mount namespace running KVM vCPUs does: kvm.modules says so (it said "did not
    start: /dev/kvm does not exist")."""
    root = healthy_host(tmp_path / "s")
    fds = ["/dev/null", "anon_inode:kvm-vm", "anon_inode:kvm-vcpu:0"]
    _snapshot_qemu(root, 4242, ["-accel", "kvm"], fds)
    (root / "proc/modules").write_text("")
    builtin = root / "lib/modules/5.15.0-91-generic/modules.builtin"
    builtin.parent.mkdir(parents=True, exist_ok=True)
    builtin.write_text(
        "kernel/virt/lib/irqbypass.ko\nkernel/arch/x86/kvm/kvm.ko\n"
        "kernel/arch/x86/kvm/kvm-intel.ko\n"
    )
    marker = json.loads((root / "hvcheck-snapshot.json").read_text())
    del marker["devices"]["/dev/kvm"]
    del marker["probes"]["kvm"]
    marker["mount_ns"] = {"self": CONTAINER_NS, "processes": {"1": HOST_NS, "4242": HOST_NS}}
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker))
    _, doc = run_json("--root", str(root), "--only", "kvm.modules")
    (c,) = doc["checks"]
    assert c["status"] == "OK", c
    assert "QEMU pid 4242 runs KVM vCPUs, which only a started kvm_intel allows" in " ".join(
        [c["summary"], *c["evidence"]]
    ), c
