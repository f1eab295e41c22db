"""The shape of every knowledge file, as pydantic models that refuse unknown keys.

A misspelt key (``global_dayz = 90``) would otherwise load silently and leave the fact it meant
to set at its default: the shape check turns it into a start-up error naming the file, the entry
and the key. The meaning of the values (a route that exists, a code in codes.toml, a source
defined in sources.toml) is checked afterwards by :mod:`cds_service.knowledge.loader`.
"""

from __future__ import annotations

import difflib
from datetime import date
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


Sourced = str | list[str]
Strings = str | list[str]


class Meta(_Strict):
    code_set_year: int
    effective_date: date
    version: str


class _Fact(_Strict):
    source: Sourced | None = None
    confidence: str | None = None


# -- sources.toml -------------------------------------------------------------------------------
class SourceEntry(_Strict):
    title: str
    confidence: str
    url: str | None = None
    rechecked: date | None = None
    rechecked_note: str | None = None


class SourcesFile(_Strict):
    meta: Meta
    sources: dict[str, SourceEntry] = Field(default_factory=dict)


# -- codes.toml ---------------------------------------------------------------------------------
class CodeEntry(_Fact):
    code: str
    descriptor: str
    kind: str
    status: str
    global_days: str | None = None
    pctc: int | None = None
    replaced_by: list[str] | None = None
    replacement_note: str | None = None
    techniques: list[str] | None = None
    dose_rate: str | None = None


class CodesFile(_Strict):
    meta: Meta
    code: list[CodeEntry] = Field(default_factory=list)


# -- agents.toml --------------------------------------------------------------------------------
class SupplyEntry(_Strict):
    code: str
    unit: str
    settings: list[str] | None = None
    settings_source: Sourced | None = None
    setting_notes: dict[str, str] | None = None


class AgentEntry(_Fact):
    key: str
    name: str
    carrier: str
    routes: Strings
    only_route: str | None = None
    supply: SupplyEntry | None = None
    dose_rate: str | None = None
    note: str | None = None
    text: str | None = None
    snomed: Strings | None = None
    rxnorm: Strings | None = None
    ndc: Strings | None = None
    hcpcs: Strings | None = None


class IndicationEntry(_Fact):
    agent: str
    requires: list[list[str]]


class AgentsFile(_Strict):
    meta: Meta
    agent: list[AgentEntry] = Field(default_factory=list)
    indication: list[IndicationEntry] = Field(default_factory=list)


# -- routes.toml --------------------------------------------------------------------------------
class RouteEntry(_Fact):
    key: str
    kind: str
    specific_site: str | None = None
    snomed: Strings | None = None
    text: str | None = None


class SiteEntry(_Fact):
    key: str
    implies_route: str | None = None
    snomed: Strings | None = None
    text: str | None = None


class ApplicatorEntry(_Fact):
    key: str
    code: str
    snomed: Strings | None = None
    text: str | None = None


class RoutesFile(_Strict):
    meta: Meta
    route: list[RouteEntry] = Field(default_factory=list)
    site: list[SiteEntry] = Field(default_factory=list)
    applicator: list[ApplicatorEntry] = Field(default_factory=list)


# -- evidence.toml ------------------------------------------------------------------------------
class EvidenceGroup(_Fact):
    loinc: Strings | None = None
    snomed: Strings | None = None
    cpt: Strings | None = None
    icd10cm: Strings | None = None
    dicom: Strings | None = None
    v2_0074: Strings | None = Field(default=None, alias="v2-0074")
    icd10cm_prefixes: Strings | None = None


class SequencingEntry(_Fact):
    icd10cm: str


class SettingEntry(_Fact):
    code: str
    setting: str


class TextPattern(_Fact):
    text: str


class CancerProfileEntry(_Fact):
    url: str
    role: str
    versions: list[str] | None = None


class CancerCategoryEntry(_Fact):
    snomed: str
    role: str


class HistologyBehaviourEntry(_Fact):
    icdo3_systems: list[str]
    malignant: list[str]
    never: list[str]


class MorphologyEntry(_Fact):
    snomed: str
    behaviour: str


