"""Make hostile strings inert for terminals and Nagios.

Instance names, QEMU arguments and config values come from tenants and guests. Before they
reach a terminal, every control character (C0, DEL, C1: ESC starts ANSI/OSC sequences) and every
Unicode format character (bidi overrides such as U+202E) is shown as a visible escape; invalid
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
