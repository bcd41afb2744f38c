"""Make hostile strings inert for terminals and monitoring systems: the one place they are
escaped.

Instance names, QEMU arguments, config values and API answers come from tenants, guests and
services. Checks and facts carry them raw; every renderer of ``hvcheck.report`` passes each
string it prints through ``inert`` exactly once (JSON is escaped by ``json`` itself). Every
control character (C0, DEL, C1: ESC starts ANSI/OSC sequences), every Unicode format
character (bidi overrides such as U+202E) and the backslash itself are shown as visible
escapes, so an escape in the output always stands for one character of the input; invalid
UTF-8 was already replaced with U+FFFD when the bytes were decoded (host layer).

>>> inert('evil\\x1b]52;c;aGk=\\x07name\\u202e')
'evil\\\\x1b]52;c;aGk=\\\\x07name\\\\u202e'
"""

from __future__ import annotations

import unicodedata


def _escape(ch: str) -> str:
    o = ord(ch)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def inert(s: object) -> str:
    """``str(s)`` with each character a terminal would act on written as ``\\xNN`` /
    ``\\uNNNN`` / ``\\UNNNNNNNN``, and ``\\`` as ``\\\\``."""
    text = str(s)
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Co", "Cn"):
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)
