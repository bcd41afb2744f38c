"""A small Keystone v3 + Nova server on 127.0.0.1 for the nova.api tests.

It speaks what keystoneauth1 needs — identity version discovery, the v3 password (and token)
flow ``POST /v3/auth/tokens`` answering ``X-Subject-Token`` and a catalog whose compute endpoint
points back here, compute version discovery with a microversion range — and serves Nova's
published ``os-hypervisors`` samples, read in place from ``../shared/corpus/nova-api`` at each
request, adjusted only in ``hypervisor_hostname``, ``service.host`` and ``hypervisor_type`` so
they describe this machine. Which sample answers follows the requested microversion, as Nova's
response format does (2.1, 2.28, 2.53, 2.88). Optionally over TLS with a given certificate.
"""

from __future__ import annotations

import contextlib
import json
import re
import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

from corpus import CORPUS

SAMPLES = (  # (first microversion the sample's format applies to, corpus file)
    ((2, 1), "nova-api/nova_hypervisors-detail-resp.json"),
    ((2, 28), "nova-api/nova_v2.28_hypervisors-detail-resp.json"),
    ((2, 53), "nova-api/nova_v2.53_hypervisors-detail-resp.json"),
    ((2, 88), "nova-api/nova_v2.88_hypervisors-detail-resp.json"),
)


def _mv(text: str) -> Optional[tuple[int, int]]:
    m = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


