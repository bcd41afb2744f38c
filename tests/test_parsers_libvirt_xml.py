"""hvcheck.parsers.libvirt_xml against real domain XML (../shared/corpus) and hostile input."""

from __future__ import annotations

import doctest
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import CORPUS, manifest, require_corpus
from hvcheck.parsers import libvirt_xml
from hvcheck.parsers.libvirt_xml import (
    MAX_XML_CHARS,
    DomainXml,
    NovaMeta,
    accel_from_domain_type,
    parse_domain_xml,
)


def _corpus_params() -> list[Any]:
    rows = manifest("libvirt-xml")
    if not rows:
        # Keep the test collected (and skipped by require_corpus) on a fresh clone.
        return [pytest.param(None, {}, id="corpus-absent")]
    return [pytest.param(f, facts, id=f.rsplit("/", 1)[-1]) for f, facts, _ in rows]


@pytest.mark.parametrize(("file", "facts"), _corpus_params())
def test_corpus_domain_xml(file: str | None, facts: dict[str, str]) -> None:
    require_corpus()
    assert file is not None
    d = parse_domain_xml((CORPUS / file).read_text(encoding="utf-8"))
    assert d is not None
    assert d.domain_type == facts["domain_type"]
    assert d.emulator == facts["emulator"]
    assert accel_from_domain_type(d.domain_type) == facts["accel"]
    if "arch" in facts:
        assert d.arch == facts["arch"]
    assert d.pid is None  # persistent definitions carry no pid
    assert d.name
    assert d.uuid


def test_corpus_nova_metadata() -> None:
    """insights-core's RHOSP sample: a Nova instance as saved in /etc/libvirt/qemu."""
    require_corpus()
    d = parse_domain_xml(
        (CORPUS / "libvirt-xml" / "insights-core_XML_RHOSP.xml").read_text(encoding="utf-8")
    )
    assert d is not None
    assert (d.name, d.uuid) == ("instance-000008d6", "601da52c-450f-4d8e-b502-503431536fa69")
    assert d.nova == NovaMeta(
        name="django_vm_001",
        flavor="vpc1-cf1-foo-bar",
        project="vpcdi1",
        project_uuid="5a50e9d0d19746158958be0c759793fb",
        user="django_user_01",
        user_uuid="96e9d2b749ea48fcb5a911e6f0e144f2",
    )


# /run/libvirt/qemu/instance-00000042.xml as libvirtd writes it for a running Nova guest:
# <domstatus> layout as in libvirt tests/qemustatusxml2xmldata/modern-in.xml, <nova:instance>
# as nova/virt/libvirt/config.py LibvirtConfigGuestMetaNovaInstance formats it (NOVA_NS 1.1).
STATUS_XML = """\
<domstatus state='running' reason='booted' pid='4242'>
  <taint flag='high-privileges'/>
  <monitor path='/var/lib/libvirt/qemu/domain-7-instance-00000042/monitor.sock' type='unix'/>
  <vcpus>
    <vcpu id='0' pid='4260'/>
    <vcpu id='1' pid='4261'/>
  </vcpus>
  <qemuCaps>
    <flag name='kvm'/>
    <flag name='blockdev'/>
  </qemuCaps>
  <devices>
    <device alias='virtio-disk0'/>
    <device alias='net0'/>
  </devices>
  <libDir path='/var/lib/libvirt/qemu/domain-7-instance-00000042'/>
  <domain type='kvm' id='7'>
    <name>instance-00000042</name>
    <uuid>9d4b2f0e-3c71-4a5e-8f0b-6a1d2c3e4f50</uuid>
    <metadata>
      <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
        <nova:package version="27.1.0"/>
        <nova:name>web-01</nova:name>
        <nova:creationTime>2024-03-05 10:11:12</nova:creationTime>
        <nova:flavor name="m1.small">
          <nova:memory>2048</nova:memory>
          <nova:disk>20</nova:disk>
          <nova:swap>0</nova:swap>
          <nova:ephemeral>0</nova:ephemeral>
          <nova:vcpus>1</nova:vcpus>
        </nova:flavor>
        <nova:owner>
          <nova:user uuid="5f0c7e2a9b8d4c1e8a7f6b5c4d3e2f10">alice</nova:user>
          <nova:project uuid="0a1b2c3d4e5f40718293a4b5c6d7e8f9">demo</nova:project>
        </nova:owner>
        <nova:root type="image" uuid="b4f1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"/>
        <nova:ports>
          <nova:port uuid="3c2b1a09-8f7e-4d6c-b5a4-938271605f4e">
            <nova:ip type="fixed" address="10.0.0.5" ipVersion="4"/>
          </nova:port>
        </nova:ports>
      </nova:instance>
    </metadata>
    <memory unit='KiB'>2097152</memory>
    <vcpu placement='static'>1</vcpu>
    <os>
      <type arch='x86_64' machine='pc-q35-8.2'>hvm</type>
      <boot dev='hd'/>
    </os>
    <cpu mode='host-passthrough' check='none' migratable='on'/>
    <devices>
      <emulator>/usr/libexec/qemu-kvm</emulator>
      <disk type='file' device='disk'>
        <driver name='qemu' type='qcow2' cache='none'/>
        <source file='/var/lib/nova/instances/9d4b2f0e-3c71-4a5e-8f0b-6a1d2c3e4f50/disk'/>
        <target dev='vda' bus='virtio'/>
        <alias name='virtio-disk0'/>
      </disk>
    </devices>
  </domain>
</domstatus>
"""


