"""nova.api: the real keystoneauth1 client against a Keystone v3 + Nova server on 127.0.0.1
(tests/openstack_fake.py) serving Nova's published os-hypervisors samples read in place from
../shared/corpus; credentials the way the `openstack` CLI takes them; TLS on by default; secrets
never printed; every network wait bounded by the run's timeout. Then the judgement itself on
snapshots that replay a recorded answer (probes.nova_api)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from corpus import require_corpus
from hvcheck.openstack import NovaAnswer, canonical_name
from hvcheck.parsers.nova_api import HostNames, Hypervisor
from libvirt_harness import domain_xml
from openstack_fake import FakeCloud
from snap import PROJECT, healthy_host

NODE = os.uname().nodename
FQDN = canonical_name(NODE) or NODE
PASSWORD = "pw-" + uuid.uuid4().hex  # unique: any occurrence in output is a leak


def clean_env(home: Path, **os_vars: str) -> dict[str, str]:
    """This process's environment without any OS_* variable, HOME in a scratch directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(os_vars)
    return env


def password_env(cloud: FakeCloud, home: Path, **more: str) -> dict[str, str]:
    return clean_env(
        home,
        OS_AUTH_URL=cloud.auth_url,
        OS_USERNAME="admin",
        OS_PASSWORD=PASSWORD,
        OS_PROJECT_NAME="admin",
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
        **more,
    )


def hvcheck(
    *args: str, env: dict[str, str], cwd: Path, prefix: Optional[list[str]] = None
) -> subprocess.CompletedProcess[str]:
    cmd = prefix or [sys.executable, "-m", "hvcheck"]
    p = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


# The API answered and the record was judged; "count-mismatch" when QEMU processes of other
# programs happen to run on this machine (the sample's running_vms is 0)
ANSWERED = ("ok", "count-mismatch")


