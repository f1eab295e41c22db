"""Plain data that crosses the line between the hook plumbing and the coding engine.

The plumbing (HTTP, schema checks, prefetch fallback) builds a :class:`HookCall`; the engine
answers with a :class:`Guidance`. Neither side imports the other's internals, so the engine can
be tested without Flask and the plumbing without clinical rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import date
from typing import Any, Mapping

Resource = dict[str, Any]

# Shared by every card, whoever renders it: the engine's coding cards and the plumbing's
# "checks could not run" card speak with one source label and one card-type code system.
SERVICE_LABEL = "Radioelement therapy coding"
CRD_CARD_TYPES = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"  # Da Vinci CRD 2.0.1 card types


@dataclass(frozen=True)
class HookCall:
    """One CDS Hooks invocation, normalised.

    ``draft_orders`` are validated FHIR R4 resources (plain dicts). ``prefetch`` maps each
    prefetch key to the resources it yielded (Bundles flattened, OperationOutcomes removed);
    those resources are *not* validated up front: the engine selects what it needs and
    validates only that (see :func:`cds_service.fhir.parsing.validate_resource`).
    ``unavailable`` names the prefetch keys whose data could not be had, with the reason.
    """

    service_id: str
    hook: str
    hook_instance: str
    patient_id: str
    user_id: str
    draft_orders: tuple[Resource, ...]
    today: date
    encounter_id: str | None = None
    selections: tuple[str, ...] = ()
    prefetch: Mapping[str, tuple[Resource, ...]] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)
    crd_configuration: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def _resources_by_type(self) -> dict[str, tuple[Resource, ...]]:
        """Prefetched resources grouped by type once per call, without repeats across keys."""
        grouped: dict[str, list[Resource]] = {}
        seen: set[str] = set()
        for resources in self.prefetch.values():
            for resource in resources:
                resource_type = str(resource.get("resourceType"))
                identity = f"{resource_type}/{resource['id']}" if resource.get("id") else f"#{id(resource)}"
                if identity in seen:
                    continue
                seen.add(identity)
                grouped.setdefault(resource_type, []).append(resource)
        return {resource_type: tuple(items) for resource_type, items in grouped.items()}

    @cached_property
    def memo(self) -> dict[str, Any]:
        """Scratch space for indexes the engine derives from this call once and reads several
        times (for example Observations by evidence group). Never part of the call's meaning."""
        return {}

    def resources(self, resource_type: str) -> tuple[Resource, ...]:
        """Every prefetched resource of one type, whatever key brought it, without repeats."""
        return self._resources_by_type.get(resource_type, ())

    def draft_order(self, reference: str) -> Resource | None:
        """The draft order a relative reference such as ``ServiceRequest/sr-1`` points at."""
        for resource in self.draft_orders:
            if f"{resource.get('resourceType')}/{resource.get('id')}" == reference:
                return resource
        return None


@dataclass(frozen=True)
class Guidance:
    """What the engine has to say: CDS Hooks cards and systemActions (plain JSON-ready dicts)
    and the machine-readable decisions published at ``extension["cds-service.decisions"]``."""

    cards: list[dict[str, Any]] = field(default_factory=list)
    system_actions: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # The prefetch keys the decisions actually read; None means "all of them". The plumbing
    # names only these on its "checks could not run" card, so an unused key is not noise.
    prefetch_keys_read: frozenset[str] | None = None
