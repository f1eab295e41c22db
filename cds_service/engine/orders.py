"""Find the radioelement therapy orders in ``draftOrders`` and describe each one as facts.

A ServiceRequest or Procedure and the MedicationRequest for its agent form one therapy order:
the procedure order names the service (and usually the CPT code), the drug order names the agent,
its route and its activity. Orders that are not radioelement therapy (a CT, talc pleurodesis,
a statin, a follow-up visit) are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any, Iterable, Mapping

from cds_service.engine import activity as activity_units
from cds_service.engine.memo import Memo
from cds_service.engine.facts import TherapyOrder
from cds_service.engine.fhirdata import (
    Resource, as_list, code_keys, codings, first_date, ref_target, reference, refs, texts,
)
from cds_service.knowledge.model import CodeInfo, CodeKey, Knowledge, Matcher

# A count stands alone: a number glued to a nuclide symbol ("I-125 seeds", "Pd103 sources", "Cs 131")
# is the mass number, never the number of sources.
_COUNT = re.compile(
    r"(?<![\w.-])(?<!(?-i:[A-Z][a-z]) )(?<!(?-i:\b[A-Z]) )(\d+)\s*(?:channels?|sources?|seeds?|catheters?|needles?|dwell positions?)",
    re.IGNORECASE)
_LESIONS = re.compile(r"(\d+)\s*lesions?", re.IGNORECASE)
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*cm\b", re.IGNORECASE)
_COUNT_UNITS = re.compile(r"channel|source|seed|catheter|needle", re.IGNORECASE)
MODIFIER_CODES = frozenset({"26", "TC"})
THERAPY_KINDS = frozenset({"unsealed", "sealed", "electronic", "applicator"})


@dataclass(frozen=True)
class _Candidate:
    resource: Resource
    agent: str | None
    ordered_code: str | None
    conflict: str | None = None


def _procedure_concepts(resource: Resource) -> list[Any]:
    return [resource.get("code"), *as_list(resource.get("orderDetail")), *as_list(resource.get("usedCode"))]


Medications = Mapping[str, Resource]
_NO_MEDICATIONS: Medications = {}


def referenced_medication(resource: Resource, medications: Medications) -> Resource | None:
    """The Medication a MedicationRequest's ``medicationReference`` points to, when the call holds it:
    in the order's ``contained``, or (``Medication/id``) among the Medications the plumbing collected
    from the draftOrders Bundle, the prefetch or the EHR's FHIR server."""
    med_ref = resource.get("medicationReference")
    if not isinstance(med_ref, dict) or not isinstance(med_ref.get("reference"), str):
        return None
    target = med_ref["reference"]
    if target.startswith("#"):
        for contained in as_list(resource.get("contained")):
            if isinstance(contained, dict) and target == f"#{contained.get('id')}":
                return contained
        return None
    found = medications.get(ref_target(med_ref) or "")
    return found if isinstance(found, dict) and found.get("resourceType") == "Medication" else None


def medication_concepts(resource: Resource, medications: Medications = _NO_MEDICATIONS) -> list[Any]:
    """What names the drug: the coded concept, the reference's display, and the referenced
    Medication's code and ingredients (read exactly like ``medicationCodeableConcept``). The chart's
    medication history (engine/patient.py) is read the same way as the order."""
    concepts: list[Any] = [resource.get("medicationCodeableConcept")]
    med_ref = resource.get("medicationReference")
    if isinstance(med_ref, dict) and isinstance(med_ref.get("display"), str):
        concepts.append({"text": med_ref["display"]})
    medication = referenced_medication(resource, medications)
    if medication is not None:
        concepts.append(medication.get("code"))
        for ingredient in as_list(medication.get("ingredient")):
            if isinstance(ingredient, dict):
                concepts.append(ingredient.get("itemCodeableConcept"))
                item_ref = ingredient.get("itemReference")
                if isinstance(item_ref, dict) and isinstance(item_ref.get("display"), str):
                    concepts.append({"text": item_ref["display"]})
    return concepts