def nova_check(p: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    doc = json.loads(p.stdout)
    return next(c for c in doc["checks"] if c["id"] == "nova.api")


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    require_corpus()
    c = FakeCloud(hypervisor_hostname=FQDN, service_host=NODE.split(".")[0], password=PASSWORD)
    c.start()
    try:
        yield c
    finally:
        c.stop()


# ---- the API flow and the microversions ---------------------------------------------------------
@pytest.mark.parametrize(
    ("max_version", "pin", "asked", "running_vms"),
    [
        ("2.1", None, "2.1", True),  # an old cloud: the 2.1 sample, integer ids
        ("2.60", None, "2.60", True),  # between 2.53 and 2.88: the 2.53 sample, pattern search
        ("2.96", None, "2.87", True),  # a current cloud: 2.87 keeps running_vms
        ("2.96", "2.88", "2.88", False),  # OS_COMPUTE_API_VERSION=2.88: running_vms is gone
    ],
)
def test_microversions(
    cloud: FakeCloud,
    tmp_path: Path,
    max_version: str,
    pin: Optional[str],
    asked: str,
    running_vms: bool,
) -> None:
    cloud.max_version = max_version
    extra = {"OS_COMPUTE_API_VERSION": pin} if pin else {}
    p = hvcheck(
        "--json",
        "--only",
        "nova.api",
        env=password_env(cloud, tmp_path / "h", **extra),
        cwd=tmp_path,
    )
    c = nova_check(p)
    d = c["details"]
    assert cloud.microversions_asked() == [f"compute {asked}"]
    assert d["microversion"] == asked and d["max_microversion"] == max_version
    rec = d["records"][0]
    assert rec["hypervisor_hostname"] == FQDN and rec["hypervisor_type"] == "QEMU"
    assert rec["state"] == "up" and rec["status"] == "enabled"
    assert (rec["running_vms"] is not None) is running_vms
    assert (len(rec["id"]) == 36) is (asked not in ("2.1",))
    uses_pattern = tuple(map(int, asked.split("."))) >= (2, 53)
    assert ("hypervisor_hostname_pattern" in d) is uses_pattern
    hv_req = next(r for r in cloud.requests if r["path"].endswith("/os-hypervisors/detail"))
    assert ("hypervisor_hostname_pattern" in hv_req["query"]) is uses_pattern
    # the record is this machine's; the output explains what 'QEMU' means
    assert "QEMU" in c["summary"] and "KVM and TCG alike" in c["summary"]
    assert "local evidence" in c["summary"]
    if running_vms:
        assert "running_vms 0" in c["summary"]
    else:
        assert "no running_vms at microversion 2.88" in c["summary"]
    # local QEMU processes (none in CI) decide whether the count agrees
    if d.get("local_qemu_processes", 0) == 0:
        assert c["status"] == "OK", c
    # the real keystoneauth1 flow: discovery, password auth, token on the Nova call
    assert [r["path"] for r in cloud.requests[:2]] == [
        "/identity/v3",
        "/identity/v3/auth/tokens",
    ]
    assert cloud.auth_bodies[0]["auth"]["identity"]["password"]["user"]["name"] == "admin"
    assert hv_req["headers"]["X-Auth-Token"] == cloud.token
    assert hv_req["headers"]["User-Agent"].startswith("hvcheck/")


def test_clouds_yaml_os_cloud_and_secure_yaml(cloud: FakeCloud, tmp_path: Path) -> None:
    cfg = tmp_path / "conf"
    cfg.mkdir()
    (cfg / "clouds.yaml").write_text(
        "clouds:\n"
        "  lab:\n"
        "    auth: {auth_url: 'http://127.0.0.1:9/identity/v3', username: x, password: y}\n"
        "  prod:\n"
        "    region_name: RegionOne\n"
        "    interface: public\n"
        "    identity_api_version: 3\n"
        "    auth:\n"
        f"      auth_url: {cloud.auth_url}\n"
        "      username: admin\n"
        "      project_name: admin\n"
        "      domain_name: Default\n"
    )
    (cfg / "secure.yaml").write_text(f"clouds:\n  prod:\n    auth:\n      password: {PASSWORD}\n")
    env = clean_env(
        tmp_path / "h",
        OS_CLOUD="prod",
        OS_CLIENT_CONFIG_FILE=str(cfg / "clouds.yaml"),
        OS_CLIENT_SECURE_FILE=str(cfg / "secure.yaml"),
    )
    c = nova_check(hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path))
    assert c["code"] in ANSWERED, c
    assert c["details"]["cloud"].startswith("cloud 'prod' from ")
    assert c["details"]["region"] == "RegionOne"
    ident = cloud.auth_bodies[0]["auth"]["identity"]["password"]["user"]
    assert ident["password"] == PASSWORD and ident["domain"] == {"name": "Default"}
    scope = cloud.auth_bodies[0]["auth"]["scope"]["project"]
    assert scope == {"name": "admin", "domain": {"name": "Default"}}
    # the only cloud of a clouds.yaml in ~/.config/openstack, without OS_CLOUD
    home = tmp_path / "h2"
    (home / ".config" / "openstack").mkdir(parents=True)
    (home / ".config" / "openstack" / "clouds.yaml").write_text(
        "clouds:\n  only:\n    auth:\n"
        f"      auth_url: {cloud.auth_url}\n      username: admin\n"
        f"      password: {PASSWORD}\n      project_name: admin\n"
    )
    c = nova_check(hvcheck("--json", "--only", "nova.api", env=clean_env(home), cwd=tmp_path))
    assert c["code"] in ANSWERED and c["details"]["cloud"].startswith("cloud 'only' from "), c


def test_clouds_yaml_ambiguous_or_missing_cloud(tmp_path: Path) -> None:
    conf = tmp_path / "clouds.yaml"
    conf.write_text("clouds:\n  a: {auth: {auth_url: 'http://127.0.0.1:9'}}\n  b: {}\n")
    env = clean_env(tmp_path / "h", OS_CLIENT_CONFIG_FILE=str(conf))
    c = nova_check(hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path))
    assert c["status"] == "SKIP" and "set OS_CLOUD" in c["summary"], c
    env["OS_CLOUD"] = "c"
    c = nova_check(hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path))
    assert c["status"] == "UNKNOWN" and c["code"] == "api-config", c
    assert "no such cloud" in c["summary"]
    conf.write_text("clouds: [unclosed\n")
    c = nova_check(hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path))
    assert c["status"] == "UNKNOWN" and "not valid YAML" in c["summary"], c


