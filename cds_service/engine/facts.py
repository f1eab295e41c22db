"""Plain, frozen facts the decision reasons over: one :class:`TherapyOrder` per radioelement
therapy order in the draft, and one :class:`PatientFacts` for the chart around it.

Nothing here decides a code; it only says what the request shows, in the knowledge's terms
(agent keys, route keys, site keys, CPT codes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cds_service.engine.activity import Activity
from cds_service.knowledge.model import CodeKey

Resource = dict[str, Any]


@dataclass(frozen=True)
class TherapyOrder:
    """A ServiceRequest or Procedure, plus the MedicationRequest for its agent when there is one."""

    reference: str
    resource: Resource
    members: tuple[str, ...]
    when: date
    completed: bool = False
    ordered_code: str | None = None
    ordered_modifiers: tuple[str, ...] = ()
    agent: str | None = None
    carrier: str | None = None
    route: str | None = None
    route_kind: str | None = None
    route_stated: bool = False
    body_site: str | None = None
    body_site_stated: bool = False
    activity: Activity | None = None
    agent_conflict: str | None = None  # a code and the drug's name disagree about the agent
    dose_stated: str | None = None  # what the order states instead of an activity ("1 {pill}")
    has_reason: bool = False
    reason_codes: tuple[CodeKey, ...] = ()
    reason_refs: tuple[str, ...] = ()
    applicator: str | None = None  # the gynaecologic applicator the order names (the device)
    applicator_insertion: bool = False  # the order is that applicator's insertion (step 2), not a treatment through it
    electronic: bool = False
    sealed: bool = False
    dose_rate: str | None = None
    count: int | None = None
    lesion_cm: float | None = None
    lesions: int | None = None
    complications_documented: bool = False
    encounter_ref: str | None = None


@dataclass(frozen=True)
class ConditionFact:
    reference: str
    codes: tuple[CodeKey, ...]
    malignant: bool
    staged: bool
    signal: str | None = None  # what shows the malignancy: code | histology | secondary-profile | text
    text: str = ""  # the words relied on, when the signal is text
    # A secondary cancer's primary, named by mCODE's related-primary extension: its codes meet the
    # agent's indication (bone metastases *from prostate cancer*) without a Condition of their own.
    related_primary_codes: tuple[CodeKey, ...] = ()


@dataclass(frozen=True)
class CarePlanFact:
    start: date | None
    end: date | None


@dataclass(frozen=True)
class HistoryFact:
    reference: str
    code: str
    when: date


@dataclass(frozen=True)
class ReportFact:
    """An imaging report's words (code, text, conclusion) and date, for per-agent requirements."""

    when: date | None
    text: str


@dataclass(frozen=True)
class CodedFact:
    """A completed Procedure's, a staging Observation's or a prior medication's codes, words and date."""

    codes: tuple[CodeKey, ...]
    when: date | None
    value: str = ""


@dataclass(frozen=True)
class CoverageFact:
    reference: str
    payer_name: str | None
    identifiers: tuple[str, ...]


@dataclass(frozen=True)
class PatientFacts:
    """The chart: what is on file, with dates, so each order can apply its own 90-day windows."""

    conditions: tuple[ConditionFact, ...] = ()
    stage_dates: tuple[date | None, ...] = ()
    performance_status_dates: tuple[date, ...] = ()
    disease_status_dates: tuple[date, ...] = ()
    imaging_dates: tuple[date, ...] = ()
    adverse_event_dates: tuple[date, ...] = ()
    follow_up_visit_dates: tuple[date, ...] = ()
    care_plans: tuple[CarePlanFact, ...] = ()
    follow_up_orders: tuple[date | None, ...] = ()
    history: tuple[HistoryFact, ...] = ()
    reports: tuple[ReportFact, ...] = ()
    procedures: tuple[CodedFact, ...] = ()
    stage_values: tuple[CodedFact, ...] = ()
    medications: tuple[CodedFact, ...] = ()  # medication history (MedicationRequest, MedicationStatement)
    setting: str | None = None
    coverages: tuple[CoverageFact, ...] = ()
    weight_kg: float | None = None
    unavailable: frozenset[str] = field(default_factory=frozenset)

    @property
    def malignant(self) -> tuple[ConditionFact, ...]:
        return tuple(condition for condition in self.conditions if condition.malignant)

    @property
    def condition_codes(self) -> tuple[CodeKey, ...]:
        return tuple(code for condition in self.conditions
                     for code in (*condition.codes, *condition.related_primary_codes))
