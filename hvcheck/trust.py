"""What hvcheck trusts: which processes speak for the host's services, and which files it may
read on a process's behalf.

hvcheck runs as root, but the processes it reads are shaped by whoever started them: any
local user can start a process whose ``argv[0]`` is ``nova-compute`` and whose
``--config-file`` names ``/etc/shadow``. So (docs/SECURITY.md):

* **QEMU** is known by the file it runs (``/proc/PID/exe``), never by ``argv[0]`` alone, and
  that file must be root's (owned by uid 0, not writable by group or others) unless the
  process itself runs as root: anyone may copy ``python3`` to ``~/qemu-system-x86_64``, no
  one but root can put a binary in a root-owned place. :func:`qemu_executable`.
* **nova-compute and libvirtd** count only when they run as root or as the deployment's
  service user (:func:`service_trust`): an effective uid of 0, or a *system* uid (below
  1000, login.defs' ``SYS_UID_MAX``; Debian's static range 60000-64999, base-passwd; or
  kolla's service range 42400-42499, kolla/common/users.py) whose name is one of the
  service's (:data:`SERVICE_USERS`: ``nova`` for nova-compute; ``libvirt``,
  ``libvirt-qemu``, ``qemu`` for libvirt's daemons, which run as root on every
  distribution). The name is the host's ``/etc/passwd``, else the
  process's own (``/proc/PID/root/etc/passwd``: a kolla container's users are not the
  host's), else kolla's table. Or the deployment placed it: it runs in a cgroup only root's
  service managers put processes in (:func:`service_cgroup`: a systemd system unit, such as
  DevStack's ``devstack@n-cpu.service`` running nova-compute as the ordinary ``stack``
  user, or a Kubernetes pod). Any other ordinary user's process (uid 1000 and up,
  ``nobody``) never counts, whatever it calls itself. Reads ``/proc/PID/cgroup`` too.
* **Files a process names** (nova-compute's ``--config-file``/``--config-dir``, QEMU's
  ``-readconfig``) are read only when that process's owner could read them
  (:func:`may_read`): every directory on the way searchable and the file readable for its
  uid and groups, by the mode bits or the POSIX ACL, as the kernel's ``generic_permission``
  (fs/namei.c) decides; a root process may read anything. What hvcheck does not read,
  ``collect`` does not archive.

Reads through the host layer: ``stat``/``lstat`` and ``readlink`` of each component of a
named path (under ``/proc/PID/root``), ``/etc/passwd``, ``/etc/group`` and
``/proc/PID/root/etc/passwd``.
"""

import posixpath
from collections.abc import Sequence
from typing import NamedTuple, Optional, Union

from hvcheck.check import Context
from hvcheck.host import FileStat, ProcInfo
from hvcheck.parsers.acl import EXECUTE, READ, AclError, acl_allows, parse_acl_xattr
from hvcheck.parsers.qemu import is_qemu_binary

__all__ = [
    "KOLLA_UIDS",
    "SERVICE_USERS",
    "SYS_UID_MAX",
    "Access",
    "Trust",
    "may_read",
    "permits",
    "process_ids",
    "qemu_executable",
    "service_cgroup",
    "service_trust",
]

SYS_UID_MAX = 999
"""Highest system uid (login.defs(5) ``SYS_UID_MAX``: ``UID_MIN`` 1000 less one)."""
DEBIAN_STATIC_UIDS = range(60000, 65000)
"""Debian's globally allocated system uids (base-passwd's README: 60000-64999, e.g.
libvirt-qemu 64055)."""
KOLLA_UIDS = range(42400, 42500)
"""kolla's service users ("Starting point 42400+", kolla/common/users.py)."""
KOLLA_NAMES = {42427: "qemu", 42436: "nova"}
"""kolla/common/users.py: 'qemu-user' 42427, 'nova-user' 42436 (not in the host's passwd)."""
SERVICE_USERS: dict[str, tuple[str, ...]] = {
    "nova-compute": ("nova",),
    "libvirtd": ("libvirt", "libvirt-qemu", "qemu"),
}
"""The service users a group's process may run as, besides root."""


