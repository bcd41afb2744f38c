"""Find the configuration nova-compute actually loaded and resolve ``[libvirt] virt_type``.

Order of preference (oslo.config semantics, later files win):
1. a running ``nova-compute`` process: its ``--config-file`` / ``--config-dir`` arguments, read
   through ``/proc/<pid>/root`` when the path does not exist on the host (kolla runs
   nova-compute in a container that shares the host's pid namespace); without those
   arguments, oslo's default search (``/etc/nova/nova.conf``, ``/etc/nova/nova-compute.conf``...);
2. no nova-compute running: the known locations (plain, Ubuntu, kolla, TripleO, snap).

Reads: the process table, /proc/<pid>/cmdline, /proc/<pid>/root/..., and the nova config files.
"""

from __future__ import annotations

import posixpath
from typing import NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import ProcInfo
from hvcheck.parsers import novaconf as nc
from hvcheck.processes import processes


class NovaConf(NamedTuple):
    resolved: nc.NovaLibvirtConf
    how: str  # how the files were found
    pid: Optional[int]  # the nova-compute process, when one runs

    @property
    def virt_type(self) -> nc.Setting:
        return self.resolved.virt_type

    @property
    def cpu_mode(self) -> nc.Setting:
        return self.resolved.cpu_mode


def _read(ctx: Context, path: str, pid: Optional[int]) -> tuple[Optional[str], str]:
    """Text of a config file, trying the process's own root for containerised services."""
    candidates = [path]
    if pid is not None and path.startswith("/"):
        candidates.append(f"/proc/{pid}/root{path}")
    for c in candidates:
        try:
            t = ctx.host.read_opt(c)
        except PermissionError:
            raise
        except OSError:
            continue
        if t is not None:
            return t, c
    return None, path


def _dir_files(ctx: Context, d: str, pid: Optional[int]) -> list[str]:
    names = ctx.host.listdir(d)
    base = d
    if not names and pid is not None:
        names = ctx.host.listdir(f"/proc/{pid}/root{d}")
    return [posixpath.join(base, n) for n in nc.expand_config_dir(names)]


def _load(ctx: Context, paths: list[str], pid: Optional[int]) -> list[nc.ParsedConf]:
    confs = []
    for p in paths:
        text, real = _read(ctx, p, pid)
        if text is None:
            continue
        confs.append(nc.parse_oslo_ini(text, real))
    return confs


def _from_process(ctx: Context, p: ProcInfo) -> NovaConf:
    sources = nc.config_sources_from_argv(list(p.argv))

    def exists(path: str) -> bool:
        # kolla: the paths are the container's; look through the process's root too
        return ctx.host.exists(path) or ctx.host.exists(f"/proc/{p.pid}/root{path}")

    order = nc.oslo_config_load_order(sources, "nova", "nova-compute", exists=exists)
    paths: list[str] = []
    for kind, path in order:
        if kind == "dir":
            paths.extend(_dir_files(ctx, path, p.pid))
        else:
            paths.append(path)
    if sources is None:
        how = f"nova-compute (pid {p.pid}) runs without --config-file: oslo.config's defaults"
    else:
        how = f"nova-compute (pid {p.pid}) command line"
    return NovaConf(nc.resolve_nova_libvirt(_load(ctx, paths, p.pid)), how, p.pid)


def nova_conf(ctx: Context) -> Optional[NovaConf]:
    """The effective nova config, or None when there is no nova on this host."""

    def compute(c: Context) -> Optional[NovaConf]:
        procs = processes(c, "nova-compute")
        if procs:
            return _from_process(c, procs[0])
        paths: list[str] = []
        for loc in nc.known_nova_config_locations():
            if "*" in loc:
                paths.extend(sorted(c.host.glob(loc)))
            else:
                paths.append(loc)
        confs = _load(c, paths, None)
        if not confs:
            return None
        return NovaConf(
            nc.resolve_nova_libvirt(confs), "known locations (nova-compute not running)", None
        )

    return ctx.fact("nova_conf", compute)
