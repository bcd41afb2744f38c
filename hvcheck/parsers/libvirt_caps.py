"""Parse libvirt's capabilities and domain capabilities XML (what libvirt offers to guests).

Two documents, read with :mod:`xml.etree.ElementTree`, no I/O here:

* ``virsh capabilities`` / ``virConnectGetCapabilities``: root ``<capabilities>``, the host
  (``<host><cpu><arch>``) and one ``<guest>`` per emulator and architecture, each listing the
  ``<domain type=...>`` values libvirt accepts for it (format: libvirt's
  ``docs/formatcaps.rst``). ``<domain type='kvm'/>`` under the host's architecture is libvirt's
  claim that KVM guests can be defined; libvirt derives it from probing QEMU
  (``src/qemu/qemu_capabilities.c``: ``virQEMUCapsInitGuestFromBinary`` adds the ``kvm``
  domain when the probed binary reports KVM), and it re-probes when ``/dev/kvm``'s ctime
  changes (``virQEMUCapsIsValid`` compares the stored ``kvmctime``).
* ``virsh domcapabilities --virttype kvm`` / ``virConnectGetDomainCapabilities``: root
  ``<domainCapabilities>`` for one emulator, machine and virt type (``docs/formatdomaincaps.rst``).
  ``host-passthrough`` CPU mode is only ever ``supported='yes'`` for KVM (and HVF) domains.

The XML comes from a local daemon, but the same discipline as :mod:`hvcheck.parsers.libvirt_xml`
applies: documents with a DOCTYPE or ENTITY declaration are refused before parsing, input over
:data:`MAX_XML_CHARS` is refused, and any failure gives ``None`` instead of an exception.

Shortened from ``virsh capabilities`` on this project's own x86_64 machine (libvirt 9.0.0):

>>> caps = parse_capabilities(
...     "<capabilities><host><uuid>3626d57f-3fb5-4714-a5bf-fad3bf966381</uuid>"
...     "<cpu><arch>x86_64</arch><model>kvm64</model><vendor>AMD</vendor></cpu></host>"
...     "<guest><os_type>hvm</os_type><arch name='i686'><wordsize>32</wordsize>"
...     "<emulator>/usr/bin/qemu-system-i386</emulator>"
...     "<domain type='qemu'/><domain type='kvm'/></arch></guest>"
...     "<guest><os_type>hvm</os_type><arch name='x86_64'><wordsize>64</wordsize>"
...     "<emulator>/usr/bin/qemu-system-x86_64</emulator>"
...     "<machine maxCpus='255'>pc-i440fx-7.2</machine>"
...     "<domain type='qemu'/><domain type='kvm'/></arch></guest></capabilities>")
>>> caps.host_arch, [g.arch for g in caps.guests]
('x86_64', ['i686', 'x86_64'])
>>> g = caps.guest_for("x86_64")
>>> g.domain_types, g.emulator, caps.offers_kvm("x86_64")
(('qemu', 'kvm'), '/usr/bin/qemu-system-x86_64', True)
>>> dc = parse_domain_capabilities(
...     "<domainCapabilities><path>/usr/bin/qemu-system-x86_64</path><domain>kvm</domain>"
...     "<machine>pc-i440fx-7.2</machine><arch>x86_64</arch><vcpu max='255'/>"
...     "<cpu><mode name='host-passthrough' supported='yes'/></cpu></domainCapabilities>")
>>> dc.domain, dc.emulator, dc.machine, dc.vcpu_max, dc.host_passthrough
('kvm', '/usr/bin/qemu-system-x86_64', 'pc-i440fx-7.2', 255, True)
>>> parse_capabilities("<!DOCTYPE c [<!ENTITY a 'x'>]><capabilities/>") is None
True
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = [
    "MAX_XML_CHARS",
    "Capabilities",
    "DomainCapabilities",
    "Guest",
    "parse_capabilities",
    "parse_domain_capabilities",
]

MAX_XML_CHARS = 4 * 1024 * 1024
"""Larger documents are refused (a real capabilities XML is tens of KiB)."""

_DTD_MARKUP = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_INT = re.compile(r"[0-9]{1,9}")


class Guest(NamedTuple):
    """One ``<guest>``: an OS type and architecture with the virt types libvirt accepts."""

    os_type: Optional[str]
    """``<os_type>``: ``hvm`` for full virtualization."""
    arch: Optional[str]
    """``<arch name=...>``."""
    emulator: Optional[str]
    """``<arch><emulator>``: the QEMU binary."""
    domain_types: tuple[str, ...]
    """``<domain type=...>`` values, in document order (``qemu``, ``kvm``, ...)."""
    machines: tuple[str, ...]
    """``<machine>`` names (first few dozen at most)."""


class Capabilities(NamedTuple):
    host_arch: Optional[str]
    """``<host><cpu><arch>``."""
    host_cpu_model: Optional[str]
    """``<host><cpu><model>`` (libvirt's closest named model)."""
    guests: tuple[Guest, ...]

    def guest_for(self, arch: Optional[str], os_type: str = "hvm") -> Optional[Guest]:
        """The guest entry for ``arch`` (the host's when None) and ``os_type``."""
        want = arch or self.host_arch
        for g in self.guests:
            if g.arch == want and (g.os_type or "hvm") == os_type:
                return g
        return None

    def offers_kvm(self, arch: Optional[str] = None) -> bool:
        """True when libvirt accepts ``<domain type='kvm'>`` hvm guests for ``arch``."""
        g = self.guest_for(arch)
        return g is not None and "kvm" in g.domain_types


class DomainCapabilities(NamedTuple):
    emulator: Optional[str]
    """``<path>``: the QEMU binary the answer is about."""
    domain: Optional[str]
    """``<domain>``: the virt type (``kvm``, ``qemu``)."""
    machine: Optional[str]
    """``<machine>``: the canonical default machine type."""
    arch: Optional[str]
    vcpu_max: Optional[int]
    """``<vcpu max=...>``."""
    host_passthrough: Optional[bool]
    """``<cpu><mode name='host-passthrough' supported=...>``; None when absent."""


def _text(el: Optional[ET.Element]) -> Optional[str]:
    if el is None or el.text is None:
        return None
    v = el.text.strip()
    return v or None


def _root(text: object, tag: str) -> Optional[ET.Element]:
    if not isinstance(text, str) or len(text) > MAX_XML_CHARS or _DTD_MARKUP.search(text):
        return None
    import xml.etree.ElementTree as ET  # only when there is XML to read

    root = ET.fromstring(text)
    return root if root.tag == tag else None


def parse_capabilities(text: str) -> Optional[Capabilities]:
    """Parse ``<capabilities>``; None when refused, malformed, or another document."""
    try:
        root = _root(text, "capabilities")
        if root is None:
            return None
        guests = []
        for g in root.findall("guest"):
            a = g.find("arch")
            domains = (
                tuple(t for d in a.findall("domain") if (t := (d.get("type") or "").strip()))
                if a is not None
                else ()
            )
            machines = (
                tuple(m for el in a.findall("machine")[:64] if (m := _text(el)))
                if a is not None
                else ()
            )
            guests.append(
                Guest(
                    os_type=_text(g.find("os_type")),
                    arch=(a.get("name") or "").strip() or None if a is not None else None,
                    emulator=_text(a.find("emulator")) if a is not None else None,
                    domain_types=domains,
                    machines=machines,
                )
            )
        return Capabilities(
            host_arch=_text(root.find("host/cpu/arch")),
            host_cpu_model=_text(root.find("host/cpu/model")),
            guests=tuple(guests),
        )
    except Exception:  # ParseError, RecursionError, ...: never raise
        return None


def parse_domain_capabilities(text: str) -> Optional[DomainCapabilities]:
    """Parse ``<domainCapabilities>``; None when refused, malformed, or another document."""
    try:
        root = _root(text, "domainCapabilities")
        if root is None:
            return None
        vcpu = root.find("vcpu")
        vmax = (vcpu.get("max") or "").strip() if vcpu is not None else ""
        hp: Optional[bool] = None
        for mode in root.findall("cpu/mode"):
            if mode.get("name") == "host-passthrough":
                hp = (mode.get("supported") or "").strip() == "yes"
        return DomainCapabilities(
            emulator=_text(root.find("path")),
            domain=_text(root.find("domain")),
            machine=_text(root.find("machine")),
            arch=_text(root.find("arch")),
            vcpu_max=int(vmax) if _INT.fullmatch(vmax) else None,
            host_passthrough=hp,
        )
    except Exception:
        return None
