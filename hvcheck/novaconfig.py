"""Find the configuration nova-compute actually loaded and resolve ``[libvirt] virt_type``.

Order of preference (oslo.config semantics, later files win):
1. a running ``nova-compute`` process: its ``--config-file`` / ``--config-dir`` arguments, read
   as the process sees them (``hvcheck.mountns``: through ``/proc/<pid>/root`` when it runs
   in another mount namespace than hvcheck -- kolla's container sharing the host's pid
   namespace, a pod, a snap --, whatever ``readlink /proc/<pid>/root`` says); without those
   arguments, oslo's default search (``/etc/nova/nova.conf``, ``/etc/nova/nova-compute.conf``...);
   its environment (``/proc/<pid>/environ``, readable by root only), whose ``OS_<GROUP>__<NAME>``
   variables override the files;
2. no nova-compute running: the known locations (plain, Ubuntu, kolla, TripleO, snap).

The option schema applied is that of the nova release found (see :func:`nova_release`).

Reads: the process table, /proc/<pid>/cmdline, /proc/<pid>/environ, /proc/<pid>/cwd,
/proc/<pid>/exe, /proc/<pid>/root/..., the nova config files, Python distribution metadata
(``<prefix>/lib/python3*/{site,dist}-packages/nova-*.dist-info/METADATA`` or
``nova-*.egg-info/PKG-INFO``, the same for oslo.config) and ``/var/lib/dpkg/status``.
"""

import posixpath
from typing import TYPE_CHECKING, NamedTuple, Optional

from hvcheck.check import Context
from hvcheck.host import ProcInfo
from hvcheck.mountns import process_root
from hvcheck.processes import discovery, processes

if TYPE_CHECKING:
    # imported where a config is read: a host without nova never loads the parser (~2 ms)
    from hvcheck.parsers import novaconf as nc


class NovaRelease(NamedTuple):
    version: Optional[str]  # nova's version as its metadata or package states it; None: unknown
    source: Optional[str]  # the file it was read from
    oslo_config: Optional[str] = None  # oslo.config's version next to it, when found


class NovaConf(NamedTuple):
    resolved: "nc.NovaLibvirtConf"
    how: str  # how the files were found
    pid: Optional[int]  # the nova-compute process, when one runs
    release: NovaRelease = NovaRelease(None, None)
    # nova-compute's environment: "read", "not readable: ...", or "no process"
    environment: str = "no process"
    unreadable: tuple[str, ...] = ()  # files nova loads that hvcheck may not read ("path: why")
    # processes calling themselves nova-compute that were not taken as it, and why
    # (hvcheck.trust.service_trust: not root, not the nova service user)
    ignored: tuple[str, ...] = ()

    @property
    def virt_type(self) -> "nc.Setting":
        return self.resolved.virt_type

    @property
    def cpu_mode(self) -> "nc.Setting":
        return self.resolved.cpu_mode

    @property
    def effective_virt_type(self) -> Optional[str]:
        """The virt_type nova-compute runs with; None when it does not start or is unknown."""
        vt = self.resolved.virt_type
        if self.resolved.failures or vt.invalid or vt.unresolved or self.unreadable:
            return None
        return vt.value


