"""Render decisions as CDS Hooks 2.0 cards that follow the Da Vinci CRD card rules.

One code card per order (it carries the External Reference link), one documentation card when
something is missing, one card per coding edit. A fully documented, correctly coded order gets
the code card alone, as a short ``info``. Card and suggestion ids are fresh uuid4s; everything
else is a deterministic function of the decision.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from cds_service.engine.decision import Decision
from cds_service.engine.patient_card import library_url
from cds_service.hooks.model import SERVICE_LABEL
from cds_service.knowledge.model import Knowledge
from cds_service.knowledge.systems import CPT_URI
from cds_service.knowledge.vocabulary import (
    CODE_CARD, CRD_CARD_TYPE_SYSTEM, CRD_CARD_TYPES, DOCUMENTATION_CARD, EDIT_CARD, WARNINGS,
)

OVERRIDE_SYSTEM = "https://cds-service.example.org/CodeSystem/override-reason"
OVERRIDE_REASONS = (
    ("follow-up-elsewhere", "The 3-month follow-up is provided by another physician"),
    ("payer-instruction", "The payer has instructed a different code"),
    ("documented-elsewhere", "The information is documented outside the EHR record checked"),
    ("clinical-judgement", "Coding reviewed; the ordered code is correct"),
)
# A public page about the code family, so the clinician can read the coding source themselves.
REFERENCE_URL = "https://www.cms.gov/medicare/payment/fee-schedules/physician/pfs-relative-value-files"
REFERENCE_LABEL = "CMS physician fee schedule relative value files (global period and PC/TC indicator)"
SUMMARY_LIMIT = 139
# What the code card's first link opens: this service's own page for the recommended code.
LIBRARY_LABEL = "descriptor, guidelines, modifiers, documentation checklist, plain words in ten languages"



def _summary(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _card(decision: Decision, summary: str, indicator: str, topic: str, detail: str, card_type: str,
          source_label: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(summary),
        "indicator": indicator,
        "detail": detail,
        "source": {"label": source_label,
                   "topic": {"system": CRD_CARD_TYPE_SYSTEM, "code": topic, "display": CRD_CARD_TYPES[topic]}},
        "extension": {
            "davinci-crd.associated-resource": list(decision.order.members),
            "cds-service.card-type": card_type,
            "cds-service.recommended-code": decision.code,
        },
    }


def order_label(decision: Decision, knowledge: Knowledge) -> str:
    """How the card names the order for a human: the agent or the order's text, and its id."""
    resource = decision.order.resource
    agent = knowledge.agents.get(decision.order.agent or "")
    text = (resource.get("code") or {}).get("text") or (resource.get("medicationCodeableConcept") or {}).get("text")
    name = text or (agent.name if agent else None) or "radioelement therapy order"
    return f"{name} ({decision.order.reference})"


def with_code(resource: dict[str, Any], code: str, knowledge: Knowledge) -> dict[str, Any]:
    """The whole draft order with its CPT coding replaced by ``code`` (other codings kept)."""
    updated = copy.deepcopy(resource)
    concept: dict[str, Any] = updated["code"] if isinstance(updated.get("code"), dict) else {}
    kept = [c for c in concept.get("coding", []) if c.get("system") not in (CPT_URI, "urn:oid:2.16.840.1.113883.6.12")]
    info = knowledge.codes.get(code)
    cpt = {"system": CPT_URI, "code": code}
    if info:
        cpt["display"] = info.descriptor
    concept["coding"] = [cpt, *kept]
    updated["code"] = concept
    return updated


def _suggestions(decision: Decision, knowledge: Knowledge) -> list[dict[str, Any]]:
    order = decision.order
    if order.resource.get("resourceType") not in ("ServiceRequest", "Procedure") or decision.code_matches:
        return []
    codes = [decision.code] + [c for c in decision.choice.alternatives if c != order.ordered_code]
    suggestions = []
    for code in codes:
        recommended = code == decision.code
        suggestions.append({
            "label": f"{'Code' if recommended else 'Alternatively code'} this order as CPT {code}",
            "uuid": str(uuid.uuid4()),
            "isRecommended": recommended,
            "actions": [{
                "type": "update",
                "description": f"Set the CPT code of {order.reference} to {code}",
                "resource": with_code(order.resource, code, knowledge),
            }],
        })
    return suggestions


