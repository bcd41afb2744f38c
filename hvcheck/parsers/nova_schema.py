"""The option schema of each nova release: what nova-compute reads for ``[libvirt] virt_type``,
``cpu_mode`` and ``cpu_models``, under which names, with which defaults and choices.

Pure data and two functions (:func:`release_key`, :func:`nova_schema`); no I/O. Each entry of
``SCHEMAS`` cites the openstack/nova source it was read from (git tags and commits);
``NOVA_LIBVIRT_OPTS`` is the ``[libvirt]`` option list of ``nova/conf/libvirt.py``.
:mod:`hvcheck.parsers.novaconf` resolves a configuration against one of these schemas.
"""

import re
from typing import NamedTuple, Optional

__all__ = [
    "ALL_NAMES",
    "NEWEST_SCHEMA",
    "NOVA_LIBVIRT_OPTS",
    "SCHEMAS",
    "NovaSchema",
    "OptSpec",
    "nova_schema",
    "release_key",
]


class OptSpec(NamedTuple):
    """One nova option as ``cfg.StrOpt``/``cfg.ListOpt`` registers it."""

    group: str  # "libvirt" or "DEFAULT"
    name: str
    # (deprecated_group, deprecated_name) pairs, in order; a None group is the option's own
    deprecated: tuple[tuple[Optional[str], str], ...] = ()
    default: Optional[str] = None  # None: no default (the value is None when unset)
    choices: Optional[tuple[str, ...]] = None  # compared case-sensitively (types.String)
    is_list: bool = False  # ListOpt: the default is [] and the value a list

    @property
    def spelling(self) -> str:
        return f"[{self.group}] {self.name}"

    def names(self, group: Optional[str] = None) -> tuple[tuple[str, str], ...]:
        """(section, key) pairs oslo looks up, in order (``Opt._get_from_namespace``), for the
        option asked for in ``group`` (its own group unless given)."""
        g = group or self.group
        return ((g, self.name), *((dg or g, dn) for dg, dn in self.deprecated))


class NovaSchema(NamedTuple):
    """What one range of nova releases reads for ``virt_type``, ``cpu_mode``, ``cpu_models``.

    Each entry of ``SCHEMAS`` below cites the nova source it was read from (git tags of
    openstack/nova).
    """

    name: str  # "Wallaby (23.0.0) and later"
    virt_type: OptSpec
    cpu_mode: Optional[OptSpec]  # None: the release has no such option (Essex and older)
    cpu_models: Optional[OptSpec]
    flagfiles: bool  # gflags flagfiles (no sections) accepted
    # oslo.config's environment source (``OS_LIBVIRT__VIRT_TYPE``); oslo.config 6.7.0 added it
    # (commit ea8a0f6, "Add support for looking in environment for config"): stable/rocky holds
    # 6.4.x, stable/stein 6.8.x
    environment: bool
    # nova.virt.libvirt.driver ``_check_cpu_compatibility`` runs in ``init_host`` (Train on):
    # cpu_models without cpu_mode=custom, or custom without cpu_models, stop nova-compute
    cpu_checks_at_start: bool
    version: Optional[str] = None  # the nova version it was picked for; None: not known

    def options(self) -> tuple[OptSpec, ...]:
        return tuple(o for o in (self.virt_type, self.cpu_mode, self.cpu_models) if o)


_VT_ALL = ("kvm", "lxc", "qemu", "uml", "xen", "parallels")
_CPU_MODES = ("host-model", "host-passthrough", "custom", "none")

