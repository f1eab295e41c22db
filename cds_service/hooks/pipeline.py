"""One service call from body to response: envelope → prefetch → engine → response.

The only module that sees both the hook plumbing and the engine. It decides nothing about
codes; it makes sure the engine gets clean data and the EHR gets a clean, bounded answer.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from cds_service.config import Settings
from cds_service.fhir.client import Deadline, FhirClient, UrlGuard
from cds_service.fhir.parsing import InvalidFhir
from cds_service.hooks import envelope
from cds_service.hooks.catalog import CHECKS_BY_KEY, MAX_CARDS_OPTION, ServiceDefinition
from cds_service.fhir.client import FhirError
from cds_service.hooks.model import SERVICE_LABEL, Guidance, HookCall, Relevance
from cds_service.hooks.prefetch import resolve_prefetch
from cds_service.knowledge import Knowledge
from cds_service.knowledge.vocabulary import PREFETCH_KEYS, CHECKS_UNAVAILABLE_CARD, CRD_CARD_TYPE_SYSTEM, CRD_CARD_TYPES
from cds_service.errors import ApiError

Advise = Callable[[HookCall, Knowledge], Guidance]
#: (draft entries as sent, Medications by reference, selections, order-select?, knowledge)
Relevant = Callable[[tuple[dict[str, Any], ...], Mapping[str, Any], tuple[str, ...], bool, Knowledge], Relevance]
#: Medications read from fhirServer for unresolved references, at most, per call.
MAX_MEDICATION_READS = 10



@dataclass
class CallOutcome:
    """What the web layer sends back and what the audit trail records."""

    body: dict[str, Any]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    fetched_keys: tuple[str, ...] = ()
    unavailable: dict[str, str] = field(default_factory=dict)
    fetch_ms: float = 0.0
    engine_ms: float = 0.0


def prune(value: Any) -> Any:
    """Drop None, empty strings, lists and objects, recursively (CDS Hooks forbids emitting them)."""
    if isinstance(value, dict):
        pruned = {key: prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item not in (None, "", [], {})}
    if isinstance(value, list):
        pruned_items = [prune(item) for item in value]
        return [item for item in pruned_items if item not in (None, "", [], {})]
    return value


def unavailable_card(unavailable: dict[str, str]) -> dict[str, Any]:
    """Say plainly which checks could not run, so a clean result is never mistaken for a full one."""
    lines = [f"- **{CHECKS_BY_KEY.get(key, key)}**: {reason}" for key, reason in sorted(unavailable.items())]
    count = len(unavailable)
    return {
        "uuid": str(uuid.uuid4()),
        "summary": f"{count} check{'s' if count != 1 else ''} could not run: patient data was unavailable",
        "indicator": "warning",
        "detail": "The coding advice below was given without this data:\n\n" + "\n".join(lines)
        + "\n\nReview these items by hand before signing.",
        "source": {
            "label": SERVICE_LABEL,
            "topic": {"system": CRD_CARD_TYPE_SYSTEM, "code": "clinical-reminder",
                      "display": CRD_CARD_TYPES["clinical-reminder"]},
        },
        "extension": {"cds-service.card-type": CHECKS_UNAVAILABLE_CARD},
    }


def apply_card_configuration(cards: list[dict[str, Any]], service: ServiceDefinition,
                             configuration: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Honour the CRD ``davinci-crd.configuration`` the EHR sent: card types switched off are
    dropped, ``max-cards`` keeps the first (most important) cards. Unknown options and values of
    the wrong type are ignored, as CRD requires."""
    if not isinstance(configuration, Mapping):
        return cards
    hidden = {code for code in service.card_types if configuration.get(code) is False}
    kept = [card for card in cards if ((card.get("source") or {}).get("topic") or {}).get("code") not in hidden]
    limit = configuration.get(MAX_CARDS_OPTION)
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
        kept = kept[:limit]
    return kept


