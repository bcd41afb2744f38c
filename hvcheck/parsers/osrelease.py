"""os-release(5) as the ``distro`` package reads it, for the common case only.

``distro`` is what hvcheck uses to name the OS, but importing it costs ~8 ms (argparse,
logging, subprocess, ...) every run, and for a snapshot it needs the release files copied to a
temporary directory. Nearly every host hvcheck runs on has an os-release file with ``ID``,
``PRETTY_NAME``, ``VERSION_ID`` and a codename: for those this gives exactly what
``distro.LinuxDistribution(include_lsb=False, include_uname=False)`` gives (same shell-style
lexing, same codename rules, same ID normalisation; ``tests/test_parsers_osrelease.py`` holds
the two against each other). Anything less complete returns None, and ``distro`` decides.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["parse_os_release", "quick_os_info"]

# distro.NORMALIZED_OS_ID
_NORMALIZED_OS_ID = {"ol": "oracle", "opensuse-leap": "opensuse"}


def parse_os_release(text: str) -> dict[str, str]:
    """Keys lower-cased, values unquoted (distro's ``_parse_os_release_content``)."""
    import shlex

    props: dict[str, str] = {}
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: distro raises too; the caller falls back
        return {}
    for token in tokens:
        if "=" in token:
            k, v = token.split("=", 1)
            props[k.lower()] = v
    if "version" in props:
        m = re.search(r"\((\D+)\)|,\s*(\D+)", props["version"])
        if m:
            props["codename"] = props["release_codename"] = m.group(1) or m.group(2)
    if "version_codename" in props:
        props["codename"] = props["version_codename"]
    elif "ubuntu_codename" in props:
        props["codename"] = props["ubuntu_codename"]
    return props


def quick_os_info(text: str) -> Optional[tuple[str, str, str, str, str]]:
    """``(id, like, pretty name, version, codename)``, or None when ``distro`` must decide."""
    p = parse_os_release(text)
    if not (p.get("id") and p.get("pretty_name") and p.get("version_id")) or "codename" not in p:
        return None
    os_id = p["id"].lower().replace(" ", "_")
    return (
        _NORMALIZED_OS_ID.get(os_id, os_id),
        p.get("id_like", ""),
        p["pretty_name"],
        p["version_id"],
        p["codename"],
    )
