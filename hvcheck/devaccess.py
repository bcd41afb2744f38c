"""Can a user open a device node, why not, and does a fix last?

A shared judgement at the facts level, for /dev/kvm, /dev/vhost-net and /dev/net/tun: the node's
mode bits and POSIX ACL decide access now (``hvcheck.parsers.acl``); the udev rules decide what
the node looks like after the next boot or module reload (``hvcheck.parsers.udev``).
``hvcheck.facts`` calls it (``facts.can_open``, ``facts.qemu_kvm_access`` -- shared by
libvirt.qemu_user and libvirt.caps --, ``facts.refused_open_hint`` for kvm.device) with the
host's accounts; this module never imports ``facts``, and checks reach it only through
``facts`` (``READS`` as ``facts.ACCESS_READS``).

Host paths read (through the host layer): the udev rules directories
(/etc/udev/rules.d, /run/udev/rules.d, /usr/local/lib/udev/rules.d, /usr/lib/udev/rules.d,
/lib/udev/rules.d: ``*.rules``, and which of them are symlinks to /dev/null), the links
/sys/dev/char/<major>:<minor> (the device's sysfs path) and its ``subsystem``. The node's
stat, ACL and udev record come with its ``DeviceInfo``; users and groups from /etc/passwd and
/etc/group.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import DeviceInfo, Host, ProbeResult
from hvcheck.parsers.accounts import Accounts
from hvcheck.parsers.acl import (
    ACL_GROUP,
    ACL_MASK,
    ACL_USER,
    AclEntry,
    AclError,
    acl_allows,
    effective,
    parse_acl_xattr,
    perm_text,
)

if TYPE_CHECKING:  # hvcheck.parsers.udev is imported where rules are read (``node_access``)
    from hvcheck.parsers.udev import Device, NodeRules, Setting

# Where a rule of our own goes: /etc overrides the packages' directories (the name we suggest,
# 65-<node>.rules, sorts after systemd's 50-udev-default.rules and replaces a packaged file of
# the same name, as Arch's /usr/lib/udev/rules.d/65-kvm.rules).
LOCAL_RULE_DIR = "/etc/udev/rules.d"

# What the checks using this judgement read, for their ``reads``: the rules files of
# ``hvcheck.parsers.udev.RULES_DIRS`` (spelled out here, so that a run that reads no rule does
# not import the parser; tests/test_devaccess.py holds the two equal), the sysfs links.
READS: tuple[str, ...] = (
    "/etc/udev/rules.d/*.rules",
    "/run/udev/rules.d/*.rules",
    "/usr/local/lib/udev/rules.d/*.rules",
    "/usr/lib/udev/rules.d/*.rules",
    "/lib/udev/rules.d/*.rules",
    "/sys/dev/char/<major>:<minor> (link)",
    "/sys/devices/virtual/misc/<node>/subsystem (link)",
)

# Char major 10 is the misc class (Documentation/admin-guide/devices.txt): kvm 232,
# vhost-net 238, tun 200 (net/tun).
MISC_MAJOR = 10


class NodeAccess(NamedTuple):
    """The judgement for one node and one user."""

    allowed: Optional[bool]  # read-write open by mode bits and ACL; None: cannot tell
    reasons: list[str]  # why (not), then whether the state lasts, in plain sentences
    rule: Optional[NodeRules]  # what the udev rules set; None: the rules were not read
    lasting_fix: str  # what to do so that access survives a reboot ("" when nothing to do)

    def hint(self) -> str:
        """A check's hint: what is wrong and whether it lasts, then the lasting fix."""
        text = "; ".join(self.reasons)
        return f"{text} — lasting fix: {self.lasting_fix}" if self.lasting_fix else text

    def to_json(self) -> dict[str, Any]:
        """JSON for a check's details: the judgement and the udev rule behind it
        (``udev`` None when the rules were not read)."""
        r = self.rule
        out: dict[str, Any] = {
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "lasting_fix": self.lasting_fix or None,
            "udev": None,
        }
        if r is not None:
            out["udev"] = {
                "group": _setting_json(r.group),
                "mode": _setting_json(r.mode),
                "owner": _setting_json(r.owner),
                "expected_mode": r.expected_mode,
                "tags": [_setting_json(t) for t in r.tags],
                "static_node": r.static_node.where if r.static_node else None,
                "uncertain": [x.where for x in r.uncertain],
                "dropped": [f"{x.where}: {why}" for x, why in r.dropped],
            }
        return out


