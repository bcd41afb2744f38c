"""Nova's intent against the host: ``[libvirt] virt_type`` and the QEMU user's access to /dev/kvm.

Reads: nova config files (hvcheck.novaconfig), /etc/libvirt/qemu.conf (also kolla's
/etc/kolla/nova-libvirt/qemu.conf and a containerised libvirtd's /proc/<pid>/root/...),
/etc/passwd, /etc/group, /dev/kvm (stat).
"""

from __future__ import annotations

from typing import Any

from hvcheck import facts, novaconfig
from hvcheck.check import Check, Context
from hvcheck.model import CRITICAL, OK, SKIP, UNKNOWN, WARNING, Result
from hvcheck.parsers.novaconf import Setting

KNOWN_VIRT_TYPES = ("kvm", "qemu", "lxc", "parallels", "xen", "uml")


def _where(s: Setting) -> str:
    if s.default:
        return "nova's default (unset)"
    return f"{s.file}:{s.line} ({s.spelling})"


class NovaVirtType(Check):
    id = "nova.virt_type"
    title = "Nova [libvirt] virt_type against this host"
    reads = (
        "nova-compute --config-file/--config-dir",
        "/etc/nova/nova.conf",
        "/etc/nova/nova.conf.d/*.conf",
        "/etc/nova/nova-compute.conf",
        "/etc/kolla/nova-compute/nova.conf",
        "/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf",
        "/var/snap/*/common/etc/nova/...",
    )

    def run(self, ctx: Context) -> Result:
        conf = novaconfig.nova_conf(ctx)
        if conf is None:
            return self.result(
                SKIP, "no nova configuration found (not an OpenStack compute node)", code="no-nova"
            )
        vt = conf.virt_type
        r = conf.resolved
        d = {
            "virt_type": vt.value,
            "source": {
                "file": vt.file,
                "line": vt.line,
                "spelling": vt.spelling,
                "default": vt.default,
            },
            "cpu_mode": {
                "value": conf.cpu_mode.value,
                "file": conf.cpu_mode.file,
                "line": conf.cpu_mode.line,
                "default": conf.cpu_mode.default,
            },
            "files": list(r.files),
            "errors": list(r.errors),
            "found_by": conf.how,
            "nova_compute_pid": conf.pid,
        }
        ev = [
            f"{conf.how}: {', '.join(r.files) or 'no file readable'}",
            f"virt_type={vt.value} from {_where(vt)}",
        ]
        if r.errors:
            return self.result(
                UNKNOWN,
                f"nova config does not parse: {r.errors[0]}",
                hint="fix the file (nova-compute would refuse it too); "
                "oslo.config reports the same line",
                code="parse-error",
                evidence=ev,
                details=d,
            )
        if vt.value is not None and not vt.value.strip():
            return self.result(
                CRITICAL,
                f"virt_type is empty ({_where(vt)}): oslo.config "
                "rejects it and nova-compute will not start",
                hint="set [libvirt] virt_type = kvm",
                code="empty",
                evidence=ev,
                details=d,
            )
        value = vt.value or "kvm"
        old = (
            " (deprecated option name: use [libvirt] virt_type)"
            if ("libvirt_type" in vt.spelling)
            else ""
        )
        state = facts.kvm_state(ctx)
        if value not in KNOWN_VIRT_TYPES:
            return self.result(
                CRITICAL,
                f"virt_type={value} is not a value nova accepts "
                f"({_where(vt)}): nova-compute will not start",
                hint="set [libvirt] virt_type = kvm (or qemu without KVM)",
                code="invalid",
                evidence=ev,
                details=d,
            )
        if value == "kvm":
            if state.usable is True:
                return self.result(
                    OK,
                    f"virt_type=kvm ({_where(vt)}){old} and KVM is usable",
                    code="kvm-ok",
                    evidence=ev,
                    details=d,
                )
            if state.usable is False:
                return self.result(
                    CRITICAL,
                    f"virt_type=kvm ({_where(vt)}) but KVM is not "
                    f"usable: instances cannot start ({state.reason})",
                    hint="fix KVM (see kvm.device), or set [libvirt] virt_type = "
                    "qemu if this host can only emulate",
                    code="kvm-unusable",
                    evidence=ev,
                    details=d,
                )
            return self.result(
                UNKNOWN,
                f"virt_type=kvm ({_where(vt)}); whether KVM works here: {state.reason}",
                hint="re-run with sudo",
                code="kvm-unknown",
                evidence=ev,
                details=d,
            )
        if value == "qemu":
            if state.usable is True:
                return self.result(
                    WARNING,
                    f"virt_type=qemu ({_where(vt)}){old}: KVM is usable "
                    "here but unused — every instance is emulated (TCG, 10-50x "
                    "slower)",
                    hint=f"set [libvirt] virt_type = kvm in "
                    f"{vt.file or '/etc/nova/nova.conf'} and restart nova-compute",
                    code="capable-but-unused",
                    evidence=ev,
                    details=d,
                )
            return self.result(
                OK,
                f"virt_type=qemu ({_where(vt)}){old}: emulation, as fits a "
                "host without usable KVM (a nested lab)",
                code="qemu-no-kvm",
                evidence=ev,
                details=d,
            )
        return self.result(
            OK,
            f"virt_type={value} ({_where(vt)}): not a QEMU/KVM driver; "
            "acceleration checks do not apply",
            code="other",
            evidence=ev,
            details=d,
        )


