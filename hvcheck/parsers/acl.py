"""POSIX access ACLs: the raw ``system.posix_acl_access`` extended attribute, and the access check.

Pure: bytes in, entries out; no I/O. The host layer reads the xattr of a device node
(``os.getxattr(path, "system.posix_acl_access")``) and keeps its hex in ``DeviceInfo.acl``.

Format (include/uapi/linux/posix_acl_xattr.h, little endian)::

    struct posix_acl_xattr_header { __le32 a_version; };        /* POSIX_ACL_XATTR_VERSION 2 */
    struct posix_acl_xattr_entry  { __le16 e_tag; __le16 e_perm; __le32 e_id; };

Tags (include/uapi/linux/posix_acl.h): ACL_USER_OBJ 0x01, ACL_USER 0x02, ACL_GROUP_OBJ 0x04,
ACL_GROUP 0x08, ACL_MASK 0x10, ACL_OTHER 0x20; permissions ACL_READ 4, ACL_WRITE 2,
ACL_EXECUTE 1; ``e_id`` is ACL_UNDEFINED_ID (0xffffffff) except for ACL_USER / ACL_GROUP.

The access check is the one of acl(5) "ACCESS CHECK ALGORITHM" (the kernel's
``posix_acl_permission`` in fs/posix_acl.c): the owner's entry, else a named user's entry
(masked), else every entry of a group the process is in (masked; any one granting all the
wanted bits is enough, and being in a group whose entries all lack a bit denies), else other.
"""

import struct
from typing import NamedTuple

ACL_USER_OBJ = 0x01
ACL_USER = 0x02
ACL_GROUP_OBJ = 0x04
ACL_GROUP = 0x08
ACL_MASK = 0x10
ACL_OTHER = 0x20
ACL_UNDEFINED_ID = 0xFFFFFFFF
XATTR_VERSION = 2

READ, WRITE, EXECUTE = 4, 2, 1
RW = READ | WRITE

_TAG_NAMES = {
    ACL_USER_OBJ: "user",
    ACL_USER: "user",
    ACL_GROUP_OBJ: "group",
    ACL_GROUP: "group",
    ACL_MASK: "mask",
    ACL_OTHER: "other",
}
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")


class AclError(ValueError):
    """The bytes are not a version-2 POSIX ACL xattr (the message says what is wrong)."""


class AclEntry(NamedTuple):
    tag: int  # ACL_USER_OBJ ... ACL_OTHER
    perm: int  # bits of READ | WRITE | EXECUTE
    id: int  # uid (ACL_USER) or gid (ACL_GROUP); ACL_UNDEFINED_ID for the others

    def text(self) -> str:
        """``getfacl -n`` spelling of the entry, e.g. ``user:1000:rw-`` or ``mask::r--``."""
        qual = str(self.id) if self.tag in (ACL_USER, ACL_GROUP) else ""
        return f"{_TAG_NAMES.get(self.tag, hex(self.tag))}:{qual}:{perm_text(self.perm)}"


def perm_text(perm: int) -> str:
    """``rwx`` spelling of permission bits: 6 -> ``rw-``."""
    return (
        ("r" if perm & READ else "-")
        + ("w" if perm & WRITE else "-")
        + ("x" if perm & EXECUTE else "-")
    )