class CodesEntry(_Fact):
    codes: list[str]


class EvidenceFile(_Strict):
    meta: Meta
    evidence: dict[str, EvidenceGroup] = Field(default_factory=dict)
    sequencing: list[SequencingEntry] = Field(default_factory=list)
    encounter_class: list[SettingEntry] = Field(default_factory=list)
    place_of_service: list[SettingEntry] = Field(default_factory=list)
    therapy_text: TextPattern | None = None
    diagnostic_text: TextPattern | None = None
    sealed_text: TextPattern | None = None
    hdr_text: TextPattern | None = None
    ldr_text: TextPattern | None = None
    insertion_text: TextPattern | None = None
    in_place_text: TextPattern | None = None
    hospital_outpatient: TextPattern | None = None
    cancer_condition_profile: list[CancerProfileEntry] = Field(default_factory=list)
    cancer_condition_category: list[CancerCategoryEntry] = Field(default_factory=list)
    cancer_condition_extension: list[CancerProfileEntry] = Field(default_factory=list)
    histology_behaviour: HistologyBehaviourEntry | None = None
    morphology: list[MorphologyEntry] = Field(default_factory=list)
    in_situ_text: TextPattern | None = None
    malignancy_text: TextPattern | None = None
    malignancy_text_negation: TextPattern | None = None
    condition_verification_never: CodesEntry | None = None


# -- documentation.toml -------------------------------------------------------------------------
class DocItemEntry(_Fact):
    key: str
    label: str
    evidence: str
    phase: str
    order_fact: str | None = None
    agents: list[str] | None = None
    strength: str | None = None
    report_text: str | None = None
    report_negation: str | None = None
    negation_conflicts: bool = False
    window_days: int | None = None
    procedure_hcpcs: list[str] | None = None
    observation_loinc: list[str] | None = None
    observation_value_text: str | None = None
    conflict_icd10cm_prefixes: list[str] | None = None
    conflict: str | None = None
    condition_icd10cm_prefixes: list[str] | None = None
    only_with_icd10cm_prefixes: list[str] | None = None
    medication_rxnorm: list[str] | None = None
    medication_text: str | None = None


class DocRuleEntry(_Fact):
    kind: str | None = None
    code: str | None = None
    keys: Strings
    post: Strings | None = None


class BodySiteEntry(_Fact):
    route_kinds: Strings


class DocumentationFile(_Strict):
    meta: Meta
    item: list[DocItemEntry] = Field(default_factory=list)
    rule: list[DocRuleEntry] = Field(default_factory=list)
    body_site: BodySiteEntry | None = None


# -- edits.toml ---------------------------------------------------------------------------------
class ModifierSplitEntry(_Fact):
    warning: str
    modifiers: Strings
    pctc_without_split: list[int]
    meaning: dict[str, str] | None = None


class GlobalPeriodEntry(_Fact):
    lookback_days: int
    global_days: str
    kinds: Strings


class BundlingEntry(_Fact):
    code: str
    with_: Strings = Field(alias="with")
    reason: str


class EditsFile(_Strict):
    meta: Meta
    modifier_split: ModifierSplitEntry | None = None
    global_period: GlobalPeriodEntry | None = None
    bundling: list[BundlingEntry] = Field(default_factory=list)


# -- payers.toml --------------------------------------------------------------------------------
class PolicyEntry(_Fact):
    name: str
    modifier_policy: str
    covered: str
    pa_needed: str


class PayerEntry(PolicyEntry):
    key: str
    identifiers: Strings


class PayersFile(_Strict):
    meta: Meta
    default: PolicyEntry | None = None
    payer: list[PayerEntry] = Field(default_factory=list)


# -- rules.toml ---------------------------------------------------------------------------------
class Windows(_Fact):
    follow_up_days: int
    plan_start_grace_days: int
    before_treatment_days: int
    after_treatment_days: int
    body_weight_days: int


class DoseRateDefault(_Fact):
    cavity: str
    surface: str
    interstitial: str


class RuleEntry(_Fact):
    id: str
    when: dict[str, Any] | None = None
    code: str | None = None
    keep_ordered: bool = False
    alternatives: list[str] | None = None
    reason: str
    uncertain: str | None = None
    gaps: list[str] | None = None


