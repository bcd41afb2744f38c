"""Whose tree a process sees: its mount namespace, and where its files are read from.

A process in another mount namespace than hvcheck (a container, a snap, libvirt's private
namespace for each QEMU) sees another tree: its ``/etc/passwd``, its ``qemu.conf``, its
``/run/libvirt/qemu``. The kernel shows that tree under ``/proc/<pid>/root`` (proc(5)), and
that link is the only way to read it: ``readlink /proc/<pid>/root`` prints ``/`` after a
``pivot_root`` although the process sees another tree, so the link's text proves nothing.
Whether two processes share a mount namespace is told by ``/proc/<pid>/ns/mnt``
(namespaces(7)): the same ``mnt:[inode]`` exactly when they do.

The rule (:func:`process_root`): a process in another mount namespace than hvcheck's own
(``/proc/self/ns/mnt``; in a snapshot, what ``collect`` recorded in the marker's
``mount_ns``) has its files read through ``/proc/<pid>/root``, whatever that link says; one
in hvcheck's namespace is read in hvcheck's tree, unless its root link names another
directory (``chroot``). When the namespaces cannot be compared (another user's process, an
older snapshot), hvcheck's tree is read first and the process's root after it.

Reads (through the host layer): ``/proc/self/ns/mnt``, ``/proc/<pid>/ns/mnt``,
``/proc/<pid>/root`` (the link), and then the files asked for, under ``/proc/<pid>/root``.

A facts-level module: ``hvcheck.processes``, ``hvcheck.facts``, ``hvcheck.novaconfig`` and
``hvcheck.deployment`` share it; it imports none of them.
"""

from typing import NamedTuple, Optional

from hvcheck.check import Context

__all__ = ["ProcRoot", "Seen", "own_mount_namespace", "process_root", "read_seen"]


class ProcRoot(NamedTuple):
    """Where one process's files are read from.

    ``roots``: path prefixes to try in order, ``""`` for hvcheck's own tree and
    ``"/proc/<pid>/root"`` for the process's; ``other_ns``: True when the process is in
    another mount namespace than hvcheck, False when in the same one, None when that cannot
    be told; ``why``: the evidence, for messages.
    """

    pid: int
    roots: tuple[str, ...]
    other_ns: Optional[bool]
    why: str

    @property
    def prefix(self) -> str:
        """The tree read first: ``"/proc/<pid>/root"`` or ``""``."""
        return self.roots[0]

    @property
    def own_tree(self) -> bool:
        """The process's files are read in hvcheck's own tree (first)."""
        return self.roots[0] == ""

    def path(self, path: str) -> str:
        """``path`` (absolute, as the process names it) in the tree read first."""
        return f"{self.roots[0]}{path}"


def own_mount_namespace(ctx: Context) -> Optional[str]:
    """hvcheck's own mount namespace (``/proc/self/ns/mnt``), once per run."""
    return ctx.fact("mount_ns:self", lambda c: c.host.mount_namespace(None))


def process_root(ctx: Context, pid: int) -> ProcRoot:
    """Where process ``pid``'s files are read from (see the module's rule), once per run."""

    def compute(c: Context) -> ProcRoot:
        own = own_mount_namespace(c)
        theirs = c.host.mount_namespace(pid)
        through = f"/proc/{pid}/root"
        if own is not None and theirs is not None:
            if own != theirs:
                return ProcRoot(
                    pid,
                    (through,),
                    True,
                    f"pid {pid} is in mount namespace {theirs}, hvcheck in {own}: "
                    f"its files are read through {through}",
                )
            link = c.host.readlink(through)
            if link is not None and link != "/":
                return ProcRoot(
                    pid, (through,), False, f"pid {pid} runs chrooted in {link}: read through"
                )
            return ProcRoot(pid, ("",), False, f"pid {pid} shares hvcheck's mount namespace")
        return ProcRoot(
            pid,
            ("", through),
            None,
            f"the mount namespace of pid {pid} cannot be compared with hvcheck's: its files "
            f"are read in hvcheck's tree, then through {through}",
        )

    root: ProcRoot = ctx.fact(f"proc_root:{pid}", compute)
    return root


class Seen(NamedTuple):
    """A file as a process sees it: its ``text`` (None: absent there) and the ``path`` it
    was read at (None when absent)."""

    text: Optional[str]
    path: Optional[str]


def read_seen(ctx: Context, root: ProcRoot, path: str) -> Seen:
    """``path`` as the process sees it: the first of its ``roots`` where it exists. Raises
    OSError for anything but absence (PermissionError when the process's root may not be
    read: never the file of another tree in its place)."""
    for prefix in root.roots:
        full = f"{prefix}{path}"
        text = ctx.host.read_opt(full)
        if text is not None:
            return Seen(text, full)
    return Seen(None, None)
