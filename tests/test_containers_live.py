"""Issue 13 on this machine, with real QEMU processes (tests/qemu_harness.py):

* a QEMU in a private mount namespace that pivot_root'ed into a prepared root (system
  directories bind-mounted read-only, its own etc/passwd and run/libvirt/qemu/NAME.xml with
  Nova metadata), running as that root's ``nova`` user (uid 42436, unknown to this host):
  ``readlink /proc/PID/root`` prints "/", yet hvcheck finds the domain's XML and metadata
  through /proc/PID/root, and names the user from the container's passwd;
* a QEMU with its default accelerator (progname ending in "kvm": kvm:tcg) run as nobody,
  outside /dev/kvm's group: a silent fallback, CRITICAL, whose hint names the user.

/dev/kvm is never touched (its mode here is whatever the machine has; both QEMUs run as
users that cannot open it when it is 0600 or 0660 root:kvm). Every QEMU is stopped by pid;
the namespace, its mounts and its tmpfs root go with it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from hvcheck import facts, mountns
from hvcheck.check import Context
from hvcheck.host import LiveHost
from qemu_harness import GuestFactory, qemu_guests_fixture  # noqa: F401  (fixture)
from snap import run_hvcheck, run_json

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount namespaces)")

NOVA_UID = 42436

# Runs as `unshare --mount --propagation private sh -c LAUNCHER sh ROOT STAGE NAME UID QEMU...`:
# a tmpfs on ROOT (so nothing of the new tree is visible from the host's namespace), the
# system directories bind-mounted read-only, /dev, /proc, /sys and /tmp (the harness's QMP
# socket) mounted, the container's own etc and run/libvirt/qemu/NAME.xml (its pid is this
# shell's, which exec keeps), then pivot_root and exec QEMU as UID.
LAUNCHER = r"""
set -eu
R="$1"; S="$2"; GUEST="$3"; RUN_UID="$4"; shift 4
mount -t tmpfs -o mode=0755 hvcheck-newroot "$R"
mkdir -p "$R/etc" "$R/run/libvirt/qemu" "$R/dev" "$R/proc" "$R/sys" "$R/tmp" "$R/oldroot"
for d in usr bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then
    ln -s "$(readlink "/$d")" "$R/$d"
  elif [ -d "/$d" ]; then
    mkdir "$R/$d"
    mount --bind "/$d" "$R/$d"
    mount -o remount,bind,ro "$R/$d"
  fi
