"""The host layer: every byte hvcheck reads comes through here.

- :mod:`hvcheck.host.base`: the :class:`Host` interface and its records,
- :mod:`hvcheck.host.live`: :class:`LiveHost`, the running system,
- :mod:`hvcheck.host.snapshot`: :class:`SnapshotHost` (a directory or a ``.tar.gz`` made by
  ``hvcheck collect``),
- :mod:`hvcheck.host.recorder`: :class:`RecordingHost`, what ``collect`` writes,
- :mod:`hvcheck.host.procdir`: one ``/proc/<pid>`` read relative to a directory fd.

The outside services (libvirt, Nova) are :mod:`hvcheck.services`. Checks never import ``os``
or ``pyudev`` themselves: that keeps ``--root`` honest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from hvcheck.host.base import (
    MARKER,
    MAX_READ,
    MAX_SNAPSHOT_TOTAL,
    CapsResult,
    DeviceInfo,
    ExeRecord,
    FileStamp,
    FileStat,
    Host,
    KernelLog,
    MsrResult,
    OsInfo,
    ProbeResult,
    ProcessGone,
    ProcessTable,
    ProcInfo,
    ProcView,
    RpmRead,
    SnapshotError,
    Uname,
    os_info_from_distro,
)
from hvcheck.host.live import LiveHost

if TYPE_CHECKING:
    from hvcheck.host.recorder import RecordingHost
    from hvcheck.host.snapshot import SnapshotHost

# loaded when first named (PEP 562): a live probe reads no snapshot and records nothing, so it
# does not import the snapshot reader, the recorder and its redaction rules
_LAZY = {
    "RecordingHost": "hvcheck.host.recorder",
    "SnapshotHost": "hvcheck.host.snapshot",
}


def open_host(root: Optional[str]) -> Host:
    """The live host (``root`` None) or the snapshot at ``root``; SnapshotError if unusable.
    The snapshot reader is imported only for a snapshot."""
    if root is None:
        return LiveHost()
    from hvcheck.host.snapshot import SnapshotHost

    return SnapshotHost(root)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "MARKER",
    "MAX_READ",
    "MAX_SNAPSHOT_TOTAL",
    "CapsResult",
    "DeviceInfo",
    "ExeRecord",
    "FileStamp",
    "FileStat",
    "Host",
    "KernelLog",
    "LiveHost",
    "MsrResult",
    "OsInfo",
    "ProbeResult",
    "ProcInfo",
    "ProcView",
    "ProcessGone",
    "ProcessTable",
    "RecordingHost",
    "RpmRead",
    "SnapshotError",
    "SnapshotHost",
    "Uname",
    "open_host",
    "os_info_from_distro",
]