def read_rules(host: Host) -> Optional[list[tuple[str, Optional[str]]]]:
    """``(path, text)`` of the rules files udev would read, for ``parsers.udev``.

    A symlink to /dev/null reads as ``""``; a file masked by a same-named one in a directory
    of higher priority is listed with ``None`` and not read (that is also /lib on a merged-/usr
    system, where it is /usr/lib again). None when none of the directories exists (a snapshot
    that did not record them): then nothing can be said about what udev does.
    """
    from hvcheck.parsers.udev import RULES_DIRS

    out: list[tuple[str, Optional[str]]] = []
    seen: set[str] = set()
    found = False
    for d in RULES_DIRS:
        if not host.exists(d):
            continue
        found = True
        for path in host.glob(f"{d}/*.rules"):
            name = posixpath.basename(path)
            if name in seen:
                out.append((path, None))
                continue
            seen.add(name)
            target = host.readlink(path)
            if target is not None and posixpath.normpath(posixpath.join(d, target)) == "/dev/null":
                out.append((path, ""))
                continue
            try:
                out.append((path, host.read_text(path)))
            except OSError:
                out.append((path, None))
    return out if found else None


def udev_device(host: Host, path: str, dev: DeviceInfo) -> Device:
    """The udev view of a node: its kernel name and subsystem from sysfs
    (/sys/dev/char/M:m -> ../../devices/virtual/misc/kvm), else from the node itself (char
    major 10 is misc; the kernel name is the node's name), and pyudev's properties if known."""
    from hvcheck.parsers.udev import Device

    devpath: Optional[str] = None
    kind = "block" if dev.type == "block" else "char"
    link = host.readlink(f"/sys/dev/{kind}/{dev.major}:{dev.minor}")
    if link:
        full = posixpath.normpath(posixpath.join(f"/sys/dev/{kind}", link))
        if full.startswith("/sys/devices/"):
            devpath = full[len("/sys") :]
    kernel = posixpath.basename(devpath) if devpath else posixpath.basename(path)
    subsystem = ""
    if devpath:
        sub = host.readlink(f"/sys{devpath}/subsystem")
        subsystem = posixpath.basename(sub) if sub else ""
    if not subsystem:
        in_misc = bool(devpath) and posixpath.basename(posixpath.dirname(devpath or "")) == "misc"
        if in_misc or (dev.type == "char" and dev.major == MISC_MAJOR):
            subsystem = "misc"
    if devpath is None and subsystem == "misc":
        devpath = f"/devices/virtual/misc/{kernel}"
    props = None
    if isinstance(dev.udev, dict) and isinstance(dev.udev.get("properties"), dict):
        props = {str(k): str(v) for k, v in dev.udev["properties"].items()}
        kernel = posixpath.basename(props.get("DEVPATH", "")) or kernel
        subsystem = props.get("SUBSYSTEM", subsystem)
    return Device(
        kernel=kernel,
        subsystem=subsystem,
        devname=path,
        major=dev.major,
        minor=dev.minor,
        devpath=devpath,
        properties=props,
    )


def node_udev_rules(
    ctx: Context, path: str, dev: DeviceInfo, accounts: Accounts
) -> Optional[NodeRules]:
    """What the udev rules of this host set for ``path`` (once per run); None when the rules
    directories are not there to read. ``accounts``: the host's /etc/passwd and /etc/group
    (a GROUP or OWNER naming neither makes udev drop the line)."""

    def compute(c: Context) -> Optional[NodeRules]:
        from hvcheck.parsers.udev import node_rules

        files = read_rules(c.host)
        if files is None:
            return None
        return node_rules(
            files,
            udev_device(c.host, path, dev),
            groups=[g.name for g in accounts.groups] if accounts.groups else None,
            users=[u.name for u in accounts.users] if accounts.users else None,
        )

    return ctx.fact(f"udev_rules:{path}", compute)


