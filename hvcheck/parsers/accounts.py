"""Parse ``/etc/passwd`` and ``/etc/group`` (passwd(5), group(5)).

>>> db = parse_accounts(
...     'libvirt-qemu:x:64055:107:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\\n',
...     'kvm:x:107:\\nlibvirt:x:108:alice\\n')
>>> db.user('libvirt-qemu').uid, sorted(db.groups_of('libvirt-qemu'))
(64055, [107])
"""

from typing import NamedTuple, Optional


class User(NamedTuple):
    name: str
    uid: int
    gid: int


class Group(NamedTuple):
    name: str
    gid: int
    members: tuple[str, ...]


class Accounts(NamedTuple):
    users: tuple[User, ...] = ()
    groups: tuple[Group, ...] = ()
    errors: tuple[str, ...] = ()

    def user(self, name_or_id: str) -> Optional[User]:
        """A user by name, or by ``+UID`` / numeric id as libvirt's qemu.conf allows."""
        key = name_or_id.lstrip("+")
        for u in self.users:
            if u.name == name_or_id or ((key.isascii() and key.isdigit()) and u.uid == int(key)):
                return u
        if name_or_id.startswith("+") and (key.isascii() and key.isdigit()):
            return User(name_or_id, int(key), int(key))
        return None

    def group(self, name_or_id: str) -> Optional[Group]:
        key = name_or_id.lstrip("+")
        for g in self.groups:
            if g.name == name_or_id or ((key.isascii() and key.isdigit()) and g.gid == int(key)):
                return g
        if name_or_id.startswith("+") and (key.isascii() and key.isdigit()):
            return Group(name_or_id, int(key), ())
        return None

    def group_name(self, gid: int) -> Optional[str]:
        for g in self.groups:
            if g.gid == gid:
                return g.name
        return None

    def user_name(self, uid: int) -> Optional[str]:
        for u in self.users:
            if u.uid == uid:
                return u.name
        return None

    def groups_of(self, name: str) -> set[int]:
        """Primary and supplementary gids of a user."""
        u = self.user(name)
        gids = {u.gid} if u else set()
        for g in self.groups:
            if name in g.members:
                gids.add(g.gid)
        return gids


def parse_accounts(passwd: str, group: str) -> Accounts:
    users: list[User] = []
    groups: list[Group] = []
    errors: list[str] = []
    for n, line in enumerate(passwd.splitlines(), 1):
        if not line.strip() or line.startswith(("#", "+", "-")):
            continue
        f = line.split(":")
        if (
            len(f) < 4
            or not (f[2].isascii() and f[2].isdigit())
            or not (f[3].isascii() and f[3].isdigit())
        ):
            errors.append(f"/etc/passwd line {n}: malformed")
            continue
        users.append(User(f[0], int(f[2]), int(f[3])))
    for n, line in enumerate(group.splitlines(), 1):
        if not line.strip() or line.startswith(("#", "+", "-")):
            continue
        f = line.split(":")
        if len(f) < 3 or not (f[2].isascii() and f[2].isdigit()):
            errors.append(f"/etc/group line {n}: malformed")
            continue
        members = tuple(m for m in (f[3].split(",") if len(f) > 3 else []) if m)
        groups.append(Group(f[0], int(f[2]), members))
    return Accounts(tuple(users), tuple(groups), tuple(errors))
