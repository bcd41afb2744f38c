"""Parse libvirt QEMU domain XML: the persistent definition and the live status file.

Two real-world shapes, read with :mod:`xml.etree.ElementTree`, no I/O here:

* ``/etc/libvirt/qemu/NAME.xml``, the persistent definition, root ``<domain type='kvm'>``
  (libvirt's ``virDomainDefFormat``; the ``type`` is the hypervisor: ``kvm`` means KVM,
  ``qemu`` means plain QEMU, i.e. TCG, and ``hvf`` Apple's Hypervisor.framework);
* ``/run/libvirt/qemu/NAME.xml``, the status file libvirtd keeps for a running guest, root
  ``<domstatus state='running' reason='booted' pid='...'>`` wrapping the live ``<domain>``
  (format as in libvirt's ``tests/qemustatusxml2xmldata/*.xml``).

OpenStack Nova adds ``<metadata><nova:instance>`` (namespaces
``http://openstack.org/xmlns/libvirt/nova/1.0``, ``1.1``, ``1.2``), written by
``nova/virt/libvirt/config.py`` (``LibvirtConfigGuestMetaNovaInstance`` and its
``...Flavor`` / ``...Owner`` parts); the libvirt ``<uuid>`` of such a guest is the Nova
instance uuid.

The XML is tenant-influenced (guest names, Nova metadata), so documents with a DOCTYPE or
ENTITY declaration are refused before parsing (no entity is ever expanded), input over
:data:`MAX_XML_CHARS` is refused, and any failure gives ``None`` instead of an exception.

A shortened status file in libvirt's format:

>>> d = parse_domain_xml(
...     "<domstatus state='running' reason='booted' pid='4242'>"
...     "<domain type='kvm' id='1'><name>instance-0000002a</name>"
...     "<uuid>0e0b4b5c-7f5a-4c3e-9d55-2f6c8d9f1a01</uuid>"
...     "<os><type arch='x86_64' machine='pc-q35-8.2'>hvm</type></os>"
...     "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>"
...     "</domain></domstatus>")
>>> d.domain_type, d.name, d.pid, d.arch, accel_from_domain_type(d.domain_type)
('kvm', 'instance-0000002a', 4242, 'x86_64', 'kvm')
>>> parse_domain_xml("<!DOCTYPE d [<!ENTITY a 'x'>]><domain type='kvm'/>") is None
True
"""

import re
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

__all__ = [
    "MAX_XML_CHARS",
    "DomainXml",
    "NovaMeta",
    "accel_from_domain_type",
    "parse_domain_xml",
]

MAX_XML_CHARS = 4 * 1024 * 1024
"""Larger documents are refused (a real domain or status XML is a few tens of KiB)."""

# A DTD can only appear through "<!DOCTYPE" (ENTITY declarations live inside its internal
# subset); both are refused wherever they appear, case-insensitively, comments and CDATA
# included, so expat never sees a DTD and nothing is ever expanded.
_DTD_MARKUP = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)

# nova/virt/libvirt/config.py NOVA_NS: "http://openstack.org/xmlns/libvirt/nova/1.0" in older
# Nova, then 1.1 and 1.2; any version under this prefix is accepted.
_NOVA_NS_PREFIX = "http://openstack.org/xmlns/libvirt/nova/"

# A Linux pid: ASCII digits only (int() would also take "+1", " 1", "1_0" and non-ASCII digits).
_PID = re.compile(r"[0-9]{1,10}")


class NovaMeta(NamedTuple):
    """``<metadata><nova:instance>`` written by Nova's libvirt driver."""

    name: Optional[str]
    """``<nova:name>``: the instance's display name."""
    flavor: Optional[str]
    """``<nova:flavor name="...">``."""
    project: Optional[str]
    """``<nova:owner><nova:project uuid="...">NAME</nova:project>``: the project name."""
    project_uuid: Optional[str]
    """The ``uuid`` attribute of ``<nova:project>``."""
    user: Optional[str]
    """``<nova:owner><nova:user uuid="...">NAME</nova:user>``: the user name."""
    user_uuid: Optional[str] = None
    """The ``uuid`` attribute of ``<nova:user>``."""


