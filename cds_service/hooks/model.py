"""Plain data that crosses the line between the hook plumbing and the coding engine.

The plumbing (HTTP, schema checks, prefetch fallback) builds a :class:`HookCall`; the engine
answers with a :class:`Guidance`. Neither side imports the other's internals, so the engine can
be tested without Flask and the plumbing without clinical rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Mapping

Resource = dict[str, Any]

#: The source label of every card, whoever renders it: the engine's coding cards and the
#: plumbing's "checks could not run" card speak with one voice.
SERVICE_LABEL = "Radioelement therapy coding"


class CallCache:
    """Indexes derived from one call's data, built once and read several times during that call
    (prefetched resources by type, validated copies, Observations by evidence group).

    It never changes what the call means, so it is left out of equality and ``repr``; it lives
    and dies with its :class:`HookCall`, so nothing is shared between calls or patients.
    """

    def __init__(self) -> None:
        self.by_type: dict[str, tuple[Resource, ...]] | None = None
        self.validated: dict[int, Resource] = {}
        self.observation_groups: dict[str, list[Resource]] | None = None


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
    # Medications a medicationReference may point to, by ``Medication/id``: from the draftOrders
    # Bundle, the prefetch or the EHR's FHIR server (``contained`` ones are read from the order).
    medications: Mapping[str, Resource] = field(default_factory=dict)
    #: The service's absolute public base URL (``CDS_PUBLIC_BASE_URL``, else the request's own),
    #: for links to the code library; None when the call did not come over HTTP.
    base_url: str | None = None
    cache: CallCache = field(default_factory=CallCache, compare=False, repr=False)

    def resources(self, resource_type: str) -> tuple[Resource, ...]:
        """Every prefetched resource of one type, whatever key brought it, without repeats."""
        if self.cache.by_type is None:
            grouped: dict[str, list[Resource]] = {}
            seen: set[str] = set()
            for resources in self.prefetch.values():
                for resource in resources:
                    resource_type_of = str(resource.get("resourceType"))
                    identity = (f"{resource_type_of}/{resource['id']}" if resource.get("id")
                                else f"#{id(resource)}")
                    if identity in seen:
                        continue
                    seen.add(identity)
                    grouped.setdefault(resource_type_of, []).append(resource)
            self.cache.by_type = {kind: tuple(items) for kind, items in grouped.items()}
        return self.cache.by_type.get(resource_type, ())


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


@dataclass(frozen=True)
class Relevance:
    """Which draft orders are the service's to judge, found from the draft orders alone.

    ``members`` are positions in ``draftOrders.entry`` of the resources that make up therapy
    orders (for order-select: the selected ones); empty means "not ours": no FHIR request, no
    validation, no card. ``prefetch_keys`` are the keys the decisions on them can read.
    """

    members: frozenset[int] = frozenset()
    prefetch_keys: frozenset[str] = frozenset()