def node_access(
    ctx: Context,
    path: str,
    dev: DeviceInfo,
    uid: int,
    gids: set[int],
    user: str,
    accounts: Accounts,
) -> NodeAccess:
    """Can ``user`` (``uid``, groups ``gids``) open ``path`` read-write, and does a fix last?

    The rules directories are read only when the user cannot open the node (or it cannot be
    told) and udev runs (:func:`udev_runs`): a run where access is fine costs no more than the
    stat.
    """
    now = judge(path, dev, uid, gids, user, None, accounts, quiet=True)
    if now.allowed is True:
        return now
    # udev's own record of the node (pyudev on a live host, the marker in a snapshot): asked
    # only here, where the answer goes into the reasons
    dev = dev._replace(udev=ctx.host.udev_view(path, dev))
    # where udev does not run, nothing applies its rules: they are not read (``judge`` says
    # so, and what lasts there instead)
    rules = node_udev_rules(ctx, path, dev, accounts) if udev_runs(dev) else None
    return judge(path, dev, uid, gids, user, rules, accounts)


def _setting_json(s: Optional[Setting]) -> Optional[dict[str, str]]:
    return None if s is None else {"value": s.value, "rule": s.rule.where}


def probe_user_hint(
    ctx: Context,
    path: str,
    dev: Optional[DeviceInfo],
    probe: Optional[ProbeResult],
    accounts: Accounts,
) -> str:
    """For a probe refused with EACCES: "; <user> cannot open it: why — lasting fix: ..."
    ("" when there is nothing to add). The user is the probe's uid, with its groups from
    ``accounts`` (/etc/passwd and /etc/group)."""
    if dev is None:
        return ""
    uid = probe.uid if probe is not None and probe.uid is not None else ctx.host.euid()
    name = accounts.user_name(uid)
    if name is None:
        return ""
    access = node_access(ctx, path, dev, uid, accounts.groups_of(name), name, accounts)
    if access.allowed is True:
        # the files say yes, the kernel said no: the process's groups are older than
        # /etc/group (a membership added since login), or a security module refused it
        return (
            f"; /etc/passwd and /etc/group let {name} open it ({'; '.join(access.reasons)}), "
            "yet the open was refused: log in again (or newgrp) after a group change, or "
            "look for an SELinux/AppArmor denial"
        )
    if access.allowed is not False:
        return ""
    return f"; {name} cannot open it: {access.hint()}"


# ------------------------------------------------------------------------------ judgement
def _who(dev: DeviceInfo) -> str:
    return f"{dev.owner or dev.uid}:{dev.group or dev.gid}"


def _mode_allows(perm: int, owner: int, group: int, uid: int, gids: set[int]) -> bool:
    if uid == owner:
        return perm & 0o600 == 0o600
    if group in gids:
        return perm & 0o060 == 0o060
    return perm & 0o006 == 0o006


def allows(dev: DeviceInfo, uid: int, gids: set[int]) -> Optional[bool]:
    """Whether a process with ``uid`` and groups ``gids`` opens ``dev`` read-write, as the
    kernel decides it (fs/namei.c ``generic_permission``): root always (CAP_DAC_OVERRIDE);
    with an access ACL (``dev.acl``) the acl(5) algorithm, where ``group::`` and the named
    entries are limited by ``mask::``; else the owner, group or other bits of the mode.
    None when the ACL's bytes cannot be decoded (then the mode's group bits are the mask, not
    the group's permission, and the answer cannot be told)."""
    if uid == 0:
        return True
    if not dev.acl:
        return _mode_allows(dev.perm, dev.uid, dev.gid, uid, gids)
    try:
        entries = parse_acl_xattr(bytes.fromhex(dev.acl))
    except (AclError, ValueError):
        return None
    return acl_allows(entries, uid, gids, file_uid=dev.uid, file_gid=dev.gid)