class QemuUserAccess(Check):
    id = "libvirt.qemu_user"
    title = "libvirt's QEMU user can open /dev/kvm"
    reads = (
        "/etc/libvirt/qemu.conf",
        "/etc/kolla/nova-libvirt/qemu.conf",
        "/etc/passwd",
        "/etc/group",
        "/dev/kvm (stat, POSIX ACL)",
        *facts.ACCESS_READS,
    )

    def run(self, ctx: Context) -> Result:
        qu = facts.qemu_user(ctx)
        if qu is None:
            return self.result(SKIP, "libvirt is not installed or running here", code="no-libvirt")
        dev = facts.kvm_device(ctx)
        a = facts.qemu_kvm_access(ctx)
        if dev is None or a is None:
            return self.result(SKIP, "no /dev/kvm (see kvm.device)", code="no-device")
        ev = [f"QEMU user {qu.user} from {qu.source}", f"/dev/kvm {a.mode}"]
        d: dict[str, Any] = {
            "user": qu.user,
            "group": qu.group,
            "source": qu.source,
            "device_mode": dev.mode,
            "device_owner": dev.owner or dev.uid,
            "device_group": dev.group or dev.gid,
        }
        if a.uid is None:
            return self.result(
                UNKNOWN,
                f"QEMU user '{qu.user}' is not in /etc/passwd: "
                "cannot work out its access to /dev/kvm",
                code="no-user",
                hint=f"check `id {qu.user}` (NSS/LDAP users are not read)",
                evidence=ev,
                details=d,
            )
        d["groups"] = list(a.groups)
        d["can_open"] = a.ok
        if a.access is not None:
            d["access"] = a.access.to_json()
            ev += a.access.reasons
        if a.ok is None:
            return self.result(
                UNKNOWN,
                f"cannot tell whether {qu.user} (uid {a.uid}) can open /dev/kvm ({a.mode})",
                code="acl-unreadable",
                hint="read the node's ACL with `getfacl /dev/kvm`",
                evidence=ev,
                details=d,
            )
        if a.ok:
            return self.result(
                OK,
                f"{qu.user} (uid {a.uid}) can open /dev/kvm ({a.mode})",
                code="ok",
                evidence=ev,
                details=d,
            )
        conf = novaconfig.nova_conf(ctx)
        vt = (conf.virt_type.value if conf else None) or None
        msg = (
            f"{qu.user} (uid {a.uid}, groups {', '.join(a.groups)}) cannot open "
            f"/dev/kvm ({a.mode}): KVM "
            "guests will fail to start, or fall back to TCG silently"
        )
        hint = a.hint
        if vt == "kvm" or (vt is None and conf is not None):
            return self.result(CRITICAL, msg, hint=hint, code="cannot-open", evidence=ev, details=d)
        if vt == "qemu":
            return self.result(
                OK,
                msg.split(":")[0] + " — fine while virt_type=qemu",
                code="cannot-open-unused",
                evidence=ev,
                details=d,
            )
        return self.result(WARNING, msg, hint=hint, code="cannot-open", evidence=ev, details=d)
