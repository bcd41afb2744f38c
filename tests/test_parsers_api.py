"""hvcheck.parsers.nova_api against Nova's published os-hypervisors samples (../shared/corpus,
read in place) and hvcheck.parsers.libvirt_caps against hostile and odd input."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import CORPUS, require_corpus
from hvcheck.parsers import libvirt_caps, nova_api
from hvcheck.parsers.libvirt_caps import parse_capabilities, parse_domain_capabilities
from hvcheck.parsers.nova_api import (
    HostNames,
    Hypervisor,
    match_hypervisors,
    next_page,
    parse_hypervisors,
)


def test_module_doctests() -> None:
    for mod in (nova_api, libvirt_caps):
        result = doctest.testmod(mod)
        assert result.attempted > 0 and result.failed == 0, mod.__name__


def _sample(name: str) -> Any:
    require_corpus()
    return json.loads((CORPUS / "nova-api" / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("name", "running_vms", "id_is_uuid"),
    [
        ("nova_hypervisors-detail-resp.json", 0, False),
        ("nova_v2.28_hypervisors-detail-resp.json", 0, False),
        ("nova_v2.53_hypervisors-detail-resp.json", 0, True),
        ("nova_v2.88_hypervisors-detail-resp.json", None, True),  # running_vms gone in 2.88
        ("nova_hypervisors-show-resp.json", 0, False),
        ("nova_v2.88_hypervisors-show-resp.json", None, True),
        ("api-site_hypervisor-show-response.json", 0, False),
    ],
)
def test_corpus_samples(name: str, running_vms: int | None, id_is_uuid: bool) -> None:
    recs = parse_hypervisors(_sample(name))
    assert len(recs) == 1
    r = recs[0]
    assert r.running_vms == running_vms
    assert r.state == "up" and r.status == "enabled"
    assert r.hypervisor_hostname and r.service_host
    assert (len(r.id or "") == 36) is id_is_uuid
    assert Hypervisor.from_json(json.loads(json.dumps(r.to_json()))) == r


def test_corpus_api_site_qemu_version() -> None:
    # the api-site sample is a real libvirt record: QEMU 2.0.0 encoded as 2000000
    r = parse_hypervisors(_sample("api-site_hypervisor-show-response.json"))[0]
    assert (r.hypervisor_type, r.version_text) == ("QEMU", "2.0.0")


def test_corpus_list_view_has_no_type() -> None:
    recs = parse_hypervisors(_sample("api-site_hypervisors-list-response.json"))
    assert recs and all(r.hypervisor_type is None for r in recs)


def test_corpus_next_link_keeps_only_the_query() -> None:
    doc = _sample("nova_v2.53_hypervisors-detail-resp.json")
    assert next_page(doc) == {"limit": "1", "marker": "1bb62a04-c576-402c-8147-9e89757a09e3"}
    assert next_page(_sample("nova_hypervisors-detail-resp.json")) is None


def _hv(hh: str | None, sh: str | None, **kw: Any) -> Hypervisor:
    base: dict[str, Any] = {
        "id": "1",
        "hypervisor_hostname": hh,
        "hypervisor_type": "QEMU",
        "hypervisor_version": 8002002,
        "state": "up",
        "status": "enabled",
        "running_vms": 0,
        "service_host": sh,
        "disabled_reason": None,
        "host_ip": None,
    }
    base.update(kw)
    return Hypervisor(**base)


def test_match_prefers_exact_names_over_short_names() -> None:
    names = HostNames(nodename="compute-1", fqdn="compute-1.dc1.example.org", nova_host=None)
    exact = _hv("compute-1.dc1.example.org", "compute-1")
    other_site = _hv("compute-1.dc2.example.org", "compute-1-dc2")
    got = match_hypervisors([other_site, exact], names)
    assert [m.record for m in got] == [exact] and got[0].exact
    # without an exact match, the short name is accepted (and said so)
    got = match_hypervisors([other_site], names)
    assert got and not got[0].exact and "short" in got[0].how


def test_match_by_nova_host_and_case() -> None:
    names = HostNames(nodename="node17", fqdn=None, nova_host="Compute-AZ1-01")
    r = _hv("node17-renamed.example.org.", "compute-az1-01")
    assert [m.how for m in match_hypervisors([r], names)] == [
        "service host = nova.conf [DEFAULT] host"
    ]
    names = HostNames(nodename="NODE17", fqdn="node17.example.org.", nova_host=None)
    assert match_hypervisors([_hv("node17.EXAMPLE.org", "x")], names)[0].how == (
        "hypervisor_hostname = FQDN"
    )


def test_match_nothing() -> None:
    names = HostNames(nodename="vm", fqdn="vm", nova_host=None)
    assert match_hypervisors([_hv("compute-2", "compute-2"), _hv(None, None)], names) == []


@pytest.mark.parametrize(
    "doc",
    [None, 3, "not json", b"[]", {"hypervisors": "x"}, {"hypervisors": [1, None, "x"]}, {}],
)
def test_parse_hypervisors_garbage(doc: Any) -> None:
    assert parse_hypervisors(doc) == []


@settings(max_examples=2000, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_parse_hypervisors_never_raises(doc: Any) -> None:
    for r in parse_hypervisors({"hypervisors": [doc]}) + parse_hypervisors(doc):
        assert isinstance(r, Hypervisor)
    next_page(doc)


# ---- libvirt capabilities --------------------------------------------------------------------
CAPS = """<capabilities>
  <host><cpu><arch>aarch64</arch></cpu></host>
  <guest><os_type>hvm</os_type>
    <arch name='aarch64'><emulator>/usr/bin/qemu-system-aarch64</emulator>
      <domain type='qemu'/></arch></guest>
  <guest><os_type>exe</os_type>
    <arch name='x86_64'><emulator>/usr/libexec/lxc</emulator><domain type='kvm'/></arch></guest>
</capabilities>"""


def test_caps_without_kvm_and_other_os_types() -> None:
    c = parse_capabilities(CAPS)
    assert c is not None and c.host_arch == "aarch64"
    assert not c.offers_kvm()  # only qemu (TCG) for the host arch
    assert not c.offers_kvm("x86_64")  # an exe (container) guest is not an hvm guest
    assert c.guest_for("x86_64") is None and c.guest_for("x86_64", "exe") is not None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<capabilities",
        "<domain type='kvm'/>",
        '<?xml version="1.0"?><!DOCTYPE c SYSTEM "http://example.org/x.dtd"><capabilities/>',
        "<!ENTITY x 'y'><capabilities/>",
        "<!-- <!doctype x> --><capabilities/>",
        "<capabilities>" + "<guest/>" * 10 + "</capabilities>" + " " * (4 * 1024 * 1024),
    ],
)
def test_caps_refused(text: str) -> None:
    assert parse_capabilities(text) is None
    assert parse_domain_capabilities(text.replace("capabilities", "domainCapabilities")) is None


def test_domcaps_host_passthrough_unsupported_and_odd_vcpu() -> None:
    dc = parse_domain_capabilities(
        "<domainCapabilities><domain>qemu</domain><vcpu max='+1'/>"
        "<cpu><mode name='host-passthrough' supported='no'/></cpu></domainCapabilities>"
    )
    assert dc is not None
    assert (dc.domain, dc.vcpu_max, dc.host_passthrough, dc.emulator) == ("qemu", None, False, None)


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=300))
def test_caps_never_raise(text: str) -> None:
    parse_capabilities(text)
    parse_domain_capabilities(text)
    parse_capabilities(f"<capabilities>{text}</capabilities>")