def acl_summary(dev: DeviceInfo) -> str:
    """``ACL user:64055:rw-,mask::rw-``: the entries of the node's ACL beyond its mode (named
    users and groups, the mask; ``getfacl -n`` spelling); ``ACL (undecodable)`` when its bytes
    are not an ACL; "" without one, or with only the three entries the mode bits mirror."""
    if not dev.acl:
        return ""
    try:
        entries = parse_acl_xattr(bytes.fromhex(dev.acl))
    except (AclError, ValueError):
        return "ACL (undecodable)"
    extra = [e.text() for e in entries if e.tag in (ACL_USER, ACL_GROUP, ACL_MASK)]
    return f"ACL {','.join(extra)}" if extra else ""


def judge(
    path: str,
    dev: DeviceInfo,
    uid: int,
    gids: set[int],
    user: str,
    rules: Optional[NodeRules],
    accounts: Accounts,
    *,
    quiet: bool = False,
) -> NodeAccess:
    """The pure judgement behind ``node_access`` (the host data already read).

    Access is the kernel's: root opens any node (CAP_DAC_OVERRIDE); with an ACL the POSIX
    ACL algorithm (acl(5)); else the owner, group or other bits. Reasons name what is wrong;
    ``lasting_fix`` names the udev rule to write or the command that applies the one there.
    """
    reasons: list[str] = []
    node = f"{path} ({dev.mode} {_who(dev)})"
    if uid == 0:
        return NodeAccess(True, ["root opens any device node (CAP_DAC_OVERRIDE)"], rules, "")
    allowed: Optional[bool]
    entries: Optional[list[AclEntry]] = None
    if dev.acl:
        try:
            entries = parse_acl_xattr(bytes.fromhex(dev.acl))
        except (AclError, ValueError) as e:
            reasons.append(f"the ACL of {path} cannot be decoded ({e}): access cannot be judged")
    if dev.acl and entries is None:
        allowed = None
    elif entries is not None:
        allowed = acl_allows(entries, uid, gids, file_uid=dev.uid, file_gid=dev.gid)
        mine = [e for e in entries if e.tag == ACL_USER and e.id == uid]
        others = [e for e in entries if e.tag == ACL_USER and e.id != uid]
        if mine:
            eff = effective(mine[0], entries)
            reasons.append(
                f"the ACL of {path} gives {user} {perm_text(eff)}"
                + (f" (entry {mine[0].text()}, limited by the mask)" if eff != mine[0].perm else "")
            )
        elif not allowed and others:
            names = ", ".join(accounts.user_name(e.id) or str(e.id) for e in others)
            reasons.append(f"the ACL of {path} names {names}, not {user}")
    else:
        allowed = _mode_allows(dev.perm, dev.uid, dev.gid, uid, gids)
    grp = dev.group or str(dev.gid)
    if allowed is True and entries is None:
        if dev.uid == uid:
            reasons.append(f"{user} owns {node}")
        elif dev.gid in gids:
            reasons.append(f"{user} is in group {grp}, which {node} lets in")
        else:
            reasons.append(f"{node} lets everyone in")
    if allowed is False and entries is None:
        if dev.uid == uid:
            reasons.append(f"{user} owns {node} but the mode gives the owner no read-write")
        elif dev.gid in gids:
            reasons.append(f"{user} is in group {grp} but {node} gives the group no read-write")
        elif dev.perm & 0o060 == 0o060:
            reasons.append(f"{user} is not in group {grp}, the only one {node} lets in")
        else:
            reasons.append(f"{node} lets only its owner in")
    # the tag means something only where udev (and logind) run
    uaccess = rules is not None and rules.has_tag("uaccess") and udev_runs(dev)
    if uaccess and allowed is not True and rules is not None:
        tag = next(s for s in rules.tags if s.value == "uaccess")
        reasons.append(
            f'{tag.rule.where} tags it "uaccess": logind gives an ACL to the user logged in '
            f"at the seat only, not to {user}"
        )
    elif (
        uaccess and entries is not None and any(e.tag == ACL_USER and e.id == uid for e in entries)
    ):
        reasons.append(
            f"{user}'s ACL entry comes from uaccess (the seat user): it goes when {user} logs out"
        )
    fix = ""
    if rules is None:
        if allowed is not True and not quiet and not udev_runs(dev):
            # no rules to read, and none would be applied: what lasts is known all the same
            reasons.append(_no_udev(path, None))
            fix = _set_at_boot(path, dev, uid, gids, user, accounts)
        elif allowed is not True and not quiet:
            reasons.append(
                "no udev rules directory is here (or in this snapshot): whether a fix lasts "
                "cannot be told"
            )
        return NodeAccess(allowed, reasons, None, fix)
    persist, fix = _persistence(path, dev, uid, gids, user, rules, accounts, allowed)
    reasons += persist
    return NodeAccess(allowed, reasons, rules, fix)


