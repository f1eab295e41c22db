"""The loaded knowledge base: frozen records plus the indexes the engine looks things up in.

Everything here is built once at start-up by :func:`cds_service.knowledge.loader.load_knowledge`;
per-request code only does dict look-ups and runs the pre-compiled text patterns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Collection, Mapping

CodeKey = tuple[str, str]  # (short system name, normalised code)


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    confidence: str
    url: str | None = None
    rechecked: date | None = None  # the last day a fact of this source was verified against it again
    rechecked_note: str | None = None  # which facts, and what was found


@dataclass(frozen=True)
class CodeInfo:
    """One CPT code: paraphrased descriptor, which decision branch it belongs to, billing traits."""

    code: str
    descriptor: str
    kind: str  # unsealed | sealed | electronic | applicator | related
    status: str  # active | carrier-priced | deleted
    global_days: str | None = None
    pctc: int | None = None
    replaced_by: tuple[str, ...] = ()
    replacement_note: str | None = None  # deleted code whose replacement no source names
    sources: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    dose_rate: str | None = None

    @property
    def deleted(self) -> bool:
        return self.status == "deleted"


@dataclass(frozen=True)
class Supply:
    code: str
    unit: str  # per-mCi | per-uCi | per-dose | per-source
    settings: tuple[str, ...] = ()  # billed only in these settings (empty: any); unknown setting: not billed
    # What the card says instead of the supply line, by setting ("unknown" when not known):
    # which source code applies there depends on the payer.
    setting_notes: Mapping[str, str] = field(default_factory=dict)

    def billed_in(self, setting: str | None) -> bool:
        """Whether the code may be billed in this setting (an unknown setting only when unlimited)."""
        return not self.settings or setting in self.settings


@dataclass(frozen=True)
class Agent:
    key: str
    name: str
    carrier: str
    routes: tuple[str, ...]
    only_route: str | None = None
    supply: Supply | None = None
    dose_rate: str | None = None
    note: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def sealed(self) -> bool:
        return self.carrier in ("sealed-source", "electronic")


@dataclass(frozen=True)
class Indication:
    """Every group must be matched: ICD-10-CM entries as prefixes, ``snomed:`` entries exactly."""

    agent: str
    requires: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Route:
    key: str
    kind: str
    specific_site: str | None = None


@dataclass(frozen=True)
class Site:
    key: str
    implies_route: str | None = None


@dataclass(frozen=True)
class Applicator:
    key: str
    code: str


@dataclass(frozen=True)
class DocItem:
    key: str
    label: str
    evidence: str
    order_fact: str | None = None  # an item asked by a decision row: missing while this order fact is unknown
    requirement: AgentRequirement | None = None  # a per-agent label requirement and what satisfies it


@dataclass(frozen=True)
class AgentRequirement:
    """What one agent's label asks for beyond the general items, and the chart evidence for it
    (documentation.toml). Advice items are never gaps."""

    agents: frozenset[str]
    strength: str  # required | advice
    report_text: re.Pattern[str] | None = None
    report_negation: re.Pattern[str] | None = None
    negation_conflicts: bool = False
    window_days: int | None = None
    procedure_hcpcs: frozenset[str] = frozenset()
    observation_loinc: frozenset[str] = frozenset()
    observation_value_text: re.Pattern[str] | None = None
    conflict_icd10cm_prefixes: tuple[str, ...] = ()
    conflict: str | None = None
    condition_icd10cm_prefixes: tuple[str, ...] = ()  # an active Condition so coded satisfies it (Z19.2)
    only_with_icd10cm_prefixes: tuple[str, ...] = ()  # asked only when such a Condition is on file (E05)
    medication_rxnorm: frozenset[str] = frozenset()  # a prior medication so coded satisfies it (an ARPI)
    medication_text: re.Pattern[str] | None = None  # or so named


@dataclass(frozen=True)
class DocRule:
    keys: tuple[str, ...]
    post: tuple[str, ...] = ()


@dataclass(frozen=True)
class PayerPolicy:
    key: str
    name: str
    modifier_policy: str
    covered: str
    pa_needed: str


Scalar = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    """One test in a rule's ``when``: the fact is one of ``one_of``, is (not) stated, lies in a
    range, or is none of ``none_of``. Every test given must hold."""

    fact: str
    one_of: tuple[Scalar, ...] = ()
    none_of: tuple[Scalar, ...] = ()
    known: bool | None = None
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

    def holds(self, value: Scalar | None) -> bool:
        if self.known is not None and (value is not None) != self.known:
            return False
        if self.none_of and value in self.none_of:
            return False
        if self.one_of and (value is None or value not in self.one_of):
            return False
        bounds = (self.min, self.max, self.above, self.below)
        if any(bound is not None for bound in bounds):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return False
            if ((self.min is not None and value < self.min) or (self.max is not None and value > self.max)
                    or (self.above is not None and value <= self.above)
                    or (self.below is not None and value >= self.below)):
                return False
        return True


@dataclass(frozen=True)
class CodeRule:
    """One row of the decision table (rules.toml ``[[rule]]``); the first row that holds decides."""

    id: str
    when: tuple[Condition, ...]
    code: str | None  # None: keep the code the order carries
    alternatives: tuple[str, ...] = ()
    reason: str = ""
    uncertain: str | None = None
    sources: tuple[str, ...] = ()
    gaps: tuple[str, ...] = ()  # documentation keys this row asks for while their order fact is unknown

    def holds(self, facts: Mapping[str, Scalar | None]) -> bool:
        return all(condition.holds(facts.get(condition.fact)) for condition in self.when)


@dataclass(frozen=True)
class ModifierRule:
    """One row of the modifier table (rules.toml ``[[modifier]]``); the first row that holds decides."""

    id: str
    when: tuple[Condition, ...]
    modifiers: tuple[str, ...]
    sources: tuple[str, ...] = ()

    def holds(self, facts: Mapping[str, Scalar | None]) -> bool:
        return all(condition.holds(facts.get(condition.fact)) for condition in self.when)


@dataclass(frozen=True)
class SupplyUnit:
    """How ordered activity becomes HCPCS billing units: a fixed count, or units per mCi."""

    unit: str
    units_per_mci: float | None = None
    fixed_units: int | None = None


@dataclass(frozen=True)
class UnitRounding:
    """How computed billing units become whole (rules.toml ``[unit_rounding]``)."""

    direction: str = "up"  # up: next highest unit (CMS) | half-up
    tolerance: float = 1e-6  # a float error below this never bills one unit more
    minimum: int = 1
    note: str | None = None  # card text on a computed supply line


@dataclass(frozen=True)
class Windows:
    """The time windows, in days (rules.toml ``[windows]``)."""

    follow_up_days: int
    plan_start_grace_days: int
    before_treatment_days: int
    after_treatment_days: int
    body_weight_days: int


@dataclass(frozen=True)
class Matcher:
    """Recognises one kind of thing (agent, route, site, applicator) by code or by text."""

    by_code: Mapping[CodeKey, str] = field(default_factory=dict)
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()

    def code(self, system: str | None, code: str | None) -> str | None:
        if not system or not code:
            return None
        return self.by_code.get((system, code))

    def text(self, text: str | None) -> str | None:
        if not text:
            return None
        for key, pattern in self.patterns:
            if pattern.search(text):
                return key
        return None


_NEVER_MATCHES = re.compile(r"(?!x)x")


@dataclass(frozen=True)
class CancerSignals:
    """How a Condition says "cancer" beyond its code (mCODE, evidence.toml).

    A histology behaviour of benign, uncertain or in situ vetoes the Condition; a malignant
    histology or the secondary-cancer role is a signal; the primary-cancer role alone is not.
    """

    roles_by_profile: Mapping[str, str] = field(default_factory=dict)  # profile URL → primary | secondary
    roles_by_category: Mapping[str, str] = field(default_factory=dict)  # SNOMED category → role
    histology_extensions: frozenset[str] = frozenset()
    # Extensions on a secondary cancer Condition that name its primary (a Reference or, from
    # mCODE STU3, a CodeableConcept): the primary's codes count towards the agent's indication.
    related_primary_extensions: frozenset[str] = frozenset()
    icdo3_systems: frozenset[str] = frozenset()
    malignant_behaviour: frozenset[str] = frozenset()  # ICD-O-3 behaviour digits
    never_behaviour: frozenset[str] = frozenset()
    morphology: Mapping[str, str] = field(default_factory=dict)  # SNOMED morphology → malignant | never
    in_situ_text: re.Pattern[str] = _NEVER_MATCHES
    # The last resort, lower confidence: a Condition with no ICD-10-CM code whose words name a
    # malignancy, unless they are negated, uncertain or historical (or in_situ_text matches).
    malignancy_text: re.Pattern[str] = _NEVER_MATCHES
    malignancy_text_negation: re.Pattern[str] = _NEVER_MATCHES
    never_verification: frozenset[str] = frozenset({"refuted", "entered-in-error"})


@dataclass(frozen=True)
class Knowledge:
    """All coding knowledge, validated and indexed. Immutable; shared by every request."""

    version: str
    code_set_year: int
    effective_date: date
    sources: Mapping[str, Source]
    codes: Mapping[str, CodeInfo]
    agents: Mapping[str, Agent]
    agent_matcher: Matcher
    indications: Mapping[str, Indication]
    routes: Mapping[str, Route]
    route_matcher: Matcher
    sites: Mapping[str, Site]
    site_matcher: Matcher
    applicators: Mapping[str, Applicator]
    applicator_matcher: Matcher
    evidence: Mapping[str, frozenset[CodeKey]]
    malignancy_prefixes: tuple[str, ...]
    sequencing_codes: frozenset[str]
    encounter_settings: Mapping[str, str]
    place_of_service: Mapping[str, str]
    hospital_outpatient: re.Pattern[str]
    therapy_text: re.Pattern[str]
    diagnostic_text: re.Pattern[str]
    sealed_text: re.Pattern[str]
    hdr_text: re.Pattern[str]
    ldr_text: re.Pattern[str]
    insertion_text: re.Pattern[str]
    in_place_text: re.Pattern[str]
    doc_items: Mapping[str, DocItem]
    doc_by_kind: Mapping[str, DocRule]
    doc_by_code: Mapping[str, DocRule]
    body_site_route_kinds: frozenset[str]
    bundling: Mapping[tuple[str, str], str]
    global_lookback_days: int
    #: CMS PC/TC indicators whose codes never take modifier 26 or TC (edits.toml modifier_split).
    pctc_without_split: frozenset[int]
    default_payer: PayerPolicy
    payers: Mapping[str, PayerPolicy]
    code_rules: tuple[CodeRule, ...]
    modifier_rules: tuple[ModifierRule, ...]
    supply_units: Mapping[str, SupplyUnit]
    windows: Windows
    #: sealed-source technique → the dose rate assumed when the order states none.
    sealed_dose_rate_default: Mapping[str, str]
    #: (global days, code kinds) of the procedures whose open global period warns.
    global_period_days: str
    global_period_kinds: frozenset[str]
    #: Where the files were read from (the built-in folder or ``CDS_KNOWLEDGE_DIR``).
    directory: str = ""
    #: Every fact's key (file, entry) → its source keys, so tests can prove each fact is sourced.
    provenance: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cancer: CancerSignals = field(default_factory=CancerSignals)
    unit_rounding: UnitRounding = field(default_factory=UnitRounding)
    #: CMS PC/TC indicator → what it means, for the modifier-not-applicable card (edits.toml).
    pctc_meaning: Mapping[int, str] = field(default_factory=dict)

    def agent_requirements(self, agents: Collection[str]) -> tuple[tuple[str, AgentRequirement], ...]:
        """The documentation items (key, label requirement) asked for any of these agents."""
        return tuple((key, item.requirement) for key, item in self.doc_items.items()
                     if item.requirement is not None and not item.requirement.agents.isdisjoint(agents))

    def is_evidence(self, group: str, system: str | None, code: str | None) -> bool:
        return bool(system and code) and (system, code) in self.evidence.get(group, frozenset())

    def payer(self, identifiers: tuple[str, ...]) -> PayerPolicy:
        for identifier in identifiers:
            policy = self.payers.get(identifier)
            if policy is not None:
                return policy
        return self.default_payer
