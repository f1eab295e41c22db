"""Send fixtures to the service and judge the answers.

Two transports: :class:`InProcessTransport` builds the app itself (temporary SQLite database,
authentication off) and calls it through Flask's test client, so nothing needs to be running;
:class:`HttpTransport` posts to a running service (``--url``), optionally with a Bearer token.
Fixtures that carry FHIR resources get a real HTTP FHIR stand-in on 127.0.0.1, and their request's
``fhirServer`` is pointed at it, so the service's prefetch fallback runs over real sockets.
"""

from __future__ import annotations

import copy
import json
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from cds_service.config import Settings
from cds_service.ops.logs import CALL_LOGGER
from cds_service.replay.compare import Difference, compare_response
from cds_service.replay.fixtures import Fixture, decisions_of
from cds_service.schemas import first_error
from cds_service.testing.fhir_standin import FhirStandIn


@dataclass
class Reply:
    status: int
    body: Any
    text: str
    latency_ms: float


class TransportError(Exception):
    """The service could not be reached or did not answer."""


class Transport(Protocol):
    label: str

    def send(self, service: str, method: str, body: bytes, content_type: str) -> Reply: ...

    def close(self) -> None: ...


def _parse(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


class InProcessTransport:
    """The service built in this process on a throw-away SQLite database, authentication off."""

    label = "in process"

    def __init__(self, settings: Settings | None = None) -> None:
        from cds_service.app import create_app  # the app is only needed for in-process runs

        self._directory = tempfile.TemporaryDirectory(prefix="cds-replay-")
        if settings is None:
            settings = Settings.from_env().with_overrides(
                database_url=f"sqlite:///{self._directory.name}/replay.sqlite3",
                # A replay is a test run on this machine: dev rules (the FHIR stand-in is on
                # 127.0.0.1), no authentication, whatever profile the environment names.
                profile="dev",
                auth_enabled=False,
                record_dir=None,
                log_level="WARNING",
            )
        self.app = create_app(settings)
        self.client = self.app.test_client()
        # The service's one-JSON-line-per-call log would drown the replay's own output on stdout.
        self._call_log = logging.getLogger(CALL_LOGGER)
        self._call_log_level = self._call_log.level
        self._call_log.setLevel(logging.WARNING)

    def send(self, service: str, method: str, body: bytes, content_type: str) -> Reply:
        started = time.perf_counter()
        response = self.client.open(f"/cds-services/{service}", method=method, data=body,
                                    headers={"Content-Type": content_type})
        latency = (time.perf_counter() - started) * 1000
        text = response.get_data(as_text=True)
        return Reply(response.status_code, _parse(text), text, latency)

    def close(self) -> None:
        self._call_log.setLevel(self._call_log_level)
        self.app.extensions["cds_db"].dispose()
        self._directory.cleanup()


class HttpTransport:
    """A running service at ``base_url`` (the part before ``/cds-services``)."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0,
                 token_for: Callable[[str], str] | None = None) -> None:
        """``token_for(url)``, when given, signs a fresh token for each request with ``aud`` the URL
        called (a served instance with authentication on refuses a reused ``jti``)."""
        import requests

        self.base_url = base_url.rstrip("/").removesuffix("/cds-services")
        self.label = self.base_url
        self.timeout = timeout
        self.token_for = token_for
        self.session = requests.Session()
        self.session.trust_env = False  # never route the replay through an environment proxy
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def send(self, service: str, method: str, body: bytes, content_type: str) -> Reply:
        import requests

        url = f"{self.base_url}/cds-services/{service}"
        headers = {"Content-Type": content_type}
        if self.token_for is not None:
            headers["Authorization"] = f"Bearer {self.token_for(url)}"
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False,
            )
        except requests.RequestException as error:
            raise TransportError(f"could not reach {self.base_url}: {error}") from None
        latency = (time.perf_counter() - started) * 1000
        return Reply(response.status_code, _parse(response.text), response.text, latency)

    def close(self) -> None:
        self.session.close()


@dataclass
class Result:
    fixture: Fixture
    outcome: str  # passed | failed | known-issue | unchecked | error | written
    http_status: int | None = None
    latency_ms: float | None = None
    body: Any = None
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None
    fhir_requests: int = 0
    written_to: str | None = None

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return decisions_of(self.body)

    @property
    def cards(self) -> list[dict[str, Any]]:
        cards = self.body.get("cards") if isinstance(self.body, dict) else None
        return [card for card in cards if isinstance(card, dict)] if isinstance(cards, list) else []


class Runner:
    """Runs fixtures one after another through a transport (a stand-in FHIR server on demand)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._standin: FhirStandIn | None = None

    def _fhir_server(self, resources: list[dict[str, Any]]) -> FhirStandIn:
        if self._standin is None:
            self._standin = FhirStandIn().start()
        self._standin.resources = copy.deepcopy(resources)
        self._standin.requests_seen.clear()
        return self._standin

    def body_for(self, fixture: Fixture) -> bytes:
        if fixture.raw_body is not None:
            return fixture.raw_body
        request = copy.deepcopy(fixture.request) or {}
        if isinstance(request.get("hookInstance"), str):
            # A fresh instance id per call: the audit trail keys on it, replays must not collide.
            request["hookInstance"] = str(uuid.uuid4())
        if fixture.fhir is not None:
            request["fhirServer"] = self._fhir_server(fixture.fhir).base_url
        return json.dumps(request).encode("utf-8")

    def run(self, fixture: Fixture) -> Result:
        try:
            body = self.body_for(fixture)
            reply = self.transport.send(fixture.service, fixture.method, body, fixture.content_type)
        except TransportError as error:
            return Result(fixture, "error", error=str(error))
        fhir_requests = len(self._standin.requests_seen) if self._standin and fixture.fhir is not None else 0
        result = Result(fixture, "unchecked", reply.status, reply.latency_ms, reply.body, fhir_requests=fhir_requests)
        if reply.status == 200 and not isinstance(reply.body, dict):
            result.outcome, result.error = "error", f"HTTP 200 but the body is not a JSON object: {reply.text[:200]!r}"
            return result
        if reply.status == 200 and fixture.method == "POST":
            problem = first_error("response", reply.body)
            if problem is not None:  # an EHR would reject this answer whatever its decisions say
                result.outcome, result.error = "error", f"the response breaks the CDS Hooks response schema: {problem}"
                return result
        if fixture.expect is not None:
            result.differences = compare_response(fixture.expect, reply.status, reply.body, reply.text)
            wanted = fixture.expect.get("fhir_requests")
            if wanted is not None and fhir_requests != wanted:
                result.differences.append(Difference(
                    "fhir_requests", wanted, fhir_requests, None,
                    f"expected {wanted} request(s) to the FHIR server, got {fhir_requests}"))
            result.outcome = "failed" if result.differences else "passed"
            if fixture.known_issue and result.differences:
                # the expectation is the right answer; the service is known not to give it yet
                result.outcome = "known-issue"
        return result

    def close(self) -> None:
        if self._standin is not None:
            self._standin.stop()
            self._standin = None
        self.transport.close()