def _order_text(resource: Resource, medications: Medications = _NO_MEDICATIONS) -> str:
    """The free text an order carries, joined with ``;`` so patterns cannot span two fields."""
    parts = list(texts(*_procedure_concepts(resource), *medication_concepts(resource, medications),
                       *as_list(resource.get("bodySite"))))
    for note in as_list(resource.get("note")):
        if isinstance(note, dict) and isinstance(note.get("text"), str):
            parts.append(note["text"])
    if isinstance(resource.get("patientInstruction"), str):
        parts.append(resource["patientInstruction"])
    for dosage in as_list(resource.get("dosageInstruction")):
        if isinstance(dosage, dict):
            if isinstance(dosage.get("text"), str):
                parts.append(dosage["text"])
            parts.extend(texts(dosage.get("route"), dosage.get("method"), dosage.get("site")))
    return " ; ".join(parts)


def _cpt_codes(resource: Resource) -> list[str]:
    return [code for system, code in code_keys(resource.get("code")) if system == "cpt"]


def _ordered_code(resource: Resource, knowledge: Knowledge) -> str | None:
    """The CPT code on the order: a family code if there is one, else the first CPT code seen."""
    cpts = [code.split("-")[0] for code in _cpt_codes(resource)]
    for code in cpts:
        info = knowledge.codes.get(code)
        if info and info.kind in THERAPY_KINDS:
            return code
    return cpts[0] if cpts else None


_VALUE_INDEX: dict[int, tuple[Matcher, dict[str, frozenset[str]]]] = {}


def _by_value(matcher: Matcher) -> dict[str, frozenset[str]]:
    """Every code value of a matcher, whatever its system, with the keys it names (built once per
    loaded knowledge; the matcher is kept alongside so its id cannot be reused meanwhile)."""
    cached = _VALUE_INDEX.get(id(matcher))
    if cached is None or cached[0] is not matcher:
        index: dict[str, set[str]] = {}
        for (_, code), key in matcher.by_code.items():
            index.setdefault(code, set()).add(key)
        cached = (matcher, {code: frozenset(keys) for code, keys in index.items()})
        _VALUE_INDEX[id(matcher)] = cached
    return cached[1]


@dataclass(frozen=True)
class _AgentFound:
    key: str | None
    conflict: str | None = None  # code and text name different agents: said on the card


# Matcher.text tries every agent's pattern in turn (dozens of regular expressions) on an
# order's text, twice per draft and twice per call (relevance, then the decision): a third of
# the cost of answering an order that is not therapy. The answer depends only on the matcher
# and the text, and EHRs send the same drug names again and again, so it is remembered.
_TEXT_MATCHES: Memo[Matcher, str, str | None] = Memo()


def _matched_text(matcher: Matcher, text: str) -> str | None:
    return _TEXT_MATCHES.get(matcher, text, matcher.text)


def _agent_found(concepts: list[Any], text: str, knowledge: Knowledge) -> _AgentFound:
    """The agent an order names, surviving mislabelled codings.

    A code under its proper system decides. A code under an unexpected (or unknown) system counts
    by its value only when that value names one agent in the knowledge, whichever table it is
    in. Display and text always count. When a code and the order's drug name disagree, the
    properly labelled code wins, the text beats a mislabelled code, and the conflict is kept to
    be named on the card rather than resolved silently.
    """
    matcher = knowledge.agent_matcher
    by_code = next((found for system, code in code_keys(*concepts) if (found := matcher.code(system, code))), None)
    by_value: str | None = None
    shown_code = ""
    if by_code is None:
        index = _by_value(matcher)
        for _, code in codings(*concepts):
            keys = index.get(code)
            if keys is not None and len(keys) == 1:
                by_value, shown_code = next(iter(keys)), code
                break
    else:
        shown_code = next(code for system, code in code_keys(*concepts) if matcher.code(system, code))
    if knowledge.diagnostic_text.search(text) and not knowledge.therapy_text.search(text):
        by_text = None
    else:
        by_text = _matched_text(matcher, text)
    named = _matched_text(matcher, " ; ".join(texts(*concepts)))  # the drug's own name, not notes
    coded = by_code or by_value
    if coded and named and named != coded:
        conflict = (f"the code {shown_code} names {knowledge.agents[coded].name} but the order's drug name "
                    f"reads as {knowledge.agents[named].name}")
        return _AgentFound(by_code or named, conflict)
    return _AgentFound(coded or by_text)


