"""Check a service-call body against the CDS Hooks 2.0 rules and pull out the draft orders.

Schema violations and broken hook rules are the client's mistake (400, naming the field);
draft orders that are not valid FHIR R4 are 422.
"""

from __future__ import annotations

from typing import Any

from cds_service.fhir.parsing import InvalidFhir, validate_resource
from cds_service.hooks.catalog import ServiceDefinition
from cds_service.schemas import first_error
from cds_service.errors import ApiError

Resource = dict[str, Any]


def check_envelope(service: ServiceDefinition, body: Any) -> None:
    problem = first_error("request", body)
    if problem is not None:
        raise ApiError(400, f"request does not follow CDS Hooks 2.0: {problem}")
    if body["hook"] != service.hook:
        raise ApiError(
            400,
            f"hook: service {service.id!r} answers the {service.hook!r} hook, but the request is for {body['hook']!r}",
        )


def draft_orders(body: dict[str, Any]) -> tuple[Resource, ...]:
    """The validated draft orders; every entry must be valid FHIR R4 with an id."""
    orders: list[Resource] = []
    seen: set[str] = set()
    for index, entry in enumerate(body["context"]["draftOrders"].get("entry") or []):
        where = f"context.draftOrders.entry[{index}].resource"
        resource = entry["resource"]
        if not isinstance(resource.get("id"), str) or not resource["id"]:
            raise ApiError(422, f"{where}: every draft order needs an id so that cards and suggestions can refer to it")
        try:
            order = validate_resource(resource, where)
        except InvalidFhir as error:
            raise ApiError(422, f"invalid FHIR: {error}") from None
        reference = f"{order['resourceType']}/{order['id']}"
        if reference in seen:
            raise ApiError(422, f"{where}: {reference} appears twice in draftOrders")
        seen.add(reference)
        orders.append(order)
    return tuple(orders)


def check_selections(body: dict[str, Any], orders: tuple[Resource, ...]) -> tuple[str, ...]:
    selections = tuple(body["context"].get("selections") or ())
    known = {f"{order['resourceType']}/{order['id']}" for order in orders}
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
