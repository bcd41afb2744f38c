"""Ask Nova's API for this host's hypervisor record (the ``nova.api`` check's live I/O).

Only :mod:`hvcheck.services` (for the live host) calls :func:`nova_hypervisors`; checks see a
:class:`NovaAnswer`, and a snapshot replays the one ``collect`` recorded (``probes.nova_api``),
which holds no credential: no password, no token, no ``clouds.yaml`` content.

**Client library: keystoneauth1, not openstacksdk.** Everything hvcheck needs from OpenStack is
one authenticated ``GET /os-hypervisors/detail`` with a microversion header. keystoneauth1 is
the library that does exactly that part for every OpenStack client (the ``openstack`` CLI and
openstacksdk sit on top of it): Keystone v3 authentication with any auth plugin (password,
token, application credential, ...), the service catalog, version and microversion discovery,
TLS (``verify``/``cert``) and timeouts — with five small pure-Python dependencies (requests,
iso8601, stevedore, os-service-types, pbr). openstacksdk would add a few dozen modules and
dependencies (dogpile.cache, jmespath, jsonpatch, decorator, platformdirs, ...) to a tool that
monitoring runs every minute, for a proxy layer hvcheck does not use.

**Credentials, as the ``openstack`` CLI takes them** (openstacksdk's ``openstack.config``
loader, reimplemented for the parts that matter; pyyaml reads the files):

* ``OS_CLOUD`` names a cloud in the first ``clouds.yaml`` found in ``$OS_CLIENT_CONFIG_FILE``,
  ``./``, ``~/.config/openstack/``, ``/etc/openstack/`` (``.yaml``, ``.yml``, ``.json``), merged
  with ``secure.yaml`` from the same places; ``OS_*`` variables override its values (as the
  CLI's ``--os-*`` options, whose defaults are those variables, do);
* without ``OS_CLOUD``: ``OS_AUTH_URL`` and the other ``OS_*`` variables; failing those, the
  only cloud of ``clouds.yaml`` when it defines exactly one;
* ``auth_type`` defaults to ``password`` (``token`` when only a token is given), legacy names
  (``tenant_name``, ``auth_token``, ``domain_name``...) are mapped as openstack.config does, and
  the user's and project's domain default to ``default`` as the ``openstack`` CLI's do;
* TLS verification is on. ``--insecure`` (or ``insecure: true`` / ``verify: false`` /
  ``OS_INSECURE=true``) turns it off; ``--os-cacert PATH`` / ``OS_CACERT`` / ``cacert:`` names
  the CA bundle; ``cert``/``key`` (``OS_CERT``/``OS_KEY``) a client certificate.

Every network step is bounded by the time the run has left; whatever goes wrong becomes a
one-line reason with the secrets (password, token, any option keystoneauth marks secret)
replaced by ``***``.
"""

import json
import os
import re
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Optional

from hvcheck.deadline import run_until
from hvcheck.deadline import start as deadline_start
from hvcheck.novaquery import (
    CONFIG_DIRS,
    EXTRA_HINT,
    NO_CREDENTIALS,
    NOT_CREDENTIALS,
    NovaAnswer,
    NovaQuery,
    _env_config,
    _first_existing,
    config_files,
    credentials_configured,
)
from hvcheck.parsers.nova_api import (
    HostNames,
    Hypervisor,
    match_hypervisors,
    next_page,
    parse_hypervisors,
    short_name,
)

# running_vms (compared with the local QEMU processes) is gone from 2.88 on; 2.53 added
# hypervisor_hostname_pattern on /detail, so asking for 2.87 gets both where the cloud has them.
PREFERRED_MICROVERSION = (2, 87)
PATTERN_MICROVERSION = (2, 53)
MAX_PAGES = 50


# ============================================================================================
# Credentials
# ============================================================================================
class NoCredentials(Exception):
    """Nothing configured: the check does not apply (SKIP)."""


class ConfigError(Exception):
    """Credentials are configured but unusable (UNKNOWN, with the reason)."""