# (first release key, schema). Keys come from :func:`release_key`.
SCHEMAS: tuple[tuple[tuple[int, ...], NovaSchema], ...] = (
    # Diablo/Essex (nova/virt/libvirt/connection.py at 2012.1): flag libvirt_type, default kvm,
    # no CPU options; flagfiles (nova/compat/flagfile.py)
    (
        (0,),
        NovaSchema(
            "Essex (2012.1) and older",
            OptSpec("DEFAULT", "libvirt_type", default="kvm"),
            None,
            None,
            flagfiles=True,
            environment=False,
            cpu_checks_at_start=False,
        ),
    ),
    # Folsom (2012.2, nova/virt/libvirt/driver.py): libvirt_cpu_mode, libvirt_cpu_model added;
    # nova/compat/flagfile.py still there (removed by 492116d0f4 after the release)
    (
        (6,),
        NovaSchema(
            "Folsom (2012.2)",
            OptSpec("DEFAULT", "libvirt_type", default="kvm"),
            OptSpec("DEFAULT", "libvirt_cpu_mode"),
            OptSpec("DEFAULT", "libvirt_cpu_model"),
            flagfiles=True,
            environment=False,
            cpu_checks_at_start=False,
        ),
    ),
    # Grizzly (2013.1), Havana (2013.2): the same options, ini files only
    (
        (7,),
        NovaSchema(
            "Grizzly (2013.1) to Havana (2013.2)",
            OptSpec("DEFAULT", "libvirt_type", default="kvm"),
            OptSpec("DEFAULT", "libvirt_cpu_mode"),
            OptSpec("DEFAULT", "libvirt_cpu_model"),
            flagfiles=False,
            environment=False,
            cpu_checks_at_start=False,
        ),
    ),
    # Icehouse (2014.1): the [libvirt] group (6c8ae5ea0f "Move some libvirt specific flags into
    # a group"); the old names stay as deprecated_group='DEFAULT', deprecated_name='libvirt_*'
    (
        (9,),
        NovaSchema(
            "Icehouse (2014.1)",
            OptSpec("libvirt", "virt_type", (("DEFAULT", "libvirt_type"),), default="kvm"),
            OptSpec("libvirt", "cpu_mode", (("DEFAULT", "libvirt_cpu_mode"),)),
            OptSpec("libvirt", "cpu_model", (("DEFAULT", "libvirt_cpu_model"),)),
            flagfiles=False,
            environment=False,
            cpu_checks_at_start=False,
        ),
    ),
    # Juno (2014.2): d0a02fa390 "Remove deprecated config option names: Juno Edition" drops
    # [DEFAULT] libvirt_type and friends; nova ignores them from here on
    (
        (10,),
        NovaSchema(
            "Juno (2014.2) to Kilo (2015.1)",
            OptSpec("libvirt", "virt_type", default="kvm"),
            OptSpec("libvirt", "cpu_mode"),
            OptSpec("libvirt", "cpu_model"),
            flagfiles=False,
            environment=False,
            cpu_checks_at_start=False,
        ),
    ),
    # Liberty (12.0.0): choices for virt_type and cpu_mode (nova/virt/libvirt/driver.py; from
    # Newton 14.0.0 in nova/conf/libvirt.py); oslo.service logs every option at start
    # (log_opt_values), so a value outside the choices stops nova-compute
    (
        (12,),
        NovaSchema(
            "Liberty (12.0.0) to Rocky (18.x)",
            OptSpec("libvirt", "virt_type", default="kvm", choices=_VT_ALL),
            OptSpec("libvirt", "cpu_mode", choices=_CPU_MODES),
            OptSpec("libvirt", "cpu_model"),
            flagfiles=False,
            environment=False,
            cpu_checks_at_start=False,
        ),
    ),
    # Stein (19.0.0): same options; its oslo.config (6.8.x) reads the environment
    (
        (19,),
        NovaSchema(
            "Stein (19.0.0)",
            OptSpec("libvirt", "virt_type", default="kvm", choices=_VT_ALL),
            OptSpec("libvirt", "cpu_mode", choices=_CPU_MODES),
            OptSpec("libvirt", "cpu_model"),
            flagfiles=False,
            environment=True,
            cpu_checks_at_start=False,
        ),
    ),
    # Train (20.0.0, nova/conf/libvirt.py): cfg.ListOpt('cpu_models', deprecated_name=
    # 'cpu_model', default=[]); init_host runs _check_cpu_compatibility (ac7a0e8409)
    (
        (20,),
        NovaSchema(
            "Train (20.0.0) to Victoria (22.x)",
            OptSpec("libvirt", "virt_type", default="kvm", choices=_VT_ALL),
            OptSpec("libvirt", "cpu_mode", choices=_CPU_MODES),
            OptSpec("libvirt", "cpu_models", ((None, "cpu_model"),), is_list=True),
            flagfiles=False,
            environment=True,
            cpu_checks_at_start=True,
        ),
    ),
    # Wallaby (23.0.0): d02ce3c4f0 "libvirt: Drop support for UML" and 3a390c2c82 "libvirt:
    # Drop support for Xen": choices=('kvm', 'lxc', 'qemu', 'parallels'), as in nova 33.0.0
    (
        (23,),
        NovaSchema(
            "Wallaby (23.0.0) and later",
            OptSpec(
                "libvirt", "virt_type", default="kvm", choices=("kvm", "lxc", "qemu", "parallels")
            ),
            OptSpec("libvirt", "cpu_mode", choices=_CPU_MODES),
            OptSpec("libvirt", "cpu_models", ((None, "cpu_model"),), is_list=True),
            flagfiles=False,
            environment=True,
            cpu_checks_at_start=True,
        ),
    ),
)

