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

import re
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = [
    "MAX_XML_CHARS",
    "CacheMachine",
    "Capabilities",
    "CapsCache",
    "DomainCapabilities",
    "Guest",
    "parse_capabilities",
    "parse_caps_cache",
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


def _text(el: "Optional[ET.Element]") -> Optional[str]:
    if el is None or el.text is None:
        return None
    v = el.text.strip()
    return v or None


def _root(text: object, tag: str) -> "Optional[ET.Element]":
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


# ---------------------------------------------------------------------------------------------
# libvirt's own capability cache: /var/cache/libvirt/qemu/capabilities/<sha256 of binary>.xml
# ---------------------------------------------------------------------------------------------
class CacheMachine(NamedTuple):
    """One ``<machine type=ACCEL name=... alias=... maxCpus=... default='yes'/>``."""

    accel: str  # kvm | tcg | hvf
    name: str
    alias: Optional[str]
    max_cpus: Optional[int]
    default: bool


class CapsCache(NamedTuple):
    """What libvirt's QEMU driver cached about one QEMU binary, as
    ``virQEMUCapsFormatCache`` (src/qemu/qemu_capabilities.c) writes it and
    ``virQEMUCapsIsValid`` checks it before use.

    The times are whole seconds as libvirt stores them: ``qemuctime`` the binary's
    ``st_ctime`` when probed, ``qemumoddirmtime`` the ``st_mtime`` of QEMU's module
    directory (only written when it existed), ``selfctime`` libvirt's own
    ``virGetSelfLastChanged()`` (the newest ctime of the daemon and the driver modules it
    loaded), ``selfvers`` ``LIBVIR_VERSION_NUMBER`` (9.0.0 is 9000000).
    """

    emulator: Optional[str]
    qemuctime: Optional[int]
    qemumoddirmtime: Optional[int]
    selfctime: Optional[int]
    selfvers: Optional[int]
    flags: frozenset[str]
    """``<flag name=.../>``: ``kvm`` when the probe found KVM enabled (query-kvm), ``tcg``."""
    version: Optional[int]
    """QEMU's version, major * 1000000 + minor * 1000 + micro (7.2.22 is 7002022)."""
    kvm_version: Optional[int]
    microcode_version: Optional[int]
    host_cpu_signature: Optional[str]
    package: Optional[str]
    kernel_version: Optional[str]
    """``uname -r`` and ``uname -v`` when probed (``"%s %s"``, release and version)."""
    arch: Optional[str]
    host_cpu: tuple[str, ...]
    """The ``type`` of each ``<hostCPU>`` (``kvm`` when a KVM host CPU model was probed)."""
    machines: tuple[CacheMachine, ...]
    kvm_supports_nesting: bool

    @property
    def kvm(self) -> bool:
        """libvirt found KVM usable when it probed this binary (QEMU_CAPS_KVM)."""
        return "kvm" in self.flags

    def domain_types(self) -> tuple[str, ...]:
        """The ``<domain type>`` values libvirt's capabilities list for this binary's guests
        (virQEMUCapsInitGuestFromBinary: ``qemu`` with TCG, ``kvm`` with KVM)."""
        out = []
        if "tcg" in self.flags or not self.flags & {"kvm", "hvf"}:
            out.append("qemu")
        if self.kvm:
            out.append("kvm")
        return tuple(out)

    def default_machine(self, accel: str) -> Optional[CacheMachine]:
        """The machine libvirt prefers for ``accel``: the first listed
        (virQEMUCapsGetPreferredMachine), which the probe puts QEMU's default first for."""
        found = [m for m in self.machines if m.accel == accel]
        for m in found:
            if m.default:
                return m
        return found[0] if found else None


def _int(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    t = text.strip()
    return int(t) if t.isascii() and t.isdigit() and len(t) <= 20 else None


def parse_caps_cache(text: str) -> Optional[CapsCache]:
    """Parse one ``<qemuCaps>`` cache file; None when refused, malformed or another document.

    Shortened from this project's machine (libvirt 9.0.0, QEMU 7.2,
    ``/var/cache/libvirt/qemu/capabilities/926803a9...c725.xml``):

    >>> c = parse_caps_cache(
    ...     "<qemuCaps><emulator>/usr/bin/qemu-system-x86_64</emulator>"
    ...     "<qemuctime>1796522193</qemuctime><qemumoddirmtime>1796522192</qemumoddirmtime>"
    ...     "<selfctime>1796522191</selfctime><selfvers>9000000</selfvers>"
    ...     "<flag name='kvm'/><flag name='tcg'/><version>7002022</version>"
    ...     "<kvmVersion>0</kvmVersion><microcodeVersion>16777317</microcodeVersion>"
    ...     "<kernelVersion>6.18.44-fc-v1272 #1 SMP PREEMPT_DYNAMIC @0</kernelVersion>"
    ...     "<arch>x86_64</arch><hostCPU type='kvm' model='base' migratability='yes'/>"
    ...     "<machine type='kvm' name='pc-i440fx-7.2' alias='pc' hotplugCpus='yes' "
    ...     "maxCpus='255' default='yes'/><machine type='tcg' name='pc-q35-7.2' "
    ...     "alias='q35' maxCpus='288'/></qemuCaps>")
    >>> c.emulator, c.qemuctime, c.selfvers, c.kvm, c.domain_types(), c.host_cpu
    ('/usr/bin/qemu-system-x86_64', 1796522193, 9000000, True, ('qemu', 'kvm'), ('kvm',))
    >>> c.default_machine("kvm").name, c.default_machine("kvm").max_cpus
    ('pc-i440fx-7.2', 255)
    >>> parse_caps_cache("<capabilities/>") is None
    True
    """
    try:
        root = _root(text, "qemuCaps")
        if root is None:
            return None
        flags = frozenset(n for el in root.findall("flag") if (n := (el.get("name") or "").strip()))
        machines = []
        for el in root.findall("machine"):
            name = (el.get("name") or "").strip()
            if not name:
                continue
            machines.append(
                CacheMachine(
                    accel=(el.get("type") or "").strip(),
                    name=name,
                    alias=(el.get("alias") or "").strip() or None,
                    max_cpus=_int(el.get("maxCpus")),
                    default=(el.get("default") or "") == "yes",
                )
            )
        return CapsCache(
            emulator=_text(root.find("emulator")),
            qemuctime=_int(_text(root.find("qemuctime"))),
            qemumoddirmtime=_int(_text(root.find("qemumoddirmtime"))),
            selfctime=_int(_text(root.find("selfctime"))),
            selfvers=_int(_text(root.find("selfvers"))),
            flags=flags,
            version=_int(_text(root.find("version"))),
            kvm_version=_int(_text(root.find("kvmVersion"))),
            microcode_version=_int(_text(root.find("microcodeVersion"))),
            host_cpu_signature=_text(root.find("hostCPUSignature")),
            package=_text(root.find("package")),
            kernel_version=_text(root.find("kernelVersion")),
            arch=_text(root.find("arch")),
            host_cpu=tuple((el.get("type") or "").strip() for el in root.findall("hostCPU")),
            machines=tuple(machines),
            kvm_supports_nesting=root.find("kvmSupportsNesting") is not None,
        )
    except Exception:  # ParseError, RecursionError, ...: never raise
        return None