def test_incomplete_env_credentials(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "h", OS_USERNAME="admin", OS_PASSWORD=PASSWORD)
    p = hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path)
    c = nova_check(p)
    assert c["status"] == "UNKNOWN" and "missing auth_url" in c["summary"], c
    assert PASSWORD not in p.stdout + p.stderr


def test_wrong_password_is_unknown_and_not_echoed(cloud: FakeCloud, tmp_path: Path) -> None:
    cloud.password = "something-else-entirely"
    p = hvcheck(
        "--json", "--only", "nova.api", env=password_env(cloud, tmp_path / "h"), cwd=tmp_path
    )
    c = nova_check(p)
    assert c["status"] == "UNKNOWN" and c["code"] == "api-auth", c
    assert "401" in c["summary"] and c["hint"]
    assert PASSWORD not in p.stdout + p.stderr
    assert p.returncode == 3


def _all_text(snapshot: Path) -> bytes:
    out = b""
    with tarfile.open(snapshot, "r:gz") as tf:
        for m in tf:
            f = tf.extractfile(m) if m.isreg() else None
            out += m.name.encode() + b"\n" + (f.read() if f else m.linkname.encode())
    return out


def test_password_and_token_never_appear(cloud: FakeCloud, tmp_path: Path) -> None:
    env = password_env(cloud, tmp_path / "h")
    secrets = [PASSWORD, cloud.token]
    outputs: list[str] = []
    for args in (
        ["--only", "nova.api", "-v"],
        ["--json", "-v", "--only", "nova.api"],
        ["--format", "nagios", "-v", "--only", "nova.api"],
        ["--format", "prometheus", "--only", "nova.api"],
        ["--format", "zabbix-discovery", "--only", "nova.api"],
    ):
        p = hvcheck(*args, env={**env, "COLUMNS": "300"}, cwd=tmp_path)
        outputs.append(p.stdout + p.stderr)
    assert "Nova hypervisor" in outputs[0]
    # an error whose body echoes the token (a verbose proxy or API) is redacted too
    cloud.echo_token_on_error = True
    p = hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path)
    c = nova_check(p)
    assert c["status"] == "UNKNOWN" and c["code"] == "api-http" and "***" in c["summary"], c
    outputs.append(p.stdout + p.stderr)
    cloud.echo_token_on_error = False
    # a snapshot records the answer, never the credentials, and replays the same judgement
    snap = tmp_path / "snap.tar.gz"
    p = hvcheck("-t", "15", "collect", "-o", str(snap), env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    outputs.append(p.stdout + p.stderr)
    blob = _all_text(snap)
    for s in secrets:
        assert s.encode() not in blob
        for out in outputs:
            assert s not in out
    with tarfile.open(snap, "r:gz") as tf:
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        marker = json.loads(f.read())
    rec = marker["probes"]["nova_api"]
    assert rec["outcome"] == "ok" and rec["records"][0]["hypervisor_hostname"] == FQDN
    c = nova_check(
        hvcheck("--root", str(snap), "--json", "--only", "nova.api", env=env, cwd=tmp_path)
    )
    assert c["code"] in ("ok", "count-mismatch") and c["details"]["records"] == rec["records"]


# ---- TLS ---------------------------------------------------------------------------------------
def _self_signed(d: Path) -> tuple[str, str]:
    cert, key = d / "cert.pem", d / "key.pem"
    if shutil.which("openssl") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must provide openssl")
        pytest.skip("needs openssl")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


def test_tls_self_signed_clear_error_and_the_cacert_fix(tmp_path: Path) -> None:
    require_corpus()
    cert, key = _self_signed(tmp_path)
    c = FakeCloud(hypervisor_hostname=FQDN, service_host=NODE, password=PASSWORD, tls=(cert, key))
    c.start()
    try:
        env = password_env(c, tmp_path / "h")
        assert c.auth_url.startswith("https://127.0.0.1:")
        # verification is on by default: a clear error naming both ways out
        p = hvcheck("--json", "--only", "nova.api", env=env, cwd=tmp_path)
        r = nova_check(p)
        assert r["status"] == "UNKNOWN" and r["code"] == "api-tls", r
        assert "not trusted" in r["summary"] and "self-signed" in r["summary"]
        assert "--os-cacert" in r["summary"] and "--insecure" in r["summary"]
        assert "OS_CACERT" in r["summary"]
        assert not [x for x in c.requests if "auth/tokens" in x["path"]]  # password never sent
        # the CA fixes it, from the option or from OS_CACERT
        for args, e in ((["--os-cacert", cert], env), ([], {**env, "OS_CACERT": cert})):
            r = nova_check(hvcheck("--json", "--only", "nova.api", *args, env=e, cwd=tmp_path))
            assert r["code"] in ANSWERED, r
            assert r["details"]["tls_verify"] == f"on (CA {cert})"
        # --insecure too, and says so
        r = nova_check(hvcheck("--json", "--only", "nova.api", "--insecure", env=env, cwd=tmp_path))
        assert r["code"] in ANSWERED and r["details"]["tls_verify"] == "OFF (--insecure)", r
        # a CA that is not this server's is still refused
        (tmp_path / "other").mkdir()
        other, _ = _self_signed(tmp_path / "other")
        r = nova_check(
            hvcheck("--json", "--only", "nova.api", "--os-cacert", other, env=env, cwd=tmp_path)
        )
        assert r["code"] == "api-tls", r
    finally:
        c.stop()


# ---- when the check does not apply: SKIP, at once ------------------------------------------------
def test_no_api_flag_never_touches_the_network(cloud: FakeCloud, tmp_path: Path) -> None:
    p = hvcheck(
        "--json", "--no-api", "--only", "nova.api", env=password_env(cloud, tmp_path / "h"),
        cwd=tmp_path,
    )  # fmt: skip
    c = nova_check(p)
    assert c["status"] == "SKIP" and c["code"] == "no-api" and "--no-api" in c["summary"]
    assert cloud.requests == []
    assert p.returncode == 0


def test_no_credentials_is_a_quick_skip(tmp_path: Path) -> None:
    if any(Path("/etc/openstack", f"clouds{s}").exists() for s in (".yaml", ".yml", ".json")):
        pytest.skip("this machine has /etc/openstack/clouds.*")
    start = time.monotonic()
    p = hvcheck("--json", "--only", "nova.api", env=clean_env(tmp_path / "h"), cwd=tmp_path)
    c = nova_check(p)
    assert c["status"] == "SKIP" and c["code"] == "no-credentials", c
    assert "no OpenStack credentials" in c["summary"] and "\n" not in c["summary"]
    assert c["details"]["elapsed_s"] < 0.5
    assert time.monotonic() - start < 15
    assert p.returncode == 0


def test_without_the_openstack_extra_is_a_skip(cloud: FakeCloud, tmp_path: Path) -> None:
    # keystoneauth1 absent, as in an install without the [openstack] extra
    prefix = [
        sys.executable,
        "-c",
        "import sys; sys.modules['keystoneauth1'] = None; "
        "from hvcheck.cli import main; main(sys.argv[1:])",
    ]
    p = hvcheck(
        "--json", "--only", "nova.api", env=password_env(cloud, tmp_path / "h"), cwd=tmp_path,
        prefix=prefix,
    )  # fmt: skip
    c = nova_check(p)
    assert c["status"] == "SKIP", c
    assert "pip install 'hvcheck[openstack]'" in c["summary"] and "keystoneauth1" in c["summary"]
    assert cloud.requests == []


def test_an_api_that_never_answers_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    """A listener that never accepts: the TCP handshake completes, the request never gets an
    answer. The run still ends within -t, with nova.api's own UNKNOWN and the rest answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        url = f"http://127.0.0.1:{s.getsockname()[1]}/identity/v3"
        env = clean_env(
            tmp_path / "h",
            OS_AUTH_URL=url,
            OS_USERNAME="admin",
            OS_PASSWORD=PASSWORD,
            OS_PROJECT_NAME="admin",
        )
        start = time.monotonic()
        p = hvcheck("--json", "-t", "3", "--skip", "libvirt", env=env, cwd=tmp_path)
        took = time.monotonic() - start
    doc = json.loads(p.stdout)
    checks = {c["id"]: c for c in doc["checks"]}
    c = checks["nova.api"]
    assert took < 5.5, took
    assert c["status"] == "UNKNOWN" and c["code"] == "api-timeout", c
    assert "did not answer within" in c["summary"] or "timed out" in c["summary"]
    assert checks["kvm.device"]["code"] != "timeout"
    assert PASSWORD not in p.stdout + p.stderr


# ---- the judgement, on snapshots that replay an answer -------------------------------------------
FIXTURE = PROJECT / "fixtures" / "nova-kvm-tcg-instance"  # 2 QEMU processes, nova.conf kvm


def _record(**kw: Any) -> Hypervisor:
    base: dict[str, Any] = {
        "id": "1bb62a04-c576-402c-8147-9e89757a09e3",
        "hypervisor_hostname": "vm",
        "hypervisor_type": "QEMU",
        "hypervisor_version": 7002000,
        "state": "up",
        "status": "enabled",
        "running_vms": 2,
        "service_host": "vm",
        "disabled_reason": None,
        "host_ip": "192.168.1.135",
    }
    base.update(kw)
    return Hypervisor(**base)


def _answer(records: tuple[Hypervisor, ...], **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "cloud": "cloud 'prod' from /root/.config/openstack/clouds.yaml",
        "auth_url": "https://keystone.example.org:5000/v3",
        "endpoint": "https://nova.example.org:8774/v2.1",
        "microversion": "2.87",
        "max_microversion": "2.96",
        "pattern": "vm",
        "names": HostNames("vm", "vm", None),
        "records": records,
        "matched_how": tuple("hypervisor_hostname = FQDN" for _ in records),
        "scanned": len(records),
    }
    a = NovaAnswer("ok", **{**fields, **kw})
    return a.to_json()


def _replay(
    tmp_path: Path,
    answer: Optional[dict[str, Any]],
    base: Path = FIXTURE,
    files: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    root = tmp_path / "snap"
    shutil.copytree(base, root, symlinks=True)
    for path, text in (files or {}).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    mpath = root / "hvcheck-snapshot.json"
    marker = json.loads(mpath.read_text())
    if answer is not None:
        marker.setdefault("probes", {})["nova_api"] = answer
    mpath.write_text(json.dumps(marker))
    p = subprocess.run(
        [sys.executable, "-m", "hvcheck", "--root", str(root), "--json", "-v"],
        capture_output=True, text=True, timeout=60, cwd=PROJECT,
    )  # fmt: skip
    assert "Traceback" not in p.stderr, p.stderr
    return nova_check(p)


def test_replay_counts_agree(tmp_path: Path) -> None:
    c = _replay(tmp_path, _answer((_record(),)))
    assert c["status"] == "OK" and c["code"] == "ok", c
    assert "running_vms 2 = 2 local QEMU process(es)" in c["summary"]
    assert "QEMU 7.2.0" in c["summary"] and "KVM and TCG alike" in c["summary"]
    # the verdict rests on local evidence: this fixture's instances are mixed
    assert "some emulated (TCG" in c["summary"]
    assert c["details"]["local_qemu_processes"] == 2


def test_replay_stopped_nova_instances_explain_a_surplus(tmp_path: Path) -> None:
    # a SHUTOFF instance counts in running_vms and keeps its libvirt definition
    stopped = domain_xml("instance-0000s001", "kvm", str(uuid.uuid4()), "stopped-1")
    files = {"etc/libvirt/qemu/instance-0000s001.xml": stopped}
    c = _replay(tmp_path / "a", _answer((_record(running_vms=3),)), files=files)
    assert c["status"] == "OK", c
    assert "running_vms 3 = 2 local QEMU process(es) + 1 stopped Nova domain(s)" in c["summary"]
    assert c["details"]["nova_domains_defined_not_running"] == 1
    c = _replay(tmp_path / "b", _answer((_record(running_vms=4),)), files=files)
    assert c["status"] == "WARNING" and "1 Nova domain(s) defined but not running" in c["summary"]


@pytest.mark.parametrize(
    ("record", "status", "code", "text", "hint"),
    [
        (_record(running_vms=5), "WARNING", "count-mismatch", "Nova counts 5 VM(s)", "SHUTOFF"),
        (_record(running_vms=0), "WARNING", "count-mismatch", "2 QEMU process(es)", "outside Nova"),
        (_record(state="down"), "CRITICAL", "down", "down", "nova-compute"),
        (
            _record(status="disabled", disabled_reason="hw maintenance"),
            "WARNING", "disabled", "hw maintenance", "--enable",
        ),
        (_record(hypervisor_type="fake"), "WARNING", "type-mismatch", "'fake'", "compute_driver"),
    ],
)  # fmt: skip
def test_replay_problems(
    tmp_path: Path, record: Hypervisor, status: str, code: str, text: str, hint: str
) -> None:
    c = _replay(tmp_path, _answer((record,)))
    assert (c["status"], c["code"]) == (status, code), c
    assert text in c["summary"] and hint in c["hint"], c
    assert "KVM and TCG alike" in c["summary"]


def test_replay_microversion_288_has_no_count(tmp_path: Path) -> None:
    c = _replay(tmp_path, _answer((_record(running_vms=None),), microversion="2.88"))
    assert c["status"] == "OK" and "no running_vms at microversion 2.88" in c["summary"], c


def test_replay_duplicates_and_absence(tmp_path: Path) -> None:
    two = (_record(), _record(id="2", hypervisor_hostname="vm.old.example.org", state="down"))
    c = _replay(tmp_path / "a", _answer(two))
    assert c["status"] == "WARNING" and c["code"] == "duplicate" and "stale" in c["hint"], c
    c = _replay(tmp_path / "b", _answer(()))
    assert c["status"] == "WARNING" and c["code"] == "not-found", c
    assert "hypervisor_hostname_pattern 'vm'" in c["summary"]
    # a host without nova-compute or libvirt is simply not a compute node
    c = _replay(tmp_path / "c", _answer(()), base=healthy_host(tmp_path / "plain"))
    assert c["status"] == "OK" and c["code"] == "not-a-hypervisor", c


def test_replay_errors_and_absent_probe(tmp_path: Path) -> None:
    err = NovaAnswer("error", "TLS certificate of https://x not trusted", "tls").to_json()
    c = _replay(tmp_path / "a", err)
    assert c["status"] == "UNKNOWN" and c["code"] == "api-tls", c
    c = _replay(tmp_path / "b", None)
    assert c["status"] == "SKIP" and "probes.nova_api" in c["summary"], c
    c = _replay(tmp_path / "c", {"outcome": "bogus"})
    assert c["status"] == "SKIP", c
    hostile = _answer((_record(hypervisor_hostname="vm\x1b]52;c;aGk=\x07", service_host="vm"),))
    c = _replay(tmp_path / "d", hostile)
    # the check carries the API's name raw (JSON gives it back exactly); output escapes it once
    assert "Nova hypervisor vm\x1b]52;c;aGk=\x07: QEMU" in c["summary"], c
    root = str(tmp_path / "d" / "snap")
    table = subprocess.run(
        [sys.executable, "-m", "hvcheck", "--root", root, "--format", "table", "-v"],
        capture_output=True, text=True, timeout=60, cwd=PROJECT,
        env={**os.environ, "COLUMNS": "1000"},
    )  # fmt: skip
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout, table.stdout
    assert "Nova hypervisor vm\\x1b]52;c;aGk=\\x07: QEMU" in table.stdout, table.stdout