# Every spelling any release read, per option: names the running release ignores are reported.
ALL_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "virt_type": (("libvirt", "virt_type"), ("DEFAULT", "libvirt_type")),
    "cpu_mode": (("libvirt", "cpu_mode"), ("DEFAULT", "libvirt_cpu_mode")),
    "cpu_models": (
        ("libvirt", "cpu_models"),
        ("libvirt", "cpu_model"),
        ("DEFAULT", "libvirt_cpu_model"),
    ),
}

# [libvirt] option names of nova (nova/conf/libvirt.py at openstack/nova 00a030403f, 2026): a
# "$name" seen from [libvirt] is one of these (oslo looks in the group first), or falls back
# to [DEFAULT]. Options are seldom removed; one added after that commit is looked up in
# [DEFAULT] as for a name nova does not have (cpu_models, virt_type are in the schema anyway).
NOVA_LIBVIRT_OPTS = frozenset(
    [
        "ceph_mount_options",
        "ceph_mount_point_base",
        "connection_uri",
        "cpu_mode",
        "cpu_model_extra_flags",
        "cpu_models",
        "cpu_power_governor_high",
        "cpu_power_governor_low",
        "cpu_power_management",
        "cpu_power_management_strategy",
        "device_detach_attempts",
        "device_detach_timeout",
        "disk_cachemodes",
        "disk_prefix",
        "enabled_perf_events",
        "file_backed_memory",
        "gid_maps",
        "hw_disk_discard",
        "hw_machine_type",
        "images_address_space_limit",
        "images_cpu_time_limit",
        "images_rbd_ceph_conf",
        "images_rbd_glance_copy_poll_interval",
        "images_rbd_glance_copy_timeout",
        "images_rbd_glance_store_name",
        "images_rbd_pool",
        "images_type",
        "images_volume_group",
        "inject_key",
        "inject_partition",
        "inject_password",
        "iscsi_iface",
        "iser_use_multipath",
        "live_migration_bandwidth",
        "live_migration_completion_timeout",
        "live_migration_downtime",
        "live_migration_downtime_delay",
        "live_migration_downtime_steps",
        "live_migration_inbound_addr",
        "live_migration_monitor_interval",
        "live_migration_parallel_connections",
        "live_migration_permit_auto_converge",
        "live_migration_permit_post_copy",
        "live_migration_scheme",
        "live_migration_timeout_action",
        "live_migration_tunnelled",
        "live_migration_uri",
        "live_migration_with_native_tls",
        "max_queues",
        "mem_stats_period_seconds",
        "migration_inbound_addr",
        "nfs_mount_options",
        "nfs_mount_point_base",
        "num_aoe_discover_tries",
        "num_iser_scan_tries",
        "num_nvme_discover_tries",
        "num_pcie_ports",
        "num_volume_scan_tries",
        "pmem_namespaces",
        "quobyte_client_cfg",
        "quobyte_mount_point_base",
        "rbd_connect_timeout",
        "rbd_destroy_volume_retries",
        "rbd_destroy_volume_retry_interval",
        "rbd_secret_uuid",
        "rbd_user",
        "realtime_scheduler_priority",
        "remote_filesystem_transport",
        "rescue_image_id",
        "rescue_kernel_id",
        "rescue_ramdisk_id",
        "rng_dev_path",
        "rx_queue_size",
        "smbfs_mount_options",
        "smbfs_mount_point_base",
        "snapshot_compression",
        "snapshot_image_format",
        "snapshots_directory",
        "sparse_logical_volumes",
        "supported_tpm_secret_security",
        "swtpm_enabled",
        "swtpm_group",
        "swtpm_user",
        "sysinfo_serial",
        "tb_cache_size",
        "tx_queue_size",
        "uid_maps",
        "use_default_aio_mode_for_volumes",
        "use_virtio_for_bridges",
        "virt_type",
        "volume_clear",
        "volume_clear_size",
        "volume_enforce_multipath",
        "volume_use_multipath",
        "vzstorage_cache_path",
        "vzstorage_log_path",
        "vzstorage_mount_group",
        "vzstorage_mount_opts",
        "vzstorage_mount_perms",
        "vzstorage_mount_point_base",
        "vzstorage_mount_user",
        "wait_soft_reboot_seconds",
    ]
)