def _code_detail(decision: Decision, knowledge: Knowledge) -> str:
    order, choice = decision.order, decision.choice
    info = knowledge.codes.get(decision.code)
    lines = [f"**Order:** {order_label(decision, knowledge)}"]
    lines.append(f"**Recommended: CPT {decision.code}** — {info.descriptor if info else ''}.")
    if choice.reason:
        lines.append(f"Why: {choice.reason}.")
    if order.ordered_code and not decision.code_matches:
        ordered = knowledge.codes.get(order.ordered_code)
        lines.append(f"The order carries CPT {order.ordered_code}"
                     + (f" ({ordered.descriptor})" if ordered else "") + ".")
    if choice.uncertain:
        lines.append(f"Not on the order: {choice.uncertain}; confirm it before billing.")
    if order.agent_conflict:
        lines.append(f"Check the drug: {order.agent_conflict}; correct the order's coding before signing.")
    if order.applicator and not order.applicator_insertion and info and info.kind == "sealed":
        insertion = knowledge.applicators[order.applicator].code
        lines.append(f"The {order.applicator.replace('-', ' ')} applicator is only the delivery device of this "
                     f"treatment; its insertion is a separate order and claim line (CPT {insertion}).")
    if choice.alternatives:
        alts = "; ".join(f"CPT {c} ({knowledge.codes[c].descriptor})" for c in choice.alternatives if c in knowledge.codes)
        lines.append(f"Alternatives: {alts}.")
    if decision.modifiers:
        lines.append(f"Modifier {', '.join(decision.modifiers)}: the professional component is billed separately "
                     "in this facility setting.")
    for line in decision.supply:
        units = f"{line.units} unit{'s' if line.units != 1 else ''}" if line.units is not None else "units to be set"
        lines.append(f"Supply: HCPCS {line.code}, {units} ({line.unit.replace('per-', 'per ')})"
                     + (f" — {line.note}" if line.note else "") + ".")
    if decision.supply_note:
        lines.append(f"Supply: {decision.supply_note}")
    agent = knowledge.agents.get(order.agent or "")
    if agent and agent.note:
        lines.append(agent.note)
    return "\n\n".join(lines)


_SIGNAL_WORDS = {
    "histology": "the mCODE histology-morphology-behavior extension (a malignant behaviour), not from a code",
    "secondary-profile": "the mCODE secondary-cancer-condition profile, not from a code",
}


def diagnosis_signal_text(decision: Decision) -> str:
    """Which signal the documented diagnosis rests on when it is not a code. Text is the lower
    confidence last resort, so the card asks for the coded diagnosis the claim will need."""
    refs = ", ".join(ref for ref, _ in decision.diagnosis_evidence)
    if decision.diagnosis_from_text:
        words = "; ".join(f"\u201c{text}\u201d" for _, text in decision.diagnosis_evidence if text)
        return (f"Diagnosis recognised from text only (lower confidence): {words} ({refs}). Add the coded "
                "diagnosis (ICD-10-CM, or SNOMED CT) to the problem list: the claim needs the code.")
    return f"Diagnosis recognised from {_SIGNAL_WORDS.get(decision.diagnosis_signal or '', 'a non-code signal')} ({refs})."


