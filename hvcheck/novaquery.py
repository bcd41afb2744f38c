"""What ``nova.api`` asks and what it got, and whether there is a cloud to ask at all.

The query, the answer (kept in snapshots) and the credentials lookup of the ``openstack`` CLI
(``OS_*`` variables, ``clouds.yaml``) — without ``hvcheck.openstack``, whose client code (and
keystoneauth) is imported only when credentials are configured: a monitoring probe on a
compute node without them pays nothing for the API check.
"""

import os
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from hvcheck.model import DEFAULT_TIMEOUT
from hvcheck.parsers.nova_api import HostNames, Hypervisor

EXTRA_HINT = "pip install 'hvcheck[openstack]'"
CONFIG_DIRS = ("{cwd}", "{home}/.config/openstack", "/etc/openstack")
SUFFIXES = (".yaml", ".yml", ".json")
# OS_* variables that select or tune rather than authenticate (openstack.config's selectors,
# plus the ones hvcheck itself reads): alone, they are not credentials.
NOT_CREDENTIALS = frozenset(
    {
        "cloud",
        "cloud_name",
        "region_name",
        "client_config_file",
        "client_secure_file",
        "cacert",
        "cert",
        "key",
        "insecure",
        "interface",
        "endpoint_type",
        "compute_api_version",
        "identity_api_version",
        "default_domain",
        "default_domain_id",
        "default_domain_name",
    }
)
_ENV_IGNORED = ("OS_TEST", "OS_STD", "OS_LOG")  # test-runner variables openstack.config skips


class NovaQuery(NamedTuple):
    names: HostNames
    insecure: bool = False
    cacert: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT  # seconds the whole query may take


class NovaAnswer(NamedTuple):
    """What the API said (or why it was not asked). Holds no secret: it goes into snapshots."""

    outcome: str  # ok | skip | error
    reason: str = ""  # one line, for skip and error
    error_kind: Optional[str] = None  # config | tls | auth | connect | timeout | endpoint | http
    cloud: Optional[str] = None  # where the credentials came from
    auth_url: Optional[str] = None
    endpoint: Optional[str] = None
    region: Optional[str] = None
    interface: Optional[str] = None
    verify: Optional[str] = None
    microversion: Optional[str] = None
    max_microversion: Optional[str] = None
    pattern: Optional[str] = None
    names: Optional[HostNames] = None
    records: tuple[Hypervisor, ...] = ()
    matched_how: tuple[str, ...] = ()
    scanned: int = 0
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self._fields}
        d["names"] = (
            {
                "nodename": self.names.nodename,
                "fqdn": self.names.fqdn,
                "nova_host": self.names.nova_host,
            }
            if self.names
            else None
        )
        d["records"] = [r.to_json() for r in self.records]
        d["matched_how"] = list(self.matched_how)
        d["elapsed"] = round(self.elapsed, 3)
        return d

    @classmethod
    def from_json(cls, d: Any) -> "Optional[NovaAnswer]":
        if not isinstance(d, dict) or d.get("outcome") not in ("ok", "skip", "error"):
            return None

        def s(k: str) -> Optional[str]:
            v = d.get(k)
            return str(v) if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None

        n = d.get("names")
        names = (
            HostNames(
                nodename=str(n.get("nodename") or ""),
                fqdn=str(n["fqdn"]) if isinstance(n.get("fqdn"), str) else None,
                nova_host=str(n["nova_host"]) if isinstance(n.get("nova_host"), str) else None,
            )
            if isinstance(n, dict)
            else None
        )
        recs = d.get("records")
        records = tuple(
            h
            for h in (Hypervisor.from_json(r) for r in (recs if isinstance(recs, list) else []))
            if h is not None
        )
        how = d.get("matched_how")
        scanned = d.get("scanned")
        elapsed = d.get("elapsed")
        return cls(
            outcome=str(d["outcome"]),
            reason=s("reason") or "",
            error_kind=s("error_kind"),
            cloud=s("cloud"),
            auth_url=s("auth_url"),
            endpoint=s("endpoint"),
            region=s("region"),
            interface=s("interface"),
            verify=s("verify"),
            microversion=s("microversion"),
            max_microversion=s("max_microversion"),
            pattern=s("pattern"),
            names=names,
            records=records,
            matched_how=tuple(str(x) for x in how) if isinstance(how, list) else (),
            scanned=scanned if isinstance(scanned, int) and not isinstance(scanned, bool) else 0,
            elapsed=float(elapsed) if isinstance(elapsed, (int, float)) else 0.0,
        )


def _env_config(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        k[3:].lower(): v
        for k, v in environ.items()
        if k.startswith("OS_") and not k.startswith(_ENV_IGNORED) and v != ""
    }


def config_files(environ: Mapping[str, str], cwd: str, home: str, base: str) -> list[str]:
    dirs = [d.format(cwd=cwd, home=home) for d in CONFIG_DIRS]
    files = [os.path.join(d, base + s) for d in dirs for s in SUFFIXES]
    override = environ.get("OS_CLIENT_SECURE_FILE" if base == "secure" else "OS_CLIENT_CONFIG_FILE")
    return [override, *files] if override else files


def _first_existing(paths: list[str]) -> Optional[str]:
    for p in paths:
        if os.path.isfile(p) and os.access(p, os.R_OK):
            return p
    return None


def credentials_configured(environ: Mapping[str, str], cwd: str, home: str) -> Optional[str]:
    """Where credentials would come from, or None when nothing is configured (no parsing)."""
    env = _env_config(environ)
    if env.get("cloud"):
        return f"OS_CLOUD={env['cloud']}"
    if set(env) - NOT_CREDENTIALS:
        return "OS_* environment variables"
    path = _first_existing(config_files(environ, cwd, home, "clouds"))
    return path


NO_CREDENTIALS = (
    "no OpenStack credentials: OS_CLOUD and OS_AUTH_URL are unset and no clouds.yaml "
    "in ./, ~/.config/openstack/, /etc/openstack/"
)