class _Loader:
    """Reads config files as one nova-compute process sees them — only those its user could
    read (``reader``: its uid and groups; None for a root process or for the known locations,
    which are hvcheck's own choice): :func:`hvcheck.trust.may_read`."""

    def __init__(
        self,
        ctx: Context,
        pid: Optional[int],
        home: Optional[str] = None,
        reader: Optional[tuple[Optional[int], frozenset[int]]] = None,
    ) -> None:
        self.ctx = ctx
        self.pid = pid
        self.home = home
        self.reader = reader
        self.unreadable: list[str] = []
        self.cwd: Optional[str] = None
        if pid is not None:
            self.cwd = ctx.host.readlink(f"/proc/{pid}/cwd")

    def _root(self, candidate: str) -> str:
        return f"/proc/{self.pid}/root" if candidate.startswith(f"/proc/{self.pid}/root/") else ""

    def _refused(self, path: str, candidate: str, directory: bool = False) -> Optional[str]:
        """Why nova-compute's user may not read ``path`` (as ``candidate`` shows it); ""
        when it may, None when it does not exist there."""
        if self.reader is None:
            return ""
        from hvcheck.trust import may_read

        uid, gids = self.reader
        acc = may_read(self.ctx, path, uid, gids, self._root(candidate), directory)
        if not acc.exists:
            return None
        if acc.allowed is True:
            return ""
        return (
            f"{path}: not read on behalf of nova-compute's user ({acc.why})"
            if acc.allowed is False
            else f"{path}: whether nova-compute's user may read it cannot be told ({acc.why})"
        )

    def absolute(self, path: str) -> str:
        # oslo_config/cfg.py _fixpath: abspath(expanduser(path)) in the process's cwd and HOME
        if path.startswith("~") and self.home and (path == "~" or path.startswith("~/")):
            path = self.home + path[1:]
        if not path.startswith("/") and self.cwd:
            path = posixpath.join(self.cwd, path)
        return posixpath.normpath(path) if path.startswith("/") else path

    def _candidates(self, path: str) -> list[str]:
        """Where ``path`` is read as nova-compute sees it (``hvcheck.mountns``): through
        ``/proc/<pid>/root`` when it runs in another mount namespace (kolla's, a pod's, a
        snap's), whatever that link says; in hvcheck's tree when it shares hvcheck's; in
        hvcheck's tree then through its root when that cannot be told."""
        if self.pid is None or not path.startswith("/"):
            return [path]
        return [f"{r}{path}" for r in process_root(self.ctx, self.pid).roots]

    def exists(self, path: str) -> bool:
        return any(self.ctx.host.exists(c) for c in self._candidates(path))

    def read(self, path: str) -> "Optional[nc.ParsedConf]":
        """The file parsed, an ``unread`` conf when nova-compute cannot read it either, or None
        when hvcheck may not (recorded in ``unreadable``)."""
        from hvcheck.parsers import novaconf as nc

        denied = None
        for c in self._candidates(path):
            refused = self._refused(path, c)
            if refused is None:
                continue  # not there for the process either
            if refused:
                denied = refused  # not read on its behalf: perhaps its own root's copy is
                continue
            try:
                data = self.ctx.host.read_bytes(c)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except PermissionError as e:
                denied = f"{c}: {e.strerror or 'permission denied'}"
                continue
            except OSError as e:
                try:
                    st = self.ctx.host.stat(c)
                except OSError:
                    st = None
                kind = st.type if st is not None else ""
                if kind in ("fifo", "socket", "char", "block"):
                    # nova-compute may well have read it (a pipe, a device): hvcheck reads
                    # only regular files, so what it said is not known
                    self.unreadable.append(
                        f"{c}: a {kind}, not a regular file: hvcheck does not read it (a "
                        "read could block), so what nova-compute read from it is not known"
                    )
                    return None
                what = (
                    "a directory"
                    if kind == "dir" or self.ctx.host.listdir(c)
                    else "not a regular file"
                )
                return nc.unread_conf(
                    c, f"is {what} ({e.strerror or e}): nova-compute cannot read it"
                )
            return nc.parse_oslo_bytes(data, c)
        if denied:
            self.unreadable.append(denied)
            return None
        return nc.unread_conf(path, "does not exist (oslo.config: ConfigFilesNotFoundError)")

    def dir_files(self, d: str) -> list[str]:
        from hvcheck.parsers import novaconf as nc

        names: list[str] = []
        refused: Optional[str] = None
        for c in self._candidates(d):
            why = self._refused(d, c if c == d else c + "/", directory=True)
            if why is None:
                continue
            if why:
                refused = refused or why
                continue
            names = self.ctx.host.listdir(c)
            if names:
                break
        if not names and refused:
            self.unreadable.append(refused)
        return [posixpath.join(d, n) for n in nc.expand_config_dir(names)]

    def load(self, order: list[tuple[str, str]], explicit_dirs: bool) -> "list[nc.ParsedConf]":
        confs: list[nc.ParsedConf] = []
        for kind, path in order:
            if kind == "dir":
                if explicit_dirs and not self.exists(path):
                    from hvcheck.parsers.novaconf import unread_conf

                    # _ConfigDirOpt.ConfigDirAction: ConfigDirNotFoundError
                    confs.append(
                        unread_conf(
                            path,
                            "--config-dir does not exist (oslo.config: ConfigDirNotFoundError)",
                        )
                    )
                    continue
                for f in self.dir_files(path):
                    conf = self.read(f)
                    if conf is not None:
                        confs.append(conf)
            else:
                conf = self.read(path)
                if conf is not None:
                    confs.append(conf)
        return confs