class DomainXml(NamedTuple):
    """What hvcheck needs from a libvirt domain or status XML."""

    domain_type: Optional[str]
    """``<domain type=...>``: kvm | qemu | hvf | ... (see :func:`accel_from_domain_type`)."""
    name: Optional[str]
    """``<name>``."""
    uuid: Optional[str]
    """``<uuid>``; for a Nova guest this is the Nova instance uuid."""
    emulator: Optional[str]
    """``<devices><emulator>``: the QEMU binary libvirt runs."""
    arch: Optional[str]
    """``<os><type arch=...>``."""
    pid: Optional[int]
    """``<domstatus pid=...>``: the QEMU process id (status XML only)."""
    nova: Optional[NovaMeta]
    """Nova metadata, when the guest is a Nova instance."""


def accel_from_domain_type(t: Optional[str]) -> str:
    """The accelerator a libvirt domain type asks QEMU for.

    libvirt's QEMU driver starts ``type='kvm'`` guests with KVM and ``type='qemu'`` guests
    with TCG (it writes ``-accel kvm`` / ``-accel tcg``, formerly ``-machine accel=``);
    other types (``hvf``, ...) are the accelerator's own name.

    >>> [accel_from_domain_type(t) for t in ("kvm", "qemu", "hvf", None)]
    ['kvm', 'tcg', 'hvf', 'unknown']
    """
    if not isinstance(t, str) or not t.strip():
        return "unknown"
    t = t.strip()
    if t == "kvm":
        return "kvm"
    if t == "qemu":
        return "tcg"
    return t


def _text(el: "Optional[ET.Element]") -> Optional[str]:
    if el is None or el.text is None:
        return None
    value = el.text.strip()
    return value or None


def _attr(el: "Optional[ET.Element]", name: str) -> Optional[str]:
    if el is None:
        return None
    value = el.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _parse_pid(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    value = value.strip()
    if not _PID.fullmatch(value):
        return None
    pid = int(value)
    return pid if pid > 0 else None


def _nova(domain: "ET.Element") -> Optional[NovaMeta]:
    metadata = domain.find("metadata")
    if metadata is None:
        return None
    for child in metadata:
        tag = child.tag
        if not isinstance(tag, str) or not tag.startswith("{"):
            continue
        ns, _, local = tag[1:].partition("}")
        if local != "instance" or not ns.startswith(_NOVA_NS_PREFIX):
            continue
        q = "{" + ns + "}"
        project = child.find(f"{q}owner/{q}project")
        user = child.find(f"{q}owner/{q}user")
        return NovaMeta(
            name=_text(child.find(f"{q}name")),
            flavor=_attr(child.find(f"{q}flavor"), "name"),
            project=_text(project),
            project_uuid=_attr(project, "uuid"),
            user=_text(user),
            user_uuid=_attr(user, "uuid"),
        )
    return None


def _domain(domain: "Optional[ET.Element]", pid: Optional[int]) -> DomainXml:
    if domain is None:
        return DomainXml(
            domain_type=None, name=None, uuid=None, emulator=None, arch=None, pid=pid, nova=None
        )
    return DomainXml(
        domain_type=_attr(domain, "type"),
        name=_text(domain.find("name")),
        uuid=_text(domain.find("uuid")),
        emulator=_text(domain.find("devices/emulator")),
        arch=_attr(domain.find("os/type"), "arch"),
        pid=pid,
        nova=_nova(domain),
    )


def parse_domain_xml(text: str) -> Optional[DomainXml]:
    """Parse a libvirt ``<domain>`` or ``<domstatus>`` document.

    None when the input is not a str, is over :data:`MAX_XML_CHARS`, contains a DOCTYPE or
    ENTITY declaration, is not well-formed, or its root is neither ``domain`` nor
    ``domstatus``. A ``domstatus`` without a ``domain`` inside gives only ``pid``.
    """
    try:
        if not isinstance(text, str) or len(text) > MAX_XML_CHARS:
            return None
        if _DTD_MARKUP.search(text):
            return None
        import xml.etree.ElementTree as ET  # only when there is XML to read

        root = ET.fromstring(text)
        if root.tag == "domain":
            return _domain(root, None)
        if root.tag == "domstatus":
            return _domain(root.find("domain"), _parse_pid(root.get("pid")))
        return None
    except Exception:  # ParseError, ValueError, RecursionError, ...: never raise
        return None