def test_status_xml_with_nova_metadata() -> None:
    d = parse_domain_xml(STATUS_XML)
    assert d == DomainXml(
        domain_type="kvm",
        name="instance-00000042",
        uuid="9d4b2f0e-3c71-4a5e-8f0b-6a1d2c3e4f50",
        emulator="/usr/libexec/qemu-kvm",
        arch="x86_64",
        pid=4242,
        nova=NovaMeta(
            name="web-01",
            flavor="m1.small",
            project="demo",
            project_uuid="0a1b2c3d4e5f40718293a4b5c6d7e8f9",
            user="alice",
            user_uuid="5f0c7e2a9b8d4c1e8a7f6b5c4d3e2f10",
        ),
    )
    assert accel_from_domain_type(d.domain_type) == "kvm"


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_nova_namespace_versions(version: str) -> None:
    xml = STATUS_XML.replace("libvirt/nova/1.1", f"libvirt/nova/{version}")
    d = parse_domain_xml(xml)
    assert d is not None and d.nova is not None
    assert (d.nova.name, d.nova.project) == ("web-01", "demo")


def test_foreign_metadata_is_not_nova() -> None:
    xml = STATUS_XML.replace("http://openstack.org/xmlns/libvirt/nova/1.1", "urn:example:meta")
    d = parse_domain_xml(xml)
    assert d is not None
    assert d.nova is None
    assert d.name == "instance-00000042"


@pytest.mark.parametrize(
    ("pid_attr", "pid"),
    [("pid='1'", 1), ("pid='0'", None), ("pid='-5'", None), ("pid='+5'", None),
     ("pid='12x'", None), ("pid='\u0661\u0662'", None), ("pid=''", None), ("", None)],
)  # fmt: skip
def test_status_pid_validation(pid_attr: str, pid: int | None) -> None:
    xml = f"<domstatus state='running' {pid_attr}><domain type='qemu'/></domstatus>"
    d = parse_domain_xml(xml)
    assert d is not None
    assert (d.pid, d.domain_type) == (pid, "qemu")


def test_domstatus_without_domain_keeps_pid() -> None:
    d = parse_domain_xml("<domstatus state='running' pid='77'/>")
    assert d is not None
    assert (d.pid, d.domain_type, d.name) == (77, None, None)


def test_minimal_domain() -> None:
    d = parse_domain_xml("<domain type='hvf'><name> t </name></domain>")
    assert d == DomainXml(
        domain_type="hvf", name="t", uuid=None, emulator=None, arch=None, pid=None, nova=None
    )


@pytest.mark.parametrize(
    ("t", "accel"),
    [("kvm", "kvm"), ("qemu", "tcg"), ("hvf", "hvf"), ("xen", "xen"), (None, "unknown"),
     ("", "unknown"), ("  ", "unknown")],
)  # fmt: skip
def test_accel_from_domain_type(t: str | None, accel: str) -> None:
    assert accel_from_domain_type(t) == accel


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<domain type='kvm'><name>&lol9;</name></domain>
"""


@pytest.mark.parametrize(
    "doc",
    [
        BILLION_LAUGHS,
        "<!DOCTYPE domain SYSTEM 'file:///etc/shadow'><domain type='kvm'/>",
        "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><domain><name>&x;</name></domain>",
        "<!doctype domain><domain type='kvm'/>",
        "<domain type='kvm'><!-- <!ENTITY a 'b'> --><name>x</name></domain>",
        "<domain type='kvm'><name><![CDATA[<!DOCTYPE x>]]></name></domain>",
    ],
)
def test_dtd_and_entities_refused(doc: str) -> None:
    assert parse_domain_xml(doc) is None


@pytest.mark.parametrize(
    "doc",
    [
        "",
        "not xml at all",
        "<domain type='kvm'",
        "<domain type='kvm'><name>x</domain>",
        "<domain>\x00</domain>",
        "\x1b[31m<domain/>",
        "<network><name>default</name></network>",
        "<domain type='kvm'><name>&undefined;</name></domain>",
        "<" * 10_000,
    ],
)
def test_garbage_gives_none(doc: str) -> None:
    assert parse_domain_xml(doc) is None


def test_non_str_and_oversized_input() -> None:
    assert parse_domain_xml(None) is None  # type: ignore[arg-type]
    assert parse_domain_xml(b"<domain type='kvm'/>") is None  # type: ignore[arg-type]
    padding = "<!--" + "x" * MAX_XML_CHARS + "-->"
    assert parse_domain_xml("<domain type='kvm'>" + padding + "</domain>") is None
    just_fits = "<domain type='kvm'><!--" + "x" * 1000 + "--></domain>"
    assert parse_domain_xml(just_fits) is not None


def test_deep_nesting_does_not_raise() -> None:
    deep = "<domain type='kvm'>" + "<a>" * 50_000 + "</a>" * 50_000 + "</domain>"
    d = parse_domain_xml(deep)
    assert d is None or d.domain_type == "kvm"


def test_module_doctests() -> None:
    result = doctest.testmod(libvirt_xml)
    assert result.attempted > 0
    assert result.failed == 0


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_parse_domain_xml_never_raises(text: str) -> None:
    d = parse_domain_xml(text)
    assert d is None or isinstance(d, DomainXml)
    assert isinstance(accel_from_domain_type(text), str)


_XML_BITS = st.sampled_from(
    ["<domain type='kvm'>", "</domain>", "<domstatus pid='1'>", "</domstatus>", "<name>",
     "</name>", "<metadata>", "</metadata>", "&amp;", "&lt;", "<![CDATA[", "]]>", "<!--", "-->",
     "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'>",
     "</nova:instance>", "x", " "]
)  # fmt: skip


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.one_of(_XML_BITS, st.text(max_size=5)), max_size=30))
def test_xmlish_fragments_never_raise(bits: list[str]) -> None:
    d = parse_domain_xml("".join(bits))
    assert d is None or isinstance(d, DomainXml)
