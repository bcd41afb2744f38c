"""Deployments recognised from evidence, and hints that name the knob that lasts there
(issue 13): the composed fixtures of tests/deploy_fixtures.py, what they hold beyond
tests/test_fixtures.py's keys, and the pure readings behind the recognition."""

from __future__ import annotations

import doctest
import json
import os
from pathlib import Path
from typing import Any

import pytest

import deploy_fixtures
from hvcheck import deployment, facts
from hvcheck.check import Context
from hvcheck.host import SnapshotHost
from hvcheck.parsers import deployment as deployment_parsers
from hvcheck.parsers.deployment import (
    device_allowed,
    devices_cgroup,
    juju_unit,
    parse_devices_list,
    parse_proc_cgroup,
    pve_vmid,
    snap_name,
)
from snap import PROJECT, healthy_host, run_json

BUILT = [b() for b in deploy_fixtures.BUILDERS]
NAMES = [f.name for f in BUILT]


def _tree(root: Path) -> dict[str, tuple[str, bytes]]:
    out: dict[str, tuple[str, bytes]] = {}
    for dirpath, _dirs, files in os.walk(root):
        for n in files + [d for d in _dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p).encode())
            else:
                out[rel] = ("file", p.read_bytes())
    return out


@pytest.mark.parametrize("fx", BUILT, ids=NAMES)
def test_committed_fixture_is_what_the_builder_writes(fx: Any, tmp_path: Path) -> None:
    fresh = deploy_fixtures.write(fx, tmp_path / fx.name)
    assert _tree(PROJECT / "fixtures" / fx.name) == _tree(fresh), (
        f"fixtures/{fx.name} differs from tests/deploy_fixtures.py: "
        "run python tests/deploy_fixtures.py"
    )


@pytest.mark.parametrize("name", NAMES)
def test_deployment_and_what_test_fixtures_does_not_check(name: str) -> None:
    root = PROJECT / "fixtures" / name
    want: dict[str, Any] = json.loads((root / "expected.json").read_text())
    _, doc = run_json("--root", str(root))
    assert doc["deployment"]["kind"] == want["deployment"], doc["deployment"]
    assert doc["deployment"]["evidence"] or want["deployment"] == "libvirt"
    checks = {c["id"]: c for c in doc["checks"]}
    for cid, texts in want.get("hint_contains_all", {}).items():
        for text in texts:
            assert text in (checks[cid]["hint"] or ""), (cid, text, checks[cid]["hint"])
    names = {i["name"]: (i.get("nova") or {}).get("display_name") for i in doc["instances"]}
    for inst, display in want.get("nova_display_names", {}).items():
        assert names.get(inst) == display, doc["instances"]


def test_kolla_instance_xml_is_read_through_the_pivoted_root() -> None:
    _, doc = run_json("--root", str(PROJECT / "fixtures" / "kolla-pivot-root-qemu-user-ok"))
    (inst,) = doc["instances"]
    assert inst["libvirt_xml"] == "/proc/3301/root/run/libvirt/qemu/instance-00000001.xml"
    assert inst["domain_type"] == "kvm" and "libvirt-xml" in inst["evidence"]
    assert inst["nova"]["flavor"] == "m1.small" and inst["nova"]["project"] == "web"
    user = next(c for c in doc["checks"] if c["id"] == "libvirt.qemu_user")
    assert user["details"]["from_process"] is True and user["details"]["pid"] == 3301
    assert doc["deployment"]["containerised"] is True


def test_kolla_hint_without_the_deployment_would_name_the_containers_file(tmp_path: Path) -> None:
    """The same host without kolla's marks (no kolla_start config, no /etc/kolla): the hint
    falls back to the file nova-compute reads: the kolla hint comes from the evidence."""
    fx = deploy_fixtures.kolla_qemu()
    files = {
        k: v
        for k, v in fx.files.items()
        if "kolla" not in k.split("/") and not k.endswith("config.json")
    }
    files["proc/2201/cmdline"] = b"/usr/bin/python3\0/usr/bin/nova-compute\0"
    root = deploy_fixtures.write(fx._replace(files=files), tmp_path / "s")
    _, doc = run_json("--root", str(root), "--only", "nova")
    assert doc["deployment"]["kind"] == "container"
    nova = next(c for c in doc["checks"] if c["id"] == "nova.virt_type")
    assert "nova_compute_virt_type" not in nova["hint"]
    assert "/etc/nova/nova.conf as the container sees it" in nova["hint"]