class Cloud(NamedTuple):
    source: str
    config: dict[str, Any]  # flat: top-level keys, env overriding the file
    auth: dict[str, Any]  # the cloud's ``auth:`` mapping

    def __repr__(self) -> str:  # config and auth hold secrets
        return f"Cloud(source={self.source!r})"


def _load_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(4 * 1024 * 1024)
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    except Exception as e:  # yaml.YAMLError
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is empty or not a mapping")
    clouds = data.get("clouds")
    if clouds is not None and not isinstance(clouds, dict):
        raise ConfigError(f"{path}: 'clouds' is not a mapping")
    return data


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def find_cloud(environ: Mapping[str, str], cwd: str, home: str) -> Cloud:
    """The cloud the ``openstack`` CLI would use here. Raises NoCredentials or ConfigError."""
    env = _env_config(environ)
    name = env.get("cloud")
    env_top = {k: v for k, v in env.items() if k not in ("cloud", "cloud_name")}
    env_has_auth = bool(set(env) - NOT_CREDENTIALS)
    searched = ", ".join(d.format(cwd="./", home="~").rstrip("/") + "/" for d in CONFIG_DIRS)

    if not name and env_has_auth:
        return Cloud("OS_* environment variables", env_top, {})
    path = _first_existing(config_files(environ, cwd, home, "clouds"))
    if path is None:
        if name:
            raise ConfigError(f"OS_CLOUD={name} but no clouds.yaml was found in {searched}")
        raise NoCredentials(
            f"no OpenStack credentials: OS_CLOUD and OS_AUTH_URL are unset and no clouds.yaml "
            f"in {searched}"
        )
    data = _load_file(path)
    secure = _first_existing(config_files(environ, cwd, home, "secure"))
    if secure is not None:
        sdata = _load_file(secure)
        if isinstance(sdata.get("clouds"), dict):
            data = _merge(data, {"clouds": sdata["clouds"]})
    clouds = data.get("clouds") or {}
    if not name:
        if len(clouds) != 1:
            listed = ", ".join(sorted(str(c) for c in clouds)[:5]) or "none"
            raise NoCredentials(
                f"{path} defines {len(clouds)} clouds ({listed}) and OS_CLOUD is unset: "
                "set OS_CLOUD to choose one"
            )
        name = next(iter(clouds))
    entry = clouds.get(name)
    if not isinstance(entry, dict):
        raise ConfigError(f"OS_CLOUD={name}: no such cloud in {path}")
    if entry.get("profile") or entry.get("cloud"):
        auth0 = entry.get("auth")
        if not (isinstance(auth0, dict) and auth0.get("auth_url")):
            raise ConfigError(
                f"cloud {name!r} in {path} uses a vendor profile, which needs openstacksdk; "
                "give auth_url in its auth: section"
            )
    auth = entry.get("auth")
    top = {str(k).replace("-", "_"): v for k, v in entry.items() if k != "auth"}
    top.update(env_top)  # OS_* variables win, as the CLI's --os-* options do
    src = f"cloud {name!r} from {path}" + (f" (+ {secure})" if secure else "")
    return Cloud(
        src,
        top,
        {str(k).replace("-", "_"): v for k, v in auth.items()} if isinstance(auth, dict) else {},
    )


_RENAMES = {"tenant_name": "project_name", "tenant_id": "project_id", "auth_token": "token"}


