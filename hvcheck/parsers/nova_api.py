"""Parse Nova's ``os-hypervisors`` answers and find this host's record. No I/O here.

``GET /os-hypervisors/detail`` (and ``/os-hypervisors/{id}``) as documented in Nova's API
reference and ``doc/api_samples/os-hypervisors/``: microversion 2.1 gives integer ids and a
JSON *string* ``cpu_info``; 2.28 makes ``cpu_info`` an object; 2.53 switches ids to UUIDs and
adds ``hypervisor_hostname_pattern`` on ``detail``; 2.88 drops ``running_vms``, ``vcpus``,
``memory_mb``, ``local_gb``, ``current_workload``, ``free_*``, ``disk_available_least`` and
``cpu_info`` and adds ``uptime``.

Which record is this host's: Nova's libvirt driver sets ``hypervisor_hostname`` to libvirt's
``virConnectGetHostname()`` (``nova/virt/libvirt/host.py``: ``get_hostname``), which is
``gethostname()`` when that holds a dot and the canonical name from ``getaddrinfo`` otherwise
(libvirt ``src/util/virutil.c``: ``virGetHostnameImpl``) — usually the FQDN. The service's
``host`` is nova.conf's ``[DEFAULT] host``, which defaults to ``socket.gethostname()``.

``hypervisor_type`` is libvirt's ``virConnectGetType()``; for the QEMU driver that is
``"QEMU"`` whether ``[libvirt] virt_type`` is ``kvm`` or ``qemu`` (libvirt
``src/qemu/qemu_driver.c``: ``qemuConnectGetType`` returns ``"QEMU"``), so it says nothing
about acceleration. ``hypervisor_version`` is ``virConnectGetVersion()``: QEMU's version as
``major * 1000000 + minor * 1000 + micro``.

A record from Nova's 2.53 sample, adjusted in hostname and type:

>>> hv = parse_hypervisors({"hypervisors": [{
...     "hypervisor_hostname": "compute-1.example.org", "hypervisor_type": "QEMU",
...     "hypervisor_version": 8002002, "id": "1bb62a04-c576-402c-8147-9e89757a09e3",
...     "running_vms": 0, "state": "up", "status": "enabled",
...     "service": {"host": "compute-1", "id": "62f62f6e-a713-4cbe-87d3-3ecf8a1e0f8d",
...                 "disabled_reason": None}}]})
>>> hv[0].service_host, hv[0].running_vms, hv[0].version_text
('compute-1', 0, '8.2.2')
>>> names = HostNames(nodename="compute-1", fqdn="compute-1.example.org", nova_host=None)
>>> [(m.record.hypervisor_hostname, m.how) for m in match_hypervisors(hv, names)]
[('compute-1.example.org', 'hypervisor_hostname = FQDN')]
>>> next_page({"hypervisors_links": [{"rel": "next",
...     "href": "http://nova/v2.1/os-hypervisors/detail?limit=1&marker=1bb62a04"}]})
{'limit': '1', 'marker': '1bb62a04'}
"""

import json
from typing import Any, NamedTuple, Optional

__all__ = [
    "HostNames",
    "Hypervisor",
    "Match",
    "match_hypervisors",
    "next_page",
    "parse_hypervisors",
    "short_name",
]


def _str(v: Any) -> Optional[str]:
    if v is None or isinstance(v, (dict, list, bool)):
        return None
    s = str(v).strip()
    return s or None


def _int(v: Any) -> Optional[int]:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isascii() and v.strip().isdigit():
        return int(v.strip())
    return None


class Hypervisor(NamedTuple):
    """The fields of one hypervisor record that hvcheck reports (never the whole record)."""

    id: Optional[str]
    hypervisor_hostname: Optional[str]
    hypervisor_type: Optional[str]
    hypervisor_version: Optional[int]
    state: Optional[str]  # up | down
    status: Optional[str]  # enabled | disabled
    running_vms: Optional[int]  # absent from microversion 2.88 on
    service_host: Optional[str]
    disabled_reason: Optional[str]
    host_ip: Optional[str]

    @property
    def version_text(self) -> Optional[str]:
        """``hypervisor_version`` as QEMU's dotted version (libvirt's encoding)."""
        v = self.hypervisor_version
        if v is None or v < 0:
            return None
        return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"

    def to_json(self) -> dict[str, Any]:
        return dict(self._asdict())

    @classmethod
    def from_json(cls, d: Any) -> "Optional[Hypervisor]":
        if not isinstance(d, dict):
            return None
        return cls(
            id=_str(d.get("id")),
            hypervisor_hostname=_str(d.get("hypervisor_hostname")),
            hypervisor_type=_str(d.get("hypervisor_type")),
            hypervisor_version=_int(d.get("hypervisor_version")),
            state=_str(d.get("state")),
            status=_str(d.get("status")),
            running_vms=_int(d.get("running_vms")),
            service_host=_str(d.get("service_host")),
            disabled_reason=_str(d.get("disabled_reason")),
            host_ip=_str(d.get("host_ip")),
        )


