"""A small, real HTTP FHIR server on 127.0.0.1 serving a fixed set of resources.

Used by the tests and by ``cds-service replay`` so that the prefetch fallback runs over real
sockets. It answers reads (``Type/id``) and type searches filtered by ``patient``/``subject``
(other search parameters are ignored: the service filters what it needs), pages results with
``next`` links, and can be told to be slow, to fail, or to answer with an OperationOutcome.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Resource = dict[str, Any]


@dataclass
class Behaviour:
    """How the stand-in misbehaves for paths starting with a given resource type."""

    delay_seconds: float = 0.0
    status: int = 200
    operation_outcome: bool = False


@dataclass
class FhirStandIn:
    resources: list[Resource] = field(default_factory=list)
    page_size: int = 50
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests_seen: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the stand-in first"
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/fhir"

    def start(self) -> "FhirStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                standin._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FhirStandIn":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------------

    def _send(self, handler: BaseHTTPRequestHandler, status: int, document: Resource) -> None:
        body = json.dumps(document).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/fhir+json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests do this on purpose)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        path = url.path.removeprefix("/fhir").strip("/")
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        self.requests_seen.append(
            {"path": path, "query": query, "authorization": handler.headers.get("Authorization")}
        )
        resource_type, _, resource_id = path.partition("/")
        behaviour = self.behaviours.get(resource_type)
        if behaviour is not None:
            if behaviour.delay_seconds:
                time.sleep(behaviour.delay_seconds)
            if behaviour.operation_outcome or behaviour.status >= 400:
                outcome = {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "processing", "diagnostics": "stand-in told to fail"}],
                }
                self._send(handler, behaviour.status if behaviour.status >= 400 else 200, outcome)
                return
        if resource_id:
            for resource in self.resources:
                if resource.get("resourceType") == resource_type and resource.get("id") == resource_id:
                    self._send(handler, 200, resource)
                    return
            self._send(handler, 404, {"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "not-found", "diagnostics": f"{path} is not known"}]})
            return
        self._send(handler, 200, self._search(resource_type, query))

    def _search(self, resource_type: str, query: dict[str, str]) -> Resource:
        patient = query.get("patient") or query.get("subject", "").removeprefix("Patient/")
        matches = [
            resource
            for resource in self.resources
            if resource.get("resourceType") == resource_type and (not patient or _about_patient(resource, patient))
        ]
        offset = int(query.get("_offset", "0"))
        page = matches[offset: offset + self.page_size]
        bundle: Resource = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": [{"relation": "self", "url": f"{self.base_url}/{resource_type}"}],
            "entry": [{"fullUrl": f"{self.base_url}/{r['resourceType']}/{r.get('id')}", "resource": r, "search": {"mode": "match"}} for r in page],
        }
        if offset + self.page_size < len(matches):
            rest = "&".join(f"{key}={value}" for key, value in query.items() if key != "_offset")
            bundle["link"].append(
                {"relation": "next", "url": f"{self.base_url}/{resource_type}?{rest}&_offset={offset + self.page_size}"}
            )
        if not bundle["entry"]:
            del bundle["entry"]
        return bundle


def _about_patient(resource: Resource, patient_id: str) -> bool:
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    for key in ("subject", "patient", "beneficiary"):
        reference = (resource.get(key) or {}).get("reference", "") if isinstance(resource.get(key), dict) else ""
        if reference.split("/")[-1] == patient_id:
            return True
    return False
