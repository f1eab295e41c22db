"""Turn what the EHR prefetched into resources, and fetch what it did not send.

Per CDS Hooks 2.0: a key that is present holds a resource, a Bundle or ``null`` (no data); a key
that is absent was not fulfilled and is the service's to fetch from ``fhirServer``. A prefetched
OperationOutcome means the EHR's own query failed, so that key is fetched again too. Missing keys
are fetched concurrently under one shared deadline, so a slow server costs at most the budget.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import quote

from cds_service.turns import TURNS
from cds_service.fhir.client import FhirClient, FhirError, bundle_resources, next_link, operation_outcome_text

Resource = dict[str, Any]

_TOKEN = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}


def render_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Fill the 2.0 prefetch tokens from the hook context; None when a token has no value here."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        token = match.group(1)
        value: Any = None
        if token.startswith("context."):
            value = context.get(token.removeprefix("context."))
        elif token in _USER_TOKENS:
            user = str(context.get("userId", ""))
            kind, _, ident = user.partition("/")
            value = ident if kind == _USER_TOKENS[token] else None
        if not isinstance(value, (str, int)) or value == "":
            missing = True
            return ""
        return quote(str(value), safe="")

    rendered = _TOKEN.sub(substitute, template)
    return None if missing else rendered


@dataclass(frozen=True)
class PrefetchResult:
    resources: dict[str, tuple[Resource, ...]]
    unavailable: dict[str, str]
    fetched_keys: tuple[str, ...]


def _from_prefetch(value: Any) -> tuple[Resource, ...] | str:
    """Resources from one prefetch value, or the reason it is unusable."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        return "the prefetched value was not a FHIR resource"
    if value.get("resourceType") == "OperationOutcome":
        return operation_outcome_text(value)
    if value.get("resourceType") == "Bundle":
        return tuple(bundle_resources(value))
    return (value,)


def resolve_prefetch(
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    prefetch: Mapping[str, Any] | None,
    client_factory: Callable[[], FhirClient] | None,
    budget_seconds: float,
    fetchable: frozenset[str] | None = None,
) -> PrefetchResult:
    """Collect every template's data from the request or from the FHIR server.

    ``client_factory`` is None when the request gave no ``fhirServer``; then whatever was not
    prefetched is unavailable. Keys whose template cannot be filled here (no encounterId) are
    simply not applicable and are neither fetched nor reported. When ``fetchable`` is given, keys
    outside it are read from the request if sent and otherwise left alone: the decision never
    reads them, so they are neither fetched nor reported.
    """
    prefetch = prefetch or {}
    resources: dict[str, tuple[Resource, ...]] = {}
    unavailable: dict[str, str] = {}
    to_fetch: dict[str, str] = {}
    pages_to_complete: dict[str, Resource] = {}
    for key, template in templates.items():
        query = render_template(template, context)
        if query is None:
            continue
        if key in prefetch:
            value = _from_prefetch(prefetch[key])
            if isinstance(value, tuple):
                resources[key] = value
                if isinstance(prefetch[key], dict) and next_link(prefetch[key]):
                    pages_to_complete[key] = prefetch[key]
                continue
            reason = value
        else:
            reason = "not prefetched"
        if fetchable is not None and key not in fetchable:
            continue
        if client_factory is None:
            unavailable[key] = f"{reason}, and no fhirServer was given to fetch it from"
        else:
            to_fetch[key] = query
    if not to_fetch and not pages_to_complete:
        return PrefetchResult(resources, unavailable, ())

    assert client_factory is not None
    client = client_factory()

    def run(key: str) -> tuple[Resource, ...]:
        if key in pages_to_complete:
            return tuple(client.complete_bundle(pages_to_complete[key]))
        return client.fetch(to_fetch[key])

    keys = list(dict.fromkeys([*to_fetch, *pages_to_complete]))
    pool = ThreadPoolExecutor(max_workers=min(8, len(keys)), thread_name_prefix="fhir-fetch")
    try:
        futures = {key: pool.submit(run, key) for key in keys}
        with TURNS.waiting():  # other calls of this worker run meanwhile (cds_service/turns.py)
            wait(futures.values(), timeout=max(budget_seconds, 0.1))
        for key, future in futures.items():
            if not future.done():
                unavailable[key] = "the FHIR server did not answer in time"
                future.cancel()
                continue
            error = future.exception()
            if error is None:
                resources[key] = future.result()
            elif key in pages_to_complete:
                pass  # keep the first page the EHR sent; the rest could not be had
            elif isinstance(error, FhirError):
                unavailable[key] = error.reason
            else:
                unavailable[key] = "the FHIR query failed"
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return PrefetchResult(resources, unavailable, tuple(keys))