def _candidate(resource: Resource, knowledge: Knowledge, medications: Medications) -> _Candidate | None:
    """A draft resource that is radioelement therapy, or None."""
    kind = resource.get("resourceType")
    text = _order_text(resource, medications)
    if kind == "MedicationRequest":
        found = _agent_found(medication_concepts(resource, medications), text, knowledge)
        return _Candidate(resource, found.key, None, found.conflict) if found.key else None
    if kind not in ("ServiceRequest", "Procedure"):
        return None
    ordered = _ordered_code(resource, knowledge)
    if ordered is not None:
        info = knowledge.codes.get(ordered)
        if info is None or info.kind not in THERAPY_KINDS:
            return None  # the CPT code says what the order is: a CT, a pleurodesis, a visit
        found = _agent_found(_procedure_concepts(resource), text, knowledge)
        return _Candidate(resource, found.key, ordered, found.conflict)
    found = _agent_found(_procedure_concepts(resource), text, knowledge)
    agent = found.key
    keys = code_keys(resource.get("code"), *as_list(resource.get("orderDetail")))
    signalled = (
        agent is not None
        or any(knowledge.is_evidence("radiopharmaceutical-procedure", s, c) for s, c in keys)
        or any(knowledge.applicator_matcher.code(s, c) for s, c in keys)
        or (knowledge.therapy_text.search(text) is not None and not knowledge.diagnostic_text.search(text))
    )
    return _Candidate(resource, agent, None, found.conflict) if signalled else None


def _links(resource: Resource) -> set[str]:
    """References from one order to others (basedOn, supportingInfo, partOf, replaces)."""
    values: list[Any] = []
    for element in ("basedOn", "supportingInfo", "partOf", "replaces", "reasonReference"):
        values.extend(as_list(resource.get(element)))
    return set(refs(values))


def _pair(procedures: list[_Candidate], medications: list[_Candidate]) -> list[tuple[_Candidate | None, _Candidate | None]]:
    """Join each drug order to its procedure order: by explicit reference, then by agent, then
    the single agent-less procedure order with the single remaining drug order."""
    pairs: dict[int, _Candidate | None] = {index: None for index in range(len(procedures))}
    unpaired: list[_Candidate] = []
    for medication in medications:
        med_ref = reference(medication.resource)
        chosen = None
        for index, procedure in enumerate(procedures):
            if pairs[index] is None and (
                    reference(procedure.resource) in _links(medication.resource)
                    or med_ref in _links(procedure.resource)):
                chosen = index
                break
        if chosen is None:
            for index, procedure in enumerate(procedures):
                if pairs[index] is None and procedure.agent == medication.agent:
                    chosen = index
                    break
        if chosen is None:
            unpaired.append(medication)
        else:
            pairs[chosen] = medication
    open_slots = [index for index, procedure in enumerate(procedures) if pairs[index] is None and procedure.agent is None]
    while unpaired and open_slots:
        pairs[open_slots.pop(0)] = unpaired.pop(0)
    result: list[tuple[_Candidate | None, _Candidate | None]] = [(procedures[i], pairs[i]) for i in range(len(procedures))]
    result.extend((None, medication) for medication in unpaired)
    return result


def _order_date(resource: Resource) -> date | None:
    timing = resource.get("occurrenceTiming") or {}
    events = as_list(timing.get("event")) if isinstance(timing, dict) else []
    dosage_events = [event for dosage in as_list(resource.get("dosageInstruction")) if isinstance(dosage, dict)
                     for event in as_list((dosage.get("timing") or {}).get("event"))]
    return first_date(resource.get("performedDateTime"), resource.get("performedPeriod"),
                      resource.get("occurrenceDateTime"), resource.get("occurrencePeriod"),
                      *events, *dosage_events, resource.get("authoredOn"))


def _route(resources: list[Resource], text: str, knowledge: Knowledge) -> tuple[str | None, bool]:
    """The route key and whether the order states it (coded or written) rather than implying it."""
    for resource in resources:
        for dosage in as_list(resource.get("dosageInstruction")):
            if not isinstance(dosage, dict):
                continue
            for system, code in code_keys(dosage.get("route"), dosage.get("method")):
                found = knowledge.route_matcher.code(system, code)
                if found:
                    return found, True
        for system, code in code_keys(*_procedure_concepts(resource)):
            found = knowledge.route_matcher.code(system, code)
            if found:
                return found, True
    found = knowledge.route_matcher.text(text)
    return (found, True) if found else (None, False)