def parse_acl_xattr(data: bytes) -> list[AclEntry]:
    """Entries of a ``system.posix_acl_access`` value, in stored order.

    >>> # setfacl -m u:1000:rw on a 0600 file (captured with os.getxattr, tests/data/acl)
    >>> raw = bytes.fromhex("0200000001000600ffffffff02000600e803000004000000ffffffff"
    ...                     "10000600ffffffff20000000ffffffff")
    >>> [e.text() for e in parse_acl_xattr(raw)]
    ['user::rw-', 'user:1000:rw-', 'group::---', 'mask::rw-', 'other::---']

    Raises AclError for a wrong version, a length that is not a whole number of entries, an
    unknown tag, or an ACL without its three required entries (user::, group::, other::).
    """
    if len(data) < _HEADER.size:
        raise AclError(f"ACL xattr too short ({len(data)} bytes)")
    (version,) = _HEADER.unpack_from(data)
    if version != XATTR_VERSION:
        raise AclError(f"ACL xattr version {version}, expected {XATTR_VERSION}")
    body = len(data) - _HEADER.size
    if body % _ENTRY.size:
        raise AclError(f"ACL xattr of {len(data)} bytes is not a header plus 8-byte entries")
    entries = [
        AclEntry(*_ENTRY.unpack_from(data, off))
        for off in range(_HEADER.size, len(data), _ENTRY.size)
    ]
    for e in entries:
        if e.tag not in _TAG_NAMES:
            raise AclError(f"unknown ACL tag {e.tag:#x}")
    tags = [e.tag for e in entries]
    for required, name in (
        (ACL_USER_OBJ, "user::"),
        (ACL_GROUP_OBJ, "group::"),
        (ACL_OTHER, "other::"),
    ):
        if tags.count(required) != 1:
            raise AclError(f"ACL needs exactly one {name} entry")
    if tags.count(ACL_MASK) > 1 or (
        ACL_MASK not in tags and (ACL_USER in tags or ACL_GROUP in tags)
    ):
        raise AclError("ACL with named entries needs exactly one mask:: entry")
    return entries


def acl_allows(
    entries: list[AclEntry],
    uid: int,
    gids: set[int],
    want: int = RW,
    *,
    file_uid: int,
    file_gid: int,
) -> bool:
    """Whether a process with ``uid`` and groups ``gids`` (primary and supplementary) gets the
    ``want`` bits (default read-write) on a file owned ``file_uid``:``file_gid`` carrying
    ``entries`` as its access ACL.

    The owner and group of the file decide which of ``user::`` and ``group::`` apply (acl(5)).
    No capability is considered: root's CAP_DAC_OVERRIDE is the caller's business.

    >>> raw = bytes.fromhex("0200000001000600ffffffff02000600e803000004000000ffffffff"
    ...                     "10000600ffffffff20000000ffffffff")
    >>> acl = parse_acl_xattr(raw)
    >>> acl_allows(acl, 1000, {1000}, file_uid=0, file_gid=0)
    True
    >>> acl_allows(acl, 1001, {1001, 0}, file_uid=0, file_gid=0)
    False
    """
    mask = next((e.perm for e in entries if e.tag == ACL_MASK), None)

    def masked(perm: int) -> int:
        return perm if mask is None else perm & mask

    def grants(perm: int) -> bool:
        return perm & want == want

    if uid == file_uid:
        return grants(next((e.perm for e in entries if e.tag == ACL_USER_OBJ), 0))
    for e in entries:
        if e.tag == ACL_USER and e.id == uid:
            return grants(masked(e.perm))
    in_a_group = False
    for e in entries:
        if (e.tag == ACL_GROUP_OBJ and file_gid in gids) or (e.tag == ACL_GROUP and e.id in gids):
            in_a_group = True
            if grants(masked(e.perm)):
                return True
    if in_a_group:
        return False
    return grants(next((e.perm for e in entries if e.tag == ACL_OTHER), 0))


def named_users(entries: list[AclEntry]) -> list[AclEntry]:
    """The ``user:<uid>:`` entries (logind's uaccess grants the seat user one of these)."""
    return [e for e in entries if e.tag == ACL_USER]


def effective(entry: AclEntry, entries: list[AclEntry]) -> int:
    """Permission bits an entry really grants: named entries and ``group::`` are limited by
    ``mask::`` (getfacl prints the difference as ``#effective:``)."""
    if entry.tag in (ACL_USER, ACL_GROUP_OBJ, ACL_GROUP):
        mask = next((e.perm for e in entries if e.tag == ACL_MASK), None)
        if mask is not None:
            return entry.perm & mask
    return entry.perm
