#!/usr/bin/env python3
"""Generate hvcheck's man pages and shell completions from its click command.

Usage: ``python3 packaging/gen-docs.py OUTDIR`` (run from the source tree; the Debian and RPM
builds call it). Writes ``OUTDIR/man/hvcheck.1`` plus one page per subcommand
(``hvcheck-collect.1``, ...) with click-man, the man-page generator made for click programs,
and adds the sections click-man does not know: EXIT STATUS, FILES (what the checks read, from
their ``reads``), SECURITY and SEE ALSO. Writes ``OUTDIR/completions/{hvcheck,_hvcheck,
hvcheck.fish}`` from click's own completion classes (what ``_HVCHECK_COMPLETE=bash_source
hvcheck`` prints). Nothing here is hand-written from the options: a new option shows up in the
man page by itself, and tests/test_packaging.py holds the page against ``hvcheck --help``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
from click.shell_completion import get_completion_class  # noqa: E402
from click_man.core import generate_man_page  # noqa: E402

from hvcheck import __version__  # noqa: E402
from hvcheck.cli import cli  # noqa: E402

PROG = "hvcheck"
COMPLETE_VAR = "_HVCHECK_COMPLETE"
COMPLETIONS = {"bash": "hvcheck", "zsh": "_hvcheck", "fish": "hvcheck.fish"}


def _roff(text: str) -> str:
    """Text for a roff body line: backslashes doubled, leading '.' and "'" made literal."""
    out = []
    for line in text.replace("\\", "\\e").splitlines():
        out.append("\\&" + line if line[:1] in (".", "'") else line)
    return "\n".join(out)


def _files_section() -> str:
    from hvcheck import engine

    paths: dict[str, list[str]] = {}
    for lc in engine.load_checks():
        for p in lc.reads:
            paths.setdefault(p, []).append(lc.id)
    lines = [
        ".SH FILES",
        "hvcheck reads, and never writes, these paths (or their copies in a "
        "snapshot given with \\fB\\-\\-root\\fP):",
    ]
    for p in sorted(paths):
        lines += [".TP", f"\\fI{_roff(p)}\\fP", _roff("read by " + ", ".join(paths[p]))]
    return "\n".join(lines)


EXTRA = r""".SH EXIT STATUS
The same in every output format (the Monitoring Plugins convention):
.TP
.B 0
OK: every check passed.
.TP
.B 1
WARNING: at least one check warns and none is worse.
.TP
.B 2
CRITICAL: at least one check is critical (e.g. an instance that asked for KVM runs TCG).
.TP
.B 3
UNKNOWN: a check could not decide, a usage error (a misspelt option, format or check id),
a timeout or an internal failure. A typo never exits 0.
.SH SECURITY
Run as root for a full answer: \fI/dev/kvm\fP and QEMU processes' file descriptors are
readable by root only. hvcheck only reads: it never writes to the host, loads modules or
runs a shell.
.SH SEE ALSO
\fBvirt-host-validate\fP(1), \fBqemu\fP(1), \fBvirsh\fP(1).
The snapshot format and the security notes are in \fI/usr/share/doc/hvcheck/\fP; monitoring
examples (Nagios, Icinga 2, Zabbix, sudoers, systemd, Ansible) in
\fI/usr/share/doc/hvcheck/examples/\fP.
"""


def write_man_pages(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def page(cmd: click.Command, parent: click.Context | None, name: str) -> None:
        ctx = click.Context(cmd, info_name=name, parent=parent)
        text = generate_man_page(ctx, version=__version__)
        if parent is None:
            text = text.rstrip("\n") + "\n" + _files_section() + "\n" + EXTRA
        path = outdir / f"{ctx.command_path.replace(' ', '-')}.1"
        path.write_text(text, encoding="utf-8")
        written.append(path)
        if isinstance(cmd, click.Group):
            for sub_name, sub in sorted(cmd.commands.items()):
                if not sub.hidden:
                    page(sub, ctx, sub_name)

    page(cli, None, PROG)
    return written


def write_completions(outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, filename in COMPLETIONS.items():
        cls = get_completion_class(shell)
        assert cls is not None, shell
        path = outdir / filename
        path.write_text(cls(cli, {}, PROG, COMPLETE_VAR).source(), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    for p in write_man_pages(out / "man") + write_completions(out / "completions"):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