def _boolish(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    return str(v).strip().lower() in ("true", "1", "yes", "on")


# ============================================================================================
# Secrets and messages
# ============================================================================================
class _Redactor:
    def __init__(self) -> None:
        self.secrets: set[str] = set()

    def add(self, value: Any) -> None:
        if isinstance(value, str) and len(value) >= 4:
            self.secrets.add(value)

    def __call__(self, text: str) -> str:
        for s in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(s, "***")
        text = " ".join(text.split())
        return text if len(text) <= 400 else text[:397] + "..."


def _clean_url(url: Optional[str]) -> Optional[str]:
    """A URL without userinfo, query or fragment (they may carry secrets)."""
    if not url:
        return None
    try:
        from urllib.parse import urlsplit, urlunsplit

        p = urlsplit(url)
        netloc = p.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if p.port:
            netloc += f":{p.port}"
        return urlunsplit((p.scheme, netloc, p.path, "", ""))
    except ValueError:
        return None


_TLS_DETAIL = re.compile(r"certificate verify failed: ([^()'\"]+)", re.IGNORECASE)
TLS_HINT = (
    "give hvcheck the CA that signed the server's certificate with --os-cacert PATH "
    "(or OS_CACERT, or cacert: in clouds.yaml), or skip verification with --insecure"
)


def _tls_reason(url: Optional[str], text: str) -> str:
    m = _TLS_DETAIL.search(text)
    detail = m.group(1).strip() if m else "the certificate could not be verified"
    where = f" of {url}" if url else ""
    return f"TLS certificate{where} not trusted ({detail}): {TLS_HINT}"


def _versions(v: Any) -> Optional[tuple[int, int]]:
    if isinstance(v, (tuple, list)) and len(v) >= 2:
        try:
            return int(v[0]), int(v[1])
        except (TypeError, ValueError, OverflowError):
            return None
    if isinstance(v, str):
        m = re.fullmatch(r"\s*v?(\d+)\.(\d+)\s*", v)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def _vstr(v: Optional[tuple[int, int]]) -> Optional[str]:
    return f"{v[0]}.{v[1]}" if v else None


# ============================================================================================
# The query
# ============================================================================================
def canonical_name(nodename: str) -> Optional[str]:
    """What libvirt's virGetHostname returns: the name itself when dotted, else the canonical
    name from getaddrinfo(AI_CANONNAME) (src/util/virutil.c)."""
    if not nodename:
        return None
    if "." in nodename:
        return nodename
    try:
        import socket

        infos = socket.getaddrinfo(nodename, None, flags=socket.AI_CANONNAME)
    except OSError:
        return None
    for info in infos:
        if info[3]:
            return str(info[3])
    return None


def _quiet_logging() -> None:
    import logging

    # keystoneauth/urllib3 log warnings (discovery fallbacks, retries); without a handler
    # Python's last-resort handler would print them to stderr.
    for name in ("keystoneauth", "urllib3", "stevedore"):
        lg = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in lg.handlers):
            lg.addHandler(logging.NullHandler())
        lg.propagate = False


def nova_hypervisors(
    query: NovaQuery, environ: Optional[Mapping[str, str]] = None, cwd: Optional[str] = None
) -> NovaAnswer:
    """Find this host's hypervisor record. Never raises; never runs past ``query.timeout``."""
    start = time.monotonic()
    deadline = start + max(0.0, query.timeout)
    env = os.environ if environ is None else environ
    cwd = os.getcwd() if cwd is None else cwd
    home = os.path.expanduser("~")

    def skip(reason: str) -> NovaAnswer:
        return NovaAnswer("skip", reason, elapsed=time.monotonic() - start)

    try:
        where = credentials_configured(env, cwd, home)
    except OSError as e:
        return skip(f"cannot look for OpenStack credentials: {e}")
    if where is None:
        return skip(NO_CREDENTIALS)
    import importlib.util

    missing = [m for m in ("keystoneauth1", "yaml") if importlib.util.find_spec(m) is None]
    if missing:
        return skip(
            f"OpenStack credentials found ({where}) but {', '.join(missing)} is not installed: "
            f"{EXTRA_HINT}"
        )

    state: dict[str, Any] = {"step": "reading the credentials"}
    got = run_until(
        {"nova-api": lambda: _query(query, env, cwd, home, deadline, state, start)}, deadline
    ).get("nova-api")
    if got is not None and got.error is None:
        return got.value  # type: ignore[no-any-return]
    if got is not None:  # the query raised: report it, redacted, never lose it
        red = state.get("redact") or _Redactor()
        err = got.error
        return NovaAnswer(
            "error",
            red(f"Nova API query failed: {type(err).__name__}: {err}"),
            "error",
            elapsed=time.monotonic() - start,
        )
    return NovaAnswer(
        "error",
        f"the Nova API did not answer within {query.timeout:.1f} s (still {state['step']})",
        "timeout",
        cloud=state.get("cloud"),
        auth_url=state.get("auth_url"),
        elapsed=time.monotonic() - start,
    )


