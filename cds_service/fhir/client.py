"""A small, bounded FHIR REST client for the prefetch fallback.

Bounded in every direction, because an EHR is waiting: connect and read timeouts, a deadline
shared by every call made for one hook request, a page cap when following ``next`` links, a
byte cap on bodies, no redirects. The access token goes in the Authorization header and
nowhere else: it is never logged, never put in an error message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import requests

from cds_service.turns import TURNS

Resource = dict[str, Any]
UrlGuard = Callable[[str], None]

MAX_BODY_BYTES = 20 * 1024 * 1024
FHIR_JSON = "application/fhir+json"


class FhirError(Exception):
    """The data could not be had; ``reason`` is safe to show a clinician or log (no token, no PHI)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Deadline:
    """A monotonic-clock budget shared by all FHIR calls of one hook request."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)


def operation_outcome_text(outcome: Resource) -> str:
    """One line saying what an OperationOutcome reports (its first error-level issue)."""
    for issue in outcome.get("issue") or []:
        if issue.get("severity") in {"error", "fatal"}:
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or issue.get("code")
            return f"the FHIR server reported {issue.get('code', 'an error')}: {str(text)[:200]}"
    return "the FHIR server answered with an OperationOutcome"


@dataclass
class FhirClient:
    base_url: str
    access_token: str | None = None
    connect_timeout: float = 2.0
    read_timeout: float = 4.0
    max_pages: int = 5
    deadline: Deadline = field(default_factory=lambda: Deadline(6.0))
    url_guard: UrlGuard | None = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/") + "/"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": f"{FHIR_JSON}, application/json"}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return headers

    def _same_server(self, url: str) -> bool:
        base, other = urlsplit(self.base_url), urlsplit(url)
        return (base.scheme, base.netloc) == (other.scheme, other.netloc) and other.path.startswith(base.path.rstrip("/"))

    def get_json(self, url: str) -> Resource:
        """GET one FHIR JSON document within the deadline; raise :class:`FhirError` on any failure."""
        if not self._same_server(url):
            raise FhirError("a link pointed outside the FHIR server and was not followed")
        if self.url_guard is not None:
            self.url_guard(url)  # raises FhirError (or a subclass) when the address is not allowed
        remaining = self.deadline.remaining()
        if remaining <= 0.05:
            raise FhirError("the time allowed for FHIR server queries ran out")
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        # The SSRF guard's session re-checks the resolved address at connect time (no DNS
        # rebinding between the check above and the connection) and ignores proxy env vars.
        http = getattr(self.url_guard, "http_session", None) or requests
        try:
            with TURNS.waiting(), http.get(url, headers=self._headers(), timeout=timeout, stream=True,
                                           allow_redirects=False) as response:
                body = self._read_body(response)
                status = response.status_code
        except requests.Timeout:
            raise FhirError(f"the FHIR server did not answer within {timeout[1]:.1f} s") from None
        except requests.ConnectionError:
            raise FhirError("the FHIR server could not be reached") from None
        except requests.RequestException:
            raise FhirError("the FHIR request failed") from None
        try:
            document = json.loads(body) if body else None
        except ValueError:
            document = None
        if 300 <= status < 400:
            raise FhirError(f"the FHIR server answered with a redirect (HTTP {status}), which is not followed")
        if isinstance(document, dict) and document.get("resourceType") == "OperationOutcome" and status >= 400:
            raise FhirError(f"HTTP {status}: {operation_outcome_text(document)}")
        if status in (401, 403):
            raise FhirError(f"the FHIR server refused access (HTTP {status})")
        if status >= 400:
            raise FhirError(f"the FHIR server answered HTTP {status}")
        if not isinstance(document, dict) or "resourceType" not in document:
            raise FhirError("the FHIR server's answer was not a FHIR JSON resource")
        if document.get("resourceType") == "OperationOutcome":
            raise FhirError(operation_outcome_text(document))
        return document

    def _read_body(self, response: requests.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise FhirError("the FHIR server's answer was larger than allowed")
            if self.deadline.remaining() <= 0:
                raise FhirError("the time allowed for FHIR server queries ran out")
            chunks.append(chunk)
        return b"".join(chunks)

    def fetch(self, relative_query: str) -> tuple[Resource, ...]:
        """Run a read or search relative to the base URL; return the resources, following ``next``."""
        document = self.get_json(urljoin(self.base_url, relative_query.lstrip("/")))
        if document.get("resourceType") != "Bundle":
            return (document,)
        return tuple(self.complete_bundle(document))

    def complete_bundle(self, bundle: Resource) -> list[Resource]:
        """The resources of a search Bundle and of its ``next`` pages, up to the page cap."""
        resources = bundle_resources(bundle)
        pages = 1
        next_url = next_link(bundle)
        while next_url and pages < self.max_pages:
            page = self.get_json(next_url)
            if page.get("resourceType") != "Bundle":
                raise FhirError("a next page of search results was not a Bundle")
            resources.extend(bundle_resources(page))
            next_url = next_link(page)
            pages += 1
        return resources


def next_link(bundle: Resource) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            url: str = link["url"]
            return url
    return None


def bundle_resources(bundle: Resource) -> list[Resource]:
    """Entry resources of a Bundle, without the OperationOutcomes a search may add as warnings."""
    resources = []
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
            resources.append(resource)
    return resources
