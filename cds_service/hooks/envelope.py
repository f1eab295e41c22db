"""Check a service-call body against the CDS Hooks 2.0 rules and pull out the draft orders.

Schema violations and broken hook rules are the client's mistake (400, naming the field);
draft orders that are not valid FHIR R4 are 422.
"""

from __future__ import annotations

from typing import Any, Mapping

from functools import lru_cache

from cds_service.fhir.parsing import InvalidFhir, validate_resource
from cds_service.hooks.catalog import ServiceDefinition
from cds_service.hooks.schema_check import Check, Unsupported, compile_schema
from cds_service.schemas import first_error, validator
from cds_service.errors import ApiError

Resource = dict[str, Any]


@lru_cache(maxsize=None)
def fast_request_check() -> Check | None:
    """The request schema compiled to plain checks (hooks/schema_check.py), or None when it uses
    a keyword the compiler does not know (then jsonschema alone decides)."""
    schema = validator("request").schema
    if not isinstance(schema, Mapping):
        return None
    try:
        return compile_schema(schema)
    except Unsupported:
        return None


def check_envelope(service: ServiceDefinition, body: Any) -> None:
    fast = fast_request_check()
    if fast is None or not fast(body):  # jsonschema finds and words the error (or confirms it is valid)
        problem = first_error("request", body)
        if problem is not None:
            raise ApiError(400, f"request does not follow CDS Hooks 2.0: {problem}")
    if body["hook"] != service.hook:
        raise ApiError(
            400,
            f"hook: service {service.id!r} answers the {service.hook!r} hook, but the request is for {body['hook']!r}",
        )


def draft_entries(body: dict[str, Any]) -> tuple[Resource, ...]:
    """Every resource in ``draftOrders``, as sent: nothing is validated before it is known to be ours."""
    return tuple(entry["resource"] for entry in body["context"]["draftOrders"].get("entry") or [])


def draft_orders(entries: tuple[Resource, ...], members: frozenset[int], lenient: bool) -> tuple[Resource, ...]:
    """The draft orders the engine reads: the therapy ones validated as FHIR R4 (with an id each),
    the others passed on as sent, because a malformed statin is the EHR's business, not ours.

    ``lenient`` (order-select) drops a therapy draft that is not complete yet (no intent, no
    status) instead of answering 422: the clinician is still filling it in.
    """
    orders: list[Resource] = []
    seen: set[str] = set()
    for index, resource in enumerate(entries):
        if index not in members:
            orders.append(resource)
            continue
        where = f"context.draftOrders.entry[{index}].resource"
        if not isinstance(resource.get("id"), str) or not resource["id"]:
            if lenient:
                continue
            raise ApiError(422, f"{where}: every draft order needs an id so that cards and suggestions can refer to it")
        try:
            order = validate_resource(_in_progress(resource) if lenient else resource, where)
        except InvalidFhir as error:
            if lenient:
                continue
            raise ApiError(422, f"invalid FHIR: {error}") from None
        reference = f"{order['resourceType']}/{order['id']}"
        if reference in seen:
            raise ApiError(422, f"{where}: {reference} appears twice in draftOrders")
        seen.add(reference)
        orders.append(order)
    return tuple(orders)


def _in_progress(resource: Resource) -> Resource:
    """A draft still being filled in on order-select may lack ``status`` and ``intent``, which R4
    requires; it is read as the draft proposal it is (on a copy) so the chosen drug can be coded."""
    if resource.get("resourceType") not in ("MedicationRequest", "ServiceRequest"):
        return resource
    filled = dict(resource)
    filled.setdefault("status", "draft")
    filled.setdefault("intent", "proposal")
    return filled


def medications_in(values: Any) -> dict[str, Resource]:
    """Medication resources by ``Medication/id`` found in the given resources or Bundles (the
    draftOrders entries, the prefetch values), read as sent: only their codes and names count."""
    found: dict[str, Resource] = {}
    stack = list(values)
    while stack:
        value = stack.pop()
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            entries = value.get("entry")
            if isinstance(entries, list):
                stack.extend(entry.get("resource") for entry in entries if isinstance(entry, dict))
        elif value.get("resourceType") == "Medication" and isinstance(value.get("id"), str):
            found.setdefault(f"Medication/{value['id']}", value)
    return found


def unresolved_medication_ids(entries: tuple[Resource, ...], known: dict[str, Resource],
                              skip: frozenset[int]) -> list[str]:
    """Ids of ``Medication/{id}`` references from draft MedicationRequests (other than ``skip``)
    that the request does not hold, in draft order, each once."""
    wanted: list[str] = []
    for index, resource in enumerate(entries):
        if index in skip or resource.get("resourceType") != "MedicationRequest":
            continue
        target = (resource.get("medicationReference") or {}).get("reference") if isinstance(
            resource.get("medicationReference"), dict) else None
        if not isinstance(target, str) or target.startswith("#"):
            continue
        parts = target.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2 and parts[-2] == "Medication" and f"Medication/{parts[-1]}" not in known:
            wanted.append(parts[-1])
    return list(dict.fromkeys(wanted))


def check_selections(body: dict[str, Any], orders: tuple[Resource, ...]) -> tuple[str, ...]:
    selections = tuple(body["context"].get("selections") or ())
    known = {f"{order['resourceType']}/{order.get('id')}" for order in orders}
    for index, selection in enumerate(selections):
        if selection not in known:
            raise ApiError(400, f"context.selections[{index}]: {selection!r} is not one of the draftOrders")
    return selections


def validate_all(resources: dict[str, tuple[Resource, ...]]) -> None:
    """Strict mode: validate every prefetched resource (the fast path validates only what it uses)."""
    for key, items in resources.items():
        for index, resource in enumerate(items):
            try:
                validate_resource(resource, f"prefetch.{key}[{index}]")
            except InvalidFhir as error:
                raise ApiError(422, f"invalid FHIR: {error}") from None
