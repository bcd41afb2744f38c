"""nova's configuration as the running nova-compute sees it (issue 17): the option schema of its
release, what stops it from starting, substitution, and its environment, end to end on
composed snapshots in the real formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hvcheck.parsers.nova_schema import nova_schema, release_key
from hvcheck.parsers.novaconf import (
    environ_for_snapshot,
    parse_oslo_ini,
    resolve_nova_libvirt,
)
from snap import healthy_host, run_json

NOVA = ("/usr/bin/python3", "/usr/bin/nova-compute")


def _cmdline(*argv: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in argv)


def _snap(root: Path, files: dict[str, str | bytes], argv: tuple[str, ...] = ()) -> Path:
    healthy_host(root)
    if argv:
        files = {"proc/4242/cmdline": _cmdline(*argv), "proc/4242/comm": "nova-compute\n", **files}
    for path, content in files.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _egg(version: str, root: str = "") -> dict[str, str]:
    # Debian/Ubuntu's python3-nova ships nova-<version>.egg-info (PKG-INFO inside)
    path = f"{root}usr/lib/python3/dist-packages/nova-{version}.egg-info/PKG-INFO"
    return {path: f"Metadata-Version: 2.1\nName: nova\nVersion: {version}\nSummary: Cloud\n"}


def _check(tmp: Path, files: dict[str, str | bytes], argv: tuple[str, ...] = ()) -> Any:
    rc, doc = run_json("--root", str(_snap(tmp, files, argv)))
    c = next(c for c in doc["checks"] if c["id"] == "nova.virt_type")
    return rc, doc, c


# --------------------------------------------------------------------------------------------
# the six inputs of issue 17
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["qemu", "KVM"])
def test_1_default_libvirt_type_is_ignored_since_juno(tmp_path: Path, value: str) -> None:
    rc, doc, c = _check(tmp_path, {"etc/nova/nova.conf": f"[DEFAULT]\nlibvirt_type = {value}\n"})
    assert doc["verdict"]["virt_type"] == "kvm"  # nova's default
    assert c["status"] == "OK" and c["code"] == "kvm-ok" and rc == 0
    assert f"[DEFAULT] libvirt_type = {value} at /etc/nova/nova.conf:2 is not read" in c["summary"]


def test_1_a_havana_nova_still_reads_it(tmp_path: Path) -> None:
    files = {"etc/nova/nova.conf": "[DEFAULT]\nlibvirt_type = qemu\n", **_egg("2013.2.4")}
    _, doc, c = _check(tmp_path, files)
    assert doc["verdict"]["virt_type"] == "qemu" and c["code"] == "capable-but-unused"
    assert c["details"]["source"]["spelling"] == "[DEFAULT] libvirt_type"
    assert c["details"]["release"]["schema"] == "Grizzly (2013.1) to Havana (2013.2)"


def test_2_xen_stops_nova_from_wallaby_on(tmp_path: Path) -> None:
    rc, doc, c = _check(tmp_path, {"etc/nova/nova.conf": "[libvirt]\nvirt_type = xen\n"})
    assert c["status"] == "CRITICAL" and c["code"] == "will-not-start" and rc == 2
    assert c["summary"] == (
        "nova-compute will not start: [libvirt] virt_type = 'xen' is not one of kvm, lxc, "
        "qemu, parallels (/etc/nova/nova.conf:2)"
    )
    assert "kvm, lxc, qemu, parallels" in c["hint"] and "/etc/nova/nova.conf" in c["hint"]
    assert doc["verdict"]["virt_type"] is None
    assert "newest option schema" in " ".join(c["evidence"])
    # Victoria (22.x) still had xen
    files = {"etc/nova/nova.conf": "[libvirt]\nvirt_type = xen\n", **_egg("22.4.0")}
    rc, doc, c = _check(tmp_path / "victoria", files)
    assert c["status"] == "OK" and c["code"] == "other" and doc["verdict"]["virt_type"] == "xen"


@pytest.mark.parametrize(
    ("argv", "files", "words", "hint"),
    [
        (("--config-file", "/etc/nova/nova.conf"), {}, "does not exist", "create /etc/nova"),
        (
            ("--config-file=/etc/nova/nova.conf",),
            {"etc/nova/nova.conf/x": "[libvirt]\n"},
            "is a directory",
            "make /etc/nova/nova.conf a readable",
        ),
        (
            ("--config-file=/etc/nova/nova.conf",),
            {"etc/nova/nova.conf": b"[libvirt]\n# \xe9t\xe9\nvirt_type = qemu\n"},
            "line 2: not UTF-8 (byte 0xe9)",
            "re-save /etc/nova/nova.conf as UTF-8",
        ),
        (
            ("--config-file=/etc/nova/nova.conf", "--config-dir", "/etc/nova/nova.conf.d"),
            {"etc/nova/nova.conf": "[libvirt]\nvirt_type = qemu\n"},
            "--config-dir does not exist",
            "create the directory /etc/nova/nova.conf.d",
        ),
    ],
)
def test_3_config_nova_cannot_read(
    tmp_path: Path, argv: tuple[str, ...], files: dict[str, str | bytes], words: str, hint: str
) -> None:
    rc, doc, c = _check(tmp_path, files, (*NOVA, *argv))
    assert c["status"] == "CRITICAL" and c["code"] == "will-not-start" and rc == 2
    assert c["summary"].startswith("nova-compute will not start: /etc/nova/nova.conf")
    assert words in c["summary"] and c["hint"].startswith(hint)
    assert doc["verdict"]["virt_type"] is None


def test_4_substitution(tmp_path: Path) -> None:
    conf = (
        "[DEFAULT]\nhost = qemu\n[libvirt]\nvirt_type = $host\ncpu_mode = custom\n"
        "cpu_models = ${libvirt.virt_type}64, $virt_type\n"
    )
    _, doc, c = _check(tmp_path, {"etc/nova/nova.conf": conf})
    assert doc["verdict"]["virt_type"] == "qemu" and c["code"] == "capable-but-unused"
    assert c["details"]["source"]["raw"] == "$host" and c["details"]["source"]["line"] == 4
    assert c["details"]["cpu_models"]["items"] == ["qemu64", "qemu"]
    assert "'$host' substituted" in c["summary"]


def test_4_reference_to_an_unknown_option_is_unknown(tmp_path: Path) -> None:
    _, doc, c = _check(tmp_path, {"etc/nova/nova.conf": "[libvirt]\nvirt_type = $nowhere\n"})
    assert c["status"] == "UNKNOWN" and c["code"] == "unresolved"
    assert doc["verdict"]["virt_type"] is None


def test_5_inline_comment_is_part_of_cpu_mode(tmp_path: Path) -> None:
    conf = "[libvirt]\nvirt_type = kvm\ncpu_mode = host-passthrough # fast\n"
    rc, doc, c = _check(tmp_path, {"etc/nova/nova.conf": conf})
    assert c["status"] == "CRITICAL" and c["code"] == "will-not-start" and rc == 2
    assert "'host-passthrough # fast' is not one of" in c["summary"]
    assert c["summary"].endswith("(/etc/nova/nova.conf:3)")
    assert "inline comments" in c["hint"]
    assert doc["verdict"]["virt_type"] is None


def test_6_a_flag_line_without_section_is_refused(tmp_path: Path) -> None:
    rc, doc, c = _check(tmp_path, {"etc/nova/nova.conf": "--debug\n--libvirt_type=qemu\n"})
    assert c["status"] == "CRITICAL" and c["code"] == "will-not-start" and rc == 2
    assert "/etc/nova/nova.conf: line 1: no '=' or ':' in '--debug'" in c["summary"]
    # an Essex nova read it as a flagfile
    files = {"etc/nova/nova.conf": "--debug\n--libvirt_type=qemu\n", **_egg("2012.1.3")}
    _, doc, c = _check(tmp_path / "essex", files)
    assert doc["verdict"]["virt_type"] == "qemu"
    assert c["details"]["source"]["spelling"] == "--libvirt_type (flagfile)"


# --------------------------------------------------------------------------------------------
# the release: found as the nova-compute process sees it
# --------------------------------------------------------------------------------------------


def test_release_through_the_process_root(tmp_path: Path) -> None:
    # kolla: nova in the container's venv; the host has another (stale) nova package
    argv = ("/var/lib/kolla/venv/bin/python3", "/var/lib/kolla/venv/bin/nova-compute")
    root = "proc/4242/root/"
    files = {
        f"{root}etc/nova/nova.conf": "[libvirt]\nvirt_type = xen\n",
        f"{root}var/lib/kolla/venv/lib/python3.9/site-packages/nova-22.2.2.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: nova\nVersion: 22.2.2\n\nlong description\n"
        ),
        f"{root}var/lib/kolla/venv/lib/python3.9/site-packages/"
        "oslo.config-8.3.4.dist-info/METADATA": "Name: oslo.config\nVersion: 8.3.4\n",
        **_egg("31.0.0"),
    }
    _, doc, c = _check(tmp_path, files, argv)
    rel = c["details"]["release"]
    assert rel["nova"] == "22.2.2" and rel["oslo_config"] == "8.3.4"
    assert rel["source"].startswith("/proc/4242/root/var/lib/kolla/venv/lib/python3.9/")
    assert c["status"] == "OK" and doc["verdict"]["virt_type"] == "xen"


def test_release_from_dpkg(tmp_path: Path) -> None:
    status = (
        "Package: nova-common\nStatus: install ok installed\nVersion: 2:21.2.4-0ubuntu2\n\n"
        "Package: python3-nova\nStatus: install ok installed\nVersion: 2:21.2.4-0ubuntu2\n"
    )
    files = {"etc/nova/nova.conf": "[libvirt]\nvirt_type = uml\n", "var/lib/dpkg/status": status}
    _, doc, c = _check(tmp_path, files, NOVA)
    assert c["details"]["release"]["nova"] == "2:21.2.4-0ubuntu2"
    assert c["details"]["release"]["schema"] == "Train (20.0.0) to Victoria (22.x)"
    assert doc["verdict"]["virt_type"] == "uml"


def test_release_keys() -> None:
    assert release_key("2011.3") < release_key("2012.1") < release_key("2012.2")  # type: ignore[operator]
    assert release_key("2015.1.4") < release_key("12.0.0") < release_key("2:23.0.0-0ubuntu1")  # type: ignore[operator]
    assert nova_schema("23.0.0~b1-0ubuntu1").name == "Wallaby (23.0.0) and later"
    assert nova_schema("20.6.1.dev3").cpu_models is not None
    assert nova_schema("garbage").version is None


# --------------------------------------------------------------------------------------------
# the environment (oslo.config's environment source, oslo.config 6.7.0 and later)
# --------------------------------------------------------------------------------------------


def test_environment_overrides_the_files(tmp_path: Path) -> None:
    files = {
        "etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\n",
        "proc/4242/environ": b"PATH=/usr/bin\0OS_LIBVIRT__VIRT_TYPE=qemu\0",
    }
    _, doc, c = _check(tmp_path, files, NOVA)
    assert doc["verdict"]["virt_type"] == "qemu" and c["code"] == "capable-but-unused"
    assert c["details"]["source"]["environment"] == "OS_LIBVIRT__VIRT_TYPE"
    assert c["hint"].startswith("unset OS_LIBVIRT__VIRT_TYPE")
    assert c["details"]["environment"] == "read"


def test_environment_is_not_read_by_rocky(tmp_path: Path) -> None:
    files = {
        "etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\n",
        "proc/4242/environ": b"OS_LIBVIRT__VIRT_TYPE=xen\0",
        **_egg("18.3.0"),
    }
    _, doc, c = _check(tmp_path, files, NOVA)
    assert doc["verdict"]["virt_type"] == "kvm" and c["status"] == "OK"


def test_environment_with_an_invalid_value(tmp_path: Path) -> None:
    files = {
        "etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\n",
        "proc/4242/environ": b"OS_LIBVIRT__VIRT_TYPE=KVM\0",
    }
    _, doc, c = _check(tmp_path, files, NOVA)
    assert c["code"] == "will-not-start" and doc["verdict"]["virt_type"] is None
    assert c["hint"].startswith("unset OS_LIBVIRT__VIRT_TYPE in nova-compute's environment")


def test_environment_unreadable_is_said(tmp_path: Path) -> None:
    _, _, c = _check(tmp_path, {"etc/nova/nova.conf": "[libvirt]\nvirt_type = kvm\n"}, NOVA)
    assert c["details"]["environment"].startswith("not available")
    assert any("environment of pid 4242" in e for e in c["evidence"])


def test_snapshot_keeps_only_what_oslo_reads_from_the_environment() -> None:
    env = b"OS_PASSWORD=secret\0OS_DEFAULT__HOST=h\0AWS_KEY=k\0HOME=/var/lib/nova\0SNAPX=1\0"
    assert environ_for_snapshot(env) == b"OS_DEFAULT__HOST=h\0HOME=/var/lib/nova\0"


def test_cpu_checks_of_init_host() -> None:
    def failures(text: str, version: str | None = None) -> list[str]:
        r = resolve_nova_libvirt([parse_oslo_ini(text, "f")], nova_schema(version))
        return [f.message for f in r.failures]

    assert failures("[libvirt]\ncpu_models = Haswell\n") == [
        "[libvirt] cpu_models is set but cpu_mode is unset: nova requires cpu_mode = custom "
        "with cpu_models"
    ]
    assert failures("[libvirt]\ncpu_mode = custom\n") == [
        "[libvirt] cpu_mode = custom without cpu_models: nova requires a model"
    ]
    assert failures("[libvirt]\nvirt_type = lxc\ncpu_mode = host-model\n")[0].startswith(
        "[libvirt] cpu_mode = host-model with virt_type=lxc"
    )
    assert failures("[libvirt]\ncpu_mode = custom\ncpu_models = Haswell\n") == []
    # Stein checked none of this at start (cpu_model was used when a guest was built)
    assert failures("[libvirt]\ncpu_model = Haswell\n", "19.0.0") == []


def test_collect_records_only_the_oslo_part_of_an_environment() -> None:
    import subprocess
    import time

    from hvcheck.host import RecordingHost

    env = {"OS_LIBVIRT__VIRT_TYPE": "qemu", "DB_PASSWORD": "secret", "HOME": "/var/lib/nova"}
    p = subprocess.Popen(["sleep", "30"], env=env)
    try:
        for _ in range(500):  # until the child has exec'd (before, it has our environment)
            with open(f"/proc/{p.pid}/cmdline", "rb") as f:
                if f.read().startswith(b"sleep"):
                    break
            time.sleep(0.01)
        host = RecordingHost()
        path = f"/proc/{p.pid}/environ"
        live = host.read_bytes(path)
        assert b"DB_PASSWORD=secret" in live  # the run itself sees it all
        assert host.files[path] == b"OS_LIBVIRT__VIRT_TYPE=qemu\0HOME=/var/lib/nova\0"
    finally:
        p.kill()
        p.wait()