def udev_runs(dev: DeviceInfo) -> bool:
    """False where udev is known not to run (the node's udev view says so: no /run/udev on the
    live host, ``LiveHost.udev_view``, and the marker's record of it): no rule is applied
    there, at boot or by ``udevadm trigger``. True otherwise, also when that is not known."""
    return not (isinstance(dev.udev, dict) and dev.udev.get("running") is False)


def _no_udev(path: str, rule: Optional[str]) -> str:
    """Why no fix through udev lasts where udev does not run (``rule``: the file:line that
    would set the node's mode or group, if one does)."""
    return (
        f"udev does not run here (no /run/udev): nothing here applies a udev rule to {path}"
        + (f" ({rule} would set its mode or group)" if rule else "")
        + ", so a chmod or chgrp is lost when the node is made again (the next boot, or a "
        "reload of its module), unless the host's udev sets it (a container sharing the "
        "host's /dev)"
    )


def _set_at_boot(
    path: str, dev: DeviceInfo, uid: int, gids: set[int], user: str, accounts: Accounts
) -> str:
    """The lasting fix where udev does not run: the node's group and mode set where /dev is
    made at every boot -- busybox mdev's ``/etc/mdev.conf`` (``<name> <user>:<group>
    <mode>``), a systemd-tmpfiles ``z`` line (tmpfiles.d(5): adjusts an existing path's mode
    and owner at boot), or the init's boot script -- or, in a container sharing the host's
    /dev, the host's udev rule; then the user's membership of that group. Where the node
    already lets a group other than root in (0660 root:kvm set by hand or at boot: which, this
    host cannot tell), that group, the membership first and the boot-time setting as the
    condition it needs."""
    name = path.removeprefix("/dev/")
    kernel = posixpath.basename(path)
    own_group = dev.perm & 0o060 == 0o060 and dev.gid != 0
    # the node's own owner, group and mode where they already let a group in, else root:kvm 0660
    owner = (dev.owner or str(dev.uid)) if own_group else "root"
    grp = (dev.group or str(dev.gid)) if own_group else "kvm"
    mode = f"{dev.perm:04o}" if own_group else "0660"
    mdev = f"`{name} {owner}:{grp} {mode}` in /etc/mdev.conf (busybox mdev)"
    if "/" in name:  # /dev/net/tun: mdev names the device, not its path
        mdev = "a line for it in /etc/mdev.conf (busybox mdev)"
    at_boot = (
        f"{mdev}, `z {path} {mode} {owner} {grp} -` in /etc/tmpfiles.d/{kernel}.conf "
        f"(systemd), or chgrp {grp} {path} && chmod {mode} {path} in the init's boot script; "
        f"in a container sharing the host's /dev, a udev rule on the host "
        f'(KERNEL=="{kernel}", GROUP="{grp}", MODE="{mode}")'
    )
    steps: list[str] = []
    if own_group:
        if dev.gid not in gids:
            steps.append(f"usermod -aG {grp} {user}")
        steps.append(
            f"unless something here sets {path} to {mode} {owner}:{grp} at every boot "
            f"already: {at_boot}"
        )
        return "; ".join(steps)
    gid = _group_gid(accounts, grp)
    if gid is None:
        steps.append(f"groupadd --system {grp}")
    steps.append(f"set group {grp} and mode {mode} where /dev is made at every boot: {at_boot}")
    if gid not in gids and uid != dev.uid:
        steps.append(f"usermod -aG {grp} {user}")
    return "; ".join(steps)