class Trust(NamedTuple):
    trusted: bool
    why: str  # e.g. "runs as root", "runs as uid 65534 (nobody): ..."
    # not trusted because what would tell cannot be read (a refused exe link, a snapshot's
    # record of the wrong type): kept, never taken as what it names itself
    unverified: bool = False


class Access(NamedTuple):
    """May a process's owner read a path? ``allowed`` None: cannot be told (a record
    missing); ``exists`` False: the path does not exist (nothing to read, nothing leaked)."""

    allowed: Optional[bool]
    why: str
    exists: bool = True


# ------------------------------------------------------------------------------ processes
def process_ids(p: ProcInfo) -> tuple[Optional[int], frozenset[int]]:
    """The effective uid and the groups (effective gid and supplementary groups) the
    kernel checks a process's file accesses with (``/proc/PID/status``; the filesystem ids
    follow the effective ones, credentials(7))."""
    uid = p.uids[1] if p.uids is not None else None
    gids = set(p.groups or ())
    if p.gids is not None:
        gids.add(p.gids[1])
    return uid, frozenset(gids)


def _user_name(ctx: Context, p: ProcInfo, uid: int) -> Optional[str]:
    from hvcheck import facts  # facts imports processes, which imports this module

    name = facts.accounts(ctx).user_name(uid)
    if name is not None:
        return name
    # a container's own users (kolla runs nova-compute as its 'nova', 42436)
    try:
        text = ctx.host.read_opt(f"/proc/{p.pid}/root/etc/passwd")
    except OSError:
        text = None
    if text:
        from hvcheck.parsers.accounts import parse_accounts

        name = parse_accounts(text, "").user_name(uid)
        if name is not None:
            return name
    return KOLLA_NAMES.get(uid) if uid in KOLLA_UIDS else None


def service_trust(ctx: Context, p: ProcInfo, service: str) -> Trust:
    """Whether ``p`` may speak for ``service`` ("nova-compute", "libvirtd"): root, or a
    system uid named as one of :data:`SERVICE_USERS`. A snapshot that recorded no ids (an
    older ``collect``) is taken as it was then; on the live host, ids that cannot be read
    are not trusted."""
    uid, _ = process_ids(p)
    if uid is None:
        if ctx.host.live:
            return Trust(False, f"the ids of pid {p.pid} cannot be read")
        return Trust(True, "the snapshot recorded no ids (an older collect)")
    if uid == 0:
        return Trust(True, "runs as root")
    allowed = SERVICE_USERS.get(service, ())
    system = 0 < uid <= SYS_UID_MAX or uid in KOLLA_UIDS or uid in DEBIAN_STATIC_UIDS
    name = _user_name(ctx, p, uid) if system else None
    who = f"uid {uid}" + (f" ({name})" if name else "")
    if system and name in allowed:
        return Trust(True, f"runs as the service user {who}")
    unit = service_cgroup(ctx, p.pid)
    if unit is not None:
        return Trust(True, f"runs as {who} in {unit}, a cgroup only root's managers place it in")
    users = " or ".join(allowed)
    return Trust(
        False,
        f"pid {p.pid} runs as {who}: a {service} counts only as root or its service user ({users})",
    )


