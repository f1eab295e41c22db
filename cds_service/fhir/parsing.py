"""Validate FHIR R4 resources with ``fhir.resources`` (R4B models), leniently where real clients are sloppy.

The public CDS Hooks Sandbox sends shapes a strict validator rejects (a Bundle without ``type``,
``MedicationRequest.category`` as one object instead of a list). :func:`normalise` repairs exactly
those known, harmless deviations; everything else must be valid R4 or it is reported as
:class:`InvalidFhir` (HTTP 422 at the edge).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from cds_service.fhir import speedups

Resource = dict[str, Any]

# Elements that R4 defines as lists but that known clients send as a single object.
_LIST_ELEMENTS: dict[str, tuple[str, ...]] = {
    "MedicationRequest": ("category", "reasonCode", "dosageInstruction", "note", "identifier"),
    "ServiceRequest": ("category", "reasonCode", "bodySite", "note", "identifier"),
    "Procedure": ("reasonCode", "bodySite", "note", "identifier"),
}


class InvalidFhir(ValueError):
    """A resource is not valid FHIR R4; ``where`` says which one (e.g. ``draftOrders entry 2``)."""

    def __init__(self, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        super().__init__(f"{where}: " + "; ".join(problems))


@lru_cache(maxsize=None)
def _model_class(resource_type: str) -> Any:
    if not resource_type.isalpha():
        raise KeyError(resource_type)
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


# The resource types a hook call validates: draft orders, and what the engine reads from the chart.
CALL_RESOURCE_TYPES = (
    "ServiceRequest", "MedicationRequest", "Procedure", "Patient", "Condition", "Observation",
    "DiagnosticReport", "ImagingStudy", "CarePlan", "Coverage", "Encounter", "AdverseEvent",
    "DocumentReference",
)


def preload_models(resource_types: tuple[str, ...] = CALL_RESOURCE_TYPES) -> None:
    """Import and build the R4B models now (about 250 ms), so that gunicorn's preloading master
    does it once and its workers fork with them ready, instead of every worker paying for them
    on its first calls."""
    if not speedups.attempted():
        speedups.install()
    for resource_type in resource_types:
        _model_class(resource_type)


def normalise(resource: Resource) -> Resource:
    """A copy of ``resource`` with the known lenient shapes repaired (single object → list).

    The copy is shallow: only top-level elements are ever replaced, so nested values are shared
    with ``resource`` and neither is mutated (validation only reads). A deep copy added about a
    third to the cost of every validation on the order-sign path; code that changes a resource,
    such as a suggestion that recodes a draft order, deep-copies it itself.
    """
    fixed = dict(resource)
    for element in _LIST_ELEMENTS.get(str(fixed.get("resourceType")), ()):
        if isinstance(fixed.get(element), dict):
            fixed[element] = [fixed[element]]
    return fixed


# Codes with a *required* binding in R4 on the orders this service reads. The R4B models check
# types but not these value sets, and a misspelt status changes what an order means.
_REQUIRED_CODES: dict[str, dict[str, frozenset[str]]] = {
    "ServiceRequest": {
        "status": frozenset({"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}),
        "intent": frozenset({"proposal", "plan", "directive", "order", "original-order", "reflex-order",
                             "filler-order", "instance-order", "option"}),
    },
    "MedicationRequest": {
        "status": frozenset({"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped",
                             "draft", "unknown"}),
        "intent": frozenset({"proposal", "plan", "order", "original-order", "reflex-order", "filler-order",
                             "instance-order", "option"}),
    },
    "Procedure": {
        "status": frozenset({"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
                             "entered-in-error", "unknown"}),
    },
}


def _code_problems(resource: Resource) -> list[str]:
    problems = []
    for element, allowed in _REQUIRED_CODES.get(str(resource.get("resourceType")), {}).items():
        value = resource.get(element)
        if value is None:
            continue
        if not isinstance(value, str):
            problems.append(f"{element}: must be a code (a string)")
        elif value not in allowed:
            problems.append(f"{element}: {value[:40]!r} is not one of {', '.join(sorted(allowed))}")
    return problems


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors()[:5]:
        path = ".".join(str(part) for part in item.get("loc", ()) if part != "__root__")
        problems.append(f"{path or '(resource)'}: {item.get('msg', 'invalid')}")
    return problems


def validate_resource(resource: Any, where: str = "resource") -> Resource:
    """Validate one resource against its R4B model and return its normalised JSON form.

    Raises :class:`InvalidFhir` with a precise, client-safe message when it is not valid.
    """
    if not isinstance(resource, dict):
        raise InvalidFhir(where, ["a FHIR resource must be a JSON object"])
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        raise InvalidFhir(where, ["resourceType is missing"])
    if not speedups.attempted():
        speedups.install()  # once per process; on an unchecked fhir_core it changes nothing
    try:
        model = _model_class(resource_type)
    except (KeyError, ImportError, AttributeError):
        raise InvalidFhir(where, [f"unknown resourceType {resource_type!r}"]) from None
    fixed = normalise(resource)
    code_problems = _code_problems(fixed)
    if code_problems:
        raise InvalidFhir(f"{where} ({resource_type}/{resource.get('id', '?')})", code_problems)
    try:
        model.model_validate(fixed)
    except ValidationError as error:
        raise InvalidFhir(f"{where} ({resource_type}/{resource.get('id', '?')})", _describe(error)) from None
    except (ValueError, TypeError) as error:  # fhir.resources raises these for some primitive checks
        raise InvalidFhir(f"{where} ({resource_type}/{resource.get('id', '?')})", [str(error)[:300]]) from None
    return fixed