def _site(resources: list[Resource], text: str, knowledge: Knowledge) -> tuple[str | None, bool]:
    """The body-site key and whether a location is written on the order at all."""
    written = False
    for resource in resources:
        sites = as_list(resource.get("bodySite")) + [
            dosage.get("site") for dosage in as_list(resource.get("dosageInstruction")) if isinstance(dosage, dict)]
        for site in sites:
            if not site:
                continue
            written = True
            for system, code in code_keys(site):
                found = knowledge.site_matcher.code(system, code)
                if found:
                    return found, True
            found = knowledge.site_matcher.text(" ; ".join(texts(site)))
            if found:
                return found, True
    found = knowledge.site_matcher.text(text)
    if found:
        return found, True
    return None, written


def _order_quantities(resource: Resource) -> list[Any]:
    """The quantities an order asks for, in the order they are read: each dose (a range only
    when both ends agree), each rate, the dispense quantity, the ServiceRequest's quantity."""
    found: list[Any] = []
    for dosage in as_list(resource.get("dosageInstruction")):
        for rate in as_list((dosage or {}).get("doseAndRate") if isinstance(dosage, dict) else None):
            if not isinstance(rate, dict):
                continue
            found.append(rate.get("doseQuantity"))
            dose_range = rate.get("doseRange")
            if isinstance(dose_range, dict):
                low, high = dose_range.get("low"), dose_range.get("high")
                if isinstance(low, dict) and isinstance(high, dict) and low.get("value") == high.get("value"):
                    found.append(low)
                elif isinstance(low, dict) or isinstance(high, dict):
                    found.append({"range": [low, high]})  # what is stated, but not one amount
            found.append(rate.get("rateQuantity"))
    dispense = resource.get("dispenseRequest")
    if isinstance(dispense, dict):
        found.append(dispense.get("quantity"))
    found.append(resource.get("quantityQuantity"))
    return [quantity for quantity in found if isinstance(quantity, dict)]


def _activity_text(resource: Resource) -> str:
    """The free text in which an order states what it asks for: its instructions and notes and
    the procedure's own wording. Never the drug's name, whose strength (``1100 kBq/mL``) is a
    concentration, not the activity ordered."""
    parts = list(texts(*_procedure_concepts(resource)))
    for note in as_list(resource.get("note")):
        if isinstance(note, dict) and isinstance(note.get("text"), str):
            parts.append(note["text"])
    if isinstance(resource.get("patientInstruction"), str):
        parts.append(resource["patientInstruction"])
    for dosage in as_list(resource.get("dosageInstruction")):
        if isinstance(dosage, dict):
            for key in ("text", "patientInstruction"):
                if isinstance(dosage.get(key), str):
                    parts.append(dosage[key])
    return " ; ".join(parts)


def _activity(resources: list[Resource], weight_kg: float | None) -> tuple[activity_units.Activity | None, str | None]:
    """The activity the order asks for, and otherwise what dose it states instead (``1 {pill}``).

    Only a radioactivity quantity (Bq or Ci, or per kg with a body weight) is an activity; a
    tablet count, a volume or a mass is not, whatever the drug's name says about its strength.
    """
    stated_instead: str | None = None
    for resource in resources:
        for quantity in _order_quantities(resource):
            if "range" in quantity:
                ends = [activity_units.quantity_text(end) for end in quantity["range"]]
                stated_instead = stated_instead or "a range of " + " to ".join(end or "?" for end in ends)
                continue
            if not isinstance(quantity.get("value"), (int, float)):
                continue
            found = activity_units.from_quantity(float(quantity["value"]),
                                                 str(quantity.get("code") or quantity.get("unit") or ""), weight_kg)
            if found:
                return found, None
            stated_instead = stated_instead or activity_units.quantity_text(quantity)
    for resource in resources:
        found = activity_units.from_text(_activity_text(resource), weight_kg)
        if found:
            return found, None
    return None, stated_instead