def service_cgroup(ctx: Context, pid: int) -> Optional[str]:
    """The cgroup of ``pid`` (``/proc/PID/cgroup``: the v2 ``0::`` line, else v1's
    ``name=systemd``) when it is one only root's service managers put processes in: a system
    unit of systemd (``/system.slice/….service`` or ``.scope``: DevStack's ``devstack@n-cpu``,
    a container runtime's scope) or a Kubernetes pod (``/kubepods…``, kubelet's). An
    unprivileged user can move its processes only within the cgroups delegated to it (under
    ``/user.slice``), so such a cgroup is the deployment's doing. None otherwise, or when the
    file cannot be read."""
    try:
        text = ctx.host.read_opt(f"/proc/{pid}/cgroup")
    except OSError:
        return None
    path: Optional[str] = None
    for line in (text or "").splitlines():
        _, _, rest = line.partition(":")
        ctrl, _, where = rest.partition(":")
        if ctrl == "" or (path is None and ctrl == "name=systemd"):
            path = where
    if not path or path.startswith("/user.slice"):
        return None
    leaf = path.rstrip("/").rsplit("/", 1)[-1]
    if path.startswith("/system.slice/") and leaf.endswith((".service", ".scope")):
        return path
    if path.startswith(("/kubepods", "/system.slice/kubepods")) or "/kubepods." in path:
        return path
    return None


def qemu_executable(ctx: Context, p: ProcInfo) -> Trust:
    """Whether ``p`` runs a QEMU system emulator: the file of ``/proc/PID/exe`` has QEMU's
    name and is root's (owned by uid 0, not writable by group or others) — or the process runs
    as root, which may run any binary. Without the link (refused, or an older snapshot) the
    name is all there is: trusted only where the link was not refused (an older snapshot),
    the caller marks what it cannot verify."""
    if p.exe is None:
        if p.exe_denied:
            return Trust(
                False, f"/proc/{p.pid}/exe cannot be read: what it runs is not shown", True
            )
        return Trust(True, "known by its name (no executable recorded)")
    if not is_qemu_binary(p.exe):
        return Trust(False, f"runs {p.exe}, not QEMU")
    uid, _ = process_ids(p)
    if uid == 0:
        return Trust(True, f"runs {p.exe} as root")
    try:
        st = ctx.host.stat(f"/proc/{p.pid}/exe")
    except PermissionError as e:
        if "snapshot" in (e.strerror or ""):  # a record of the wrong type: cannot be told
            return Trust(False, f"runs {p.exe}: its owner cannot be told ({e.strerror})", True)
        return Trust(True, f"runs {p.exe} (its owner is not recorded)")
    except OSError:  # not recorded (an older snapshot), or not allowed: the name decides
        return Trust(True, f"runs {p.exe} (its owner is not recorded)")
    if st is None:
        return Trust(False, f"pid {p.pid} exited")
    if st.uid != 0 or st.mode & 0o022:
        return Trust(
            False,
            f"runs {p.exe}, owned by uid {st.uid} mode {st.mode:04o}: a QEMU is root's "
            "(a copy anyone can make or change is not taken for one)",
        )
    return Trust(True, f"runs {p.exe} (root's)")


# ------------------------------------------------------------------------------ files
def permits(st: FileStat, uid: int, gids: frozenset[int], want: int) -> Optional[bool]:
    """Whether ``uid`` with groups ``gids`` gets ``want`` (READ, EXECUTE bits) on a node:
    root always for READ and for searching a directory (CAP_DAC_READ_SEARCH), a file's
    EXECUTE only with some x bit; with an access ACL the acl(5) algorithm; else the owner,
    group or other class of the mode (only the first that applies, fs/namei.c
    ``acl_permission_check``). None when the ACL's bytes cannot be decoded.

    >>> from hvcheck.host import FileStat
    >>> d = FileStat("dir", 0o700, 0, 0, 0, 0)
    >>> permits(d, 65534, frozenset({65534}), EXECUTE), permits(d, 0, frozenset(), EXECUTE)
    (False, True)
    >>> f = FileStat("file", 0o640, 0, 42436, 0, 0)
    >>> permits(f, 42436, frozenset({42436}), READ)
    True
    """
    if uid == 0:
        return True
    if st.acl:
        try:
            entries = parse_acl_xattr(bytes.fromhex(st.acl))
        except (AclError, ValueError):
            return None
        return acl_allows(entries, uid, set(gids), want, file_uid=st.uid, file_gid=st.gid)
    if uid == st.uid:
        bits = (st.mode >> 6) & 7
    elif st.gid in gids:
        bits = (st.mode >> 3) & 7
    else:
        bits = st.mode & 7
    return bits & want == want