class ModifierEntry(_Fact):
    id: str
    when: dict[str, Any] | None = None
    modifiers: list[str]


class SupplyUnitEntry(_Fact):
    unit: str
    units_per_mci: float | None = None
    fixed_units: int | None = None


class UnitRoundingEntry(_Fact):
    direction: str
    tolerance: float
    minimum: int
    note: str


class RulesFile(_Strict):
    meta: Meta
    unit_rounding: UnitRoundingEntry | None = None
    windows: Windows | None = None
    sealed_dose_rate_default: DoseRateDefault | None = None
    rule: list[RuleEntry] = Field(default_factory=list)
    modifier: list[ModifierEntry] = Field(default_factory=list)
    supply_unit: list[SupplyUnitEntry] = Field(default_factory=list)


FILE_MODELS: Mapping[str, type[_Strict]] = {
    "sources": SourcesFile,
    "codes": CodesFile,
    "agents": AgentsFile,
    "routes": RoutesFile,
    "evidence": EvidenceFile,
    "documentation": DocumentationFile,
    "edits": EditsFile,
    "payers": PayersFile,
    "rules": RulesFile,
}

def _known_keys() -> set[str]:
    """Every key any knowledge file may use, to suggest the one a misspelt key meant."""
    keys: set[str] = set()
    pending: list[type[BaseModel]] = [*FILE_MODELS.values()]
    while pending:
        model = pending.pop()
        for name, field in model.model_fields.items():
            keys.add(field.alias or name)
            for arg in getattr(field.annotation, "__args__", ()) + (field.annotation,):
                for inner in getattr(arg, "__args__", ()) + (arg,):
                    if isinstance(inner, type) and issubclass(inner, BaseModel) and inner is not model:
                        pending.append(inner)
    return keys


_LABEL_KEYS = ("id", "key", "code", "agent", "unit", "kind", "icd10cm")


def _entry_label(data: Any, loc: tuple[int | str, ...]) -> tuple[str, tuple[int | str, ...]]:
    """``rule 'iv'`` for ``('rule', 41, 'reason')``: the entry by its own name, and the rest of the path."""
    if len(loc) < 2:
        return "", loc
    table = loc[0]
    node = data.get(table) if isinstance(data, dict) else None
    if len(loc) > 1 and isinstance(node, list) and isinstance(loc[1], int) and loc[1] < len(node):
        entry = node[loc[1]]
        name = next((entry[k] for k in _LABEL_KEYS if isinstance(entry, dict) and isinstance(entry.get(k), str)),
                    loc[1])
        return f"{table} {name!r}", loc[2:]
    if len(loc) > 1 and isinstance(node, dict) and not isinstance(loc[1], int) and isinstance(node.get(loc[1]), dict):
        return f"{table} {loc[1]!r}", loc[2:]
    return f"[{table}]", loc[1:]


def shape_problems(file_name: str, data: dict[str, Any]) -> list[str]:
    """Every key the file's model does not know, or whose value has the wrong type, one line each:
    ``agents.toml agent 'ra-223': unknown key 'global_dayz'``."""
    model = FILE_MODELS[file_name.removesuffix(".toml")]
    try:
        model.model_validate(data)
    except ValidationError as error:
        problems: list[str] = []
        for item in error.errors():
            loc = tuple(item["loc"])
            # A value that may be a string or a list fails both branches; report the first.
            loc = tuple(part for part in loc if not (isinstance(part, str) and part.startswith(("str", "list["))))
            entry, rest = _entry_label(data, loc)
            where = f"{file_name} {entry}".rstrip()
            key = ".".join(str(part) for part in rest)
            if item["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(rest[-1]) if rest else "", sorted(_known_keys()), n=1)
                message = f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            elif item["type"] == "missing":
                message = f"missing required key {key!r}"
            else:
                message = f"{key!r}: {item['msg'].lower()}" if key else item["msg"].lower()
            if not any(line.startswith(f"{where}: ") and f"{key!r}" in line for line in problems):
                problems.append(f"{where}: {message}")
        return problems
    return []