def test_every_kind_has_a_virt_type_knob() -> None:
    for kind in deployment.KINDS:
        d = deployment.Deployment(kind, kind, None, (), snap="microstack", juju_application="nc")
        text = d.virt_type_fix("kvm", "/etc/nova/nova.conf")
        assert "kvm" in text, kind
    snap = deployment.Deployment("snap", "s", True, (), snap="microstack")
    assert "snap set microstack config.nova.virt-type=kvm" in snap.virt_type_fix("kvm", None)
    juju = deployment.Deployment("juju", "j", False, (), juju_application="nova-compute-kvm")
    assert juju.virt_type_fix("qemu", None).startswith(
        "juju config nova-compute-kvm virt-type=qemu"
    )


def test_plain_libvirt_host_is_libvirt_and_its_file_is_named(tmp_path: Path) -> None:
    root = healthy_host(tmp_path / "s")
    (root / "etc/libvirt").mkdir(parents=True)
    (root / "etc/libvirt/qemu.conf").write_text("")
    ctx = Context(SnapshotHost(str(root)))
    d = facts.deployment(ctx)
    assert d.kind == "libvirt"
    assert d.virt_type_fix("kvm", "/etc/nova/nova.conf") == (
        "set [libvirt] virt_type = kvm in /etc/nova/nova.conf and restart nova-compute"
    )


def test_a_host_with_nothing_is_none(tmp_path: Path) -> None:
    ctx = Context(SnapshotHost(str(healthy_host(tmp_path / "s"))))
    assert facts.deployment(ctx).kind == "none"


# ---------------------------------------------------------------------------------- parsers
def test_parser_doctests() -> None:
    result = doctest.testmod(deployment_parsers)
    assert result.attempted > 0 and result.failed == 0


def test_proc_cgroup_v1_and_v2() -> None:
    v2 = parse_proc_cgroup("0::/system.slice/docker-abc.scope\n")
    assert devices_cgroup(v2) is None
    v1 = parse_proc_cgroup("12:devices:/lxc.payload.c1/x\n0::/lxc.payload.c1/x\nbad line\n")
    assert devices_cgroup(v1) == "/lxc.payload.c1/x"


def test_devices_list_needs_read_and_write() -> None:
    assert device_allowed(parse_devices_list("c 10:232 rwm\n"), "c", 10, 232)
    assert not device_allowed(parse_devices_list("c 10:232 r\n"), "c", 10, 232)
    assert not device_allowed(parse_devices_list("c *:* m\nb *:* rwm\n"), "c", 10, 232)
    assert device_allowed(parse_devices_list("c 10:* rw\n"), "c", 10, 232)
    assert not device_allowed(parse_devices_list("garbage\n"), "c", 10, 232)


def test_snap_juju_and_proxmox_names() -> None:
    assert snap_name("/snap/microstack/current/bin/x") == "microstack"
    assert snap_name("/snapshot/x/y") is None
    assert juju_unit("unit-nova-compute-kvm-12") == ("nova-compute-kvm", 12)
    assert pve_vmid(["/usr/bin/kvm", "-id", "100"]) is None  # no qemu-server socket


def test_deployment_and_mountns_sit_below_facts() -> None:
    """Facts-level modules: they never import facts or a check (no cycle)."""
    import ast

    pkg = PROJECT / "hvcheck"
    for name in ("deployment.py", "mountns.py", "parsers/deployment.py"):
        tree = ast.parse((pkg / name).read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in mods if m == "hvcheck.facts" or m.startswith("hvcheck.checks")}, (
            name,
            mods,
        )