def _query(
    query: NovaQuery,
    env: Mapping[str, str],
    cwd: str,
    home: str,
    deadline: float,
    state: dict[str, Any],
    start: float,
) -> NovaAnswer:
    from keystoneauth1 import exceptions as ksx
    from keystoneauth1 import loading
    from keystoneauth1 import session as ks_session

    _quiet_logging()
    red = _Redactor()
    state["redact"] = red
    names = query.names
    fqdn_lookup = deadline_start("fqdn", lambda: canonical_name(names.nodename))

    base: dict[str, Any] = {}

    def answer(outcome: str, reason: str = "", kind: Optional[str] = None, **kw: Any) -> NovaAnswer:
        merged = {**base, **kw}
        return NovaAnswer(
            outcome, red(reason) if reason else "", kind, elapsed=time.monotonic() - start, **merged
        )

    try:
        cloud = find_cloud(env, cwd, home)
    except NoCredentials as e:
        return answer("skip", str(e))
    except ConfigError as e:
        return answer("error", str(e), "config")
    cfg = {_RENAMES.get(k, k): v for k, v in cloud.config.items()}
    auth = {_RENAMES.get(k, k): v for k, v in cloud.auth.items()}
    for k in ("password", "token", "application_credential_secret", "passcode", "client_secret"):
        for d in (cfg, auth):
            red.add(d.get(k))
    state["cloud"] = cloud.source
    base["cloud"] = cloud.source

    # --- auth plugin ------------------------------------------------------------------
    def get(*keys: str) -> Any:
        for k in keys:
            for d in (cfg, auth):  # OS_* / top level first, as `openstack` does
                v = d.get(k)
                if v not in (None, ""):
                    return v
        return None

    token = get("token")
    auth_type = str(
        get("auth_type", "auth_plugin")
        or ("token" if token and not get("password") else "password")
    )
    if auth_type == "token_endpoint":
        auth_type = "admin_token"
    # domain_id / domain_name given once for both user and project (openstack.config)
    scoped = bool(get("project_id", "project_name"))
    for short, pair in (
        ("domain_id", ("user_domain_id", "project_domain_id")),
        ("domain_name", ("user_domain_name", "project_domain_name")),
    ):
        v = get(short)
        if v and scoped:
            for k in pair:
                if get(k) is None:
                    cfg[k] = v
            cfg.pop(short, None)
            auth.pop(short, None)
    try:
        loader: Any = loading.get_plugin_loader(auth_type)
    except ksx.NoMatchingPlugin:
        return answer("error", f"unknown auth_type {auth_type!r} in {cloud.source}", "config")
    opts = loader.get_options()
    dests = {o.dest for o in opts}
    given_domain = get(
        "user_domain_id", "user_domain_name", "default_domain_id", "default_domain_name"
    )
    if "password" in auth_type and "default_domain_id" in dests and given_domain is None:
        # the openstack CLI's default domain (osc-lib: --os-default-domain, "default")
        cfg["default_domain_id"] = get("default_domain") or "default"
    kwargs: dict[str, Any] = {}
    for o in opts:
        keys = [o.dest, o.name.replace("-", "_")]
        keys += [d.dest for d in o.deprecated] + [d.name.replace("-", "_") for d in o.deprecated]
        v = get(*keys)
        if v is None:
            continue
        v = str(v) if not isinstance(v, (bool, int, float)) else v
        kwargs[o.dest] = v
        if o.secret:
            red.add(str(v))
    auth_url = _clean_url(str(kwargs.get("auth_url") or get("auth_url") or "")) or None
    base["auth_url"] = auth_url
    state["auth_url"] = auth_url
    try:
        plugin = loader.load_from_options(**kwargs)
    except ksx.MissingRequiredOptions as e:
        miss = ", ".join(getattr(o, "dest", str(o)) for o in e.options)
        return answer(
            "error", f"incomplete credentials in {cloud.source}: missing {miss}", "config"
        )
    except Exception as e:
        return answer("error", f"credentials in {cloud.source} not usable: {e}", "config")

    # --- TLS ---------------------------------------------------------------------------
    verify: bool | str = True
    verify_text = "on (system CA bundle)"
    if query.insecure:
        verify, verify_text = False, "OFF (--insecure)"
    elif query.cacert:
        verify, verify_text = query.cacert, f"on (CA {query.cacert})"
    elif _boolish(get("insecure") or False):
        verify, verify_text = False, f"OFF (insecure in {cloud.source})"
    elif get("cacert"):
        verify, verify_text = str(get("cacert")), f"on (CA {get('cacert')})"
    elif get("verify") is not None and not _boolish(get("verify")):
        verify, verify_text = False, f"OFF (verify: false in {cloud.source})"
    if isinstance(verify, str) and not os.path.isfile(verify):
        return answer(
            "error",
            f"CA bundle {verify} does not exist (--os-cacert / OS_CACERT / cacert:)",
            "config",
            verify=verify_text,
        )
    cert: Any = None
    if get("cert"):
        cert = (str(get("cert")), str(get("key"))) if get("key") else str(get("cert"))
    interface = str(get("interface", "endpoint_type") or "public").replace("URL", "")
    region = get("region_name")
    if isinstance(region, list):
        region = region[0] if region else None
    if isinstance(region, str) and "," in region:
        region = region.split(",")[0]
    region = str(region) if region else None
    base.update(interface=interface, region=region, verify=verify_text)

    from hvcheck import __version__

    sess = ks_session.Session(
        auth=plugin,
        verify=verify,
        cert=cert,
        app_name="hvcheck",
        app_version=__version__,
    )
    if verify is False:
        import warnings

        try:
            from urllib3.exceptions import InsecureRequestWarning

            warnings.simplefilter("ignore", InsecureRequestWarning)
        except ImportError:  # pragma: no cover
            pass

    class _OutOfTime(Exception):
        pass

    def budget(step: str) -> float:
        state["step"] = step
        left = deadline - time.monotonic()
        if left < 0.05:
            raise _OutOfTime(step)
        sess.timeout = left
        return left

    endpoint: Optional[str] = None
    try:
        budget(f"authenticating with {auth_url or 'Keystone'}")
        tok = sess.get_token()
        red.add(tok)
        budget("looking up the compute endpoint and its microversions")
        ep = sess.get_endpoint_data(service_type="compute", interface=interface, region_name=region)
        if ep is None or not ep.url:
            raise ksx.EndpointNotFound()
        endpoint = str(ep.url).rstrip("/")
        base["endpoint"] = _clean_url(endpoint)
        max_mv = _versions(ep.max_microversion)
        base["max_microversion"] = _vstr(max_mv)
        pinned_raw = get("compute_api_version")
        mv: Optional[tuple[int, int]]
        if pinned_raw and str(pinned_raw).strip().lower() in ("latest", "2.latest"):
            mv = max_mv
        elif pinned_raw:
            mv = _versions(str(pinned_raw))
            if mv is None:
                return answer(
                    "error", f"compute_api_version {pinned_raw!r} is not a microversion", "config"
                )
            if max_mv is not None and mv > max_mv:
                return answer(
                    "error",
                    f"compute_api_version {_vstr(mv)} is newer than this cloud's {_vstr(max_mv)}",
                    "config",
                )
        elif max_mv is None:
            mv = None
        else:
            mv = min(max_mv, PREFERRED_MICROVERSION)
        base["microversion"] = _vstr(mv)
        pattern = short_name(names.nodename) if mv and mv >= PATTERN_MICROVERSION else None
        base["pattern"] = pattern
        records: list[Hypervisor] = []
        params: dict[str, str] = {"hypervisor_hostname_pattern": pattern} if pattern else {}
        url = endpoint + "/os-hypervisors/detail"
        for _page in range(MAX_PAGES):
            budget(f"reading {base['endpoint']}/os-hypervisors/detail")
            kw: dict[str, Any] = {}
            if mv is not None:
                kw = {"microversion": _vstr(mv), "microversion_service_type": "compute"}
            resp = sess.get(
                url,
                params=params,
                headers={"Accept": "application/json"},
                raise_exc=False,
                **kw,
            )
            if resp.status_code == 404 and pattern:
                break  # Nova: "No hypervisor matching '...' could be found."
            if resp.status_code in (401, 403):
                what = (
                    "the token was refused"
                    if resp.status_code == 401
                    else "policy forbids listing hypervisors for this user (Nova's default "
                    "policy os_compute_api:os-hypervisors:list-detail needs the admin role)"
                )
                return answer(
                    "error",
                    f"Nova answered {resp.status_code} for GET {base['endpoint']}/"
                    f"os-hypervisors/detail: {what}",
                    "auth",
                )
            if resp.status_code >= 400:
                return answer(
                    "error",
                    f"Nova answered {resp.status_code} for GET {base['endpoint']}/"
                    f"os-hypervisors/detail: {resp.text[:200]}",
                    "http",
                )
            try:
                doc = resp.json()
            except ValueError:
                return answer("error", f"Nova's answer from {base['endpoint']} is not JSON", "http")
            records.extend(parse_hypervisors(doc))
            nxt = None if pattern else next_page(doc)
            if not nxt:
                break
            params = nxt
        looked_up = fqdn_lookup.wait(min(deadline, time.monotonic() + 1.0))
        fqdn = looked_up.value if looked_up is not None and looked_up.error is None else None
        full = HostNames(nodename=names.nodename, fqdn=fqdn, nova_host=names.nova_host)
        matches = match_hypervisors(records, full)
        return answer(
            "ok",
            names=full,
            records=tuple(m.record for m in matches),
            matched_how=tuple(m.how for m in matches),
            scanned=len(records),
        )
    except _OutOfTime as e:
        return answer(
            "error",
            f"no time left for the Nova API within the run's timeout (while {e})",
            "timeout",
        )
    except ksx.SSLError as e:
        return answer("error", _tls_reason(_origin(endpoint or auth_url), str(e)), "tls")
    except (ksx.ConnectTimeout, ksx.ConnectionError, ksx.DiscoveryFailure) as e:
        text = str(e)
        if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
            return answer("error", _tls_reason(_origin(endpoint or auth_url), text), "tls")
        if isinstance(e, ksx.ConnectTimeout) or "timed out" in text.lower():
            return answer(
                "error", f"the Nova API timed out (while {state['step']}): {text}", "timeout"
            )
        return answer("error", f"cannot reach the cloud (while {state['step']}): {text}", "connect")
    except ksx.Unauthorized:
        return answer(
            "error",
            f"authentication refused by {auth_url or 'Keystone'} (401) for the credentials in "
            f"{cloud.source}",
            "auth",
        )
    except ksx.EndpointNotFound:
        return answer(
            "error",
            f"no compute endpoint (interface {interface}"
            + (f", region {region}" if region else "")
            + ") in the service catalog",
            "endpoint",
        )
    except ksx.HttpError as e:
        return answer("error", f"HTTP {e.http_status} while {state['step']}: {e.message}", "http")
    except ksx.ClientException as e:
        return answer("error", f"OpenStack client error while {state['step']}: {e}", "error")
    except OSError as e:  # e.g. requests: "Could not find a suitable TLS CA certificate bundle"
        return answer("error", f"while {state['step']}: {e}", "config")


def _origin(url: Optional[str]) -> Optional[str]:
    if not url:
        return None
    from urllib.parse import urlsplit

    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}" if p.scheme and p.netloc else url