def _group_gid(accounts: Accounts, name: str) -> Optional[int]:
    if name.isdigit():
        return int(name)
    g = accounts.group(name)
    return g.gid if g else None


def _persistence(
    path: str,
    dev: DeviceInfo,
    uid: int,
    gids: set[int],
    user: str,
    rules: NodeRules,
    accounts: Accounts,
    allowed: Optional[bool],
) -> tuple[list[str], str]:
    reasons: list[str] = []
    kernel = rules.device.kernel
    for rule, why in rules.dropped:
        reasons.append(f"{rule.where}: {why}")
    name = path.removeprefix("/dev/")
    trigger = f"udevadm control --reload && udevadm trigger --action=add --name-match={name}"
    steps: list[str] = []
    setting = rules.mode or rules.group
    runs = udev_runs(dev)
    if setting is None or not runs:
        maybe = [r.where for r in rules.uncertain if r.values("GROUP") or r.values("MODE")]
        if runs:
            reasons.append(
                f"no udev rule sets {path}'s group or mode here: a chmod or chgrp is lost at the "
                "next boot or module reload"
                + (
                    f" ({', '.join(maybe)} may: it depends on what a file cannot tell)"
                    if maybe
                    else ""
                )
            )
        else:
            reasons.append(_no_udev(path, setting.rule.where if setting else None))
        if allowed is True:
            return reasons, ""
        if not runs:
            return reasons, _set_at_boot(path, dev, uid, gids, user, accounts)
        grp = "kvm"
        if _group_gid(accounts, grp) is None:
            steps.append(f"groupadd --system {grp}")
        steps.append(
            f'create {LOCAL_RULE_DIR}/65-{kernel}.rules with KERNEL=="{kernel}", '
            f'GROUP="{grp}", MODE="0660", then {trigger}'
        )
        if _group_gid(accounts, grp) not in gids:
            steps.append(f"usermod -aG {grp} {user}")
        return reasons, "; ".join(steps)
    where = setting.rule
    want_mode = rules.expected_mode or dev.mode
    try:
        want_perm = int(want_mode, 8)
    except ValueError:
        reasons.append(f'{where.where} sets MODE="{want_mode}", which hvcheck cannot evaluate')
        return reasons, ""
    want_group = rules.group.value if rules.group else (dev.group or str(dev.gid))
    want_owner = rules.owner.value if rules.owner else (dev.owner or str(dev.uid))
    want_gid = _group_gid(accounts, want_group) if rules.group else dev.gid
    owner_uid = dev.uid
    if rules.owner:
        u = accounts.user(rules.owner.value)
        owner_uid = u.uid if u else dev.uid
    says = f"{where.where} sets {want_mode} {want_owner}:{want_group}"
    applied = (
        want_perm == dev.perm and (want_gid is None or want_gid == dev.gid) and owner_uid == dev.uid
    )
    if not applied:
        why = "udev has not applied it"
        info = dev.udev if isinstance(dev.udev, dict) else None
        if info is not None and info.get("initialized") is False:
            why += " (udev has no record of the node: udevd is not running, or /dev is not its)"
        reasons.append(f"{says}, the node is {dev.mode} {_who(dev)}: {why}")
        steps.append(trigger)
    else:
        reasons.append(f"{says}: a fix through that rule lasts")
    ok_after = want_gid is not None and _mode_allows(want_perm, owner_uid, want_gid, uid, gids)
    if not ok_after and allowed is not True:
        if want_perm & 0o060 == 0o060 and want_gid not in gids:
            steps.append(f"usermod -aG {want_group} {user} (the group {where.where} sets)")
        else:
            name = posixpath.basename(where.file)
            steps.append(
                f"the rule gives {user} no access: copy it to {LOCAL_RULE_DIR}/{name} "
                f'(a file of the same name overrides it) with GROUP="kvm", MODE="0660", then '
                f"{trigger}"
            )
    if allowed is True and applied:
        return reasons, ""
    return reasons, "; ".join(steps)
