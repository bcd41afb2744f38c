"""Built-in checks, in the order they are reported.

They are registered like any third-party check, through the ``hvcheck.checks`` entry-point
group (see pyproject.toml: ``builtin = "hvcheck.checks:BUILTIN"``). Those whose id is under
``guest.`` run only in ``hvcheck guest`` (the engine's ``scope``).
"""

from __future__ import annotations

from hvcheck.checks.apichecks import LibvirtCaps, NovaApi
from hvcheck.checks.binaries import InstancesBinary
from hvcheck.checks.guest import GUEST_CHECKS
from hvcheck.checks.hostchecks import BUILTIN_HOST_CHECKS
from hvcheck.checks.instancechecks import InstancesAccel
from hvcheck.checks.novachecks import NovaVirtType, QemuUserAccess
from hvcheck.checks.packages import HostPackages

BUILTIN = (
    *BUILTIN_HOST_CHECKS,  # ... host.os last
    HostPackages,
    NovaVirtType,
    QemuUserAccess,
    LibvirtCaps,
    InstancesAccel,
    InstancesBinary,
    NovaApi,
    *GUEST_CHECKS,  # run by `hvcheck guest` only (ids under guest.)
)