class HookHandler:
    """Runs service calls with the settings, knowledge and engine it was built with."""

    def __init__(self, settings: Settings, knowledge: Knowledge, advise: Advise,
                 relevant: Relevant | None = None) -> None:
        self.settings = settings
        self.knowledge = knowledge
        self.advise = advise
        self.relevant = relevant

    def _relevance(self, entries: tuple[dict[str, Any], ...], medications: Mapping[str, Any],
                   selections: tuple[str, ...], light: bool) -> Relevance:
        if self.relevant is None:  # no relevance test wired: every draft is ours, every key read
            return Relevance(frozenset(range(len(entries))), frozenset(PREFETCH_KEYS))
        return self.relevant(entries, medications, selections, light, self.knowledge)

    def _client_factory(self, body: dict[str, Any], url_guard: UrlGuard | None) -> Callable[[], FhirClient] | None:
        server = body.get("fhirServer")
        if not server:
            return None
        token = (body.get("fhirAuthorization") or {}).get("access_token")
        settings = self.settings

        def make() -> FhirClient:
            return FhirClient(
                base_url=server,
                access_token=token,
                connect_timeout=settings.fhir_connect_timeout,
                read_timeout=settings.fhir_read_timeout,
                max_pages=settings.fhir_max_pages,
                deadline=Deadline(settings.fhir_total_budget),
                url_guard=url_guard,
            )

        return make

    def handle(self, service: ServiceDefinition, body: Any, url_guard: UrlGuard | None = None,
               request_base_url: str | None = None) -> CallOutcome:
        """Relevance first: the draft orders alone (and the Medications they reference) say
        whether any is a therapy order; if none is, the answer is no card, with no FHIR request,
        no validation and no 4xx about orders that are not ours. ``request_base_url`` is the URL
        the request came in on, for the library links (``CDS_PUBLIC_BASE_URL`` wins when set)."""
        envelope.check_envelope(service, body)
        entries = envelope.draft_entries(body)
        selections = envelope.check_selections(body, entries)
        context = body["context"]
        light = service.hook == "order-select"

        started = time.perf_counter()
        factory = self._client_factory(body, url_guard)
        client: FhirClient | None = None

        def shared_client() -> FhirClient:
            """One client, so the Medication reads and the prefetch fallback share one budget."""
            nonlocal client
            if client is None:
                assert factory is not None
                client = factory()
            return client

        raw_prefetch = body.get("prefetch") if isinstance(body.get("prefetch"), dict) else {}
        medications = envelope.medications_in([*entries, *raw_prefetch.values()])
        relevance = self._relevance(entries, medications, selections, light)
        # order-select speaks only about the selected drafts, so only their Medications are worth a read
        unselected = frozenset(index for index, entry in enumerate(entries)
                               if light and f"{entry.get('resourceType')}/{entry.get('id')}" not in selections)
        wanted = envelope.unresolved_medication_ids(entries, medications, relevance.members | unselected)
        if wanted and factory is not None:
            for ident in wanted[:MAX_MEDICATION_READS]:
                try:
                    found = shared_client().fetch(f"Medication/{quote(ident, safe='')}")
                except FhirError:
                    continue  # unreadable: the order stays unrecognised, as without a fhirServer
                medications.update(envelope.medications_in(found))
            relevance = self._relevance(entries, medications, selections, light)
        if not relevance.members:
            return CallOutcome(body={"cards": []}, fetch_ms=(time.perf_counter() - started) * 1000)
        orders = envelope.draft_orders(entries, relevance.members, lenient=light)
        if light and len(orders) < len(entries):
            # an incomplete selected draft was set aside: judge what is left
            relevance = self._relevance(orders, medications, selections, light)
            if not relevance.members:
                return CallOutcome(body={"cards": []}, fetch_ms=(time.perf_counter() - started) * 1000)

        prefetched = resolve_prefetch(
            service.prefetch,
            context,
            body.get("prefetch"),
            shared_client if factory is not None else None,
            self.settings.fhir_total_budget,
            fetchable=relevance.prefetch_keys,
        )
        fetch_ms = (time.perf_counter() - started) * 1000
        if self.settings.strict_fhir:
            envelope.validate_all(prefetched.resources)

        call = HookCall(
            service_id=service.id,
            hook=body["hook"],
            hook_instance=body["hookInstance"],
            patient_id=context["patientId"],
            user_id=context["userId"],
            encounter_id=context.get("encounterId"),
            draft_orders=orders,
            selections=selections,
            prefetch=prefetched.resources,
            unavailable=prefetched.unavailable,
            today=datetime.now(timezone.utc).date(),
            crd_configuration=(body.get("extension") or {}).get("davinci-crd.configuration") or {},
            medications=medications,
            base_url=(self.settings.public_base_url or request_base_url or "").rstrip("/") or None,
        )
        started = time.perf_counter()
        try:
            guidance = self.advise(call, self.knowledge)
        except InvalidFhir as error:
            raise ApiError(422, f"invalid FHIR: {error}") from None
        engine_ms = (time.perf_counter() - started) * 1000

        cards = list(guidance.cards)
        read = guidance.prefetch_keys_read
        missing_data = {key: why for key, why in prefetched.unavailable.items() if read is None or key in read}
        if guidance.decisions and missing_data:
            if not prefetched.resources:
                # Nothing about the patient could be had at all: per CDS Hooks 2.0 that is a 412,
                # so the EHR can retry with prefetch rather than act on half an answer.
                reasons = "; ".join(f"{key}: {why}" for key, why in sorted(prefetched.unavailable.items()))
                raise ApiError(412, f"the patient data this service needs could not be obtained ({reasons})")
            cards.insert(0, unavailable_card(missing_data))
        response: dict[str, Any] = {"cards": apply_card_configuration(cards, service, call.crd_configuration)}
        if guidance.system_actions:
            response["systemActions"] = guidance.system_actions
        if guidance.decisions:
            response["extension"] = {"cds-service.decisions": guidance.decisions}
        body_out = prune(response)
        body_out.setdefault("cards", [])
        return CallOutcome(
            body=body_out,
            decisions=list(guidance.decisions),
            fetched_keys=prefetched.fetched_keys,
            unavailable=dict(prefetched.unavailable),
            fetch_ms=fetch_ms,
            engine_ms=engine_ms,
        )