class FakeCloud:
    def __init__(
        self,
        *,
        hypervisor_hostname: str,
        service_host: str,
        username: str = "admin",
        password: str = "",
        max_version: str = "2.96",
        hypervisor_type: str = "QEMU",
        tls: Optional[tuple[str, str]] = None,  # (certfile, keyfile)
        state: Optional[str] = None,  # override "up"/"down" (not a sample field change unless set)
        status: Optional[str] = None,
    ) -> None:
        self.hypervisor_hostname = hypervisor_hostname
        self.service_host = service_host
        self.username = username
        self.password = password
        self.max_version = max_version
        self.hypervisor_type = hypervisor_type
        self.tls = tls
        self.state = state
        self.status = status
        self.echo_token_on_error = False  # a 500 whose body quotes the caller's token
        self.token = "gAAAAA" + uuid.uuid4().hex + uuid.uuid4().hex  # Fernet-looking
        self.requests: list[dict[str, Any]] = []
        self.auth_bodies: list[dict[str, Any]] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.base = ""

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> str:
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                cloud._handle(self, "GET")

            def do_POST(self) -> None:
                cloud._handle(self, "POST")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # e.g. a client refusing our self-signed certificate

        srv = Server(("127.0.0.1", 0), Handler)
        scheme = "http"
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*self.tls)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
            scheme = "https"
        self._server = srv
        self.base = f"{scheme}://127.0.0.1:{srv.server_address[1]}"
        self._thread = threading.Thread(target=srv.serve_forever, name="fake-cloud", daemon=True)
        self._thread.start()
        return self.base

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None

    @property
    def auth_url(self) -> str:
        return f"{self.base}/identity/v3"

    # ---- responses --------------------------------------------------------------------
    def _send(self, h: BaseHTTPRequestHandler, code: int, body: Any, headers: Any = ()) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        path = url.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        self.requests.append(
            {"method": method, "path": path, "query": query, "headers": dict(h.headers.items())}
        )
        b = self.base
        if method == "GET" and path == "/identity":
            self._send(h, 300, {"versions": {"values": [self._identity_version()]}})
        elif method == "GET" and path == "/identity/v3":
            self._send(h, 200, {"version": self._identity_version()})
        elif method == "POST" and path == "/identity/v3/auth/tokens":
            self._auth(h, body)
        elif method == "GET" and path == "/compute":
            v = self._compute_version()
            self._send(h, 300, {"versions": [v]})
        elif method == "GET" and path == "/compute/v2.1":
            self._send(h, 200, {"version": self._compute_version()})
        elif method == "GET" and path == "/compute/v2.1/os-hypervisors/detail":
            self._hypervisors(h, query)
        else:
            self._send(h, 404, {"error": {"code": 404, "message": f"no {path} at {b}"}})

    def _identity_version(self) -> dict[str, Any]:
        return {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": f"{self.base}/identity/v3/"}],
            "media-types": [
                {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
            ],
        }

    def _compute_version(self) -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": self.max_version,
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{self.base}/compute/v2.1/"}],
            "media-types": [
                {
                    "base": "application/json",
                    "type": "application/vnd.openstack.compute+json;version=2.1",
                }
            ],
        }

    def _auth(self, h: BaseHTTPRequestHandler, body: bytes) -> None:
        try:
            req = json.loads(body)
            ident = req["auth"]["identity"]
        except (ValueError, KeyError, TypeError):
            self._send(h, 400, {"error": {"code": 400, "message": "malformed"}})
            return
        self.auth_bodies.append(req)
        ok = False
        if "password" in ident.get("methods", []):
            user = ident["password"]["user"]
            ok = user.get("name") == self.username and user.get("password") == self.password
        elif "token" in ident.get("methods", []):
            ok = ident["token"].get("id") == self.token
        if not ok:
            self._send(
                h,
                401,
                {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The request you have made requires authentication.",
                    }
                },
            )
            return
        token = {
            "methods": ident.get("methods", []),
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2026-01-01T00:00:00.000000Z",
            "user": {
                "id": "u1",
                "name": self.username,
                "domain": {"id": "default", "name": "Default"},
            },
            "project": {
                "id": "p1",
                "name": "admin",
                "domain": {"id": "default", "name": "Default"},
            },
            "roles": [{"id": "r1", "name": "admin"}],
            "catalog": [
                {
                    "type": "compute",
                    "name": "nova",
                    "id": "c1",
                    "endpoints": [
                        {
                            "id": "e1",
                            "interface": "public",
                            "region": "RegionOne",
                            "region_id": "RegionOne",
                            "url": f"{self.base}/compute/v2.1",
                        }
                    ],
                },
                {
                    "type": "identity",
                    "name": "keystone",
                    "id": "i1",
                    "endpoints": [
                        {
                            "id": "e2",
                            "interface": "public",
                            "region": "RegionOne",
                            "region_id": "RegionOne",
                            "url": f"{self.base}/identity",
                        }
                    ],
                },
            ],
        }
        self._send(h, 201, {"token": token}, [("X-Subject-Token", self.token)])

    def _hypervisors(self, h: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        if h.headers.get("X-Auth-Token") != self.token:
            self._send(h, 401, {"error": {"code": 401, "message": "authentication required"}})
            return
        raw = h.headers.get("OpenStack-API-Version", "")
        asked = _mv(raw.split()[-1]) if raw.startswith("compute ") else None
        asked = asked or _mv(h.headers.get("X-OpenStack-Nova-API-Version", "")) or (2, 1)
        if asked > (_mv(self.max_version) or (2, 1)):
            self._send(h, 406, {"computeFault": {"code": 406, "message": "Version not supported"}})
            return
        if self.echo_token_on_error:
            msg = f"internal error serving token {h.headers.get('X-Auth-Token')}"
            self._send(h, 500, {"computeFault": {"code": 500, "message": msg}})
            return
        if "marker" in query:  # the samples are one page: what follows it is empty
            self._send(h, 200, {"hypervisors": []})
            return
        sample = [f for v, f in SAMPLES if v <= asked][-1]
        doc = json.loads(Path(CORPUS / sample).read_text(encoding="utf-8"))
        for r in doc["hypervisors"]:
            r["hypervisor_hostname"] = self.hypervisor_hostname
            r["hypervisor_type"] = self.hypervisor_type
            r["service"]["host"] = self.service_host
            if self.state is not None:
                r["state"] = self.state
            if self.status is not None:
                r["status"] = self.status
                if self.status == "disabled":
                    r["service"]["disabled_reason"] = "maintenance"
        pattern = query.get("hypervisor_hostname_pattern")
        if pattern is not None:
            if asked < (2, 53):
                self._send(h, 400, {"badRequest": {"code": 400, "message": "unexpected query"}})
                return
            doc["hypervisors"] = [
                r for r in doc["hypervisors"] if pattern.lower() in r["hypervisor_hostname"].lower()
            ]
            if not doc["hypervisors"]:
                self._send(
                    h,
                    404,
                    {
                        "itemNotFound": {
                            "code": 404,
                            "message": f"No hypervisor matching '{pattern}' could be found.",
                        }
                    },
                )
                return
        self._send(h, 200, doc)

    # ---- helpers for tests ---------------------------------------------------------------
    def microversions_asked(self) -> list[str]:
        return [
            r["headers"].get("OpenStack-API-Version", "")
            for r in self.requests
            if r["path"].endswith("/os-hypervisors/detail")
        ]


@contextlib.contextmanager
def running(cloud: FakeCloud) -> Iterator[FakeCloud]:
    cloud.start()
    try:
        yield cloud
    finally:
        cloud.stop()
