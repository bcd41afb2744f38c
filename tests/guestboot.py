"""Boot a REAL Linux guest under QEMU and bring back what ``hvcheck guest`` reads inside it.

The guest is a stock distribution kernel (Debian's ``linux-image-cloud-amd64``, the package the
metapackage depends on) and a busybox initramfs built here. Its ``/init`` mounts proc, sysfs and
devtmpfs, then prints every evidence file over the serial console in a framing this module
parses (base64 with the size and MD5 of each file, so a console line mangled by the kernel is
caught, not believed), runs ``systemd-detect-virt`` when the host has it (copied in with the
libraries ``ldd`` names), and powers off.

Downloads (``apt-get download``, the ordinary client) are cached between runs under
``$HVCHECK_TEST_CACHE`` (default ``/var/cache/hvcheck-tests``, or ``~/.cache/hvcheck-tests``
when that is not writable). Every QEMU started here is stopped by its PID.

On this project's machines KVM is ``kvm_pvm``, which boots PVM-enabled guest kernels only, so
the stock kernel is booted under ``-accel tcg`` (about 3 s).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

QEMU = "qemu-system-x86_64"
KERNEL_META = "linux-image-cloud-amd64"
BUSYBOX = "busybox-static"
CLOCKSOURCES_PATH = "/sys/devices/system/clocksource/clocksource0/available_clocksource"
BOOT_TIMEOUT = 120.0  # seconds; a TCG boot takes ~3 s here, a loaded shared machine more


class GuestBootUnavailable(RuntimeError):
    """What a guest boot needs is missing (QEMU, apt-get, the packages): the reason."""


def cache_dir() -> Path:
    """Where downloaded packages and the extracted kernel are kept between runs."""
    env = os.environ.get("HVCHECK_TEST_CACHE")
    if env:
        d = Path(env)
    else:
        d = Path("/var/cache/hvcheck-tests")
        try:
            d.mkdir(parents=True, exist_ok=True)
            if not os.access(d, os.W_OK):
                raise PermissionError(str(d))
        except OSError:
            d = Path.home() / ".cache" / "hvcheck-tests"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _run(argv: list[str], cwd: Optional[Path] = None, timeout: float = 300) -> str:
    try:
        p = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GuestBootUnavailable(f"{' '.join(argv)}: {e}") from e
    if p.returncode != 0:
        raise GuestBootUnavailable(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def kernel_package() -> str:
    """The versioned kernel package the metapackage depends on (``apt-cache depends``), e.g.
    ``linux-image-6.1.0-57-cloud-amd64``."""
    out = _run(["apt-cache", "depends", KERNEL_META])
    for line in out.splitlines():
        m = re.match(r"\s*Depends:\s*(linux-image-\S+)", line)
        if m:
            return m.group(1)
    raise GuestBootUnavailable(f"apt-cache depends {KERNEL_META}: no linux-image dependency")


def fetch_deb(package: str, cache: Path) -> Path:
    """``<cache>/<package>_*.deb``, downloaded with ``apt-get download`` when not cached."""
    have = sorted(cache.glob(f"{package}_*.deb"))
    if have:
        return have[-1]
    if shutil.which("apt-get") is None:
        raise GuestBootUnavailable(f"{package} is not cached in {cache} and apt-get is missing")
    _run(["apt-get", "download", package], cwd=cache)
    have = sorted(cache.glob(f"{package}_*.deb"))
    if not have:
        raise GuestBootUnavailable(f"apt-get download {package} left no .deb in {cache}")
    return have[-1]


def _extracted(deb: Path, cache: Path) -> Path:
    """``dpkg-deb -x`` of ``deb`` into ``<cache>/x/<deb stem>`` (once)."""
    dest = cache / "x" / deb.stem
    done = dest / ".extracted"
    if not done.exists():
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(dest)])
        done.write_text(deb.name + "\n")
    return dest


@dataclass
class GuestParts:
    kernel: Path  # vmlinuz of the stock kernel
    kernel_version: str
    busybox: Path  # the static busybox binary


def guest_parts() -> GuestParts:
    """The stock kernel and busybox, fetched (or found in the cache) and extracted."""
    for tool in (QEMU, "dpkg-deb"):
        if shutil.which(tool) is None:
            raise GuestBootUnavailable(f"{tool} is not installed")
    cache = cache_dir()
    try:
        kpkg = kernel_package()
    except GuestBootUnavailable:
        # no package index (offline): any cached cloud kernel will do
        cached = sorted(cache.glob("linux-image-*-cloud-amd64_*.deb"))
        if not cached:
            raise
        kpkg = cached[-1].name.split("_", 1)[0]
    kroot = _extracted(fetch_deb(kpkg, cache), cache)
    kernels = sorted((kroot / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise GuestBootUnavailable(f"{kpkg}: no /boot/vmlinuz-* in the package")
    broot = _extracted(fetch_deb(BUSYBOX, cache), cache)
    busybox = broot / "bin" / "busybox"
    if not busybox.is_file():
        raise GuestBootUnavailable(f"{BUSYBOX}: no /bin/busybox in the package")
    return GuestParts(kernels[-1], kernels[-1].name[len("vmlinuz-") :], busybox)


# ------------------------------------------------------------------------------ initramfs
class Cpio:
    """An archive in the kernel's initramfs format: cpio "newc" (SVR4 without CRC,
    Documentation/driver-api/early-userspace/buffer-format.rst), uncompressed."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.ino = 1
        self.names: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        name = name.lstrip("/")
        if name in self.names:
            return
        self.names.add(name)
        fields = (
            self.ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
            0, 0, rdev[0], rdev[1], len(name) + 1, 0,
        )  # fmt: skip
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % f for f in fields) + name.encode() + b"\0"
        self.chunks.append(head + b"\0" * (-len(head) % 4))
        self.chunks.append(data + b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for n in range(1, len(parts) + 1):
            self._entry("/".join(parts[:n]), stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self.dir(os.path.dirname(name.strip("/")) or ".")
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def bytes(self) -> bytes:
        trailer = Cpio()
        trailer.ino = 0
        trailer._entry("TRAILER!!!", 0)
        return b"".join(self.chunks + trailer.chunks)


def _libraries(binary: str) -> list[str]:
    """The shared objects ``ldd`` resolves for ``binary`` (their paths as the loader sees
    them), the loader itself included."""
    out = _run(["ldd", binary], timeout=30)
    libs: list[str] = []
    for line in out.splitlines():
        m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def init_script(files: Iterable[str], devices: Iterable[str], detect_virt: bool) -> str:
    """The guest's ``/init`` (busybox sh): mount, report, power off.

    Framing, one item a line (the console adds CRs, stripped when parsed):
    ``HVCHECK-UNAME <machine> <release> <nodename>``; per file ``HVCHECK-FILE <path> <size>
    <md5>``, its base64, ``HVCHECK-END <path>`` (or ``HVCHECK-ABSENT <path>``); the kernel log
    as ``/dev/kmsg`` (``dmesg -r``); ``HVCHECK-DEV <path> <type> <major hex> <minor hex>
    <mode>``; ``HVCHECK-DETECT-VIRT <args> <output>``; ``HVCHECK-DONE``.
    """
    lines = [
        "#!/bin/busybox sh",
        "/bin/busybox --install -s /bin",
        "export PATH=/bin:/usr/bin",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "mount -t devtmpfs devtmpfs /dev 2>/dev/null",
        "mkdir -p /tmp && mount -t tmpfs tmpfs /tmp",
        "dmesg -n 1",  # keep the kernel's own console output out of the framing
        "emit() {",
        '  if [ -f "$1" ] && [ -r "$1" ]; then',
        '    cat "$1" > /tmp/f 2>/dev/null',
        '    echo "HVCHECK-FILE $2 $(wc -c < /tmp/f) $(md5sum < /tmp/f | cut -d" " -f1)"',
        "    base64 < /tmp/f",
        '    echo "HVCHECK-END $2"',
        "  else",
        '    echo "HVCHECK-ABSENT $2"',
        "  fi",
        "}",
        'echo "HVCHECK-UNAME $(uname -m) $(uname -r) $(uname -n)"',
    ]
    for path in files:
        lines.append(f"emit {path} {path}")
    lines += ["dmesg -r > /tmp/kmsg", "emit /tmp/kmsg /dev/kmsg"]
    for dev in devices:
        lines.append(f'[ -e {dev} ] && echo "HVCHECK-DEV {dev} $(stat -L -c "%F %t %T %a" {dev})"')
    if detect_virt:
        for args in ("", "--vm"):
            lines.append(
                f'echo "HVCHECK-DETECT-VIRT [{args}] $(/usr/bin/systemd-detect-virt {args} 2>&1)"'
            )
    lines += ['echo "HVCHECK-DONE"', "poweroff -f", ""]
    return "\n".join(lines)


def build_initramfs(
    busybox: Path, out: Path, files: Iterable[str], devices: Iterable[str] = ("/dev/kvm",)
) -> bool:
    """Write the initramfs to ``out``; True when systemd-detect-virt went in with it."""
    c = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "usr/bin"):
        c.dir(d)
    c.chardev("dev/console", 5, 1)  # the kernel opens it for init's stdio before devtmpfs
    c.chardev("dev/null", 1, 3, 0o666)
    c.file("bin/busybox", busybox.read_bytes(), 0o755)
    sdv = shutil.which("systemd-detect-virt")
    detect_virt = False
    if sdv:
        try:
            libs = _libraries(sdv)
        except GuestBootUnavailable:
            libs = []
        if libs:
            c.file("usr/bin/systemd-detect-virt", Path(sdv).read_bytes(), 0o755)
            for lib in libs:
                c.file(lib, Path(lib).read_bytes(), 0o755)
            detect_virt = True
    c.file("init", init_script(files, devices, detect_virt).encode(), 0o755)
    out.write_bytes(c.bytes())
    return detect_virt


# ------------------------------------------------------------------------------ boot + parse
@dataclass
class GuestCapture:
    """What one guest boot brought back."""

    accel: str
    machine: str = ""
    release: str = ""
    nodename: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    devices: dict[str, dict[str, object]] = field(default_factory=dict)
    detect_virt: dict[str, str] = field(default_factory=dict)  # args -> systemd-detect-virt
    done: bool = False
    console: str = ""
    seconds: float = 0.0
    argv: list[str] = field(default_factory=list)
    taken_at: str = ""  # UTC, when the guest was booted


def parse_console(text: str, capture: GuestCapture) -> None:
    """Fill ``capture`` from the console framing (see ``init_script``). A file whose size or
    MD5 does not match what the guest announced is dropped (the console mangled it)."""
    lines = []
    for ln in text.split("\n"):
        ln = ln.replace("\r", "")
        at = ln.find("HVCHECK-")  # the firmware's terminal resets may precede the first line
        lines.append(ln[at:] if at > 0 else ln)
    i = 0
    while i < len(lines):
        ln = lines[i]
        i += 1
        if ln.startswith("HVCHECK-UNAME "):
            parts = [*ln.split(" ", 3)[1:], "", "", ""]
            capture.machine, capture.release, capture.nodename = parts[:3]
        elif ln.startswith("HVCHECK-FILE "):
            _, path, size, md5 = ln.split(" ")
            chunks: list[str] = []
            while i < len(lines) and lines[i] != f"HVCHECK-END {path}":
                if re.fullmatch(r"[A-Za-z0-9+/=]+", lines[i]):
                    chunks.append(lines[i])
                i += 1
            i += 1
            data = base64.b64decode("".join(chunks))
            if len(data) == int(size) and hashlib.md5(data).hexdigest() == md5:
                capture.files[path] = data
        elif ln.startswith("HVCHECK-ABSENT "):
            capture.absent.append(ln.split(" ", 1)[1])
        elif ln.startswith("HVCHECK-DEV "):
            # busybox stat: "%F %t %T %a" = "character special file 10 e8 660"
            m = re.match(r"HVCHECK-DEV (\S+) (.+) ([0-9a-f]+) ([0-9a-f]+) ([0-7]+)$", ln)
            if m:
                capture.devices[m.group(1)] = {
                    "type": "char" if m.group(2).startswith("character") else "other",
                    "major": int(m.group(3), 16),
                    "minor": int(m.group(4), 16),
                    "mode": f"{int(m.group(5), 8):04o}",
                    "uid": 0,
                    "gid": 0,
                }
        elif ln.startswith("HVCHECK-DETECT-VIRT "):
            m = re.match(r"HVCHECK-DETECT-VIRT \[([^\]]*)\] ?(.*)$", ln)
            if m:
                capture.detect_virt[m.group(1)] = m.group(2).strip()
        elif ln == "HVCHECK-DONE":
            capture.done = True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the QEMU we started, by its PID, and reap it."""
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=3)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=3)


def boot(
    parts: GuestParts,
    files: Iterable[str],
    accel: str = "tcg",
    extra: Iterable[str] = (),
    timeout: float = BOOT_TIMEOUT,
) -> GuestCapture:
    """Boot the stock kernel under ``-accel <accel>`` with the reporting initramfs and
    return what it printed. QEMU is stopped by PID whatever happens."""
    with tempfile.TemporaryDirectory(prefix="hvcheck-guest-") as tmp:
        initrd = Path(tmp) / "initrd.cpio"
        build_initramfs(parts.busybox, initrd, files)
        argv = [
            QEMU, "-accel", accel, "-m", "512", "-nographic", "-no-reboot",
            "-kernel", str(parts.kernel), "-initrd", str(initrd),
            "-append", "console=ttyS0 panic=-1 quiet", *extra,
        ]  # fmt: skip
        out_path = Path(tmp) / "console.log"
        start = time.monotonic()
        started = time.time()
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            finally:
                _stop(proc)
        cap = GuestCapture(accel=accel, argv=argv)
        cap.taken_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
        cap.seconds = time.monotonic() - start
        cap.console = out_path.read_bytes().decode("utf-8", "replace")
        parse_console(cap.console, cap)
        return cap


def write_snapshot(cap: GuestCapture, root: Path) -> Path:
    """The capture as an hvcheck snapshot directory (DESIGN.md: files at their host paths,
    the kernel log at ``dev/kmsg``, device nodes and uname in the marker)."""
    root.mkdir(parents=True, exist_ok=True)
    for path, data in cap.files.items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    marker = {
        "format": 1,
        "hostname": cap.nodename or "(none)",
        "arch": cap.machine,
        "kernel": cap.release,
        "taken_as_uid": 0,
        "taken_at": cap.taken_at,
        "devices": cap.devices,
        "probes": {},
    }
    (root / "hvcheck-snapshot.json").write_text(json.dumps(marker, indent=2) + "\n")
    return root


def guest_reads() -> list[str]:
    """The plain files the guest checks declare in ``reads`` (``hvcheck checks``): what the
    guest's init copies back. /dev/kmsg (the kernel log) and /dev/kvm (a device node) are
    reported their own way; directories are not files."""
    from hvcheck import engine

    out: list[str] = []
    for lc in engine.load_checks("guest"):
        for r in lc.reads:
            path = r.split(" ", 1)[0]
            if path.startswith(("/proc/", "/sys/")) and "*" not in path and path not in out:
                out.append(path)
    return out
