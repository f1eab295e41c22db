"""Coding edits around the recommended code: the warnings.

Each warning carries its stable key (a contract, read by analytics; declared in
:mod:`cds_service.knowledge.vocabulary`) and a plain-words detail for the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

from cds_service.engine.facts import PatientFacts, TherapyOrder
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.vocabulary import WARNING_DEPENDS_ON


@dataclass(frozen=True)
class Warning:
    key: str
    detail: str


def matches(item: str, codes: Iterable[tuple[str, str]]) -> bool:
    if item.startswith("snomed:"):
        return ("snomed", item[7:]) in set(codes)
    return any(system == "icd10cm" and code.startswith(item) for system, code in codes)


def indication_met(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> bool | None:
    """True/False when the agent has labelled indications; None when there is nothing to check."""
    indication = knowledge.indications.get(order.agent or "")
    if indication is None:
        return None
    codes = list(patient.condition_codes) + list(order.reason_codes)
    return all(any(matches(item, codes) for item in group) for group in indication.requires)


def deleted_code(order: TherapyOrder, knowledge: Knowledge) -> Warning | None:
    info = knowledge.codes.get(order.ordered_code or "")
    if info and info.deleted:
        if info.replacement_note:
            # No source names a successor: say so rather than pass a stand-in off as "the" replacement.
            return Warning("deleted-code", f"CPT {info.code} was deleted and is no longer payable; no published "
                           f"replacement was found in the sources this service uses. {info.replacement_note}")
        return Warning("deleted-code", f"CPT {info.code} was deleted and is no longer payable; "
                       f"current codes: {', '.join(info.replaced_by)}.")
    return None


def global_period(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> Warning | None:
    """A procedure of this family with a global period (edits.toml ``global_period``), done in the
    look-back window, is still open."""
    earliest = order.when - timedelta(days=knowledge.global_lookback_days)
    for past in patient.history:
        info = knowledge.codes.get(past.code)
        if (info and info.global_days == knowledge.global_period_days and info.kind in knowledge.global_period_kinds
                and earliest <= past.when <= order.when):
            return Warning("global-period-overlap",
                           f"CPT {past.code} on {past.when.isoformat()} has a 90-day global period that is still open; "
                           "related care is already paid, and an unrelated or staged procedure needs modifier 79 or 58.")
    return None


def bundling(code: str, order: TherapyOrder, other_codes: Iterable[str], patient: PatientFacts,
             knowledge: Knowledge) -> Warning | None:
    """A code this order would bill paired with one that must not be billed with it on the same day.

    This order bills its recommended code, or the code it carries until someone accepts the
    suggestion; ``other_codes`` holds the same for the orders signed with it. A second order
    carrying the plain IV administration code for an infusion that a follow-up-inclusive order
    already pays for is flagged on both, whatever
    each would be recoded to.
    """
    same_day = [past.code for past in patient.history if past.when == order.when]
    own = [code] + ([order.ordered_code] if order.ordered_code and order.ordered_code != code else [])
    for mine in own:
        for other in list(other_codes) + same_day:
            reason = knowledge.bundling.get((mine, other)) or knowledge.bundling.get((other, mine))
            if reason:
                return Warning("bundling-conflict", f"CPT {mine} with CPT {other}: {reason}.")
    return None


def indication_mismatch(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> Warning | None:
    # Only when something is on file to compare: an empty problem list is a documentation gap
    # (diagnosis), not evidence of off-label use.
    if not (patient.conditions or order.reason_codes):
        return None
    if indication_met(order, patient, knowledge) is False:
        agent = knowledge.agents[order.agent or ""]
        return Warning("indication-mismatch",
                       f"No active diagnosis matches a labelled indication of {agent.name}; "
                       "payers judge medical necessity for radiopharmaceuticals against the label.")
    return label_conflict(order, patient, knowledge)


def label_conflict(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> Warning | None:
    """The chart contradicts one of the agent's label requirements (documentation.toml): an excluded
    diagnosis on file, or only a negative target scan."""
    from cds_service.engine.documentation import requirement_conflict  # documentation imports this module
    for item in knowledge.doc_items.values():
        requirement = item.requirement
        if (requirement is not None and order.agent in requirement.agents and requirement.conflict
                and requirement_conflict(requirement, order, patient)):
            agent = knowledge.agents[order.agent or ""]
            return Warning("indication-mismatch", f"Check the indication for {agent.name}: {requirement.conflict}.")
    return None


def reason_icd_codes(order: TherapyOrder, patient: PatientFacts) -> list[str]:
    """The order's ICD-10-CM reasons in the order it lists them: its reasonCode entries, then the
    Conditions its reasonReference entries point at (as found on file). A diagnosis given by
    reference is the same diagnosis as one given by code."""
    codes = [code for system, code in order.reason_codes if system == "icd10cm"]
    by_reference = {condition.reference: condition for condition in patient.conditions}
    for ref in order.reason_refs:
        condition = by_reference.get(ref)
        if condition is not None:
            codes.extend(code for system, code in condition.codes if system == "icd10cm")
    return codes


def diagnosis_sequencing(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> Warning | None:
    """Manifestation codes (evidence.toml ``[[sequencing]]``: malignant pleural effusion, malignant
    ascites) say "code first the underlying neoplasm": never alone, never listed first."""
    reason_icd = reason_icd_codes(order, patient)
    on_file = {code for system, code in patient.condition_codes if system == "icd10cm"} | set(reason_icd)
    manifestations = sorted(code for code in on_file if code in knowledge.sequencing_codes)
    if not manifestations:
        return None
    has_neoplasm = bool(patient.malignant) or any(code.startswith(knowledge.malignancy_prefixes) for code in reason_icd)
    listed_first = bool(reason_icd) and reason_icd[0] in knowledge.sequencing_codes
    if not has_neoplasm:
        return Warning("diagnosis-sequencing", f"{', '.join(manifestations)} needs the underlying cancer coded too; "
                       "no active malignant neoplasm is on file.")
    if listed_first:
        return Warning("diagnosis-sequencing", f"{reason_icd[0]} is listed first on the order; "
                       "code the underlying neoplasm first.")
    return None


def modifier_not_applicable(code: str, order: TherapyOrder, knowledge: Knowledge) -> Warning | None:
    """Modifier 26 or TC ordered with a code that has no professional/technical split."""
    info = knowledge.codes.get(code)
    if info is None or info.pctc not in knowledge.pctc_without_split or not order.ordered_modifiers:
        return None
    modifiers = " and ".join(order.ordered_modifiers)
    meaning = knowledge.pctc_meaning.get(info.pctc)
    return Warning("modifier-not-applicable",
                   f"Remove modifier {modifiers}: CPT {code} has no professional/technical split "
                   f"(PC/TC indicator {info.pctc}{': ' + meaning if meaning else ''}), "
                   "so it is billed without 26 or TC.")


def warnings(code: str, order: TherapyOrder, patient: PatientFacts, other_codes: Iterable[str],
             knowledge: Knowledge) -> tuple[Warning, ...]:
    found = (
        deleted_code(order, knowledge),
        global_period(order, patient, knowledge),
        bundling(code, order, other_codes, patient, knowledge),
        indication_mismatch(order, patient, knowledge),
        diagnosis_sequencing(order, patient, knowledge),
        modifier_not_applicable(code, order, knowledge),
    )
    # A warning whose data could not be had is not raised: it could not be checked either way.
    unavailable = patient.unavailable
    return tuple(w for w in found if w is not None
                 and not any(key in unavailable for key in WARNING_DEPENDS_ON.get(w.key, ())))
