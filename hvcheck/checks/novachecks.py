"""Nova's intent against the host: ``[libvirt] virt_type`` and the QEMU user's access to /dev/kvm.

Reads: nova config files (hvcheck.novaconfig); who libvirt runs QEMU as (hvcheck.facts): the
running libvirt QEMU processes' ids (/proc/<pid>/status), else /etc/libvirt/qemu.conf as the
running libvirtd sees it (a container's or snap's through /proc/<pid>/root; kolla's
/etc/kolla/nova-libvirt/qemu.conf); /etc/passwd and /etc/group as that process sees them;
/dev/kvm (stat).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from hvcheck import facts, novaconfig
from hvcheck.check import Check, Context
from hvcheck.model import CRITICAL, OK, SKIP, UNKNOWN, WARNING, Result
from hvcheck.processes import discovery

if TYPE_CHECKING:  # the parsers load only where a nova config was found (hvcheck.novaconfig)
    from hvcheck.parsers.nova_schema import NovaSchema, OptSpec
    from hvcheck.parsers.novaconf import Failure, Setting

KNOWN_VIRT_TYPES = ("kvm", "qemu", "lxc", "parallels", "xen", "uml")


def _where(s: Setting) -> str:
    if s.env:
        where = f"environment {s.env}"
    elif s.default:
        return "nova's default (unset)"
    else:
        where = f"{s.file}:{s.line} ({s.spelling})"
    if s.raw is not None:
        where += f", {s.raw!r} substituted"
    return where


def _setting(s: Setting) -> dict[str, Any]:
    return {
        "value": s.value,
        "items": list(s.items) if s.items is not None else None,
        "file": s.file,
        "line": s.line,
        "spelling": s.spelling,
        "default": s.default,
        "environment": s.env,
        "raw": s.raw,
        "invalid": s.invalid,
        "unresolved": s.unresolved,
    }


def _failure_hint(
    f: Failure, schema: Optional[NovaSchema], dep: Optional[facts.Deployment] = None
) -> str:
    """What to change, from what nova-compute stumbles on; for virt_type, the setting that
    lasts on this deployment (``dep``)."""
    if f.kind == "file":
        if f.file and "does not exist" in f.message and "--config-dir" in f.message:
            return (
                f"create the directory {f.file} or drop --config-dir {f.file} from "
                "nova-compute's command line (its service unit or container definition)"
            )
        if f.file and "does not exist" in f.message:
            return (
                f"create {f.file} or drop --config-file {f.file} from nova-compute's command "
                "line (its service unit or container definition)"
            )
        if "not UTF-8" in f.message:
            return f"re-save {f.file} as UTF-8 (line {f.line} holds the first bad byte)"
        if f.line:
            return f"fix line {f.line} of {f.file}: oslo.config refuses the whole file"
        return f"make {f.file} a readable config file, or stop nova-compute from loading it"
    if f.kind == "cpu":
        where = f"environment {f.env}" if f.env else f"{f.file}:{f.line}" if f.file else "nova.conf"
        return (
            "set [libvirt] cpu_mode = custom together with cpu_models, or remove cpu_models "
            f"(see {where})"
        )
    opt: dict[str, Optional[OptSpec]] = {}
    if schema is not None:
        opt = {
            "virt_type": schema.virt_type,
            "cpu_mode": schema.cpu_mode,
            "cpu_models": schema.cpu_models,
        }
    spec = opt.get(f.option or "")
    choices = f" to one of {', '.join(spec.choices)}" if spec and spec.choices else ""
    name = spec.spelling if spec else f"[libvirt] {f.option}"
    if f.env:
        return (
            f"unset {f.env} in nova-compute's environment (its service unit or container "
            f"definition) or set it{choices}"
        )
    if f.option == "virt_type" and dep is not None and dep.kind not in ("libvirt", "none"):
        return dep.virt_type_fix("kvm", f.file) + " (or qemu where KVM cannot be had)"
    place = f" in {f.file}" if f.file else ""
    return (
        f"set {name}{place}{choices} (oslo.config has no inline comments)"
        if choices
        else (f"fix {name}{place}")
    )


class NovaVirtType(Check):
    id = "nova.virt_type"
    title = "Nova [libvirt] virt_type against this host"
    reads = (
        "nova-compute --config-file/--config-dir",
        "/proc/<nova-compute pid>/environ (OS_<GROUP>__<NAME>)",
        "/etc/nova/nova.conf",
        "/etc/nova/nova.conf.d/*.conf",
        "/etc/nova/nova-compute.conf",
        "/etc/kolla/nova-compute/nova.conf",
        "/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf",
        "/var/snap/*/common/etc/nova/...",
        "nova's Python metadata (site-packages nova-*.dist-info, nova-*.egg-info)",
        "/var/lib/dpkg/status",
        "stat of each directory to a file nova-compute names (read only with its user's rights)",
    )

    def run(self, ctx: Context) -> Result:
        conf = novaconfig.nova_conf(ctx)
        if conf is None:
            impostors = [why for _, why in discovery(ctx).ignored["nova-compute"]]
            return self.result(
                SKIP,
                "no nova configuration found (not an OpenStack compute node)"
                + (
                    f"; not taken for nova-compute: {'; '.join(impostors[:3])}" if impostors else ""
                ),
                code="no-nova",
                details={"ignored_processes": impostors} if impostors else None,
            )
        vt = conf.virt_type
        r = conf.resolved
        schema = r.schema
        rel = conf.release
        if rel.version:
            release = f"nova {rel.version} ({rel.source}): {schema.name if schema else '?'}"
        else:
            release = (
                "nova's version not found: the newest option schema "
                f"({schema.name if schema else '?'}) applied"
            )
        d: dict[str, Any] = {
            "virt_type": conf.effective_virt_type,
            "source": {
                "file": vt.file,
                "line": vt.line,
                "spelling": vt.spelling,
                "default": vt.default,
                "environment": vt.env,
                "raw": vt.raw,
                "value": vt.value,
            },
            "cpu_mode": _setting(conf.cpu_mode),
            "cpu_models": _setting(r.cpu_models),
            "files": list(r.files),
            "errors": list(r.errors),
            "failures": [dict(f._asdict()) for f in r.failures],
            "ignored": [
                {
                    "section": e.section,
                    "key": e.key,
                    "value": e.value,
                    "file": e.file,
                    "line": e.line,
                }
                for e in r.ignored
            ],
            "unreadable": list(conf.unreadable),
            "ignored_processes": list(conf.ignored),
            "release": {
                "nova": rel.version,
                "source": rel.source,
                "oslo_config": rel.oslo_config,
                "schema": schema.name if schema else None,
                "newest_assumed": rel.version is None,
            },
            "environment": conf.environment,
            "found_by": conf.how,
            "nova_compute_pid": conf.pid,
        }
        ev = [
            f"{conf.how}: {', '.join(r.files) or 'no file readable'}",
            release,
            f"virt_type={vt.value} from {_where(vt)}",
        ]
        if conf.pid is not None:
            ev.append(f"environment of pid {conf.pid}: {conf.environment}")
        ev += [f"not nova-compute: {why}" for why in conf.ignored[:3]]
        dep = facts.deployment(ctx)
        ev.append(f"deployment: {dep.name}")
        ignored = "".join(
            f"; [{e.section}] {e.key} = {e.value} at {e.file}:{e.line} is not read by nova "
            f"{schema.name if schema else ''}"
            for e in r.ignored
        )
        if r.failures:
            f = r.failures[0]
            at = f" ({f.file}:{f.line})" if f.file and f.line and f.kind != "file" else ""
            return self.result(
                CRITICAL,
                f"nova-compute will not start: {f.message}{at}",
                hint=_failure_hint(f, schema, facts.deployment(ctx)),
                code="will-not-start",
                evidence=ev,
                details=d,
            )
        if conf.unreadable:
            first = conf.unreadable[0]
            return self.result(
                UNKNOWN,
                f"cannot read {first}, which nova-compute loads",
                hint=(
                    "re-run as root"
                    if "ermission denied" in first
                    else "hvcheck reads only regular files nova-compute's own user may read: "
                    "make the file a regular file that user can read"
                ),
                code="unreadable",
                evidence=ev,
                details=d,
            )
        if vt.unresolved:
            return self.result(
                UNKNOWN,
                f"virt_type = {vt.value} ({_where(vt)}): {vt.unresolved}",
                hint="write the value itself in [libvirt] virt_type",
                code="unresolved",
                evidence=ev,
                details=d,
            )
        if vt.value is not None and not vt.value.strip():
            return self.result(
                CRITICAL,
                f"virt_type is empty ({_where(vt)}): nova's libvirt driver cannot use it",
                hint=facts.deployment(ctx).virt_type_fix("kvm", vt.file),
                code="empty",
                evidence=ev,
                details=d,
            )
        value = vt.value or "kvm"
        old = (
            f" (deprecated option name: use {schema.virt_type.spelling})"
            if schema is not None and "deprecated" in vt.spelling
            else ""
        )
        state = facts.kvm_state(ctx)
        if value not in KNOWN_VIRT_TYPES:
            # only releases without choices (before Liberty) get here: oslo.config took the
            # value, the libvirt driver cannot use it
            return self.result(
                CRITICAL,
                f"virt_type={value} is not a type nova's libvirt driver knows "
                f"({_where(vt)}): instances cannot start",
                hint=facts.deployment(ctx).virt_type_fix("kvm", vt.file)
                + " (or qemu where KVM cannot be had)",
                code="invalid",
                evidence=ev,
                details=d,
            )
        if value == "kvm":
            if state.usable is True:
                return self.result(
                    OK,
                    f"virt_type=kvm ({_where(vt)}){old} and KVM is usable{ignored}",
                    code="kvm-ok",
                    evidence=ev,
                    details=d,
                )
            if state.usable is False:
                return self.result(
                    CRITICAL,
                    f"virt_type=kvm ({_where(vt)}) but KVM is not "
                    f"usable: instances cannot start ({state.reason}){ignored}",
                    hint="fix KVM (see kvm.device), or, if this host can only emulate: "
                    + facts.deployment(ctx).virt_type_fix("qemu", vt.file),
                    code="kvm-unusable",
                    evidence=ev,
                    details=d,
                )
            return self.result(
                UNKNOWN,
                f"virt_type=kvm ({_where(vt)}); whether KVM works here: {state.reason}",
                hint="re-run with sudo" if state.code == "eacces" else "see kvm.device",
                code="kvm-unknown",
                evidence=ev,
                details=d,
            )
        if value == "qemu":
            if state.usable is True:
                place = (
                    f"unset {vt.env} in nova-compute's environment (its service unit or "
                    "container definition) and restart nova-compute"
                    if vt.env
                    else facts.deployment(ctx).virt_type_fix("kvm", vt.file)
                )
                return self.result(
                    WARNING,
                    f"virt_type=qemu ({_where(vt)}){old}: KVM is usable "
                    "here but unused — every instance is emulated (TCG, 10-50x "
                    f"slower){ignored}",
                    hint=place,
                    code="capable-but-unused",
                    evidence=ev,
                    details=d,
                )
            return self.result(
                OK,
                f"virt_type=qemu ({_where(vt)}){old}: emulation, as fits a "
                f"host without usable KVM (a nested lab){ignored}",
                code="qemu-no-kvm",
                evidence=ev,
                details=d,
            )
        return self.result(
            OK,
            f"virt_type={value} ({_where(vt)}): not a QEMU/KVM driver; "
            f"acceleration checks do not apply{ignored}",
            code="other",
            evidence=ev,
            details=d,
        )


class QemuUserAccess(Check):
    id = "libvirt.qemu_user"
    title = "libvirt's QEMU user can open /dev/kvm"
    reads = (
        "/proc/<libvirt QEMU pid>/status (Uid, Gid, Groups)",
        "/etc/libvirt/qemu.conf (as libvirtd sees it: /proc/<pid>/root/...)",
        "/etc/kolla/nova-libvirt/qemu.conf",
        "/var/snap/<snap>/common/etc/libvirt/qemu.conf",
        "/etc/passwd (as the QEMU or libvirtd process sees it)",
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
        who = f"{qu.user} (uid {qu.uid})" if qu.uid is not None else qu.user
        ev = [f"QEMU user {who} from {qu.source}", a.missing or f"/dev/kvm {a.mode}"]
        d: dict[str, Any] = {
            "user": qu.user,
            "group": qu.group,
            "source": qu.source,
            "from_process": qu.from_process,
            "pid": qu.pid,
            "device_mode": dev.mode,
            "device_owner": dev.owner or dev.uid,
            "device_group": dev.group or dev.gid,
        }
        conf = novaconfig.nova_conf(ctx)
        vt = conf.effective_virt_type if conf else None
        if a.uid is None:
            passwd = facts.passwd_seen_by(ctx, qu.seen_by)
            if vt == "qemu":
                # nova runs every guest under TCG: who may open /dev/kvm changes nothing
                return self.result(
                    OK,
                    f"QEMU user '{qu.user}' is not in {passwd}: its access to /dev/kvm is not "
                    "judged — not needed while virt_type=qemu",
                    code="no-user-unused",
                    evidence=ev,
                    details=d,
                )
            return self.result(
                UNKNOWN,
                f"QEMU user '{qu.user}' is not in {passwd}: cannot work out its access to /dev/kvm",
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
        denied_by_cgroup = a.cgroup is not None and a.cgroup.allowed is False
        if a.cgroup is not None:
            d["device_cgroup"] = {
                "pid": a.cgroup.pid,
                "allowed": a.cgroup.allowed,
                "devices_list": a.cgroup.path,
            }
            if a.cgroup.allowed is not None:
                ev.append(a.cgroup.why)
        if a.ok is None and vt == "qemu":
            return self.result(
                OK,
                f"whether {qu.user} (uid {a.uid}) can open /dev/kvm ({a.mode}) cannot be told"
                " — not needed while virt_type=qemu",
                code="acl-unreadable-unused",
                evidence=ev,
                details=d,
            )
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
        if denied_by_cgroup and a.cgroup is not None:
            why = f"its device cgroup refuses c 10:232 ({a.cgroup.path})"
        elif a.missing:
            why = a.missing
        else:
            why = a.mode
        head = f"{qu.user} (uid {a.uid}, groups {', '.join(a.groups)}) cannot open /dev/kvm ({why})"
        msg = f"{head}: KVM guests will fail to start, or fall back to TCG silently"
        hint = a.hint
        if vt is None and conf is not None and (conf.unreadable or conf.virt_type.unresolved):
            # kvm (nova's default) makes this CRITICAL, qemu makes it OK: the verdict depends
            # on what could not be read
            unread = (
                f"cannot read {conf.unreadable[0]}"
                if conf.unreadable
                else f"virt_type = {conf.virt_type.value}: {conf.virt_type.unresolved}"
            )
            return self.result(
                UNKNOWN,
                head + " — whether nova needs it cannot be told: its virt_type is "
                f"unknown ({unread}; see nova.virt_type)",
                hint=f"{hint} (needed unless nova runs virt_type=qemu)" if hint else None,
                code="cannot-open-virt-type-unknown",
                evidence=ev,
                details=d,
            )
        if vt == "kvm" or (vt is None and conf is not None):
            return self.result(CRITICAL, msg, hint=hint, code="cannot-open", evidence=ev, details=d)
        if vt == "qemu":
            return self.result(
                OK,
                head + " — fine while virt_type=qemu",
                code="cannot-open-unused",
                evidence=ev,
                details=d,
            )
        return self.result(WARNING, msg, hint=hint, code="cannot-open", evidence=ev, details=d)
