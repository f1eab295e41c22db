"""Turn a patient's FHIR Bundle (for example a Synthea transaction Bundle) into an order-sign call.

- The therapy orders being signed become ``context.draftOrders``: ServiceRequest and
  MedicationRequest with status ``draft`` or ``active`` and Procedure with status
  ``preparation`` or ``in-progress`` (R4 has no draft Procedure) that the engine's own order
  recogniser reads as (part of) a radioelement or brachytherapy order, so replay and the service
  never disagree about what a therapy order is. They are sent as drafts, since order-sign is
  about orders not yet signed (``--all-orders`` sends every draft/active order instead).
- Everything else is prefetch, grouped under the service's prefetch keys by resource type
  (``patient`` and ``encounter`` as single resources, the rest as searchset Bundles filtered the
  way the key's query would filter them: by patient, and by ``code``/``status`` when the query
  names them). Types no prefetch key asks for are left out.
- ``urn:uuid:`` references between entries are rewritten to ``Type/id``, as a server would.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

from cds_service.hooks.catalog import SERVICES_BY_ID
from cds_service.knowledge import Knowledge, load_knowledge
from cds_service.engine.orders import therapy_order_members
from cds_service.replay.fixtures import ORDER_SIGN, Fixture, FixtureError

Resource = dict[str, Any]

ORDER_TYPES = ("ServiceRequest", "MedicationRequest", "Procedure")
OPEN_STATUSES = {
    "ServiceRequest": {"draft", "active"},
    "MedicationRequest": {"draft", "active"},
    "Procedure": {"preparation", "in-progress"},
}
DRAFT_STATUS = {"ServiceRequest": "draft", "MedicationRequest": "draft", "Procedure": "preparation"}


def _rewrite_references(value: Any, targets: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in targets:
                out[key] = targets[item]
            else:
                out[key] = _rewrite_references(item, targets)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, targets) for item in value]
    return value


def record_resources(bundle: Resource) -> list[Resource]:
    """The Bundle's resources with ids assigned and urn:uuid references resolved to Type/id."""
    if bundle.get("resourceType") != "Bundle":
        raise FixtureError("not a FHIR Bundle")
    entries = [entry for entry in bundle.get("entry") or [] if isinstance(entry, dict)]
    resources: list[Resource] = []
    targets: dict[str, str] = {}
    for entry in entries:
        resource = entry.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
        resource = copy.deepcopy(resource)
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        if not resource.get("id"):
            if full_url and full_url.startswith("urn:uuid:"):
                resource["id"] = full_url.removeprefix("urn:uuid:")
            elif full_url:
                resource["id"] = full_url.rstrip("/").rsplit("/", 1)[-1]
            else:
                resource["id"] = str(uuid.uuid4())
        relative = f"{resource['resourceType']}/{resource['id']}"
        if full_url:
            targets[full_url] = relative
        resources.append(resource)
    return [_rewrite_references(resource, targets) for resource in resources]


def _about(resource: Resource, patient_id: str) -> bool:
    for key in ("subject", "patient", "beneficiary"):
        value = resource.get(key)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return value["reference"].split("/")[-1] == patient_id
    return True  # no patient link at all: keep it (the service decides what it uses)


def _matches_query(resource: Resource, params: dict[str, list[str]]) -> bool:
    codes = [token for value in params.get("code", []) for token in value.split(",")]
    if codes:
        wanted = {tuple(token.split("|", 1)) if "|" in token else (None, token) for token in codes}
        found = False
        concept = resource.get("code")
        if isinstance(concept, dict):
            for coding in concept.get("coding") or []:
                if not isinstance(coding, dict):
                    continue
                if (coding.get("system"), coding.get("code")) in wanted or (None, coding.get("code")) in wanted:
                    found = True
        if not found:
            return False
    statuses = [token for value in params.get("status", []) for token in value.split(",")]
    if statuses and resource.get("status") not in statuses:
        return False
    return True


def _searchset(resources: list[Resource]) -> Resource:
    bundle: Resource = {"resourceType": "Bundle", "type": "searchset", "total": len(resources)}
    if resources:
        bundle["entry"] = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources]
    return bundle