def _record(r: Any) -> Optional[Hypervisor]:
    if not isinstance(r, dict):
        return None
    svc = r.get("service")
    svc = svc if isinstance(svc, dict) else {}
    return Hypervisor(
        id=_str(r.get("id")),
        hypervisor_hostname=_str(r.get("hypervisor_hostname")),
        hypervisor_type=_str(r.get("hypervisor_type")),
        hypervisor_version=_int(r.get("hypervisor_version")),
        state=_str(r.get("state")),
        status=_str(r.get("status")),
        running_vms=_int(r.get("running_vms")),
        service_host=_str(svc.get("host")),
        disabled_reason=_str(svc.get("disabled_reason")),
        host_ip=_str(r.get("host_ip")),
    )


def parse_hypervisors(doc: Any) -> list[Hypervisor]:
    """Records of a ``{"hypervisors": [...]}`` or ``{"hypervisor": {...}}`` body (or its text).

    Anything that is not such a document gives ``[]``; malformed records are dropped.
    """
    if isinstance(doc, (str, bytes)):
        try:
            doc = json.loads(doc)
        except ValueError:
            return []
    if not isinstance(doc, dict):
        return []
    raw = doc.get("hypervisors")
    if raw is None and isinstance(doc.get("hypervisor"), dict):
        raw = [doc["hypervisor"]]
    if not isinstance(raw, list):
        return []
    return [h for h in (_record(r) for r in raw) if h is not None]


def next_page(doc: Any) -> Optional[dict[str, str]]:
    """The query (``marker``, ``limit``) of the ``next`` link, or None on the last page.

    Only the query is taken: the link's scheme and host are the API's idea of its own address,
    which behind a proxy can be unreachable, so the caller re-applies it to the endpoint it used.
    """
    if not isinstance(doc, dict):
        return None
    links = doc.get("hypervisors_links")
    if not isinstance(links, list):
        return None
    for link in links:
        if (
            isinstance(link, dict)
            and link.get("rel") == "next"
            and isinstance(link.get("href"), str)
        ):
            from urllib.parse import parse_qs, urlsplit

            q = parse_qs(urlsplit(link["href"]).query)
            out = {k: v[-1] for k, v in q.items() if k in ("marker", "limit") and v}
            return out if "marker" in out else None
    return None


def short_name(name: str) -> str:
    """``compute-1.example.org.`` -> ``compute-1`` (lower-cased)."""
    return _norm(name).split(".", 1)[0]


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


class HostNames(NamedTuple):
    """The names this host may be known by in Nova."""

    nodename: str
    """``uname -n`` (``gethostname()``): nova's default ``[DEFAULT] host``."""
    fqdn: Optional[str]
    """The canonical name (``getaddrinfo(AI_CANONNAME)``), as libvirt's ``getHostname``."""
    nova_host: Optional[str]
    """nova.conf's ``[DEFAULT] host`` when set."""

    def describe(self) -> str:
        parts = [f"hostname {self.nodename}"]
        if self.fqdn and _norm(self.fqdn) != _norm(self.nodename):
            parts.append(f"FQDN {self.fqdn}")
        if self.nova_host:
            parts.append(f"nova.conf host {self.nova_host}")
        return ", ".join(parts)


class Match(NamedTuple):
    record: Hypervisor
    how: str
    exact: bool


def match_hypervisors(records: list[Hypervisor], names: HostNames) -> list[Match]:
    """Records that describe this host, with how each matched.

    Exact matches (``hypervisor_hostname`` equal to the FQDN or hostname, ``service.host``
    equal to nova.conf's host or the hostname) win; only without any is a record whose short
    name equals this host's short name accepted (two sites can share short names).
    Comparison is case-insensitive and ignores a trailing dot, as DNS does.
    """
    node = _norm(names.nodename) if names.nodename else ""
    fqdn = _norm(names.fqdn) if names.fqdn else ""
    nova_host = _norm(names.nova_host) if names.nova_host else ""
    exact: list[Match] = []
    loose: list[Match] = []
    for r in records:
        hh = _norm(r.hypervisor_hostname or "")
        sh = _norm(r.service_host or "")
        how: Optional[str] = None
        if hh and fqdn and hh == fqdn:
            how = "hypervisor_hostname = FQDN"
        elif hh and node and hh == node:
            how = "hypervisor_hostname = hostname"
        elif sh and nova_host and sh == nova_host:
            how = "service host = nova.conf [DEFAULT] host"
        elif sh and node and not nova_host and sh == node:
            how = "service host = hostname"
        if how:
            exact.append(Match(r, how, True))
            continue
        if node and hh and short_name(hh) == short_name(node):
            loose.append(Match(r, "short hypervisor_hostname = short hostname", False))
        elif node and sh and short_name(sh) == short_name(node):
            loose.append(Match(r, "short service host = short hostname", False))
    return exact or loose