done
cp "$S/passwd" "$S/group" "$R/etc/"
[ -f /etc/ld.so.cache ] && cp /etc/ld.so.cache "$R/etc/"
sed "s/@PID@/$$/" "$S/domain.xml" > "$R/run/libvirt/qemu/$GUEST.xml"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --bind /tmp "$R/tmp"
for a in "$@"; do
  case "$a" in unix:*qmp.sock*) p=${a#unix:}; chown "$RUN_UID" "$(dirname "${p%%,*}")" ;; esac
done
cd "$R"
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
exec setpriv --reuid="$RUN_UID" --regid="$RUN_UID" --groups="$RUN_UID" -- "$@"
"""

DOMAIN_XML = """<domstatus state='paused' reason='user' pid='@PID@'>
  <domain type='kvm' id='7'>
    <name>{name}</name>
    <uuid>{uuid}</uuid>
    <metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:name>pivoted-web-1</nova:name>
        <nova:flavor name="m1.tiny"/>
        <nova:owner>
          <nova:user uuid="u-1">alice</nova:user>
          <nova:project uuid="p-1">demo</nova:project>
        </nova:owner>
      </nova:instance>
    </metadata>
  </domain>
</domstatus>
"""


def _instance(doc: dict[str, Any], pid: int) -> dict[str, Any]:
    found = [i for i in doc["instances"] if i["pid"] == pid]
    assert found, f"pid {pid} not among {[i['pid'] for i in doc['instances']]}"
    return found[0]


@pytest.fixture
def stage(tmp_path: Path) -> Path:
    s = tmp_path / "stage"
    s.mkdir()
    (s / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        f"nova:x:{NOVA_UID}:{NOVA_UID}::/var/lib/nova:/usr/sbin/nologin\n"
    )
    (s / "group").write_text(f"root:x:0:\nnova:x:{NOVA_UID}:\n")
    return s


def test_pivot_rooted_qemu_xml_metadata_and_user_read_through_its_root(
    qemu_guests: GuestFactory, tmp_path: Path, stage: Path
) -> None:
    for tool in ("unshare", "setpriv", "pivot_root"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    try:
        pwd.getpwuid(NOVA_UID)
        pytest.skip(f"uid {NOVA_UID} exists on this host: the test needs it unknown here")
    except KeyError:
        pass
    name = f"instance-c13{uuid.uuid4().hex[:5]}"
    guest_uuid = str(uuid.uuid4())
    (stage / "domain.xml").write_text(DOMAIN_XML.format(name=name, uuid=guest_uuid))
    newroot = tmp_path / "newroot"
    newroot.mkdir()
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", LAUNCHER, "sh"]
    g = qemu_guests(
        name,
        ["-machine", "pc,accel=kvm:tcg"],
        uuid=guest_uuid,
        prefix=[*prefix, str(newroot), str(stage), name, str(NOVA_UID)],
    )
    pid = g.pid
    # the premise: the link says "/", the namespace says otherwise, the file is only there
    assert os.readlink(f"/proc/{pid}/root") == "/"
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert not Path(f"/run/libvirt/qemu/{name}.xml").exists()
    assert os.stat(f"/proc/{pid}/status").st_uid == NOVA_UID
    truth = "kvm" if g.query_kvm()["enabled"] else "tcg"

    ctx = Context(LiveHost())
    root = mountns.process_root(ctx, pid)
    assert root.other_ns is True and root.roots == (f"/proc/{pid}/root",)
    assert facts.accounts_seen_by(ctx, pid).user_name(NOVA_UID) == "nova"
    dev, node = facts.kvm_device_seen_by(ctx, pid)
    assert node == f"/proc/{pid}/root/dev/kvm" and dev == facts.kvm_device(ctx)

    _, doc = run_json("--only", "instances")
    inst = _instance(doc, pid)
    assert inst["libvirt_xml"] == f"/proc/{pid}/root/run/libvirt/qemu/{name}.xml"
    assert inst["domain_type"] == "kvm" and inst["uuid"] == guest_uuid
    assert inst["nova"]["display_name"] == "pivoted-web-1"
    assert inst["nova"]["flavor"] == "m1.tiny" and inst["nova"]["project"] == "demo"
    assert inst["accel"] == truth and inst["process_uid"] == NOVA_UID
    # collect records the namespaces and what was read through the root; a replay agrees
    out = tmp_path / "snap.tar.gz"
    p = run_hvcheck("-t", "20", "collect", "-o", str(out), timeout=120)
    assert out.exists() and "Traceback" not in p.stderr, p.stderr
    with tarfile.open(out) as tf:
        f = tf.extractfile("hvcheck-snapshot.json")
        assert f is not None
        ns = json.load(f)["mount_ns"]
        names = tf.getnames()
    assert ns["processes"][str(pid)] != ns["self"]
    assert f"proc/{pid}/root/run/libvirt/qemu/{name}.xml" in names
    _, replay = run_json("--root", str(out), "--only", "instances")
    again = _instance(replay, pid)
    assert again["libvirt_xml"] == inst["libvirt_xml"]
    assert again["nova"] == inst["nova"] and again["accel"] == inst["accel"]

    if truth == "tcg":  # uid 42436 could not open /dev/kvm: kvm:tcg fell back silently
        assert inst["silent_fallback"] is True and inst["requested"] == "kvm:tcg"
        pa = facts.process_kvm_access(ctx, pid, NOVA_UID, (NOVA_UID,))
        assert pa is not None and pa.user == "nova" and pa.allowed is False
        assert pa.hint().startswith(f"nova (uid {NOVA_UID}, groups nova) cannot open /dev/kvm")


def test_default_accelerator_as_nobody_falls_back_and_the_hint_names_nobody(
    qemu_guests: GuestFactory,
) -> None:
    st = os.stat("/dev/kvm")
    nobody = pwd.getpwnam("nobody")
    if os.access("/dev/kvm", os.R_OK | os.W_OK, effective_ids=False) and (
        stat.S_IMODE(st.st_mode) & 0o006 == 0o006
    ):
        pytest.skip("/dev/kvm is open to everyone here: nobody would get KVM")
    if st.st_gid == nobody.pw_gid:
        pytest.skip("nobody's group owns /dev/kvm here")
    # no -accel, no -machine accel=: QEMU's default, kvm:tcg for a progname ending in "kvm"
    g = qemu_guests("c13-default-accel", [], user="nobody", argv0="qemu-kvm")
    assert g.query_kvm() == {"enabled": False, "present": True}
    assert "-accel" not in g.argv and not any("accel=" in a for a in g.argv)

    rc, doc = run_json("--only", "instances")
    inst = _instance(doc, g.pid)
    assert inst["accel"] == "tcg" and inst["silent_fallback"] is True
    assert inst["requested"] == "kvm:tcg" and inst["process_uid"] == nobody.pw_uid
    check = next(c for c in doc["checks"] if c["id"] == "instances.accel")
    assert check["status"] == "CRITICAL" and check["code"] == "silent-fallback" and rc == 2
    assert "nobody" in check["hint"] and "usermod -aG kvm nobody" in check["hint"]

    ctx = Context(LiveHost())
    pa = facts.process_kvm_access(ctx, g.pid, nobody.pw_uid, (nobody.pw_gid,))
    assert pa is not None and pa.allowed is False and pa.user == "nobody"
    assert pa.hint().startswith("nobody (uid 65534, groups nogroup) cannot open /dev/kvm")