def build_request(
    bundle: Resource,
    service_id: str = ORDER_SIGN,
    knowledge: Knowledge | None = None,
    all_orders: bool = False,
    user_id: str = "Practitioner/replay",
) -> tuple[dict[str, Any], list[str]]:
    """The hook request for a patient's Bundle, and notes on what was done to build it."""
    knowledge = knowledge or load_knowledge()
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        raise FixtureError(f"unknown service {service_id!r}")
    resources = record_resources(bundle)
    patients = [r for r in resources if r["resourceType"] == "Patient"]
    if len(patients) != 1:
        raise FixtureError(f"a patient Bundle must hold exactly one Patient, this one holds {len(patients)}")
    patient = patients[0]
    patient_id = patient["id"]
    notes: list[str] = []

    open_orders = [r for r in resources
                   if r["resourceType"] in ORDER_TYPES and r.get("status") in OPEN_STATUSES[r["resourceType"]]]
    therapy = therapy_order_members(open_orders, knowledge)
    orders: list[Resource] = []
    rest: list[Resource] = []
    for resource in resources:
        kind = resource["resourceType"]
        open_order = kind in ORDER_TYPES and resource.get("status") in OPEN_STATUSES[kind]
        if open_order and (all_orders or f"{kind}/{resource.get('id')}" in therapy):
            draft = copy.deepcopy(resource)
            if draft.get("status") != DRAFT_STATUS[kind]:
                notes.append(f"{kind}/{draft['id']}: status {draft.get('status')!r} sent as {DRAFT_STATUS[kind]!r}")
                draft["status"] = DRAFT_STATUS[kind]
            orders.append(draft)
        else:
            rest.append(resource)
    if not orders:
        raise FixtureError(
            "the Bundle holds no draft or active radioelement/brachytherapy order to sign "
            "(use --all-orders to send every draft or active order)"
        )

    encounter_id = None
    for order in orders:
        reference = (order.get("encounter") or {}).get("reference") if isinstance(order.get("encounter"), dict) else None
        if isinstance(reference, str) and reference.startswith("Encounter/"):
            encounter_id = reference.split("/", 1)[1]
            break
    if encounter_id is None:
        current = [r for r in rest if r["resourceType"] == "Encounter" and r.get("status") in {"in-progress", "arrived", "planned"}]
        if current:
            encounter_id = current[0]["id"]
    for order in orders:
        requester = order.get("requester")
        if isinstance(requester, dict) and str(requester.get("reference", "")).startswith("Practitioner/"):
            user_id = requester["reference"]
            break

    context: dict[str, Any] = {
        "userId": user_id,
        "patientId": patient_id,
        "draftOrders": {"resourceType": "Bundle", "type": "collection",
                        "entry": [{"resource": order} for order in orders]},
    }
    if encounter_id:
        context["encounterId"] = encounter_id
    if service.hook == "order-select":
        context["selections"] = [f"{order['resourceType']}/{order['id']}" for order in orders]

    prefetch: dict[str, Any] = {}
    for key, template in service.prefetch.items():
        target = template.split("?", 1)[0]
        resource_type, _, template_id = target.partition("/")
        if template_id:  # a read such as Patient/{{context.patientId}}
            if resource_type == "Patient":
                prefetch[key] = patient
            elif resource_type == "Encounter" and encounter_id:
                found = [r for r in rest if r["resourceType"] == "Encounter" and r["id"] == encounter_id]
                prefetch[key] = found[0] if found else None
            continue
        params = parse_qs(urlsplit(template).query)
        matching = [
            r for r in rest
            if r["resourceType"] == resource_type and _about(r, patient_id) and _matches_query(r, params)
        ]
        prefetch[key] = _searchset(matching)

    request = {
        "hook": service.hook,
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "prefetch": prefetch,
    }
    return request, notes


def bundle_fixture(document: Resource, path: Path, name: str, service_id: str = ORDER_SIGN,
                   all_orders: bool = False, knowledge: Knowledge | None = None) -> Fixture:
    """A fixture without expectation for a patient Bundle file."""
    request, notes = build_request(document, service_id, knowledge, all_orders=all_orders)
    orders = [entry["resource"] for entry in request["context"]["draftOrders"]["entry"]]
    description = f"patient record {path.name}: {len(orders)} order(s) to sign: " + ", ".join(
        f"{order['resourceType']}/{order['id']}" for order in orders
    )
    return Fixture(path=path, name=name, kind="bundle", description=description, service=service_id,
                   request=request, document=document, notes=notes)
