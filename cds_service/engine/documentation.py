"""Documentation gaps for medical necessity, by the stable documentation keys.

A key is reported only when the evidence is verifiably absent: if the prefetch data it depends
on could not be obtained, the plumbing's "checks could not run" card says so instead, and the
engine does not claim a gap it could not check.
"""

from __future__ import annotations

from datetime import timedelta

from datetime import date
from typing import Iterable

from cds_service.engine.facts import PatientFacts, TherapyOrder
from cds_service.engine import edits
from cds_service.knowledge.model import AgentRequirement, Knowledge
from cds_service.knowledge.vocabulary import DOC_DEPENDS_ON


def required_keys(code: str, order: TherapyOrder, knowledge: Knowledge,
                  alternatives: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The documentation keys this order needs, in the published order: by code kind, by code,
    and the after-treatment keys once the procedure is done."""
    info = knowledge.codes.get(code)
    rules = [knowledge.doc_by_kind.get(info.kind if info else "unsealed")]
    # The ordered code's own items (the follow-up plan of the follow-up-inclusive code) count while
    # it is still a valid alternative; that code ordered for tandem and ovoids is simply the
    # wrong code, not a gap.
    codes = {code} | ({order.ordered_code} if order.ordered_code in alternatives else set())
    rules += [knowledge.doc_by_code.get(c) for c in sorted(codes)]
    wanted: set[str] = set()
    for rule in rules:
        if rule is None:
            continue
        wanted.update(rule.keys)
        if order.completed:
            wanted.update(rule.post)
    # The agent's own label requirements (required strength only: advice is never a gap).
    wanted.update(key for key, item in knowledge.doc_items.items()
                  if item.requirement is not None and item.requirement.strength == "required"
                  and order.agent in item.requirement.agents)
    if ("body-site" in wanted and info is not None and info.kind == "unsealed" and order.route_kind is not None
            and order.route_kind not in knowledge.body_site_route_kinds):
        wanted.discard("body-site")  # a vein or the mouth needs no location
    return tuple(key for key in knowledge.doc_items if key in wanted)


def in_published_order(keys: Iterable[str], knowledge: Knowledge) -> tuple[str, ...]:
    """Each key once, in the published key order, so gap lists are stable."""
    wanted = set(keys)
    return tuple(key for key in knowledge.doc_items if key in wanted)


def _within(dates: Iterable[date | None], low: date, high: date) -> bool:
    return any(d is not None and low <= d <= high for d in dates)


def benign_labelled_diagnosis(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> bool:
    """An active, non-malignant Condition that meets the agent's labelled indication by itself
    (not through a code-first manifestation, not through the order's own reason)."""
    indication = knowledge.indications.get(order.agent or "")
    if indication is None:
        return False
    codes = [(system, code) for condition in patient.conditions if not condition.malignant
             for system, code in condition.codes if code not in knowledge.sequencing_codes]
    return bool(codes) and all(any(edits.matches(item, codes) for item in group) for group in indication.requires)


def requirement_met(requirement: AgentRequirement, order: TherapyOrder, patient: PatientFacts) -> bool:
    """Evidence for a per-agent label requirement: a report that says it (not negated, within the
    window), a completed procedure with one of its HCPCS codes, a coded Condition, a prior
    medication with one of its RxNorm codes or names, or a staging value that reads so."""
    low = order.when - timedelta(days=requirement.window_days) if requirement.window_days is not None else date.min
    if requirement.report_text is not None:
        for report in patient.reports:
            if report.when is not None and not low <= report.when <= order.when:
                continue
            if requirement.report_text.search(report.text) and not (
                    requirement.report_negation and requirement.report_negation.search(report.text)):
                return True
    if requirement.procedure_hcpcs and any(
            system == "hcpcs" and code in requirement.procedure_hcpcs and (when is None or when <= order.when)
            for procedure in patient.procedures for system, code in procedure.codes for when in (procedure.when,)):
        return True
    if requirement.condition_icd10cm_prefixes and any(
            system == "icd10cm" and code.startswith(requirement.condition_icd10cm_prefixes)
            for condition in patient.conditions for system, code in condition.codes):
        return True
    if (requirement.medication_rxnorm or requirement.medication_text) and any(
            (medication.when is None or medication.when <= order.when)
            and (any(system == "rxnorm" and code in requirement.medication_rxnorm for system, code in medication.codes)
                 or (requirement.medication_text is not None and requirement.medication_text.search(medication.value)))
            for medication in patient.medications):
        return True
    if requirement.observation_value_text is not None:
        for value in patient.stage_values:
            if (any(system == "loinc" and code in requirement.observation_loinc for system, code in value.codes)
                    and (value.when is None or low <= value.when <= order.when)
                    and requirement.observation_value_text.search(value.value)):
                return True
    return False


def requirement_conflict(requirement: AgentRequirement, order: TherapyOrder, patient: PatientFacts) -> bool:
    """The chart contradicts the label: a listed active Condition, or only negated scans on file."""
    if requirement.conflict_icd10cm_prefixes and any(
            system == "icd10cm" and code.startswith(requirement.conflict_icd10cm_prefixes)
            for condition in patient.conditions for system, code in condition.codes):
        return True
    if requirement.negation_conflicts and requirement.report_text and requirement.report_negation:
        scans = [r for r in patient.reports if (r.when is None or r.when <= order.when)
                 and requirement.report_text.search(r.text)]
        return bool(scans) and all(requirement.report_negation.search(r.text) for r in scans)
    return False


def satisfied(key: str, order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge, follow_up: bool,
              benign: bool) -> bool:
    """Is the evidence for one documentation key on file? ``follow_up`` and ``benign`` are worked
    out once per order by the caller."""
    when = order.when
    before = when - timedelta(days=knowledge.windows.before_treatment_days)
    after = when + timedelta(days=knowledge.windows.after_treatment_days)
    if key == "diagnosis":
        # An active Condition with a malignant neoplasm code. Pleural effusion and ascites codes are
        # manifestations and support the indication only. Some agents are labelled for benign
        # disease too (I-131 for hyperthyroidism): there the labelled diagnosis on file counts.
        return bool(patient.malignant) or benign
    if key == "indication":
        return order.has_reason
    if key == "staging":
        return bool(patient.stage_dates) or any(c.staged for c in patient.conditions)
    if key == "radioelement":
        return order.agent is not None
    if key == "activity":
        return order.activity is not None
    if key == "route":
        return order.route_stated
    if key == "body-site":
        return order.body_site_stated
    if key == "pre-imaging":
        return _within(patient.imaging_dates, before, when)
    if key == "performance-status":
        return _within(patient.performance_status_dates, before, when)
    if key == "follow-up-plan":
        return follow_up
    if key == "response-assessment":
        return _within(patient.disease_status_dates, when, after)
    if key == "adverse-events":
        return order.complications_documented or _within(patient.adverse_event_dates, when, after)
    if key == "post-imaging":
        return _within(patient.imaging_dates, when + timedelta(days=1), after)
    if key == "follow-up-notes":
        return _within(patient.follow_up_visit_dates, when + timedelta(days=1), after)
    item = knowledge.doc_items.get(key)
    if item is not None and item.requirement is not None:
        # A conflicting chart (visceral metastasis on file) can never state the requirement.
        return (requirement_met(item.requirement, order, patient)
                and not requirement_conflict(item.requirement, order, patient))
    raise KeyError(key)


def advice(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> tuple[str, ...]:
    """The agent's advice items (weak source or uncodable evidence) not evidenced on file: shown as
    worth documenting, never counted as gaps. Nothing is claimed when the data was not fetched."""
    keys = []
    for key, item in knowledge.doc_items.items():
        requirement = item.requirement
        if requirement is None or requirement.strength != "advice" or order.agent not in requirement.agents:
            continue
        if any(source in patient.unavailable for source in DOC_DEPENDS_ON.get(key, ())):
            continue
        if requirement.only_with_icd10cm_prefixes and not any(
                system == "icd10cm" and code.startswith(requirement.only_with_icd10cm_prefixes)
                for condition in patient.conditions for system, code in condition.codes):
            continue  # the uptake study belongs to hyperthyroidism, not to thyroid cancer
        if not requirement_met(requirement, order, patient):
            keys.append(key)
    return tuple(keys)


def missing(required: tuple[str, ...], order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge,
            follow_up: bool) -> tuple[str, ...]:
    """The required keys whose evidence is verifiably absent."""
    gaps = []
    benign = not patient.malignant and benign_labelled_diagnosis(order, patient, knowledge)
    for key in required:
        if key == "staging" and benign:
            continue  # a benign labelled indication (hyperthyroidism) has no cancer stage
        if satisfied(key, order, patient, knowledge, follow_up, benign):
            continue
        sources = DOC_DEPENDS_ON.get(key, ())
        if sources and any(source in patient.unavailable for source in sources):
            continue
        gaps.append(key)
    return tuple(gaps)