def _count(resource: Resource, text: str) -> int | None:
    quantity = resource.get("quantityQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)):
        if _COUNT_UNITS.search(str(quantity.get("unit") or quantity.get("code") or "")):
            return int(quantity["value"])
    match = _COUNT.search(text)
    return int(match.group(1)) if match else None


def _modifiers(resource: Resource) -> tuple[str, ...]:
    found = [code.split("-", 1)[1] for code in _cpt_codes(resource) if "-" in code]
    for system, code in code_keys(*as_list(resource.get("orderDetail")), *as_list(resource.get("modifier"))):
        if system in ("cpt", "hcpcs") and code in MODIFIER_CODES:
            found.append(code)
    return tuple(dict.fromkeys(code for code in found if code in MODIFIER_CODES))


def _applicator_insertion(applicator: str | None, ordered_info: CodeInfo | None, keys: list[CodeKey], text: str,
                          treatment: bool, knowledge: Knowledge) -> bool:
    """Is the order the insertion of its applicator (decision step 2), rather than a treatment
    delivered through it?

    A coder bills a tandem-and-ovoid day as two lines from two orders: the insertion (an
    applicator code) and the source treatment (a sealed-source code). So a treatment order that names the
    applicator it runs through ("HDR via tandem and ring, 3 channels") is not an insertion.
    Judgement, in this order: the ordered code says which of the two the order is (an applicator
    code, or an active sealed-source code); then a coded insertion procedure; then the wording
    ("already in place" beats "placed"); an order that names only the applicator, with no source,
    dose rate or count, is its insertion.
    """
    if applicator is None:
        return False
    if ordered_info is not None and not ordered_info.deleted:
        if ordered_info.kind == "applicator":
            return True
        if ordered_info.kind == "sealed":
            return False
    if any(knowledge.is_evidence("applicator-insertion", s, c) for s, c in keys):
        return True
    if knowledge.in_place_text.search(text):
        return False
    if knowledge.insertion_text.search(text):
        return True
    return not treatment


def _build(procedure: _Candidate | None, medication: _Candidate | None, today: date, knowledge: Knowledge,
           weight_kg: float | None, medications: Medications) -> TherapyOrder:
    primary = (procedure or medication).resource  # type: ignore[union-attr]
    members = [c.resource for c in (procedure, medication) if c is not None]
    drug_first = [c.resource for c in (medication, procedure) if c is not None]
    text = " ; ".join(_order_text(resource, medications) for resource in drug_first)
    agent_key = (medication.agent if medication else None) or (procedure.agent if procedure else None)
    agent = knowledge.agents.get(agent_key) if agent_key else None
    ordered = procedure.ordered_code if procedure else None
    ordered_info = knowledge.codes.get(ordered) if ordered else None
    keys = [key for resource in members for key in code_keys(*_procedure_concepts(resource))]

    route, route_stated = _route(drug_first, text, knowledge)
    site, site_stated = _site(members, text, knowledge)
    if route is None and site and knowledge.sites[site].implies_route:
        route, route_stated = knowledge.sites[site].implies_route, True
    if route is None and agent and agent.only_route:
        route = agent.only_route  # implied by the agent's label, not stated
    if route and not site_stated and knowledge.routes[route].specific_site:
        site, site_stated = knowledge.routes[route].specific_site, True

    brachy_context = bool(knowledge.sealed_text.search(text)) or "brachy" in text.lower() or (
        ordered_info is not None and ordered_info.kind in ("applicator", "sealed"))
    applicator = next((found for s, c in keys if (found := knowledge.applicator_matcher.code(s, c))), None)
    if applicator is None and brachy_context:
        applicator = knowledge.applicator_matcher.text(text)
    if applicator is None and ordered_info and ordered_info.kind == "applicator":
        applicator = next((a.key for a in knowledge.applicators.values() if a.code == ordered), None)

    hdr = any(knowledge.is_evidence("hdr-modality", s, c) for s, c in keys) or bool(knowledge.hdr_text.search(text))
    ldr = any(knowledge.is_evidence("ldr-modality", s, c) for s, c in keys) or bool(knowledge.ldr_text.search(text))
    count = _count(primary, text)
    electronic = (agent is not None and agent.carrier == "electronic") or (
        ordered_info is not None and ordered_info.kind == "electronic")
    # A source treatment is described: a sealed source, a dose rate, or a channel/source count.
    treatment = (agent is not None and agent.carrier == "sealed-source") or hdr or ldr or count is not None
    insertion = _applicator_insertion(applicator, ordered_info, keys, text, treatment, knowledge)
    sealed = (agent is not None and agent.carrier == "sealed-source") or (
        agent is None and not electronic
        and ((ordered_info is not None and ordered_info.kind == "sealed") or hdr or ldr
             or bool(knowledge.sealed_text.search(text))
             # an applicator that is only the delivery device carries a sealed source
             or (applicator is not None and not insertion)))
    dose_rate = agent.dose_rate if agent and agent.dose_rate else ("hdr" if hdr else "ldr" if ldr else None)

    activity, dose_stated = (_activity(drug_first, weight_kg) if not (electronic or sealed or applicator)
                             else (None, None))
    reason_values = [v for resource in members for v in as_list(resource.get("reasonCode"))]
    reason_refs = refs(v for resource in members for v in as_list(resource.get("reasonReference")))
    lesions = _LESIONS.search(text)
    size = _SIZE.search(text)
    encounter = next((ref_target(resource.get("encounter")) for resource in members if resource.get("encounter")), None)
    return TherapyOrder(
        reference=reference(primary),
        resource=primary,
        members=tuple(reference(resource) for resource in members),
        when=next((d for resource in members if (d := _order_date(resource))), today),
        completed=primary.get("resourceType") == "Procedure" and primary.get("status") == "completed",
        ordered_code=ordered,
        ordered_modifiers=_modifiers(primary),
        agent=agent_key,
        carrier=agent.carrier if agent else None,
        route=route,
        route_kind=knowledge.routes[route].kind if route else None,
        route_stated=route_stated,
        body_site=site,
        body_site_stated=site_stated,
        activity=activity,
        dose_stated=dose_stated,
        agent_conflict=(medication.conflict if medication else None) or (procedure.conflict if procedure else None),
        has_reason=bool(reason_values or reason_refs),
        reason_codes=code_keys(*reason_values),
        reason_refs=reason_refs,
        applicator=applicator,
        applicator_insertion=insertion,
        electronic=electronic,
        sealed=sealed,
        dose_rate=dose_rate,
        count=count,
        lesion_cm=float(size.group(1)) if size else None,
        lesions=int(lesions.group(1)) if lesions else None,
        complications_documented=bool(primary.get("complication") or primary.get("complicationDetail")),
        encounter_ref=encounter,
    )


def therapy_order_members(resources: Iterable[Resource], knowledge: Knowledge,
                          medications: Medications = _NO_MEDICATIONS) -> frozenset[str]:
    """References (``ServiceRequest/sr-1``) of the resources the engine reads as part of a therapy
    order. Tools that pick orders out of a patient record (replay) ask this, so they and the
    engine never disagree about what a therapy order is."""
    return frozenset(member for order in therapy_orders(resources, date.min, knowledge, None, medications)
                     for member in order.members)


def _candidates(draft_orders: Iterable[Resource], knowledge: Knowledge,
                medications: Medications) -> list[tuple[_Candidate | None, _Candidate | None]]:
    procedures: list[_Candidate] = []
    drugs: list[_Candidate] = []
    for resource in draft_orders:
        candidate = _candidate(resource, knowledge, medications) if isinstance(resource, dict) else None
        if candidate is None:
            continue
        (drugs if resource.get("resourceType") == "MedicationRequest" else procedures).append(candidate)
    return _pair(procedures, drugs)


def therapy_order_groups(draft_orders: Iterable[Resource], knowledge: Knowledge,
                         medications: Medications = _NO_MEDICATIONS) -> list[tuple[Resource, ...]]:
    """The resources of each therapy order, found the way :func:`therapy_orders` finds them but
    without reading anything else, so it is safe on raw, unvalidated drafts."""
    return [tuple(c.resource for c in pair if c is not None) for pair in _candidates(draft_orders, knowledge, medications)]


def therapy_order_agents(groups: Iterable[tuple[Resource, ...]], knowledge: Knowledge,
                         medications: Medications = _NO_MEDICATIONS) -> frozenset[str]:
    """The agents the given therapy-order resources name, read from the raw drafts as recognition
    reads them (so the prefetch an agent's requirement needs is known before fetching)."""
    agents = set()
    for group in groups:
        for resource in group:
            candidate = _candidate(resource, knowledge, medications)
            if candidate is not None and candidate.agent:
                agents.add(candidate.agent)
    return frozenset(agents)


def therapy_orders(draft_orders: Iterable[Resource], today: date, knowledge: Knowledge,
                   weight_kg: float | None = None,
                   medications: Medications = _NO_MEDICATIONS) -> tuple[TherapyOrder, ...]:
    """Every radioelement therapy order in the draft, in draft order."""
    return tuple(_build(procedure, medication, today, knowledge, weight_kg, medications)
                 for procedure, medication in _candidates(draft_orders, knowledge, medications))
