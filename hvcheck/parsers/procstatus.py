"""``/proc/<pid>/status`` (proc(5)): the lines hvcheck keeps — ``State:``, ``Uid:``, ``Gid:``,
``Groups:`` — parsed, and written back in the kernel's format (what ``hvcheck collect`` puts
in a snapshot for the processes the live run saw).

The kernel writes them in ``fs/proc/array.c`` (``task_state``): ``State:\\tS (sleeping)``, the
real, effective, saved and filesystem ids tab-separated, and every supplementary group
followed by a space (``Groups:\\t107 108 \\n``; ``Groups:\\t \\n`` for none).

Process states are named as psutil names them (``psutil.STATUS_*``: "running", "sleeping",
"zombie", ...; psutil's ``_pslinux.PROC_STATUSES`` maps the kernel's letters the same way),
so a live record (from psutil) and a replayed one (from a snapshot's status file) compare
equal.

>>> s = parse_status("Name:\\tqemu-kvm\\nState:\\tS (sleeping)\\nUid:\\t64055\\t64055\\t64055\\t"
...                  "64055\\nGid:\\t107\\t107\\t107\\t107\\nGroups:\\t107 108 \\n")
>>> s.status, s.uids, s.gids, s.groups
('sleeping', (64055, 64055, 64055), (107, 107, 107), (107, 108))
>>> for line in format_status("qemu-kvm", "zombie", (0, 0, 0), (36, 36, 36), ()).splitlines():
...     print(line.replace("\\t", "<TAB>") + "$")
Name:<TAB>qemu-kvm$
State:<TAB>Z (zombie)$
Uid:<TAB>0<TAB>0<TAB>0<TAB>0$
Gid:<TAB>36<TAB>36<TAB>36<TAB>36$
Groups:<TAB> $
"""

from typing import NamedTuple, Optional

__all__ = ["ZOMBIE_STATES", "ProcStatus", "format_status", "parse_status"]

# kernel letter -> psutil's name (psutil/_pslinux.py PROC_STATUSES)
_BY_LETTER = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "Z": "zombie",
    "X": "dead",
    "x": "dead",
    "K": "wake-kill",
    "W": "waking",
    "I": "idle",
    "P": "parked",
}
# psutil's name -> the kernel's State: text (fs/proc/array.c task_state_array; K and W are
# those of 2.6.33-3.13 kernels)
_STATE_TEXT = {
    "running": "R (running)",
    "sleeping": "S (sleeping)",
    "disk-sleep": "D (disk sleep)",
    "stopped": "T (stopped)",
    "tracing-stop": "t (tracing stop)",
    "zombie": "Z (zombie)",
    "dead": "X (dead)",
    "wake-kill": "K (wakekill)",
    "waking": "W (waking)",
    "idle": "I (idle)",
    "parked": "P (parked)",
}

ZOMBIE_STATES = frozenset({"zombie", "dead"})
"""States of a process that has exited: it runs no guest and holds no fd."""


class ProcStatus(NamedTuple):
    status: Optional[str] = None  # psutil's name of the State: letter
    uids: Optional[tuple[int, int, int]] = None  # real, effective, saved
    gids: Optional[tuple[int, int, int]] = None
    groups: Optional[tuple[int, ...]] = None  # supplementary groups


def _ids(value: str, n: int) -> Optional[tuple[int, ...]]:
    """The first ``n`` decimal ids of a line (all of them for 0); None if fewer or not ids."""
    parts = value.split()
    if n:
        if len(parts) < n:
            return None
        parts = parts[:n]
    digits = "".join(parts)
    if parts and not (digits.isascii() and digits.isdigit()):
        return None
    return tuple(map(int, parts))


def _field(text: str, key: str) -> Optional[str]:
    """The value of the line ``key`` (``"\nUid:"``) in ``text`` (which starts with a newline)."""
    i = text.find(key)
    if i < 0:
        return None
    i += len(key)
    j = text.find("\n", i)
    return text[i:] if j < 0 else text[i:j]


def parse_status(text: str) -> ProcStatus:
    """The ``State:``, ``Uid:``, ``Gid:`` and ``Groups:`` lines; None for any line absent or
    not in the kernel's shape. Never raises. (Four searches rather than a split of all ~55
    lines: a replay reads this for every process it matched.)"""
    text = "\n" + text
    state = _field(text, "\nState:")
    uids = _ids(_field(text, "\nUid:") or "", 3)
    gids = _ids(_field(text, "\nGid:") or "", 3)
    groups_line = _field(text, "\nGroups:")
    return ProcStatus(
        _BY_LETTER.get(state.strip()[:1]) if state is not None else None,
        (uids[0], uids[1], uids[2]) if uids else None,
        (gids[0], gids[1], gids[2]) if gids else None,
        _ids(groups_line, 0) if groups_line is not None else None,
    )


def format_status(
    comm: str,
    status: Optional[str],
    uids: Optional[tuple[int, int, int]],
    gids: Optional[tuple[int, int, int]],
    groups: Optional[tuple[int, ...]],
) -> str:
    """The ``Name:``, ``State:``, ``Uid:``, ``Gid:`` and ``Groups:`` lines as the kernel writes
    them, each only when known. psutil reports three ids of the four: the filesystem id is
    written as the effective one, which the kernel sets it to on every change of the effective
    id (only setfsuid(2)/setfsgid(2) set it apart)."""
    name = comm.replace("\\", "\\\\").replace("\n", "\\n")  # seq_escape_str(..., "\n\\")
    lines = [f"Name:\t{name}\n"]
    if status in _STATE_TEXT:
        lines.append(f"State:\t{_STATE_TEXT[status]}\n")
    for key, ids in (("Uid", uids), ("Gid", gids)):
        if ids is not None:
            lines.append(f"{key}:\t{ids[0]}\t{ids[1]}\t{ids[2]}\t{ids[1]}\n")
    if groups is not None:
        listed = "".join(f"{g} " for g in groups) or " "
        lines.append(f"Groups:\t{listed}\n")
    return "".join(lines)