def _environment(ctx: Context, pid: int) -> tuple[Optional[dict[str, str]], str]:
    from hvcheck.parsers import novaconf as nc

    try:
        data = ctx.host.read_bytes(f"/proc/{pid}/environ")
    except PermissionError:
        return None, "not readable (root only): OS_* overrides unknown"
    except OSError:
        return None, "not available: OS_* overrides unknown"
    return nc.parse_environ(data), "read"


def _prefixes(ctx: Context, p: Optional[ProcInfo]) -> list[str]:
    """Install prefixes to look for nova's metadata in: the interpreter's and the script's."""
    paths: list[str] = []
    if p is not None:
        paths += [a for a in p.argv[:2] if a.startswith("/")]
        exe = p.exe or ctx.host.readlink(f"/proc/{p.pid}/exe")  # the walk read it once
        if exe and exe.startswith("/"):
            paths.append(exe.split(" (deleted)")[0])
    out: list[str] = []
    for path in paths:
        d = posixpath.dirname(path)
        if posixpath.basename(d) == "bin":
            out.append(posixpath.dirname(d) or "/")
    for default in ("/usr", "/usr/local"):
        out.append(default)
    return list(dict.fromkeys(out))


def _metadata_versions(ctx: Context, root: str, prefixes: list[str]) -> dict[str, tuple[str, str]]:
    """``{"nova": (version, file), "oslo.config": ...}`` from site-packages under ``root``."""
    from hvcheck.parsers import novaconf as nc

    h = ctx.host
    found: dict[str, tuple[str, str]] = {}
    for prefix in prefixes:
        lib = f"{root}{prefix.rstrip('/')}/lib"
        for py in h.listdir(lib):
            if not py.startswith("python"):
                continue
            for sub in ("site-packages", "dist-packages"):
                sp = f"{lib}/{py}/{sub}"
                for name in h.listdir(sp):
                    low = name.lower()
                    if not low.startswith(("nova-", "oslo.config-", "oslo_config-")):
                        continue
                    if low.endswith(".dist-info"):
                        meta = f"{sp}/{name}/METADATA"
                    elif low.endswith(".egg-info"):
                        meta = f"{sp}/{name}/PKG-INFO"
                    else:
                        continue
                    try:
                        text = h.read_text(meta, 256 * 1024)
                    except OSError:
                        if not low.endswith(".egg-info"):
                            continue
                        try:  # an egg-info may be the PKG-INFO file itself
                            text, meta = h.read_text(f"{sp}/{name}", 256 * 1024), f"{sp}/{name}"
                        except OSError:
                            continue
                    nv = nc.dist_name_version(text)
                    if nv is None:
                        continue
                    dist = nv[0].lower().replace("_", ".")
                    if dist in ("nova", "oslo.config") and dist not in found:
                        found[dist] = (nv[1], meta)
        if "nova" in found:
            break
    return found