_MAX_LINKS = 40  # the kernel's MAXSYMLINKS (include/linux/namei.h)


def may_read(
    ctx: Context,
    path: str,
    uid: Optional[int],
    gids: Union[Sequence[int], frozenset[int]],
    root: str = "",
    directory: bool = False,
) -> Access:
    """Could a process with ``uid``/``gids`` open ``path`` (an absolute path as the process
    names it, resolved in its root: ``root`` is ``/proc/PID/root`` or "" for hvcheck's own)
    for reading — every directory on the way searchable, each symbolic link followed inside
    that root, the file readable (``directory``: a directory to list, which needs read and
    search)? Judged from ``stat``/``lstat`` and ``readlink``, never by opening it.

    uid 0 may (nothing is looked at); an unknown uid cannot be told.
    """
    if uid is None:
        return Access(None, "the process's uid is not known")
    if uid == 0:
        return Access(True, "root may read it")
    groups = frozenset(gids)
    who = f"uid {uid}"
    host = ctx.host
    todo = [c for c in posixpath.normpath(path).split("/") if c and c != "."]
    if not path.startswith("/"):
        return Access(None, f"{path}: not an absolute path")
    cur = "/"
    links = 0
    while True:
        try:
            d = host.stat(root + cur if root else cur)
        except PermissionError as e:
            return Access(None, f"{cur} cannot be looked at ({e.strerror or e})")
        except OSError as e:
            return Access(None, f"{cur}: {e.strerror or e}")
        if d is None:
            return Access(True, f"{cur} does not exist", exists=False)
        if d.type != "dir":
            return Access(True, f"{cur} is not a directory", exists=False)
        if not todo:
            break
        ok = permits(d, uid, groups, EXECUTE)
        if ok is not True:
            why = "cannot be told" if ok is None else "may not"
            return Access(ok, f"{who} {why} search {cur} ({_mode(d)})")
        name = todo.pop(0)
        if name == "..":
            cur = posixpath.dirname(cur.rstrip("/")) or "/"
            continue
        nxt = posixpath.join(cur, name)
        try:
            ln = host.stat(root + nxt if root else nxt, follow=False)
        except PermissionError as e:
            return Access(None, f"{nxt} cannot be looked at ({e.strerror or e})")
        except OSError as e:
            return Access(None, f"{nxt}: {e.strerror or e}")
        if ln is None:
            return Access(True, f"{nxt} does not exist", exists=False)
        if ln.type == "symlink":
            links += 1
            target = host.readlink(root + nxt if root else nxt)
            if target is None or links > _MAX_LINKS:
                return Access(None, f"{nxt}: a link that cannot be followed")
            todo = [c for c in target.split("/") if c and c != "."] + todo
            if target.startswith("/"):
                cur = "/"
            continue
        if not todo:
            want = READ | EXECUTE if directory else READ
            if directory and ln.type != "dir":
                return Access(True, f"{nxt} is not a directory", exists=False)
            ok = permits(ln, uid, groups, want)
            if ok is None:
                return Access(None, f"whether {who} may read {nxt} cannot be told ({_mode(ln)})")
            verb = "may" if ok else "may not"
            return Access(ok, f"{who} {verb} read {nxt} ({_mode(ln)})")
        cur = nxt
    # the path named a directory that is "/" itself
    ok = permits(d, uid, groups, READ | EXECUTE if directory else READ)
    return Access(ok, f"{who} {'may' if ok else 'may not'} read {cur} ({_mode(d)})")


def _mode(st: FileStat) -> str:
    return f"{st.type} {st.mode:04o} uid {st.uid} gid {st.gid}" + (" with an ACL" if st.acl else "")
