"""Read an RPM database kept in SQLite (``rpmdb.sqlite``: RHEL 9, Fedora 33+, CentOS Stream 9)
with the stdlib ``sqlite3``, without ever writing to it.

Reads ``/usr/lib/sysimage/rpm/rpmdb.sqlite`` or ``/var/lib/rpm/rpmdb.sqlite`` (the path is the
caller's): the ``Packages`` table, one header blob per package (rpm's
``lib/backend/sqlite.cc``: ``CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT,
blob BLOB NOT NULL)``), each parsed by :func:`hvcheck.parsers.pkgdb.parse_rpm_header`.

**Never a write.** The file is opened through an SQLite URI with ``mode=ro`` and
``immutable=1``: SQLite then takes no lock and neither opens nor creates the ``-wal`` and
``-shm`` files beside the database (sqlite.org/uri.html), so nothing on the host changes, not
even a lock byte or a read mark in the shared-memory file. rpm keeps the database in WAL mode
(``PRAGMA journal_mode = WAL``) and checkpoints it into the main file whenever it closes it
(``PRAGMA wal_checkpoint = TRUNCATE`` in ``sqlite_fini``), so outside a running rpm/dnf
transaction the main file holds every package. Read during a transaction, the main file may not
hold it yet, or SQLite may find pages mid-checkpoint and report an error: that error is
returned, never guessed past.

A snapshot holding the file itself (not what ``hvcheck collect`` writes: it records the package
list in the marker, see docs/SNAPSHOT.md) is read from a private temporary copy: a directory
made by ``tempfile.mkdtemp`` (mode 0700, under ``$TMPDIR``), the copy opened the same way and
removed with its directory at once. ``sqlite3.Connection.deserialize`` would avoid the file but
exists only from Python 3.11.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from typing import Optional
from urllib.parse import quote

from hvcheck.host.base import MAX_RPMDB_BYTES, RpmRead
from hvcheck.parsers.pkgdb import Package, RpmHeaderError, parse_rpm_header

__all__ = ["MAX_RPMDB_BYTES", "read_rpmdb_bytes", "read_rpmdb_file"]

_SQLITE_MAGIC = b"SQLite format 3\0"


def _uri(path: str) -> str:
    return f"file:{quote(os.path.abspath(path))}?mode=ro&immutable=1"


def read_rpmdb_file(path: str) -> RpmRead:
    """Every package of the ``rpmdb.sqlite`` at ``path``, opened read-only and immutable.

    ``status`` ``error`` (with SQLite's or the file's reason) when it is not an SQLite
    database, has no ``Packages`` table, or cannot be read; header blobs that do not parse are
    counted in ``bad`` and left out.
    """
    try:
        with open(path, "rb") as f:  # a clear message for a file that is not SQLite at all
            head = f.read(len(_SQLITE_MAGIC))
    except OSError as e:
        return RpmRead("error", "sqlite3", error=f"{path}: {e.strerror or e}")
    if head != _SQLITE_MAGIC:
        return RpmRead("error", "sqlite3", error=f"{path}: not an SQLite database")
    packages: list[Package] = []
    bad = 0
    first_bad = ""
    try:
        conn = sqlite3.connect(_uri(path), uri=True, check_same_thread=False)
    except sqlite3.Error as e:
        return RpmRead("error", "sqlite3", error=f"{path}: sqlite3: {e}")
    try:
        for row in conn.execute("SELECT blob FROM Packages ORDER BY hnum"):
            blob = row[0]
            if not isinstance(blob, bytes):
                bad += 1
                continue
            try:
                packages.append(parse_rpm_header(blob))
            except RpmHeaderError as e:
                bad += 1
                first_bad = first_bad or str(e)
    except sqlite3.Error as e:
        # e.g. "no such table: Packages", "database disk image is malformed" (read during a
        # transaction's checkpoint)
        return RpmRead("error", "sqlite3", tuple(packages), f"{path}: sqlite3: {e}", bad)
    finally:
        conn.close()
    if bad and not packages:
        return RpmRead("error", "sqlite3", (), f"{path}: no header parses ({first_bad})", bad)
    return RpmRead("ok", "sqlite3", tuple(packages), None, bad)


def _declared_size(data: bytes) -> Optional[int]:
    """The database size an SQLite header declares (sqlite.org/fileformat2.html: page size
    at offset 16, 1 meaning 65536; the page count at 28, valid when the file change counter at
    24 equals the version-valid-for number at 92); None when it declares none."""
    if len(data) < 100:
        return None
    page = int.from_bytes(data[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(data[28:32], "big")
    if not pages or data[24:28] != data[92:96]:
        return None
    return page * pages


def read_rpmdb_bytes(data: bytes, label: str) -> RpmRead:
    """:func:`read_rpmdb_file` of a database given as bytes (a snapshot's copy): written to a
    private temporary directory (0700), read, and removed. ``label`` names it in errors."""
    if not data.startswith(_SQLITE_MAGIC):
        return RpmRead("error", "sqlite3", error=f"{label}: not an SQLite database")
    declared = _declared_size(data)
    if declared is not None and len(data) < declared:
        return RpmRead(
            "error",
            "sqlite3",
            error=f"{label}: truncated ({len(data)} bytes of the {declared} its header declares)",
        )
    with tempfile.TemporaryDirectory(prefix="hvcheck-rpmdb-") as tmp:
        path = os.path.join(tmp, "rpmdb.sqlite")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        result = read_rpmdb_file(path)
    if result.error:
        result = result._replace(error=result.error.replace(path, label))
    return result