def nova_release(ctx: Context, p: Optional[ProcInfo]) -> NovaRelease:
    """Which nova (and oslo.config) nova-compute runs, as the process sees its files.

    As the process sees its files (through ``/proc/<pid>/root`` when it runs in another mount
    namespace, a container's own tree; else hvcheck's tree): the Python
    distribution metadata in the interpreter's prefix (``lib/python3*/site-packages`` or
    ``dist-packages``; Debian's and RDO's packages ship an ``.egg-info``, pip a
    ``.dist-info``), then dpkg's database (``python3-nova``, ``nova-common``). None when none
    says it: the check then applies the newest schema and says so.
    """

    def compute(c: Context) -> NovaRelease:
        prefixes = _prefixes(c, p)
        # as the process sees its files (hvcheck.mountns); when that cannot be told, its root
        # first: a container's venv is the nova that runs, whatever the host has installed
        roots = [""]
        if p is not None:
            pr = process_root(c, p.pid)
            roots = list(pr.roots) if pr.other_ns is not None else [f"/proc/{p.pid}/root", ""]
        for root in roots:
            found = _metadata_versions(c, root, prefixes)
            if "nova" in found:
                oslo = found.get("oslo.config")
                return NovaRelease(found["nova"][0], found["nova"][1], oslo[0] if oslo else None)
            status = f"{root}/var/lib/dpkg/status"
            try:
                text = c.host.read_text(status)
            except OSError:
                continue
            from hvcheck.parsers import novaconf as nc

            pkgs = nc.dpkg_versions(
                text, ["python3-nova", "nova-common", "python-nova", "python3-oslo.config"]
            )
            for name in ("python3-nova", "nova-common", "python-nova"):
                if pkgs.get(name):
                    return NovaRelease(
                        pkgs[name], f"{status} ({name})", pkgs.get("python3-oslo.config")
                    )
        return NovaRelease(None, None)

    key = f"nova_release:{p.pid if p is not None else '-'}"
    release: NovaRelease = ctx.fact(key, compute)
    return release


def _reader(ctx: Context, p: ProcInfo) -> Optional[tuple[Optional[int], frozenset[int]]]:
    """Whose rights files are read with: None (no check) for a root process, and for an
    older snapshot that recorded no ids or no ``stat`` (``Host.stat_recorded``); else the
    process's uid and groups."""
    from hvcheck.trust import process_ids

    uid, gids = process_ids(p)
    if uid == 0 or (not ctx.host.live and (uid is None or not ctx.host.stat_recorded())):
        return None
    return uid, gids


def _from_process(ctx: Context, p: ProcInfo) -> NovaConf:
    from hvcheck.parsers import novaconf as nc

    sources = nc.config_sources_from_argv(list(p.argv))
    env, env_state = _environment(ctx, p.pid)
    env = env or {}
    loader = _Loader(ctx, p.pid, env.get("HOME"), _reader(ctx, p))
    if sources is not None:
        sources = nc.ConfigSources(tuple((k, loader.absolute(v)) for k, v in sources))
    order = nc.oslo_config_load_order(
        sources,
        "nova",
        "nova-compute",
        exists=loader.exists,
        home=env.get("HOME"),
        snap=env.get("SNAP"),
        snap_common=env.get("SNAP_COMMON"),
    )
    confs = loader.load(order, explicit_dirs=True)
    release = nova_release(ctx, p)
    schema = nc.nova_schema(release.version, release.oslo_config)
    if sources is None:
        how = f"nova-compute (pid {p.pid}) runs without --config-file: oslo.config's defaults"
    else:
        how = f"nova-compute (pid {p.pid}) command line"
    return NovaConf(
        nc.resolve_nova_libvirt(confs, schema, env if env_state == "read" else None),
        how,
        p.pid,
        release,
        env_state,
        tuple(loader.unreadable),
        _ignored(ctx),
    )


