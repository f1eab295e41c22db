"""Facts about the patient's chart, taken from prefetch (or fetched) resources.

Performance rule: resources are first *selected* with plain dict access (type, status, code,
date); only the selected ones are validated with fhir.resources, and extraction reads the
validated (normalised) copy. Whatever the plumbing validated earlier, the selection and the
facts come out the same.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Callable, Iterable, Iterator

from cds_service.engine.facts import (
    CarePlanFact, CodedFact, ConditionFact, CoverageFact, HistoryFact, PatientFacts, ReportFact, TherapyOrder,
)
from cds_service.engine.memo import Memo
from cds_service.engine.orders import medication_concepts
from cds_service.engine.fhirdata import (
    Resource, as_list, code_keys, first_date, for_patient, parse_date, ref_target, reference, texts,
)
from cds_service.fhir.parsing import validate_resource
from cds_service.hooks.model import HookCall
from cds_service.knowledge.model import CodeKey, Knowledge
from cds_service.knowledge.vocabulary import OBSERVATION_EVIDENCE_GROUPS

_INACTIVE_CONDITION = {"inactive", "remission", "resolved"}
_DONE_STATUSES = {"completed", "in-progress"}
_LIVE_REQUEST = {"draft", "active", "on-hold", "completed"}
# Encounters that are not a follow-up visit that took place: a planned visit has not happened yet.
_NOT_A_VISIT = {"planned", "cancelled", "entered-in-error"}


def _validated(call: HookCall, resource: Resource) -> Resource:
    """The validated copy of one prefetched resource, validated at most once per call however
    many orders or evidence groups read it."""
    cache = call.cache.validated
    key = id(resource)  # the call holds every resource, so an id cannot be reused meanwhile
    if key not in cache:
        cache[key] = validate_resource(resource, f"prefetch {reference(resource)}")
    return cache[key]


def _selected(call: HookCall, resource_type: str, keep: Callable[[Resource], bool]) -> Iterator[Resource]:
    """Validated copies of the prefetched resources of one type that ``keep`` selects."""
    for resource in call.resources(resource_type):
        if for_patient(resource, call.patient_id) and keep(resource):
            yield _validated(call, resource)


def _codes_of(resource: Resource) -> list[CodeKey]:
    return list(code_keys(resource.get("code")))


def _condition_status(resource: Resource) -> str | None:
    for coding in as_list((resource.get("clinicalStatus") or {}).get("coding")):
        if isinstance(coding, dict):
            return coding.get("code")
    return None


def _verification(resource: Resource) -> str | None:
    for coding in as_list((resource.get("verificationStatus") or {}).get("coding")):
        if isinstance(coding, dict):
            return coding.get("code")
    return None


def is_malignant(codes: Iterable[tuple[str, str]], knowledge: Knowledge) -> bool:
    for system, code in codes:
        if system == "icd10cm" and code.startswith(knowledge.malignancy_prefixes):
            return True
        if system == "snomed" and ("snomed", code) in knowledge.evidence["malignancy"]:
            return True
    return False


def _histology(resource: Resource, knowledge: Knowledge) -> str | None:
    """"never" (benign, uncertain or in situ), "malignant" or None, from the histology extension.

    ICD-O-3 morphologies carry the behaviour after the slash; a SNOMED morphology has the
    behaviour listed in evidence.toml, or else is malignant unless its words say in situ.
    """
    signals = knowledge.cancer
    found: str | None = None
    for extension in as_list(resource.get("extension")):
        if not isinstance(extension, dict) or extension.get("url") not in signals.histology_extensions:
            continue
        concept = extension.get("valueCodeableConcept") or {}
        for coding in as_list(concept.get("coding") if isinstance(concept, dict) else None):
            if not isinstance(coding, dict):
                continue
            code = str(coding.get("code") or "")
            behaviour: str | None = None
            if coding.get("system") in signals.icdo3_systems and "/" in code:
                digit = code.split("/", 1)[1][:1]
                behaviour = ("never" if digit in signals.never_behaviour
                             else "malignant" if digit in signals.malignant_behaviour else None)
            elif any(system == "snomed" for system, _ in code_keys({"coding": [coding]})):
                words = " ".join(str(part) for part in (coding.get("display"), concept.get("text")) if part)
                behaviour = signals.morphology.get(code) or (
                    "never" if signals.in_situ_text.search(words) else "malignant")
            if behaviour == "never":
                return "never"  # a benign or in-situ histology vetoes the Condition whatever else it says
            found = found or behaviour
    return found


def _cancer_roles(resource: Resource, knowledge: Knowledge) -> set[str]:
    """mCODE roles (primary / secondary) the Condition claims by profile or category."""
    signals = knowledge.cancer
    meta = resource.get("meta")
    profiles = as_list(meta.get("profile")) if isinstance(meta, dict) else []
    roles = {signals.roles_by_profile[url] for url in profiles if url in signals.roles_by_profile}
    roles.update(signals.roles_by_category[code] for category in as_list(resource.get("category"))
                 for system, code in code_keys(category)
                 if system == "snomed" and code in signals.roles_by_category)
    return roles


def malignant_text(resource: Resource, knowledge: Knowledge) -> str | None:
    """The Condition's words that name a malignancy, when nothing else can speak for it: no
    ICD-10-CM code (its C/D ranges decide by themselves), and no word of it negated, uncertain,
    historical, benign or in situ. The last resort, read with lower confidence."""
    signals = knowledge.cancer
    if any(system == "icd10cm" for system, _ in _codes_of(resource)):
        return None
    words = list(texts(resource.get("code")))
    if any(signals.malignancy_text_negation.search(w) or signals.in_situ_text.search(w) for w in words):
        return None
    return next((w for w in words if signals.malignancy_text.search(w)), None)


def cancer_signal(resource: Resource, knowledge: Knowledge) -> str | None:
    """Which signal shows that a (live, confirmed) Condition documents a malignancy, or None.

    "code" (a malignant ICD-10-CM or SNOMED CT code), "histology" (mCODE's histology extension
    with a malignant behaviour), "secondary-profile" (mCODE's secondary-cancer role), or "text"
    (the last resort, see :func:`malignant_text`). A benign, uncertain or in-situ histology vetoes
    them all; the primary-cancer role alone never counts (mCODE's primary value set also admits
    benign tumours).
    """
    histology = _histology(resource, knowledge)
    if histology == "never":
        return None
    if is_malignant(_codes_of(resource), knowledge):
        return "code"
    if histology == "malignant":
        return "histology"
    if "secondary" in _cancer_roles(resource, knowledge):
        return "secondary-profile"
    return "text" if malignant_text(resource, knowledge) else None


def documents_cancer(resource: Resource, knowledge: Knowledge) -> bool:
    """Whether a (live, confirmed) Condition documents a malignancy, from every signal a chart carries."""
    return cancer_signal(resource, knowledge) is not None


def _indication_prefixes(orders: tuple[TherapyOrder, ...], knowledge: Knowledge) -> tuple[str, ...]:
    """ICD-10-CM prefixes of the Conditions worth reading besides cancers: the agents' labelled
    indications, the sequencing codes, and the codes the agents' documentation items read (Z19.2,
    G89.3, E05, a visceral metastasis): without them a coded Z19.2 could never clear its item."""
    prefixes: list[str] = list(knowledge.sequencing_codes)
    for order in orders:
        indication = knowledge.indications.get(order.agent or "")
        if indication:
            prefixes.extend(item for group in indication.requires for item in group if not item.startswith("snomed:"))
    for _, requirement in knowledge.agent_requirements(_agents(orders)):
        prefixes.extend((*requirement.condition_icd10cm_prefixes, *requirement.only_with_icd10cm_prefixes,
                         *requirement.conflict_icd10cm_prefixes))
    return tuple(prefixes)


def _live(resource: Resource, knowledge: Knowledge) -> bool:
    return (_verification(resource) not in knowledge.cancer.never_verification
            and _condition_status(resource) not in _INACTIVE_CONDITION)


def _related_primary_codes(resource: Resource, knowledge: Knowledge) -> tuple[CodeKey, ...]:
    """The codes of the primary cancer that a secondary cancer Condition names by CodeableConcept in
    mCODE's related-primary extension (mCODE STU3+). A Reference to a primary needs nothing here:
    the primary's own Condition, when on file and live, is read like any other. Only the secondary
    role is read, where mCODE puts the extension."""
    urls = knowledge.cancer.related_primary_extensions
    links = [extension for extension in as_list(resource.get("extension"))
             if isinstance(extension, dict) and extension.get("url") in urls]
    if not links or "secondary" not in _cancer_roles(resource, knowledge):
        return ()
    return tuple(dict.fromkeys(code for extension in links for code in code_keys(extension.get("valueCodeableConcept"))))


def _conditions(call: HookCall, orders: tuple[TherapyOrder, ...], knowledge: Knowledge) -> tuple[ConditionFact, ...]:
    wanted_refs = {ref for order in orders for ref in order.reason_refs}
    relevant = _indication_prefixes(orders, knowledge)
    snomed_relevant = {item[7:] for order in orders
                       for group in getattr(knowledge.indications.get(order.agent or ""), "requires", ())
                       for item in group if item.startswith("snomed:")}

    def keep(resource: Resource) -> bool:
        if not _live(resource, knowledge):
            return False
        if reference(resource) in wanted_refs:
            return True
        codes = _codes_of(resource)
        return documents_cancer(resource, knowledge) or any(
            (system == "icd10cm" and code.startswith(relevant)) or (system == "snomed" and code in snomed_relevant)
            for system, code in codes)

    facts = []
    for resource in _selected(call, "Condition", keep):
        codes = tuple(_codes_of(resource))
        signal = cancer_signal(resource, knowledge)
        facts.append(ConditionFact(reference=reference(resource), codes=codes,
                                   malignant=signal is not None, signal=signal,
                                   text=(malignant_text(resource, knowledge) or "") if signal == "text" else "",
                                   staged=any(stage.get("summary") or stage.get("assessment")
                                              for stage in as_list(resource.get("stage")) if isinstance(stage, dict)),
                                   related_primary_codes=_related_primary_codes(resource, knowledge)))
    return tuple(facts)


def _observation_date(resource: Resource) -> date | None:
    return first_date(resource.get("effectiveDateTime"), resource.get("effectivePeriod"),
                      resource.get("effectiveInstant"), resource.get("issued"))


def _has_value(resource: Resource) -> bool:
    """An Observation states something: a value (or a component's value) and no dataAbsentReason."""
    if resource.get("dataAbsentReason"):
        return False
    if any(key.startswith("value") and resource[key] not in (None, "", {}) for key in resource):
        return True
    return any(isinstance(part, dict) and not part.get("dataAbsentReason") and any(key.startswith("value") for key in part)
               for part in as_list(resource.get("component")))


_OBSERVATION_GROUPS = OBSERVATION_EVIDENCE_GROUPS


# The evidence groups a set of Observation codes belongs to: a chart holds the same few lab and
# vital-sign codes hundreds of times, so the answer is remembered per code set.
_GROUPS_OF_CODES: Memo[Knowledge, tuple[CodeKey, ...], tuple[str, ...]] = Memo()


def _groups_of(knowledge: Knowledge, codes: list[CodeKey]) -> tuple[str, ...]:
    def groups(key: tuple[CodeKey, ...]) -> tuple[str, ...]:
        return tuple(group for group in _OBSERVATION_GROUPS if any(knowledge.is_evidence(group, s, c) for s, c in key))

    return _GROUPS_OF_CODES.get(knowledge, tuple(codes), groups)


def _observation_groups(call: HookCall, knowledge: Knowledge) -> dict[str, list[Resource]]:
    """The patient's live Observations (raw) by evidence group, found in one pass over the chart
    and kept for the call: each group used to rescan every Observation and recompute its codes."""
    groups = call.cache.observation_groups
    if groups is None:
        groups = {group: [] for group in _OBSERVATION_GROUPS}
        for resource in call.resources("Observation"):
            if resource.get("status") in ("entered-in-error", "cancelled") or not for_patient(resource, call.patient_id):
                continue
            if not _has_value(resource):
                continue  # an ECOG or stage Observation with no value documents nothing
            for group in _groups_of(knowledge, _codes_of(resource)):
                groups[group].append(resource)
        call.cache.observation_groups = groups
    return groups


def _observations(call: HookCall, group: str, knowledge: Knowledge, low: date, high: date,
                  undated_ok: bool = False) -> list[Resource]:
    """Validated copies of the group's Observations dated within [low, high] (or undated, if allowed)."""
    chosen = []
    for resource in _observation_groups(call, knowledge)[group]:
        when = _observation_date(resource)
        if (when is None and undated_ok) or (when is not None and low <= when <= high):
            chosen.append(_validated(call, resource))
    return chosen


def _weight_kg(call: HookCall, knowledge: Knowledge, day: date) -> float | None:
    latest: tuple[date, float] | None = None
    for resource in _observations(call, "body-weight", knowledge, day - timedelta(days=knowledge.windows.body_weight_days), day):
        quantity = resource.get("valueQuantity") or {}
        value = quantity.get("value")
        unit = str(quantity.get("code") or quantity.get("unit") or "kg").lower()
        if not isinstance(value, (int, float)):
            continue
        kg = float(value) * (0.45359237 if unit in ("[lb_av]", "lb", "lbs") else 0.001 if unit == "g" else 1.0)
        when = _observation_date(resource) or day
        if latest is None or when >= latest[0]:
            latest = (when, kg)
    return latest[1] if latest else None


def body_weight(call: HookCall, knowledge: Knowledge) -> float | None:
    """The most recent body weight in kg within a year of today (for kBq/kg prescriptions)."""
    return _weight_kg(call, knowledge, call.today)


def _imaging_dates(call: HookCall, knowledge: Knowledge, low: date, high: date) -> tuple[date, ...]:
    def report(resource: Resource) -> bool:
        if resource.get("status") in ("entered-in-error", "cancelled"):
            return False
        keys = code_keys(resource.get("code"), *as_list(resource.get("category")))
        when = first_date(resource.get("effectiveDateTime"), resource.get("effectivePeriod"), resource.get("issued"))
        return any(knowledge.is_evidence("imaging", s, c) for s, c in keys) and when is not None and low <= when <= high

    def study(resource: Resource) -> bool:
        keys = [("dicom", m.get("code")) for m in as_list(resource.get("modality")) if isinstance(m, dict)]
        when = parse_date(resource.get("started"))
        return any(knowledge.is_evidence("imaging", s, c) for s, c in keys) and when is not None and low <= when <= high

    dates = [first_date(r.get("effectiveDateTime"), r.get("effectivePeriod"), r.get("issued"))
             for r in _selected(call, "DiagnosticReport", report)]
    dates += [parse_date(r.get("started")) for r in _selected(call, "ImagingStudy", study)]
    return tuple(d for d in dates if d)


def _care_plans(call: HookCall, orders: tuple[TherapyOrder, ...], conditions: tuple[ConditionFact, ...],
                knowledge: Knowledge) -> tuple[CarePlanFact, ...]:
    """Active or draft care plans that are about this treatment: they point at the order, address
    a cancer on file, or plan a follow-up visit. An unrelated plan (diabetes) is not follow-up."""
    order_refs = {member for order in orders for member in order.members}
    cancer_refs = {condition.reference for condition in conditions if condition.malignant}

    def keep(resource: Resource) -> bool:
        if resource.get("status") not in ("active", "draft"):
            return False
        pointed = {ref_target(a.get("reference")) for a in as_list(resource.get("activity")) if isinstance(a, dict)}
        addressed = {ref_target(a) for a in as_list(resource.get("addresses"))}
        planned = code_keys(*as_list(resource.get("category")),
                            *[(a.get("detail") or {}).get("code") for a in as_list(resource.get("activity")) if isinstance(a, dict)])
        return bool(pointed & order_refs or addressed & cancer_refs
                    or any(knowledge.is_evidence("follow-up", s, c) for s, c in planned))

    plans = []
    for resource in _selected(call, "CarePlan", keep):
        period = resource.get("period") or {}
        plans.append(CarePlanFact(start=parse_date(period.get("start")), end=parse_date(period.get("end"))))
    return tuple(plans)


def _follow_up_orders(call: HookCall, knowledge: Knowledge) -> tuple[date | None, ...]:
    def is_follow_up(resource: Resource) -> bool:
        return resource.get("status", "draft") in _LIVE_REQUEST and any(
            knowledge.is_evidence("follow-up", s, c) for s, c in code_keys(resource.get("code")))

    found = [first_date(r.get("occurrenceDateTime"), r.get("occurrencePeriod"), r.get("authoredOn"))
             for r in call.draft_orders if r.get("resourceType") == "ServiceRequest" and is_follow_up(r)]
    found += [first_date(r.get("occurrenceDateTime"), r.get("occurrencePeriod"), r.get("authoredOn"))
              for r in _selected(call, "ServiceRequest", is_follow_up)]
    return tuple(found)


def _history(call: HookCall, orders: tuple[TherapyOrder, ...], knowledge: Knowledge, low: date, high: date
             ) -> tuple[HistoryFact, ...]:
    own = {member for order in orders for member in order.members}

    def keep(resource: Resource) -> bool:
        if reference(resource) in own or resource.get("status") not in _DONE_STATUSES:
            return False
        when = first_date(resource.get("performedDateTime"), resource.get("performedPeriod"))
        return when is not None and low <= when <= high and any(
            system == "cpt" and code.split("-")[0] in knowledge.codes for system, code in _codes_of(resource))

    facts = []
    for resource in _selected(call, "Procedure", keep):
        when = first_date(resource.get("performedDateTime"), resource.get("performedPeriod"))
        for system, code in _codes_of(resource):
            if system == "cpt" and code.split("-")[0] in knowledge.codes and when:
                facts.append(HistoryFact(reference=reference(resource), code=code.split("-")[0], when=when))
    return tuple(facts)


def _agents(orders: tuple[TherapyOrder, ...]) -> set[str]:
    return {order.agent for order in orders if order.agent}


def _wants_requirements(orders: tuple[TherapyOrder, ...], knowledge: Knowledge) -> bool:
    """Reading report words and coded procedures is needed only for an agent with a label requirement."""
    return bool(knowledge.agent_requirements(_agents(orders)))


def _reports(call: HookCall, high: date) -> tuple[ReportFact, ...]:
    """Every live report up to the latest order, with its words: a label requirement reads them."""
    def when_of(resource: Resource) -> date | None:
        return first_date(resource.get("effectiveDateTime"), resource.get("effectivePeriod"), resource.get("issued"))

    def keep(resource: Resource) -> bool:
        when = when_of(resource)
        return resource.get("status") not in ("entered-in-error", "cancelled") and (when is None or when <= high)

    facts = []
    for resource in _selected(call, "DiagnosticReport", keep):
        words = list(texts(resource.get("code"))) + list(texts(*as_list(resource.get("conclusionCode"))))
        if isinstance(resource.get("conclusion"), str):
            words.append(resource["conclusion"])
        facts.append(ReportFact(when=when_of(resource), text=" ; ".join(words)))
    return tuple(facts)


def _procedures(call: HookCall, orders: tuple[TherapyOrder, ...], high: date) -> tuple[CodedFact, ...]:
    """Completed Procedures (any code system) up to the latest order, not the orders themselves."""
    own = {member for order in orders for member in order.members}

    def when_of(resource: Resource) -> date | None:
        return first_date(resource.get("performedDateTime"), resource.get("performedPeriod"))

    def keep(resource: Resource) -> bool:
        when = when_of(resource)
        return (reference(resource) not in own and resource.get("status") == "completed"
                and (when is None or when <= high))

    return tuple(CodedFact(codes=tuple(_codes_of(r)), when=when_of(r)) for r in _selected(call, "Procedure", keep))


# Medication records that say the drug was never given (or not yet): they are no prior therapy.
_NOT_GIVEN_MEDICATION = {"entered-in-error", "cancelled", "draft", "not-taken", "intended"}
_NOT_AN_ORDER = {"proposal", "plan"}


def _wants_medications(orders: tuple[TherapyOrder, ...], knowledge: Knowledge) -> bool:
    """The medication history is read only for an agent whose label asks for a prior therapy."""
    return any(requirement.medication_rxnorm or requirement.medication_text is not None
               for _, requirement in knowledge.agent_requirements(_agents(orders)))


def _medications(call: HookCall, orders: tuple[TherapyOrder, ...], high: date) -> tuple[CodedFact, ...]:
    """The patient's medication history up to the latest order (MedicationRequest and
    MedicationStatement, the drug coded, named, or behind a medicationReference), not the orders."""
    own = {member for order in orders for member in order.members}

    def when_of(resource: Resource) -> date | None:
        return first_date(resource.get("authoredOn"), resource.get("effectiveDateTime"),
                          resource.get("effectivePeriod"), resource.get("dateAsserted"))

    def keep(resource: Resource) -> bool:
        when = when_of(resource)
        return (reference(resource) not in own and resource.get("status") not in _NOT_GIVEN_MEDICATION
                and resource.get("intent") not in _NOT_AN_ORDER and (when is None or when <= high))

    facts = []
    for resource_type in ("MedicationRequest", "MedicationStatement"):
        for resource in _selected(call, resource_type, keep):
            concepts = [c for c in medication_concepts(resource, call.medications) if isinstance(c, dict)]
            facts.append(CodedFact(codes=tuple(code_keys(*concepts)), when=when_of(resource),
                                   value=" ; ".join(texts(*concepts))))
    return tuple(facts)


def _stage_values(call: HookCall, knowledge: Knowledge) -> tuple[CodedFact, ...]:
    """Staging Observations with their value words (a cM1b category reads "bone only")."""
    facts = []
    for resource in _observations(call, "staging", knowledge, date.min, date.max, True):
        value = resource.get("valueCodeableConcept")
        words = list(texts(value)) if isinstance(value, dict) else []
        if isinstance(resource.get("valueString"), str):
            words.append(resource["valueString"])
        facts.append(CodedFact(codes=tuple(_codes_of(resource)), when=_observation_date(resource), value=" ; ".join(words)))
    return tuple(facts)


def _dated(call: HookCall, resource_type: str, low: date, high: date, date_of: Callable[[Resource], date | None],
           extra: Callable[[Resource], bool] = lambda r: True) -> tuple[date, ...]:
    def keep(resource: Resource) -> bool:
        when = date_of(resource)
        return when is not None and low <= when <= high and extra(resource)

    return tuple(d for r in _selected(call, resource_type, keep) if (d := date_of(r)))


def _setting(call: HookCall, orders: tuple[TherapyOrder, ...], knowledge: Knowledge) -> str | None:
    """inpatient, hospital-outpatient or office, from the encounter the orders belong to."""
    wanted = {f"Encounter/{call.encounter_id}"} if call.encounter_id else set()
    wanted |= {order.encounter_ref for order in orders if order.encounter_ref}
    encounters = [r for r in call.resources("Encounter") if reference(r) in wanted]
    if not encounters and not wanted:
        # Only the current-encounter key may stand in for a missing encounterId: the patient's
        # other encounters (the `encounters` search, for follow-up evidence) include planned and
        # unrelated visits that say nothing about where this order is carried out.
        encounters = [r for r in call.prefetch.get("encounter", ())
                      if r.get("resourceType") == "Encounter" and for_patient(r, call.patient_id)
                      and r.get("status") in ("in-progress", "arrived", "planned")][:1]
    for raw in encounters:
        encounter = _validated(call, raw)
        place = [code for s, code in code_keys(*as_list(encounter.get("type")), encounter.get("serviceType"),
                                                   *[(loc.get("location") or {}).get("type") for loc in as_list(encounter.get("location"))
                                                     if isinstance(loc, dict)]) if s == "pos"]
        for code in place:
            if code in knowledge.place_of_service:
                return knowledge.place_of_service[code]
        klass = encounter.get("class") or {}
        setting = knowledge.encounter_settings.get(klass.get("code", "")) if isinstance(klass, dict) else None
        words = " ; ".join(list(texts(*as_list(encounter.get("type")), encounter.get("serviceType")))
                           + [str((loc.get("location") or {}).get("display", "")) for loc in as_list(encounter.get("location"))
                              if isinstance(loc, dict)]
                           + [str((encounter.get("serviceProvider") or {}).get("display", ""))])
        if setting == "office" and knowledge.hospital_outpatient.search(words):
            return "hospital-outpatient"
        if setting:
            return setting
    return None


def _coverages(call: HookCall) -> tuple[CoverageFact, ...]:
    def keep(resource: Resource) -> bool:
        return bool(resource.get("status", "active") == "active")

    facts = []
    names = {reference(org): org.get("name") for org in call.resources("Organization")}
    for coverage in _selected(call, "Coverage", keep):
        identifiers: list[str] = []
        name = None
        for payor in as_list(coverage.get("payor")):
            if not isinstance(payor, dict):
                continue
            identifier = payor.get("identifier") or {}
            if identifier.get("value"):
                identifiers.append(f"{identifier.get('system', '')}|{identifier['value']}")
            name = name or payor.get("display") or names.get(ref_target(payor) or "")
        facts.append(CoverageFact(reference=reference(coverage), payer_name=name, identifiers=tuple(identifiers)))
    return tuple(facts)


def patient_facts(call: HookCall, orders: tuple[TherapyOrder, ...], knowledge: Knowledge,
                  weight_kg: float | None = None) -> PatientFacts:
    """Everything the decision needs from the chart, within the widest window any order uses."""
    if not orders:
        return PatientFacts()
    first = min(order.when for order in orders)
    last = max(order.when for order in orders)
    windows = knowledge.windows
    low, high = first - timedelta(days=windows.before_treatment_days), last + timedelta(days=windows.after_treatment_days)
    conditions = _conditions(call, orders, knowledge)
    requirements = _wants_requirements(orders, knowledge)
    return PatientFacts(
        conditions=conditions,
        stage_dates=tuple(_observation_date(r) for r in _observations(call, "staging", knowledge, date.min, date.max, True)),
        performance_status_dates=tuple(d for r in _observations(call, "performance-status", knowledge, low, high)
                                       if (d := _observation_date(r))),
        disease_status_dates=tuple(d for r in _observations(call, "disease-status", knowledge, first, high)
                                   if (d := _observation_date(r))),
        imaging_dates=_imaging_dates(call, knowledge, low, high),
        adverse_event_dates=_dated(call, "AdverseEvent", first, high,
                                   lambda r: first_date(r.get("date"), r.get("detected"), r.get("recordedDate"))),
        follow_up_visit_dates=_dated(call, "Encounter", first + timedelta(days=1), high,
                                     lambda r: first_date(r.get("period")),
                                     lambda r: r.get("status") not in _NOT_A_VISIT)
        + _dated(call, "DocumentReference", first + timedelta(days=1), high,
                 lambda r: first_date(r.get("date"), (r.get("context") or {}).get("period")),
                 lambda r: r.get("status") != "entered-in-error" and r.get("docStatus") != "entered-in-error"
                 and any(knowledge.is_evidence("progress-note", s, c) for s, c in code_keys(r.get("type")))),
        care_plans=_care_plans(call, orders, conditions, knowledge),
        follow_up_orders=_follow_up_orders(call, knowledge),
        history=_history(call, orders, knowledge, first - timedelta(days=knowledge.global_lookback_days), last),
        reports=_reports(call, last) if requirements else (),
        procedures=_procedures(call, orders, last) if requirements else (),
        stage_values=_stage_values(call, knowledge) if requirements else (),
        medications=_medications(call, orders, last) if _wants_medications(orders, knowledge) else (),
        setting=_setting(call, orders, knowledge),
        coverages=_coverages(call),
        weight_kg=weight_kg,
        unavailable=frozenset(call.unavailable),
    )
