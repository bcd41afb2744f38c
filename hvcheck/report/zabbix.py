"""Zabbix: low-level discovery of instances and single values for UserParameters.

Discovery is JSON (escaped by ``json``, ASCII only); a value is printed through ``inert`` once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Optional

from hvcheck.report.escape import inert

if TYPE_CHECKING:
    from hvcheck.model import Verdict


def discovery(v: Verdict, verbose: bool = False) -> str:
    data = []
    for i in v.instances:
        nova = i.details.get("nova") or {}
        data.append(
            {
                "{#INSTANCE}": i.name or str(i.pid),
                "{#UUID}": i.uuid or "",
                "{#NOVA_UUID}": nova.get("instance_uuid") or "",
                "{#PID}": str(i.pid),
            }
        )
    return json.dumps({"data": data}, ensure_ascii=True) + "\n"


ITEMS = (
    "status",
    "kvm_usable",
    "instances",
    "kvm_instances",
    "tcg_instances",
    "unknown_instances",
    "instance_accel",
    "acceleration",
    "virt_type",
)


def value(v: Verdict, item: str, arg: Optional[str]) -> str:
    """One item's value, as text."""
    if item == "status":
        return str(v.exit_code)
    if item == "kvm_usable":
        return str({True: 1, False: 0, None: -1}[v.kvm_usable])
    if item in ("instances", "kvm_instances", "tcg_instances", "unknown_instances"):
        return str(v.counts()[item])
    if item == "acceleration":
        return inert(v.acceleration)
    if item == "virt_type":
        return inert(v.virt_type or "")
    if item == "instance_accel":
        for i in v.instances:
            nova = i.details.get("nova") or {}
            if arg in (i.name, i.uuid, str(i.pid), nova.get("instance_uuid")):
                return inert(i.accel)
        return "absent"
    raise ValueError(f"unknown item {item!r}")
