"""The output channels (stdout, stderr) as a monitoring run finds them: closed, a pipe whose
reader has gone, a full device, a terminal that cannot show every character.

A monitoring system reads hvcheck's exit code first, so no failure to *print* may change the
verdict's code into another state:

- **closed** (``hvcheck >&-``): Python starts with ``sys.stdout`` None. The descriptor is
  pointed at ``/dev/null`` (so no file hvcheck opens later takes descriptor 1) and the output
  goes there: the exit code is the verdict's.
- **EPIPE** (``hvcheck | head -c0``): the reader wanted no more; the rest of the output is
  dropped quietly and the exit code is the verdict's. Python ignores SIGPIPE, so the kernel's
  answer arrives as ``BrokenPipeError`` (EPIPE, write(2)).
- **any other write failure** (``hvcheck > /dev/full``: ENOSPC; EIO, EDQUOT, EFBIG...): the
  output is incomplete and nobody knows; the run exits 3 (UNKNOWN) with one line on stderr
  naming the error.
- **encoding**: text is encoded in the stream's own encoding (the locale's, or
  ``PYTHONIOENCODING``); a character it cannot show becomes ``FALLBACK``'s plain equivalent
  (``—`` → ``-``, ``→`` → ``->``, ``…`` → ``...``) or the visible escape ``inert`` uses
  (``\\u4e2d``), never an error. (Under ``LANG=C`` Python 3.7+ already writes UTF-8: PEP 538
  and PEP 540.) The Prometheus text format is UTF-8 by definition (its exposition format
  documentation), so ``render`` writes it as UTF-8 bytes whatever the locale.

The failures are caught at the lowest level, the raw writes under Python's own buffered text
stream: every writer above it (click's help, rich's table, hvcheck's renderers) sees a
stream that never raises, and rich never gets to apply its own broken-pipe policy (exit 1).
``install`` sets this up once per process, ``settle`` turns what happened into the exit code.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import os
import sys
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

FALLBACK = "hvcheck-fallback"

# hvcheck's own typography, as plain ASCII for an encoding without it
_PLAIN = {
    "\u2014": "-",  # em dash
    "\u2013": "-",  # en dash
    "\u2192": "->",  # rightwards arrow (the table's hints)
    "\u2026": "...",  # ellipsis (a shortened Nagios summary)
}


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def _fallback(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: a character the encoding lacks becomes its plain form or its
    escape (the notation of ``report.escape.inert``, where ``\\`` itself is always doubled,
    so the escape is unambiguous)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    chunk = exc.object[exc.start : exc.end]
    return "".join(_PLAIN.get(ch) or _escape(ch) for ch in chunk), exc.end


codecs.register_error(FALLBACK, _fallback)


class GuardedRaw(io.RawIOBase):
    """A file descriptor to write to that never raises: the first write error is kept in
    ``error`` and everything after it is dropped (reported as written, so the buffered
    layers above never retry or raise)."""

    def __init__(self, fd: int, name: str) -> None:
        super().__init__()
        self.fd = fd
        self.label = name
        self.error: Optional[OSError] = None

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def isatty(self) -> bool:
        try:
            return os.isatty(self.fd)
        except OSError:
            return False

    def write(self, b: ReadableBuffer, /) -> int:
        view = memoryview(b).cast("B")
        n = len(view)
        if self.error is not None:
            return n
        while view:
            try:
                done = os.write(self.fd, view)
            except BlockingIOError:  # a non-blocking descriptor handed to us: wait for room
                import select

                select.select([], [self.fd], [])
                continue
            except OSError as e:
                self.error = e
                return n
            view = view[done:]
        return n


def _open_null() -> int:
    return os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)


def _guard(fd: int, name: str, current: Optional[io.TextIOBase]) -> io.TextIOWrapper:
    """A text stream over ``fd`` through GuardedRaw, in ``current``'s encoding with FALLBACK
    for what it cannot encode; over ``/dev/null`` when ``current`` is None (the descriptor
    was closed when the process started)."""
    encoding = getattr(current, "encoding", None) or "utf-8"
    line_buffering = bool(getattr(current, "line_buffering", False))
    if current is None:
        null = _open_null()
        try:
            os.fstat(fd)
        except OSError:  # still closed: keep the next file hvcheck opens off this number
            os.dup2(null, fd, inheritable=False)
        fd = null
    else:
        with contextlib.suppress(OSError, ValueError):
            current.flush()
    raw = GuardedRaw(fd, name)
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding=encoding,
        errors=FALLBACK,
        line_buffering=line_buffering,
    )


_installed: dict[str, GuardedRaw] = {}


def install() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` by guarded streams (once per process; only
    when they are still the process's own, so a test's captured stream is left alone).
    A closed standard input is pointed at ``/dev/null`` as well."""
    try:
        os.fstat(0)
    except OSError:
        os.dup2(_open_null(), 0, inheritable=True)
    for name, fd in (("stdout", 1), ("stderr", 2)):
        if name in _installed:
            continue
        current = getattr(sys, name)
        if current is not None and current is not getattr(sys, f"__{name}__"):
            continue
        stream = _guard(fd, name, current)
        raw = stream.buffer.raw  # type: ignore[attr-defined]
        assert isinstance(raw, GuardedRaw)
        _installed[name] = raw
        setattr(sys, name, stream)


def settle(code: int) -> int:
    """Flush both streams; ``code`` unless stdout failed with anything but EPIPE, which is one
    line on stderr and 3 (UNKNOWN): the output the caller asked for is incomplete."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    raw = _installed.get("stdout")
    err = raw.error if raw is not None else None
    if err is None or err.errno == errno.EPIPE:
        return code
    reason = os.strerror(err.errno) if err.errno else str(err)
    name = errno.errorcode.get(err.errno or 0, "error")
    try:
        sys.stderr.write(f"hvcheck: cannot write the output to stdout: {reason} ({name})\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return 3


def failed() -> Optional[OSError]:
    """The write error stdout met, if any (None when guarded streams are not installed)."""
    raw = _installed.get("stdout")
    return raw.error if raw is not None else None