def code_card(decision: Decision, knowledge: Knowledge, source_label: str, light: bool = False,
              base_url: str | None = None) -> dict[str, Any]:
    """The order's code card; with ``base_url`` its first link is the recommended code's library page."""
    order = decision.order
    clean = (decision.code_matches and not decision.missing and not decision.warnings and not decision.choice.uncertain
             and not decision.diagnosis_from_text)
    if decision.code_matches:
        summary, indicator, topic = f"CPT {decision.code} fits this order", "info", "guideline"
        if clean and not light:
            summary = f"CPT {decision.code} fits this order; documentation complete"
    elif order.ordered_code:
        summary = f"Code CPT {decision.code}, not {order.ordered_code}: {decision.choice.reason}"
        indicator, topic = "warning", "therapy-alternatives-opt"
    else:
        summary, indicator, topic = f"Bill this order as CPT {decision.code}", "info", "therapy-alternatives-opt"
    detail = _code_detail(decision, knowledge)
    if decision.diagnosis_signal and not light:  # a documentation matter: order-select gives the code only
        detail += "\n\n" + diagnosis_signal_text(decision)
    if decision.advice and not decision.missing and not light:  # no documentation card: advice goes here
        detail += "\n\n" + advice_text(decision, knowledge)
    card = _card(decision, summary, indicator, topic, detail, CODE_CARD, source_label)
    suggestions = _suggestions(decision, knowledge)
    if suggestions:
        card["suggestions"] = suggestions
        card["selectionBehavior"] = "at-most-one"
        card["overrideReasons"] = [{"system": OVERRIDE_SYSTEM, "code": code, "display": display}
                                   for code, display in OVERRIDE_REASONS]
    card["links"] = [{"label": REFERENCE_LABEL, "url": REFERENCE_URL, "type": "absolute"}]
    if base_url:
        card["links"].insert(0, {"label": f"CPT {decision.code} in the code library: {LIBRARY_LABEL}",
                                 "url": library_url(base_url, decision.code), "type": "absolute"})
    return card


def _needed_only_for(key: str, decision: Decision, knowledge: Knowledge) -> tuple[str, ...]:
    """The codes whose own documentation rule asks for ``key`` when the recommended code does
    not: the item is listed because such a code is still an alternative (the follow-up plan of
    the follow-up-inclusive code while the code without follow-up is recommended), and the card
    says so."""
    own = knowledge.doc_by_code.get(decision.code)
    if own is not None and key in own.keys:
        return ()
    return tuple(code for code, rule in knowledge.doc_by_code.items() if code != decision.code and key in rule.keys)


ADVICE_HEADING = "Worth documenting (advice, not required):"


def advice_text(decision: Decision, knowledge: Knowledge) -> str:
    """The advice items as one short section: their sources are too weak to call them gaps."""
    items = "; ".join(f"{knowledge.doc_items[key].label.lower()} ({knowledge.doc_items[key].evidence})"
                      for key in decision.advice)
    return f"{ADVICE_HEADING} {items}."


def documentation_card(decision: Decision, knowledge: Knowledge, source_label: str) -> dict[str, Any] | None:
    if not decision.missing:
        return None
    labels = [knowledge.doc_items[key].label.lower() for key in decision.missing]
    summary = "Missing documentation for this order: " + ", ".join(labels)
    lines = [f"**Order:** {order_label(decision, knowledge)}", "",
             "Medical necessity is not yet supported by the record. Missing:"]
    for key in decision.missing:
        item = knowledge.doc_items[key]
        needed_for = _needed_only_for(key, decision, knowledge)
        only_for = f" Needed only to bill CPT {' or '.join(needed_for)}." if needed_for else ""
        stated = (f" The order gives a dose of {decision.order.dose_stated}, which is not an activity."
                  if key == "activity" and decision.order.dose_stated else "")
        lines.append(f"- **{item.label}** — satisfied by {item.evidence}.{stated}{only_for}")
    if decision.advice:
        lines += ["", advice_text(decision, knowledge)]
    card = _card(decision, summary, "warning", "clinical-reminder", "\n".join(lines), DOCUMENTATION_CARD, source_label)
    card["extension"]["cds-service.missing-documentation"] = list(decision.missing)
    return card


def edit_cards(decision: Decision, knowledge: Knowledge, source_label: str) -> list[dict[str, Any]]:
    cards = []
    for warning in decision.warnings:
        detail = f"**Order:** {order_label(decision, knowledge)}\n\n{warning.detail}"
        kind = WARNINGS[warning.key]
        card = _card(decision, f"{kind.title} (CPT {decision.code})", "warning", kind.topic, detail, EDIT_CARD,
                     source_label)
        card["extension"]["cds-service.warning"] = warning.key
        cards.append(card)
    return cards