_VERSION = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def release_key(version: str) -> Optional[tuple[int, ...]]:
    """A comparable key for a nova version as a package or distribution states it.

    Accepts PEP 440/pbr versions (``27.1.0``, ``27.1.1.dev12``, ``2014.2.4``) and Debian ones
    (``2:27.1.0-0ubuntu1``, ``1:2014.1-0ubuntu1``). The year-based versions of 2011-2015 map
    to the release's ordinal (Essex 2012.1 is 5, Kilo 2015.1 is 11; Liberty was 12.0.0), and
    every 2011 release (Bexar, Cactus, Diablo) to 4.

    >>> release_key("2:27.1.0-0ubuntu1"), release_key("2014.2.4"), release_key("nova")
    ((27, 1, 0), (10, 4), None)
    """
    v = version.strip()
    if ":" in v and v.split(":", 1)[0].isdigit():  # Debian epoch
        v = v.split(":", 1)[1]
    m = _VERSION.match(v)
    if m is None:
        return None
    nums = tuple(int(g) for g in m.groups() if g is not None)
    if nums[0] >= 2010:
        year, minor = nums[0], (nums[1] if len(nums) > 1 else 1)
        ordinal = 4 if year <= 2011 else (year - 2010) * 2 + min(minor, 2)
        return (ordinal, *nums[2:])
    return nums


def nova_schema(version: Optional[str], oslo_config_version: Optional[str] = None) -> NovaSchema:
    """The option schema of the nova release ``version``; the newest one when unknown.

    ``oslo_config_version``, when known, decides whether the environment is read (6.7.0 and
    later); otherwise the release's own oslo.config does.

    >>> nova_schema("2:23.2.1-0ubuntu1").virt_type.choices
    ('kvm', 'lxc', 'qemu', 'parallels')
    >>> nova_schema("2014.2").virt_type.deprecated, nova_schema(None).version
    ((), None)
    """
    key = release_key(version) if version else None
    schema = SCHEMAS[-1][1]
    if key is not None:
        for first, s in SCHEMAS:
            if key >= first:
                schema = s
    okey = release_key(oslo_config_version) if oslo_config_version else None
    if okey is not None:
        schema = schema._replace(environment=okey >= (6, 7))
    return schema._replace(version=version if key is not None else None)


NEWEST_SCHEMA = nova_schema(None)
