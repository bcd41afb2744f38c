#!/usr/bin/env python3
"""hvcheck performance benchmark (issue 11, point 8). A benchmark, not a test: pytest and CI
never run it, and nothing asserts on timings.

From the repository root, as root, on the machine to measure (about 5 minutes)::

    python bench/run.py [--quick] [--guests N] [--out bench/RESULTS.md] [--keep-tmp]

It installs this checkout into a fresh venv as ``install.sh`` installs ``/opt/hvcheck``, then
times with hyperfine (wall time, statistics and outliers are hyperfine's):

1. the live probe ``hvcheck --format nagios`` against ``virt-host-validate qemu`` and against
   ``bash bench/manual.sh``, the manual procedure hvcheck replaces;
2. ``hvcheck --root SNAP --format nagios`` on generated snapshots of 10, 100, 1,000 and 5,000
   QEMU processes (argv from ../shared/corpus/qemu-cmdline, in the layout of docs/SNAPSHOT.md);
3. max RSS and minor page faults (GNU ``time -f "%M %R"``) of each command; max RSS five
   times at 5,000 instances;
4. which modules and libraries each output path imports (``PYTHONPROFILEIMPORTTIME``);
5. optionally, the live probe with N real paused TCG guests (tests/qemu_harness.py).

and writes ``bench/RESULTS.md``: machine, versions, git HEAD, medians (min–max) from
hyperfine's JSON, the targets with PASS/FAIL, and the heaviest imports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parent.parent
MANUAL = REPO / "bench" / "manual.sh"
# ../shared/corpus beside the checkout (or beside a directory above it, for a git worktree)
CORPUS = Path(
    os.environ.get("HVCHECK_CORPUS")
    or next(
        (str(p / "shared" / "corpus") for p in REPO.parents if (p / "shared" / "corpus").is_dir()),
        str(REPO.parent / "shared" / "corpus"),
    )
)
GNU_TIME = "/usr/bin/time"

SIZES = (10, 100, 1000, 5000)
SNAP_TIMEOUT = "600"  # time the whole scan, never the default 10 s deadline
RSS_RUNS = 5
DEADLINE_WAIT = 8.0  # a live run this long waited for hvcheck's default 10 s deadline
LIBVIRT_SOCKETS = ("/run/libvirt/libvirt-sock-ro", "/run/libvirt/virtqemud-sock-ro")
TARGET_VS_VHV = 8.0  # live nagios ≤ 8× virt-host-validate qemu
TARGET_VS_MANUAL = 2.0  # live nagios ≤ 2× the manual procedure
TARGET_1000_MS = 300.0
TARGET_RSS_MB = 60.0
NO_RICH_PATHS = ("nagios", "json")  # rich draws the table only: these paths must not load it
# What an import listing names, besides every package installed in the venv.
WATCHED = ("importlib.metadata", "json", "subprocess", "concurrent.futures", "xml", "tarfile")
# what the live probe cannot do without: the card's libraries on its path (rich draws only the
# table; pyudev only where a judgement needs udev's view and udev runs) and the entry-point reader
CARD_LIBS = ("click", "psutil", "distro", "importlib.metadata")
LIBS_ONLY = "python: import " + ", ".join(CARD_LIBS) + " (nothing else)"
MANUAL_TOOLS = ("dpkg", "lsmod", "dmesg", "kvm-ok", "virt-host-validate", "ps")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def out_of(argv: Sequence[str], env: Optional[dict[str, str]] = None) -> str:
    """First line a command prints (stdout, else stderr), or why it could not run."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"
    lines = (p.stdout.strip() or p.stderr.strip()).splitlines()
    return lines[0] if lines else ""


# ---- tools and the measured install ---------------------------------------------------------
# The tools the bench runs, and the Debian packages that give them: hyperfine and GNU time
# measure; kvm-ok is a step of the manual procedure (issue 11, point 8, and the README's problem
# statement), which bench/manual.sh could otherwise only skip, timing a smaller procedure than
# the one hvcheck replaces.
TOOL_PACKAGES = (("hyperfine", "hyperfine"), (GNU_TIME, "time"), ("kvm-ok", "cpu-checker"))


