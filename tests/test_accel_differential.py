"""Real QEMU as the oracle of what each QEMU asked for (issue 18).

Each variant below is started for real — paused (-S), no display, no disk, QMP on a unix
socket (tests/qemu_harness.py) — once as root and once as "nobody", who cannot open /dev/kvm
(0600 root:root on this machine; never changed here). The truth is QEMU's own:

* what runs: QMP ``query-kvm`` ``enabled`` (True: KVM, False: TCG);
* whether it fell back: QEMU ran TCG *and* said "failed to initialize kvm" on stderr
  (do_configure_accelerator() in softmmu/vl.c prints it when KVM was tried and failed, and
  configure_accelerators() then goes on to the next accelerator of the list).

hvcheck, live, must find every running variant (also one given another argv[0]) and match
both: its ``accel`` and its ``silent_fallback``. A snapshot of the same processes
(``hvcheck collect``) must replay to the same answers, and the same snapshot with every
``proc/PID/fd`` and ``proc/PID/task`` removed — a command line and a /proc/PID/status, no
more — must be judged right or honestly left undecided: ``accel`` the truth or "unknown",
never a claimed fallback, and a "likely" that is the truth when it says anything.

The variants cover the issue's inputs, QEMU's option sources (``-readconfig`` files, the
default config /etc/qemu/qemu.conf — shown to QEMU through an overlay on /etc in a private
mount namespace, so the machine's /etc stays untouched — and ``-set``), option order, names
QEMU does not know, the binary's default by argv[0], and single-threaded TCG. Variants QEMU
refuses to start with are held against the parser instead: it must not read a plain,
runnable request from them.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from hvcheck.parsers.qemu import DEFAULT_CONFIG, parse_qemu_argv
from qemu_harness import GuestFactory, QemuGuest, QemuStartError, qemu_guests_fixture  # noqa: F401
from snap import run_hvcheck, run_json

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (runs QEMU as nobody)")

MACHINE_TCG = '[machine]\n  accel = "tcg"\n'
MACHINE_KVM_TCG = '[machine]\n  accel = "kvm:tcg"\n'


@dataclass(frozen=True)
class Variant:
    id: str
    args: tuple[str, ...]
    files: dict[str, str] = field(default_factory=dict)  # in the variant's dir: "{d}/NAME"
    argv0: Optional[str] = None  # exec -a ARGV0 qemu-system-x86_64
    in_dir: bool = False  # start QEMU in the variant's dir (relative -readconfig)
    default_config: Optional[str] = None  # /etc/qemu/qemu.conf as QEMU sees it
    user_config: bool = False  # no -no-user-config


VARIANTS = [
    Variant("accel-kvm", ("-accel", "kvm")),
    Variant("accel-tcg", ("-accel", "tcg")),
    Variant("accel-kvm-accel-tcg", ("-accel", "kvm", "-accel", "tcg")),
    Variant("accel-tcg-accel-kvm", ("-accel", "tcg", "-accel", "kvm")),
    Variant("dashdash-accel", ("--accel", "kvm", "--accel", "tcg")),
    Variant("machine-kvm-tcg", ("-machine", "pc,accel=kvm:tcg")),
    Variant("machine-tcg-kvm", ("-machine", "pc,accel=tcg:kvm")),
    Variant("machine-kvm", ("-machine", "pc,accel=kvm")),
    Variant("machine-tcg", ("-machine", "pc,accel=tcg")),
    Variant("machine-twice", ("-machine", "pc,accel=kvm:tcg", "-machine", "accel=tcg")),
    Variant("M-empty-name", ("-M", "pc,accel=kvm::tcg")),
    Variant("enable-kvm", ("-enable-kvm",)),
    Variant("enable-kvm-machine-tcg", ("-enable-kvm", "-machine", "accel=tcg")),
    Variant("machine-tcg-enable-kvm", ("-machine", "accel=tcg", "-enable-kvm")),
    Variant("binary-default", (), user_config=True),
    Variant("argv0-kvm-default", (), argv0="my-kvm", user_config=True),
    Variant("argv0-kvm-accel-tcg", ("-accel", "tcg"), argv0="my-kvm"),
    Variant("case-KVM-tcg", ("-machine", "accel=KVM:tcg")),
    Variant("accel-KVM-accel-tcg", ("-accel", "KVM", "-accel", "tcg")),
    Variant("accel-colon-accel-tcg", ("-accel", "kvm:tcg", "-accel", "tcg")),
    Variant("xen-kvm-tcg", ("-machine", "accel=xen:kvm:tcg")),
    Variant("tcg-single-thread", ("-accel", "tcg,thread=single")),
    Variant("icount", ("-icount", "shift=0")),
    Variant("kvm-then-tcg-single", ("-accel", "kvm", "-accel", "tcg,thread=single")),
    # issue 18, input 1: the file overrides -machine accel=kvm
    Variant(
        "readconfig-overrides-machine",
        ("-machine", "accel=kvm", "-readconfig", "{d}/vm.cfg"),
        {"vm.cfg": MACHINE_TCG},
    ),
    # issue 18, input 2
    Variant("readconfig-kvm-tcg", ("-readconfig", "{d}/vm.cfg"), {"vm.cfg": MACHINE_KVM_TCG}),
    # issue 18, input 3
    Variant(
        "set-renames-accel", ("-accel", "tcg,id=a0", "-accel", "tcg", "-set", "accel.a0.accel=kvm")
    ),
    Variant(
        "machine-overrides-readconfig",
        ("-readconfig", "{d}/vm.cfg", "-machine", "accel=kvm"),
        {"vm.cfg": MACHINE_TCG},
    ),
    Variant(
        "readconfig-accel-sections",
        ("-readconfig", "{d}/vm.cfg"),
        {"vm.cfg": '[accel]\n  accel = "kvm"\n[accel]\n  accel = "tcg"\n'},
    ),
    Variant(
        "readconfig-set-then-accel",
        ("-readconfig", "{d}/vm.cfg", "-set", "accel.a0.accel=kvm", "-accel", "tcg"),
        {"vm.cfg": '[accel "a0"]\n  accel = "tcg"\n'},
    ),
    Variant(
        "readconfig-relative", ("-readconfig", "vm.cfg"), {"vm.cfg": MACHINE_KVM_TCG}, in_dir=True
    ),
    Variant(
        "two-readconfigs",
        ("-readconfig", "{d}/a.cfg", "-readconfig", "{d}/b.cfg"),
        {"a.cfg": MACHINE_TCG, "b.cfg": MACHINE_KVM_TCG},
    ),
    Variant(
        "readconfig-format-quirks",
        ("-readconfig", "{d}/vm.cfg"),
        {"vm.cfg": '# by hand\n[machine]\n\t accel\t=\t"kvm:tcg"  trailing\n[machine]x\n'},
    ),
    Variant("default-config-machine", (), default_config=MACHINE_KVM_TCG, user_config=True),
    Variant(
        "default-config-accel-first",
        ("-accel", "kvm"),
        default_config='[accel]\n  accel = "tcg"\n',
        user_config=True,
    ),
    Variant(
        "default-config-overridden", ("-enable-kvm",), default_config=MACHINE_TCG, user_config=True
    ),
    Variant("default-config-not-read", (), default_config=MACHINE_KVM_TCG),  # -no-user-config
    Variant("runas", ("-runas", "nobody", "-machine", "accel=kvm:tcg")),
]

# QEMU 7.2 does not start with these (as root): the parser must not read a runnable request.
REFUSED = [
    Variant("accel-KVM", ("-accel", "KVM")),
    Variant("accel-colon", ("-accel", "kvm:tcg")),
    Variant("machine-Tcg", ("-machine", "accel=Tcg")),
    Variant("enable-kvm-accel-tcg", ("-enable-kvm", "-accel", "tcg")),
    Variant("set-before-definition", ("-set", "accel.a0.accel=kvm", "-accel", "tcg,id=a0")),
    Variant("set-machine", ("-accel", "kvm", "-set", "machine.m0.accel=tcg")),
    Variant(
        "readconfig-unquoted", ("-readconfig", "{d}/vm.cfg"), {"vm.cfg": "[machine]\naccel = kvm\n"}
    ),
    Variant("readconfig-blank-line", ("-readconfig", "{d}/vm.cfg"), {"vm.cfg": "[machine]\n  \n"}),
    Variant(
        "readconfig-accel-and-machine",
        ("-readconfig", "{d}/vm.cfg", "-machine", "accel=kvm"),
        {"vm.cfg": '[accel]\n  accel = "tcg"\n'},
    ),
    Variant("accel-only-unknown", ("-machine", "pc,accel=tcg,,thread=single")),
]

USERS = (None, "nobody")  # None: root


@dataclass
class Run:
    variant: Variant
    user: Optional[str]
    guest: Optional[QemuGuest] = None
    kvm: Optional[bool] = None  # query-kvm enabled
    fell_back: bool = False  # TCG after "failed to initialize kvm"
    refused: str = ""  # why QEMU did not start
    judged: str = ""  # the command-line-only judgement

    @property
    def label(self) -> str:
        return f"{self.variant.id} as {self.user or 'root'}"


def _can_overlay_etc() -> bool:
    up, work = tempfile.mkdtemp(prefix="hvcheck-ov-"), tempfile.mkdtemp(prefix="hvcheck-ov-")
    try:
        script = f"mount -t overlay overlay -o lowerdir=/etc,upperdir={up},workdir={work} /etc"
        p = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            capture_output=True,
            timeout=10,
        )
        return p.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        shutil.rmtree(up, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


class Lab:
    """Starts variants with the harness, each in a directory of its own (0755, /tmp)."""

    def __init__(self, qemu_guests: GuestFactory) -> None:
        self.start = qemu_guests
        self.dirs: list[str] = []
        self.overlay = _can_overlay_etc()

    def dir_for(self, v: Variant) -> str:
        d = tempfile.mkdtemp(prefix=f"hvcheck-{v.id}-")
        os.chmod(d, 0o755)  # nobody reads the config files in it
        self.dirs.append(d)
        for name, text in v.files.items():
            Path(d, name).write_text(text)
            os.chmod(Path(d, name), 0o644)
        return d

    def prefix_for(self, v: Variant, d: str) -> Optional[list[str]]:
        """unshare + an overlay on /etc holding /etc/qemu/qemu.conf, then exec QEMU."""
        if v.default_config is None:
            return None
        for sub in ("upper", "work"):
            os.mkdir(os.path.join(d, sub))
        conf = os.path.join(d, "qemu.conf")
        Path(conf).write_text(v.default_config)
        os.chmod(conf, 0o644)
        q = shlex.quote
        script = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={q(d)}/upper,"
            f"workdir={q(d)}/work /etc && mkdir -p /etc/qemu && "
            f'cp {q(conf)} {DEFAULT_CONFIG} && exec "$@"'
        )
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]

    def run(self, v: Variant, user: Optional[str]) -> Run:
        r = Run(v, user)
        d = self.dir_for(v)
        args = [a.replace("{d}", d) for a in v.args]
        try:
            g = self.start(
                f"diff-{v.id}-{user or 'root'}",
                args,
                user=user,
                argv0=v.argv0,
                cwd=d if v.in_dir else None,
                user_config=v.user_config,
                prefix=self.prefix_for(v, d),
            )
        except QemuStartError as e:
            r.refused = str(e).splitlines()[1] if len(str(e).splitlines()) > 1 else str(e)
            return r
        r.guest = g
        r.kvm = g.query_kvm()["enabled"]
        r.fell_back = not r.kvm and "failed to initialize kvm" in g.stderr_text()
        return r

    def cleanup(self) -> None:
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(name="lab")
def lab_fixture(qemu_guests: GuestFactory) -> Iterator[Lab]:
    lab = Lab(qemu_guests)
    try:
        yield lab
    finally:
        lab.cleanup()


def _strip_fds_and_threads(src: Path, dst: Path) -> None:
    """The snapshot less every proc/PID/fd and proc/PID/task: a command line and a status."""
    drop = re.compile(r"proc/\d+/(fd|task)(/|$)")
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin:
            if drop.match(m.name):
                continue
            data = tin.extractfile(m) if m.isreg() else None
            tout.addfile(m, io.BytesIO(data.read()) if data else None)


def _instances(*args: str) -> dict[int, dict[str, Any]]:
    _, doc = run_json(*args, "--only", "instances")
    return {i["pid"]: i for i in doc["instances"]}


def test_hvcheck_matches_real_qemu_for_every_variant(lab: Lab, tmp_path: Path) -> None:
    variants = [v for v in VARIANTS if v.default_config is None or lab.overlay]
    if not lab.overlay:
        pytest.skip("cannot mount an overlay on /etc in a private mount namespace")
    assert len(variants) >= 30
    runs: list[Run] = []
    mismatches: list[str] = []
    judged = {"decided": 0, "likely": 0, "undecided": 0}
    # two batches (root, nobody): every process of a batch is read by one hvcheck run
    for user in USERS:
        batch = [lab.run(v, user) for v in variants]
        runs += batch
        running = [r for r in batch if r.guest is not None]
        live = _instances()
        snap = tmp_path / f"{user or 'root'}.tar.gz"
        assert run_hvcheck("collect", "-o", str(snap)).returncode in (0, 1, 2, 3)
        replay = _instances("--root", str(snap))
        bare = tmp_path / f"{user or 'root'}-bare.tar.gz"
        _strip_fds_and_threads(snap, bare)
        judged_now = _instances("--root", str(bare))
        for r in running:
            assert r.guest is not None
            pid, truth = r.guest.pid, "kvm" if r.kvm else "tcg"
            got = live.get(pid)
            if got is None:
                mismatches.append(f"{r.label}: not found live")
                continue
            if (got["accel"], got["silent_fallback"]) != (truth, r.fell_back):
                mismatches.append(
                    f"{r.label}: hvcheck {got['accel']}/fallback={got['silent_fallback']} "
                    f"(asked {got['requested']}), QEMU {truth}/fallback={r.fell_back}"
                )
            # the collected copy says the same, from the same evidence
            rep = replay.get(pid)
            if rep is None or (rep["accel"], rep["silent_fallback"], rep["requested"]) != (
                got["accel"],
                got["silent_fallback"],
                got["requested"],
            ):
                mismatches.append(f"{r.label}: replay {rep and rep['requested']} != live")
            # command line only: right or honestly undecided
            j = judged_now.get(pid)
            if j is None:
                mismatches.append(f"{r.label}: not found without fds/threads")
                continue
            if j["verified"] or j["silent_fallback"] or j["accel"] not in (truth, "unknown"):
                mismatches.append(f"{r.label}: judged {j['accel']} (truth {truth}): {j}")
            if j["likely"] not in (None, truth):
                mismatches.append(f"{r.label}: judged likely {j['likely']}, truth {truth}")
            if j["requested"] in ("kvm", "tcg") and j["accel"] != truth:
                mismatches.append(f"{r.label}: one accelerator asked, judged {j['accel']}")
            fallback_list = (j["requested"] or "").startswith("kvm:")
            if fallback_list and "-runas" not in r.variant.args and j["likely"] != truth:
                # uid and groups against /dev/kvm 0600 root:root say which one ran
                mismatches.append(f"{r.label}: kvm:… judged likely {j['likely']}, truth {truth}")
            key = "decided" if j["accel"] != "unknown" else "likely" if j["likely"] else "undecided"
            judged[key] += 1
            r.judged = f"{key}: {j['accel']}" + (f" (likely {j['likely']})" if j["likely"] else "")
        for r in running:
            assert r.guest is not None
            r.guest.stop()
    ran = [r for r in runs if r.guest is not None]
    assert not mismatches, "\n".join(mismatches)
    # the differential means something: both sides of every outcome were exercised
    assert len(ran) >= 50, [r.label + ": " + r.refused for r in runs if r.refused]
    assert sum(r.kvm is True for r in ran) >= 15 and sum(r.kvm is False for r in ran) >= 25
    assert sum(r.fell_back for r in ran) >= 10
    # nobody never gets KVM, and QEMU refused exactly the KVM-alone requests for nobody
    assert not any(r.kvm for r in ran if r.user == "nobody" and "-runas" not in r.variant.args)
    assert judged["undecided"] <= len(ran) // 4, judged
    print(f"\n{len(runs)} starts, {len(ran)} ran; judged without fds/threads: {judged}")
    for r in runs:
        print(f"  {r.label}: " + (r.refused or f"kvm={r.kvm} fell_back={r.fell_back} {r.judged}"))


@pytest.mark.parametrize("v", REFUSED, ids=[v.id for v in REFUSED])
def test_what_qemu_refuses_is_never_read_as_a_plain_request(lab: Lab, v: Variant) -> None:
    r = lab.run(v, None)
    assert r.guest is None, f"QEMU 7.2 started {v.id}: this variant belongs in VARIANTS"
    d = lab.dirs[-1]
    args = [a.replace("{d}", d) for a in v.args]
    files = {DEFAULT_CONFIG: None, **{os.path.join(d, n): t.encode() for n, t in v.files.items()}}
    a = parse_qemu_argv(["qemu-system-x86_64", *args], files=files).accel
    assert a.undetermined is not None or a.conflict, (r.refused, a)


def test_a_config_file_gone_since_start_means_cannot_tell(lab: Lab) -> None:
    v = Variant("gone", ("-readconfig", "{d}/vm.cfg"), {"vm.cfg": MACHINE_KVM_TCG})
    r = lab.run(v, "nobody")
    assert r.guest is not None and r.fell_back  # a real fallback...
    os.unlink(os.path.join(lab.dirs[-1], "vm.cfg"))
    got = _instances()[r.guest.pid]
    # ...that can no longer be shown: TCG, as the fds say, and no claim about the request
    assert (got["accel"], got["requested"], got["silent_fallback"]) == ("tcg", None, False)
    assert any("vm.cfg no longer exists" in x for x in got["evidence_detail"])
    r.guest.stop()