def known_nova_config_locations() -> tuple[str, ...]:
    """Where nova-compute's config lives when no nova-compute process shows it, override order.

    Globs (``*``) are to be expanded by the caller and sorted (as
    :func:`hvcheck.parsers.novaconf.expand_config_dir`).

    * ``/etc/nova/nova.conf``, then ``/etc/nova/nova.conf.d/*.conf``: what a bare
      ``nova-compute`` (no ``--config-file``/``--config-dir``) loads, in this order (oslo's
      default file, then default dir).
    * ``/etc/nova/nova-compute.conf``: Ubuntu's nova-compute-kvm/-qemu packages, loaded with
      ``--config-file`` after nova.conf. (Ubuntu + a nova.conf.d would really load the dir
      first, see :func:`hvcheck.parsers.novaconf.oslo_config_load_order`; neither
      distribution ships both.)
    * ``/etc/kolla/nova-compute/nova.conf``: kolla-ansible's host copy; ``kolla_start`` copies
      it to ``/etc/nova/nova.conf`` inside the nova_compute container.
    * ``/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf``: TripleO's
      generated config, bind-mounted into the nova_compute container.
    * MicroStack snap (CanonicalLtd/microstack ``snap-overlay/snap-openstack.yaml``, entry
      point ``nova-compute``): ``config-files`` ``{snap}/etc/nova/nova.conf``, replaced by
      ``config-files-override`` ``{snap_common}/etc/nova/nova.conf`` when present, then
      ``config-dirs`` ``{snap_common}/etc/nova/nova.conf.d`` (snap = /snap/microstack/current,
      snap_common = /var/snap/microstack/common).
    * openstack-hypervisor snap (Sunbeam; canonical/snap-openstack-hypervisor
      ``openstack_hypervisor/hooks.py``: TEMPLATES renders ``etc/nova/nova.conf`` under
      ``$SNAP_COMMON`` and COMMON_DIRS creates ``etc/nova/nova.conf.d``).
    """
    return (
        "/etc/nova/nova.conf",
        "/etc/nova/nova.conf.d/*.conf",
        "/etc/nova/nova-compute.conf",
        "/etc/kolla/nova-compute/nova.conf",
        "/var/lib/config-data/puppet-generated/nova_libvirt/etc/nova/nova.conf",
        "/snap/microstack/current/etc/nova/nova.conf",
        "/var/snap/microstack/common/etc/nova/nova.conf",
        "/var/snap/microstack/common/etc/nova/nova.conf.d/*.conf",
        "/var/snap/openstack-hypervisor/common/etc/nova/nova.conf",
        "/var/snap/openstack-hypervisor/common/etc/nova/nova.conf.d/*.conf",
    )


def _ignored(ctx: Context) -> tuple[str, ...]:
    return tuple(why for _, why in discovery(ctx).ignored["nova-compute"])


def nova_conf(ctx: Context) -> Optional[NovaConf]:
    """The effective nova config, or None when there is no nova on this host."""

    def compute(c: Context) -> Optional[NovaConf]:
        procs = processes(c, "nova-compute")
        if procs:
            return _from_process(c, procs[0])
        loader = _Loader(c, None)
        paths: list[str] = []
        for loc in known_nova_config_locations():
            if "*" in loc:
                paths.extend(sorted(c.host.glob(loc)))
            elif c.host.exists(loc):
                paths.append(loc)
        confs = loader.load([("file", p) for p in paths], explicit_dirs=False)
        if not confs and not loader.unreadable:
            return None
        from hvcheck.parsers import novaconf as nc

        release = nova_release(c, None)
        ignored = _ignored(c)
        how = "known locations (nova-compute not running)"
        if ignored:
            how = f"known locations (no trusted nova-compute: {len(ignored)} ignored)"
        return NovaConf(
            nc.resolve_nova_libvirt(confs, nc.nova_schema(release.version, release.oslo_config)),
            how,
            None,
            release,
            "no process",
            tuple(loader.unreadable),
            ignored,
        )

    return ctx.fact("nova_conf", compute)