def ensure_tools() -> list[str]:
    """The packages of :data:`TOOL_PACKAGES`, from Debian when missing. Returns what was
    installed."""
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"  # kvm-ok is in /usr/sbin
    need = [pkg for tool, pkg in TOOL_PACKAGES if not shutil.which(tool, path=path)]
    if need:
        log(f"apt-get install {' '.join(need)}")
        subprocess.run(["apt-get", "update", "-q"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-q", *need], check=True)
    return need


def install_like_install_sh(tmp: Path) -> Path:
    """A fresh venv made as install.sh makes /opt/hvcheck (the system python3, pip upgraded,
    ``pip install .``, not editable), from a copy of the work tree (tracked and new files: pip
    would otherwise write build/ into the checkout). Returns the venv."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "-co", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    src = tmp / "src"
    for name in filter(None, (f.decode() for f in files)):
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    venv = tmp / "venv"
    base = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, str(src)], check=True)
    return venv


def child_env() -> dict[str, str]:
    """The environment of an operator's root shell: none of this session's PYTHON* variables
    (bytecode is written and read as usual), the C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    env["LC_ALL"] = "C"
    return env


def io_pressure() -> Optional[float]:
    """``some avg10`` of /proc/pressure/io: % of the last 10 s some task waited for I/O."""
    try:
        return float(Path("/proc/pressure/io").read_text().split("avg10=")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def settle_io(limit_kb: int = 4096, wait: float = 90.0) -> None:
    """sync, then wait until dirty pages are written and I/O pressure is under 2 %: writing or
    deleting a few hundred thousand snapshot files keeps writeback and ext4's journal busy for
    a while, which would stall the runs that follow."""
    os.sync()
    end = time.monotonic() + wait
    while time.monotonic() < end:
        dirty = 0
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith(("Dirty:", "Writeback:")):
                    dirty += int(line.split()[1])
        pressure = io_pressure()
        if dirty <= limit_kb and (pressure is None or pressure < 2.0):
            return
        time.sleep(0.5)
    log("I/O did not settle within 90 s: measuring anyway")


# ---- hyperfine and GNU time -----------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """One command's result from hyperfine's --export-json (seconds)."""

    command: str
    median: float
    min: float
    max: float
    mean: float
    stddev: float
    user: float
    system: float
    times: tuple[float, ...]
    exit_codes: tuple[int, ...]

    @property
    def runs(self) -> int:
        return len(self.times)

    def waited(self) -> int:
        """Runs that lasted 8 s or more: hvcheck waited for its 10 s deadline."""
        return sum(t >= DEADLINE_WAIT for t in self.times)

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def ms(self) -> str:
        return f"{self.median * 1e3:.1f} ({self.min * 1e3:.1f}–{self.max * 1e3:.1f})"


def hyperfine(
    commands: dict[str, list[str]], env: dict[str, str], runs: int, warmup: int, json_path: Path
) -> dict[str, Timing]:
    """Time each command (name -> argv) with ``hyperfine -N`` (no intermediate shell)."""
    cmd = ["hyperfine", "-N", "--style", "basic", "--ignore-failure"]
    cmd += ["--warmup", str(warmup), "--runs", str(runs), "--export-json", str(json_path)]
    for name, argv in commands.items():
        cmd += ["--command-name", name, shlex.join(argv)]
    subprocess.run(cmd, env=env, stdout=sys.stderr, check=True)
    results = json.loads(json_path.read_text())["results"]
    return {
        name: Timing(
            r["command"],
            r["median"],
            r["min"],
            r["max"],
            r["mean"],
            r["stddev"] or 0.0,
            r["user"],
            r["system"],
            tuple(r["times"]),
            tuple(r["exit_codes"]),
        )
        for name, r in zip(commands, results)
    }


@dataclass(frozen=True)
class Shot:
    """One run under GNU time: the command's own max RSS (ru_maxrss of its wait4) and minor
    page faults (ru_minflt: pages it touched first; each costs kernel time, ~3 us on a VM)."""

    rc: int
    rss_mb: float
    first_line: str
    minflt: Optional[int] = None


def shot(argv: Sequence[str], env: dict[str, str]) -> Shot:
    with tempfile.NamedTemporaryFile("r", prefix="hvbench-rss-") as f:
        p = subprocess.run(
            [GNU_TIME, "-f", "%M %R", "-o", f.name, *argv],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        # GNU time's last line (a non-zero exit adds one before it)
        last = (f.read().strip().splitlines() or [""])[-1].split()
    nums = [int(x) for x in last if x.isdigit()]
    line = (p.stdout.strip() or p.stderr.strip()).splitlines()
    rss = nums[0] / 1024 if len(nums) == 2 else float("nan")
    return Shot(p.returncode, rss, line[0] if line else "", nums[1] if len(nums) == 2 else None)


def faults(s: Shot) -> str:
    return "—" if s.minflt is None else f"{s.minflt:,}"


def perf_instances(line: str) -> Optional[int]:
    """The ``'instances'=N`` of a Nagios perfdata line."""
    m = re.search(r"'instances'=(\d+)", line)
    return int(m.group(1)) if m else None


def seen(line: str) -> str:
    n = perf_instances(line)
    return "—" if n is None else str(n)


# ---- snapshots: N synthetic QEMU processes on a real `collect` of this machine ---------------
PID_BASE = 20000
PID_STRIDE = 16  # room for the tids of one process (main, helpers, up to 8 vCPUs)
FDS_PER_PROCESS = 30
MAX_VCPUS = 8
ENV_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
STATUS = (
    "Name:\t{comm}\nUmask:\t0002\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{pid}\n"
    "PPid:\t1\nTracerPid:\t0\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{gid}\t{gid}\t{gid}\t{gid}\n"
    "FDSize:\t64\nGroups:\t{gid} \nNStgid:\t{pid}\nNSpid:\t{pid}\nNSpgid:\t{pid}\nNSsid:\t{pid}\n"
    "Kthread:\t0\nVmPeak:\t 5407112 kB\nVmSize:\t 5340548 kB\nVmLck:\t       0 kB\n"
    "VmHWM:\t 2171204 kB\nVmRSS:\t 2168836 kB\nRssAnon:\t 2146716 kB\nRssFile:\t   22120 kB\n"
    "VmData:\t 2421772 kB\nVmStk:\t     132 kB\nVmExe:\t    5724 kB\nVmLib:\t   14608 kB\n"
    "Threads:\t{threads}\nSigQ:\t0/96365\nSigBlk:\t0000000010002240\nSigIgn:\t0000000000001000\n"
    "CapEff:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\nCpus_allowed_list:\t0-1\n"
    "voluntary_ctxt_switches:\t1834\nnonvoluntary_ctxt_switches:\t25\n"
)  # a real libvirt-run QEMU's /proc/PID/status, shortened


@dataclass(frozen=True)
class CorpusEntry:
    file: str
    accel: str  # kvm | tcg: what the process really ran with (MANIFEST.tsv)
    argv: tuple[str, ...]


def load_corpus() -> tuple[list[CorpusEntry], list[str]]:
    """The qemu-cmdline command lines of ../shared/corpus whose accel is kvm or tcg. Libvirt's
    ``.args`` are shell-quoted with leading environment assignments; ``ps aux`` tables give
    the first QEMU line's command column."""
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        sys.exit(f"bench: corpus not found at {CORPUS} (set HVCHECK_CORPUS)")
    entries: list[CorpusEntry] = []
    skipped: list[str] = []
    for line in manifest.read_text(encoding="utf-8").splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 7 or cols[1] != "qemu-cmdline":
            continue
        facts = dict(t.split("=", 1) for t in cols[6].partition(" ; ")[0].split() if "=" in t)
        text = (CORPUS / cols[0]).read_text(encoding="utf-8")
        argv: list[str] = []
        if facts.get("format") == "ps-aux":
            for row in text.splitlines():
                command = row.split(None, 10)[10:]
                if command and "qemu" in command[0].split(None, 1)[0]:
                    argv = command[0].split()
                    break
        else:
            with contextlib.suppress(ValueError):
                argv = shlex.split(text)
            while argv and ENV_ASSIGNMENT.match(argv[0]):
                argv.pop(0)
        name = Path(cols[0]).name
        if facts.get("accel") not in ("kvm", "tcg") or not argv:
            skipped.append(f"{name} (accel={facts.get('accel', '?')})")
            continue
        entries.append(CorpusEntry(name, facts["accel"], tuple(argv)))
    if not entries:
        sys.exit("bench: no usable qemu-cmdline entries in the corpus")
    return entries, skipped


def option_index(argv: Sequence[str], name: str) -> Optional[int]:
    for i, a in enumerate(argv[1:-1], start=1):
        if a in (f"-{name}", f"--{name}"):
            return i
    return None


def vary_argv(argv: Sequence[str], name: str, guest_uuid: str) -> list[str]:
    """The corpus argv with this process's own -name (keeping its sub-options) and -uuid."""
    out = list(argv)
    i = option_index(out, "name")
    if i is None:
        out[1:1] = ["-name", f"guest={name}"]
    else:
        parts = out[i + 1].split(",")
        k = next((k for k, p in enumerate(parts) if p.startswith("guest=")), None)
        if k is not None:
            parts[k] = f"guest={name}"
        elif parts and "=" not in parts[0]:
            parts[0] = name
        else:
            parts.insert(0, f"guest={name}")
        out[i + 1] = ",".join(parts)
    j = option_index(out, "uuid")
    if j is None:
        out += ["-uuid", guest_uuid]
    else:
        out[j + 1] = guest_uuid
    return out


def vcpus(argv: Sequence[str]) -> int:
    i = option_index(argv, "smp")
    n = 1
    if i is not None:
        for part in argv[i + 1].split(","):
            key, _, val = part.rpartition("=")
            if key in ("", "cpus") and val.isdigit():
                n = int(val)
                break
    return max(1, min(MAX_VCPUS, n))


def fd_targets(accel: str, ncpu: int, guest_uuid: str, ino: int) -> list[str]:
    """30 fds shaped like a libvirt/Nova guest's /proc/PID/fd."""
    fds = ["/dev/null", f"pipe:[{ino}]", f"pipe:[{ino}]", f"socket:[{ino + 1}]"]
    fds += ["anon_inode:[eventfd]", "anon_inode:[signalfd]", "anon_inode:[eventfd]"]
    if accel == "kvm":
        fds += ["/dev/kvm", "anon_inode:kvm-vm", *(f"anon_inode:kvm-vcpu:{c}" for c in range(ncpu))]
    fds += ["anon_inode:[eventpoll]", f"/var/lib/nova/instances/{guest_uuid}/disk"]
    fds += ["/dev/net/tun", "/dev/vhost-net", f"socket:[{ino + 2}]", f"socket:[{ino + 3}]"]
    fds += ["anon_inode:[timerfd]", "/dev/urandom"]
    return fds + ["anon_inode:[eventfd]"] * (FDS_PER_PROCESS - len(fds))  # ioeventfds, irqfds


def thread_names(comm: str, accel: str, ncpu: int, debug_threads: bool) -> list[str]:
    """Main thread, call_rcu, the monitor iothread, the vCPUs, a worker. QEMU names them
    (``CPU n/KVM``) only with ``-name ...,debug-threads=on``; otherwise all keep the comm."""
    if not debug_threads:
        return [comm] * (4 + ncpu)
    cpus = [f"CPU {c}/{accel.upper()}" for c in range(ncpu)]
    return [comm, comm, "IO mon_iothread", *cpus, "worker"]


@dataclass
class Base:
    path: Path
    dropped: list[int]  # the machine's own QEMU processes, removed from the base
    uid: int = 64055
    gid: int = 64055


def capture_base(tmp: Path, hvcheck: str, env: dict[str, str]) -> Base:
    """A real ``hvcheck collect`` of this machine, extracted, without its QEMU processes (the
    ones hvcheck itself lists as instances)."""
    tgz = tmp / "collect.tar.gz"
    subprocess.run([hvcheck, "collect", "-o", str(tgz)], env=env, capture_output=True, check=False)
    if not tgz.is_file():
        sys.exit("bench: `hvcheck collect` wrote no snapshot")
    dest = tmp / "base"
    with tarfile.open(tgz) as tf:
        if hasattr(tarfile, "tar_filter"):  # no absolute or .. paths; fd links kept as links
            tf.extractall(dest, filter="tar")
        else:
            tf.extractall(dest)  # our own collect's output
    doc = subprocess.run(
        [hvcheck, "--root", str(dest), "--format", "json"],
        env=env,
        capture_output=True,
        check=False,
    )
    pids = [int(i["pid"]) for i in json.loads(doc.stdout or b"{}").get("instances", [])]
    for pid in pids:
        shutil.rmtree(dest / "proc" / str(pid), ignore_errors=True)
    base = Base(dest, pids)
    with contextlib.suppress(OSError, ValueError):
        for line in (dest / "etc" / "passwd").read_text().splitlines():
            cols = line.split(":")
            if len(cols) > 3 and cols[0] == "libvirt-qemu":
                base.uid, base.gid = int(cols[2]), int(cols[3])
    return base


def record_mount_ns(dest: Path, pids: Sequence[int]) -> None:
    """The marker's ``mount_ns`` as ``collect`` writes it for QEMU processes in its own mount
    namespace (hvcheck.host.recorder: every process whose files it looked up is listed with
    its ``/proc/<pid>/ns/mnt``; docs/SNAPSHOT.md), for the generated ones: a replay then reads
    their files in the snapshot's own tree, as it does for a real node's collect."""
    marker_path = dest / "hvcheck-snapshot.json"
    marker = json.loads(marker_path.read_text())
    mount_ns = marker.setdefault("mount_ns", {})
    own = mount_ns.get("self") or os.readlink("/proc/self/ns/mnt")
    mount_ns["self"] = own
    mount_ns.setdefault("processes", {}).update({str(pid): own for pid in pids})
    marker_path.write_text(json.dumps(marker, indent=1, sort_keys=True))


def make_snapshot(base: Base, dest: Path, n: int, corpus: Sequence[CorpusEntry]) -> None:
    """The base plus n QEMU processes, argv from the corpus in turn, in the layout of
    docs/SNAPSHOT.md: cmdline, comm, status, a ``root`` link to / (as collect records it),
    fd/N links and task/TID/comm."""
    shutil.copytree(base.path, dest, symlinks=True)
    ns = uuid.UUID("6f0c1b8e-9a57-4a36-8d2e-2f1d6d6b3c11")
    record_mount_ns(dest, [PID_BASE + i * PID_STRIDE for i in range(n)])
    for i in range(n):
        entry = corpus[i % len(corpus)]
        pid = PID_BASE + i * PID_STRIDE
        name = f"instance-{i:08x}"
        guest_uuid = str(uuid.uuid5(ns, name))
        argv = vary_argv(entry.argv, name, guest_uuid)
        comm = Path(argv[0]).name[:15]  # TASK_COMM_LEN
        ncpu = vcpus(argv)
        threads = thread_names(comm, entry.accel, ncpu, any("debug-threads=on" in a for a in argv))
        d = dest / "proc" / str(pid)
        (d / "fd").mkdir(parents=True)
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (d / "comm").write_text(comm + "\n")
        fields = {"comm": comm, "pid": pid, "uid": base.uid, "gid": base.gid}
        (d / "status").write_text(STATUS.format(threads=len(threads), **fields))
        os.symlink("/", d / "root")
        for k, target in enumerate(fd_targets(entry.accel, ncpu, guest_uuid, 10**6 + 8 * i)):
            os.symlink(target, d / "fd" / str(k))
        for k, tname in enumerate(threads):
            (d / "task" / str(pid + k)).mkdir(parents=True)
            (d / "task" / str(pid + k) / "comm").write_text(tname + "\n")


# ---- imports --------------------------------------------------------------------------------
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")


@dataclass
class Imports:
    """One ``PYTHONPROFILEIMPORTTIME=1`` run: total import time and, per library (a package of
    the venv, or a WATCHED stdlib module), its own modules' self time and the cumulative time
    of the imports that entered it from outside (what loading it cost, its dependencies
    included)."""

    path: str
    total_ms: float = 0.0
    modules: set[str] = field(default_factory=set)
    self_ms: dict[str, float] = field(default_factory=dict)
    entered_ms: dict[str, float] = field(default_factory=dict)


def group_of(module: str) -> str:
    for w in WATCHED:
        if module == w or module.startswith(w + "."):
            return w
    return module.split(".")[0]


def parse_importtime(path: str, text: str) -> Imports:
    rows = [
        (len(m.group(3)) // 2, m.group(4), int(m.group(1)), int(m.group(2)))
        for m in map(IMPORT_LINE.match, text.splitlines())
        if m
    ]
    res = Imports(path)
    stack: list[str] = []  # pre-order: the output is post-order, so read it backwards
    for depth, mod, self_us, cum_us in reversed(rows):
        del stack[depth:]
        parent = stack[-1] if stack else None
        stack.append(mod)
        g = group_of(mod)
        res.modules.add(mod)
        res.total_ms += self_us / 1e3
        res.self_ms[g] = res.self_ms.get(g, 0.0) + self_us / 1e3
        if parent is None or group_of(parent) != g:
            res.entered_ms[g] = res.entered_ms.get(g, 0.0) + cum_us / 1e3
    return res


def importtime(path: str, argv: Sequence[str], env: dict[str, str], runs: int = 3) -> Imports:
    """The run with the median total of ``runs`` (caches warm)."""
    done = []
    for _ in range(runs):
        p = subprocess.run(
            argv,
            env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
            capture_output=True,
            text=True,
            check=False,
        )
        done.append(parse_importtime(path, p.stderr))
    return sorted(done, key=lambda r: r.total_ms)[len(done) // 2]


def venv_packages(venv: Path) -> dict[str, str]:
    """Top-level import names of the venv's distributions (from their RECORD) -> "dist version"."""
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for d in m.distributions():\n"
        "    for f in d.files or []:\n"
        "        top = f.parts[0] if len(f.parts) > 1 else f.parts[0].split('.')[0]\n"
        "        if top not in ('..', '__pycache__') and not top.endswith(('-info', '.data')):\n"
        "            out[top] = d.metadata['Name'] + ' ' + d.version\n"
        "print(json.dumps(out))"
    )
    p = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    pkgs: dict[str, str] = json.loads(p.stdout)
    for skip in ("pip", "setuptools", "_distutils_hack", "pkg_resources", "distutils-precedence"):
        pkgs.pop(skip, None)
    return pkgs


# ---- live guests (optional) -----------------------------------------------------------------
@contextlib.contextmanager
def paused_guests(n: int) -> Iterator[list[int]]:
    """n real paused TCG QEMU guests (tests/qemu_harness.py), each stopped by PID on exit."""
    sys.path.insert(0, str(REPO / "tests"))
    import qemu_harness  # type: ignore[import-not-found]  # needs pytest in this interpreter

    missing = qemu_harness.missing_requirements(kvm=False)
    if missing:
        raise RuntimeError("; ".join(missing))
    guests: list[Any] = []
    try:
        for i in range(n):
            guests.append(qemu_harness.start_guest(f"hvbench-{i:02d}", ["-accel", "tcg"]))
        time.sleep(2.0)  # let the fresh guests go idle
        yield [g.pid for g in guests]
    finally:
        for g in guests:
            with contextlib.suppress(Exception):
                g.stop()


# ---- the run --------------------------------------------------------------------------------
@dataclass
class Run:
    started: float = field(default_factory=time.time)
    notes: list[str] = field(default_factory=list)
    machine: list[tuple[str, str]] = field(default_factory=list)
    live: dict[str, Timing] = field(default_factory=dict)
    live_shots: dict[str, Shot] = field(default_factory=dict)
    snap: dict[str, Timing] = field(default_factory=dict)
    snap_shots: dict[int, Shot] = field(default_factory=dict)
    gen_seconds: dict[int, float] = field(default_factory=dict)
    rss_5000: list[float] = field(default_factory=list)
    imports: list[Imports] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)
    guests: dict[str, Timing] = field(default_factory=dict)
    guests_note: str = ""
    libvirt: list[str] = field(default_factory=list)
    corpus: int = 0
    corpus_skipped: list[str] = field(default_factory=list)
    base_dropped: list[int] = field(default_factory=list)


def machine_info(venv: Path, hvcheck: str) -> list[tuple[str, str]]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "?",
    )
    mem = next(
        (
            f"{int(ln.split()[1]) / 2**20:.1f} GiB"
            for ln in Path("/proc/meminfo").read_text().splitlines()
            if ln.startswith("MemTotal:")
        ),
        "?",
    )
    git = ["git", "-C", str(REPO)]
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "hvcheck", "pyproject.toml"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    u = os.uname()
    osname = out_of(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"])
    return [
        ("host", f"{u.nodename}, {cpu} × {os.cpu_count()}, {mem}"),
        ("OS / kernel", f"{osname} / {u.release} {u.machine}"),
        ("uid", str(os.geteuid())),
        ("git HEAD", out_of([*git, "log", "-1", "--format=%h %s"])[:120]),
        ("uncommitted under hvcheck/, pyproject.toml", str(len(dirty))),
        ("hvcheck", f"{out_of([hvcheck, '--version'])} — {hvcheck}"),
        ("Python (venv)", out_of([str(venv / "bin" / "python"), "--version"])),
        ("hyperfine", out_of(["hyperfine", "--version"])),
        ("virt-host-validate", out_of(["virt-host-validate", "--version"])),
        ("QEMU", out_of(["qemu-system-x86_64", "--version"])),
        ("bash", out_of(["bash", "--version"])),
    ]


def load() -> str:
    la = Path("/proc/loadavg").read_text().split()
    return f"load average {' '.join(la[:3])}, I/O pressure (some avg10) {io_pressure()} %"


def libvirt_state(hvcheck: str, env: dict[str, str]) -> str:
    """What hvcheck's ``libvirt.caps`` check answers now, and how long it took: libvirtd's
    state (stopped, answering from its cache, or re-probing QEMU for seconds) decides most of
    the live probe's time, and other sessions start and stop it."""
    t0 = time.monotonic()
    p = subprocess.run(
        [hvcheck, "--format", "json", "--only", "libvirt.caps"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - t0
    try:
        check = json.loads(p.stdout)["checks"][0]
        return f"{check['status']} in {took:.2f} s: {check['summary'][:100]}"
    except (ValueError, KeyError, IndexError):
        return f"no answer (exit {p.returncode}) in {took:.2f} s"


def measure(args: argparse.Namespace, tmp: Path, run: Run) -> None:
    runs, warm = (3, 1) if args.quick else (args.runs, 3)
    log("installing this checkout into a fresh venv (as install.sh does)")
    venv = install_like_install_sh(tmp)
    hv = str(venv / "bin" / "hvcheck")
    py = str(venv / "bin" / "python")
    env = child_env()
    run.machine = machine_info(venv, hv)
    run.packages = venv_packages(venv)
    run.notes.append(f"at start: {load()}")

    log("1. live host")
    settle_io()
    live = {
        "hvcheck --format nagios": [hv, "--format", "nagios"],
        "virt-host-validate qemu": ["virt-host-validate", "qemu"],
        "bash bench/manual.sh": ["bash", str(MANUAL)],
        "hvcheck --format nagios --skip libvirt.caps": [
            hv,
            "--format",
            "nagios",
            "--skip",
            "libvirt.caps",
        ],
        "hvcheck --version": [hv, "--version"],
        LIBS_ONLY: [py, "-c", "import " + ", ".join(CARD_LIBS)],
        "python -c pass (venv interpreter)": [py, "-c", "pass"],
    }
    run.libvirt.append(f"before §1: {libvirt_state(hv, env)}")
    run.live = hyperfine(live, env, runs, warm, tmp / "live.json")
    run.libvirt.append(f"after §1: {libvirt_state(hv, env)}")
    run.live_shots = {name: shot(argv, env) for name, argv in live.items()}

    log("2. snapshots")
    corpus, run.corpus_skipped = load_corpus()
    run.corpus = len(corpus)
    base = capture_base(tmp, hv, env)
    run.base_dropped = base.dropped
    paths: dict[int, Path] = {}
    for n in SIZES:
        t0 = time.monotonic()
        paths[n] = tmp / f"snap-{n}"
        make_snapshot(base, paths[n], n, corpus)
        run.gen_seconds[n] = time.monotonic() - t0
        log(f"2. generated {n} processes in {run.gen_seconds[n]:.1f} s")
    settle_io()
    snap = {
        f"{n}": [hv, "--root", str(p), "--format", "nagios", "-t", SNAP_TIMEOUT]
        for n, p in paths.items()
    }
    run.snap = hyperfine(
        snap, env, max(3, runs // 2) if not args.quick else 2, 1, tmp / "snap.json"
    )
    run.snap_shots = {n: shot(snap[str(n)], env) for n in SIZES}
    run.rss_5000 = [shot(snap["5000"], env).rss_mb for _ in range(RSS_RUNS)]

    log("3. imports")
    for path, argv in (
        ("nagios", [hv, "--format", "nagios"]),
        ("json", [hv, "--format", "json"]),
        ("table", [hv, "--format", "table"]),
        ("nagios, --root SNAP-1000", snap["1000"]),
    ):
        run.imports.append(importtime(path, argv, env))
    shutil.rmtree(tmp / "base")
    for p in paths.values():
        shutil.rmtree(p)

    if args.guests:
        log(f"4. live host with 0, then {args.guests} paused TCG guests")
        settle_io()
        argv = live["hvcheck --format nagios --skip libvirt.caps"]  # libvirt's state is noise here
        try:
            run.guests = hyperfine({"0 guests": argv}, env, runs, warm, tmp / "guests-0.json")
            with paused_guests(args.guests):
                name = f"{args.guests} guests"
                run.guests.update(hyperfine({name: argv}, env, runs, warm, tmp / "guests.json"))
                run.guests_note = f"hvcheck saw {perf_instances(shot(argv, env).first_line)}"
            run.libvirt.append(f"after §4: {libvirt_state(hv, env)}")
        except Exception as e:  # an optional part: say why, keep the rest
            run.guests_note = f"not measured: {e}"
    run.notes.append(f"at end: {load()}")


# ---- RESULTS.md -----------------------------------------------------------------------------
def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def ratio_row(against: str, probe: Timing, other: Timing, limit: float) -> list[str]:
    """A target "live probe ≤ limit × other", judged on median wall and on mean user+sys."""
    wall, cpu = probe.median / other.median, probe.cpu / other.cpu
    return [
        f"live `--format nagios` ≤ {limit:g}× {against}",
        f"{probe.median * 1e3:.1f} / {other.median * 1e3:.1f} ms = {wall:.2f}×",
        verdict(wall <= limit),
        f"{probe.cpu * 1e3:.1f} / {other.cpu * 1e3:.1f} ms = {cpu:.2f}×",
        verdict(cpu <= limit),
    ]


def codes(t: Timing) -> str:
    return ", ".join(f"{c}×{t.exit_codes.count(c)}" for c in sorted(set(t.exit_codes)))


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def targets_section(run: Run) -> list[str]:
    probe = run.live["hvcheck --format nagios"]
    snap = run.snap["1000"]
    rss = max(run.rss_5000)
    imports = {i.path: i for i in run.imports}
    limit_s = TARGET_1000_MS / 1e3
    rows = [
        ratio_row(
            "`virt-host-validate qemu`", probe, run.live["virt-host-validate qemu"], TARGET_VS_VHV
        ),
        ratio_row(
            "the manual procedure (`bench/manual.sh`)",
            probe,
            run.live["bash bench/manual.sh"],
            TARGET_VS_MANUAL,
        ),
        [
            f"1,000-instance snapshot ≤ {TARGET_1000_MS:g} ms",
            f"{snap.ms()} ms",
            verdict(snap.median <= limit_s),
            f"{ms(snap.cpu)} ms",
            verdict(snap.cpu <= limit_s),
        ],
        [
            f"max RSS ≤ {TARGET_RSS_MB:g} MB at 5,000 instances",
            f"{rss:.1f} MB (highest of {len(run.rss_5000)} runs)",
            verdict(rss <= TARGET_RSS_MB),
            "",
            "",
        ],
    ]
    for path in NO_RICH_PATHS:
        rich = "rich" in imports[path].modules
        rows.append(
            [
                f"`--format {path}` does not import rich",
                "rich imported" if rich else "no rich",
                verdict(not rich),
                "",
                "",
            ]
        )
    libs = run.live[LIBS_ONLY]
    vhv = run.live["virt-host-validate qemu"]
    return [
        "## Targets (issue 11, point 8)",
        "",
        "Timing targets are judged on hyperfine's median wall time; user+sys (hyperfine's mean "
        "CPU time of the command and its children) is judged alongside, as it moves less with "
        "the machine's load.",
        "",
        *table(["target", "wall (median)", "", "user+sys (mean)", ""], rows),
        "",
        f"For scale: the venv's interpreter importing the libraries the live probe needs "
        f"({', '.join(CARD_LIBS)}) and doing nothing else takes {libs.ms()} ms, "
        f"{libs.median / vhv.median:.2f}× `virt-host-validate qemu`'s median; the probe's "
        f"median is {ms(probe.median - libs.median)} ms above it.",
        "",
    ]


def live_section(run: Run) -> list[str]:
    missing = [t for t in MANUAL_TOOLS if not shutil.which(t)]
    head = [
        "command",
        "wall ms",
        "mean ± σ ms",
        "user+sys ms",
        "max RSS MB",
        "page faults",
        "exit codes",
    ]
    rows = [
        [
            f"`{name}`",
            t.ms(),
            f"{ms(t.mean)} ± {ms(t.stddev)}",
            ms(t.cpu),
            f"{run.live_shots[name].rss_mb:.1f}",
            faults(run.live_shots[name]),
            codes(t),
            str(t.waited()),
            seen(run.live_shots[name].first_line),
        ]
        for name, t in run.live.items()
    ]
    said = [
        f"- `{name}` said: `{run.live_shots[name].first_line[:200]}`"
        for name in ("hvcheck --format nagios", "virt-host-validate qemu")
    ]
    return [
        "## 1. Live host",
        "",
        f"hyperfine -N, {run.live['hvcheck --format nagios'].runs} runs after warm-up runs, each "
        "command in turn. Max RSS, minor page faults and the instances hvcheck saw (its "
        "`'instances'` perfdata): one run under GNU `time -f '%M %R'`. QEMU guests that other "
        "sessions run on this machine count: they change the probe's work and, when one fell "
        "back to TCG, its exit code.",
        "",
        *table([*head, "runs ≥ 8 s", "instances"], rows),
        *said,
        "",
        "A run lasting 8 s or more waited for hvcheck's 10 s deadline: libvirt did not answer "
        "`libvirt.caps` in time (libvirtd can spend seconds re-probing QEMU, for instance "
        "while its QEMU user cannot open /dev/kvm; other sessions start and stop it). "
        "What `hvcheck --format json --only libvirt.caps` answered around the measurements:",
        "",
        *(f"- {state}" for state in run.libvirt),
        "",
        "`bench/manual.sh` runs the checklist hvcheck replaces (cpuinfo greps, `uname -m`, "
        "`dpkg -l`, passwd/group greps, modprobe.d, modules, `dmesg | grep kvm`, `kvm-ok`, "
        "`ls -l /dev/kvm`, the nested parameter, `virt-host-validate qemu`, `grep virt_type`, "
        "`ps -ef | grep accel=kvm`). Not installed here, so skipped by its `command -v` guards: "
        f"{', '.join(f'`{t}`' for t in missing) or 'none'}.",
        "",
    ]


def snapshots_section(run: Run) -> list[str]:
    rows = [
        [
            f"{n:,}",
            f"{run.gen_seconds[n]:.1f}",
            run.snap[str(n)].ms(),
            ms(run.snap[str(n)].cpu),
            f"{run.snap_shots[n].rss_mb:.1f}",
            faults(run.snap_shots[n]),
            seen(run.snap_shots[n].first_line),
            str(run.snap[str(n)].runs),
        ]
        for n in SIZES
    ]
    slope = (run.snap["5000"].median - run.snap["1000"].median) / 4000
    return [
        "## 2. Snapshots: cost against the number of instances",
        "",
        f"`hvcheck --root SNAP-N --format nagios -t {SNAP_TIMEOUT}` (the whole scan, not the "
        "default 10 s deadline). Each snapshot is a real `hvcheck collect` of this machine "
        f"(its own QEMU processes removed: {len(run.base_dropped)}) plus N generated QEMU "
        f"processes, argv from {run.corpus} corpus command lines in turn (skipped: "
        f"{', '.join(run.corpus_skipped) or 'none'}); see README.md.",
        "",
        *table(
            [
                "instances",
                "generate s",
                "wall ms",
                "user+sys ms",
                "max RSS MB",
                "page faults",
                "seen",
                "runs",
            ],
            rows,
        ),
        f"Per instance between 1,000 and 5,000 (difference of medians): {slope * 1e6:.0f} µs. "
        f"Max RSS at 5,000 instances, {len(run.rss_5000)} runs: "
        f"{', '.join(f'{x:.1f}' for x in run.rss_5000)} MB.",
        "",
        f"At 1,000 instances the probe said: `{run.snap_shots[1000].first_line[:200]}`",
        "",
    ]


def imports_section(run: Run) -> list[str]:
    def libraries(i: Imports) -> str:
        loaded = [g for g in i.entered_ms if g in run.packages or g in WATCHED]
        return ", ".join(
            f"{g} {i.entered_ms[g]:.1f}" for g in sorted(loaded, key=lambda g: -i.entered_ms[g])
        )

    nagios = next(i for i in run.imports if i.path == "nagios")
    heaviest = sorted(nagios.self_ms.items(), key=lambda kv: -kv[1])[:15]
    return [
        "## 3. Imports",
        "",
        "`PYTHONPROFILEIMPORTTIME=1 hvcheck ...` (the run with the median total of 3). "
        "Per library: *entered* is the cumulative time of the imports that entered it from "
        "elsewhere (what loading it cost, its own dependencies included); *self* is its own "
        "modules' time alone. Libraries are the venv's packages and a few stdlib modules.",
        "",
        *table(
            ["path", "import total ms", "modules", "rich", "libraries loaded (entered ms)"],
            [
                [
                    i.path,
                    f"{i.total_ms:.1f}",
                    str(len(i.modules)),
                    "yes" if "rich" in i.modules else "no",
                    libraries(i),
                ]
                for i in run.imports
            ],
        ),
        "Heaviest module groups on the live nagios path by self time:",
        "",
        *table(
            ["module group", "self ms", "entered ms"],
            [[g, f"{t:.1f}", f"{nagios.entered_ms.get(g, 0.0):.1f}"] for g, t in heaviest],
        ),
    ]


def guests_section(run: Run, n: int) -> list[str]:
    if len(run.guests) != 2:
        return ["## 4. Live host with paused TCG guests", "", run.guests_note, ""]
    t0, tn = run.guests.values()
    return [
        f"## 4. Live host with {n} paused TCG guests",
        "",
        f"`hvcheck --format nagios --skip libvirt.caps` (libvirt's answer time does not depend "
        f"on the guests), with no guests, then with {n} guests started by "
        f"tests/qemu_harness.py (`-accel tcg -S`); {run.guests_note} instance(s) (other "
        "sessions' QEMU guests count too).",
        "",
        *table(
            ["guests", "wall ms", "user+sys ms", "exit codes", "runs ≥ 8 s"],
            [
                [name, t.ms(), ms(t.cpu), codes(t), str(t.waited())]
                for name, t in run.guests.items()
            ],
        ),
        f"Per instance (difference of medians): {(tn.median - t0.median) / n * 1e6:.0f} µs "
        f"wall, {(tn.cpu - t0.cpu) / n * 1e6:.0f} µs CPU"
        + (
            " (not meaningful: some runs waited for the deadline)."
            if t0.waited() + tn.waited()
            else "."
        ),
        "",
    ]


def write_results(run: Run, out: Path, args: argparse.Namespace) -> None:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run.started))
    versions = sorted(set(run.packages.values()) - {"hvcheck 0.1.0"})
    lines = [
        "# hvcheck benchmark results",
        "",
        f"`python bench/run.py{' --quick' if args.quick else ''}` on {when}, "
        f"{(time.time() - run.started) / 60:.1f} min. Times: hyperfine's median (min–max) in ms, "
        "wall clock. How and why: [README.md](README.md).",
        "",
        "**A shared, busy machine**: other sessions build and test on its 2 cores meanwhile "
        f"({'; '.join(run.notes)}). Absolute figures move with that load; hyperfine runs each "
        "command's runs back to back, so the comparisons are between neighbouring batches.",
        "",
        *targets_section(run),
        "## Machine and versions",
        "",
        *table(["", ""], run.machine),
        f"Installed in the measured venv: {', '.join(versions)}.",
        "",
        *live_section(run),
        *snapshots_section(run),
        *imports_section(run),
        *(guests_section(run, args.guests) if args.guests else []),
    ]
    out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="few runs: to try the harness")
    ap.add_argument("--runs", type=int, default=20, help="hyperfine runs per live command")
    ap.add_argument("--guests", type=int, default=50, help="paused TCG guests for §4 (0: skip)")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        log("not root: hvcheck cannot read every process nor open /dev/kvm; figures differ")
    run = Run()
    installed = ensure_tools()
    tmp = Path(tempfile.mkdtemp(prefix="hvcheck-bench-"))
    try:
        measure(args, tmp, run)
    finally:
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if installed:
        run.notes.append(f"installed for this run: {', '.join(installed)}")
    write_results(run, args.out, args)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
