"""Build small snapshot directories in the contract's layout for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

PROJECT = Path(__file__).resolve().parent.parent


def make_snapshot(
    root: Path,
    files: Optional[dict[str, str | bytes]] = None,
    marker: Optional[dict[str, Any]] = None,
    links: Optional[dict[str, str]] = None,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "hvcheck-snapshot.json").write_text(json.dumps({"format": 1, **(marker or {})}))
    for path, content in (files or {}).items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    for path, target in (links or {}).items():
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
    return root


def run_hvcheck(
    *args: str, env: Optional[dict[str, str]] = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (python -m hvcheck) as a subprocess."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hvcheck", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=e,
        cwd=PROJECT,
    )


def run_json(*args: str, env: Optional[dict[str, str]] = None) -> tuple[int, dict[str, Any]]:
    p = run_hvcheck("--json", *args, env=env)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, json.loads(p.stdout)


FLAGS = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr "
    "pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 "
    "ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx "
    "est tm2 ssse3 fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic "
    "movbe popcnt aes xsave avx f16c rdrand lahf_lm abm ept vpid fsgsbase "
    "bmi1 avx2 smep bmi2 erms invpcid"
)
HEALTHY_CPUINFO = f"""processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 63
model name\t: Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz
flags\t\t: {FLAGS}

"""


def healthy_host(root: Path, **marker: Any) -> Path:
    """A bare-metal Intel KVM host with a working probe."""
    m: dict[str, Any] = {
        "hostname": "compute-1",
        "arch": "x86_64",
        "kernel": "5.15.0-91-generic",
        "taken_as_uid": 0,
        "devices": {
            "/dev/kvm": {
                "type": "char",
                "major": 10,
                "minor": 232,
                "mode": "0660",
                "uid": 0,
                "gid": 108,
                "owner": "root",
                "group": "kvm",
            },
            "/dev/vhost-net": {
                "type": "char",
                "major": 10,
                "minor": 238,
                "mode": "0660",
                "uid": 0,
                "gid": 108,
                "owner": "root",
                "group": "kvm",
            },
            "/dev/net/tun": {
                "type": "char",
                "major": 10,
                "minor": 200,
                "mode": "0666",
                "uid": 0,
                "gid": 0,
                "owner": "root",
                "group": "root",
            },
        },
        "probes": {"kvm": {"ok": True, "stage": "done", "api_version": 12, "uid": 0}},
    }
    m.update(marker)
    return make_snapshot(
        root,
        {
            "proc/cpuinfo": HEALTHY_CPUINFO,
            "proc/modules": "kvm_intel 380928 0 - Live 0x0000000000000000\n"
            "kvm 1146880 1 kvm_intel, Live 0x0000000000000000\n"
            "vhost_net 32768 0 - Live 0x0000000000000000\n"
            "tun 61440 1 vhost_net, Live 0x0000000000000000\n",
            "sys/module/kvm_intel/parameters/nested": "Y\n",
            "proc/cmdline": "BOOT_IMAGE=/vmlinuz-5.15.0-91-generic root=/dev/sda1 ro quiet\n",
            "dev/kmsg": "6,1,0,-;Linux version 5.15.0-91-generic\n",
            "etc/os-release": 'NAME="Ubuntu"\nVERSION="22.04.3 LTS (Jammy Jellyfish)"\nID=ubuntu\n'
            'ID_LIKE=debian\nPRETTY_NAME="Ubuntu 22.04.3 LTS"\nVERSION_ID="22.04"\n'
            "VERSION_CODENAME=jammy\n",
        },
        m,
    )
