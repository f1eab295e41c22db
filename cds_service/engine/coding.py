"""Which CPT code fits a therapy order, and which modifiers go with it: the rows of
``rules.toml`` evaluated over the order's named facts, first match wins.

This module decides nothing by itself. It states the facts of an order in the words the rules
use (:func:`order_facts`), finds the first row that holds and returns its outcome. Adding or
reordering a row changes the advice without touching Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Mapping

from cds_service.engine.facts import PatientFacts, TherapyOrder
from cds_service.knowledge.model import CodeRule, Knowledge, PayerPolicy, Scalar
from cds_service.knowledge.vocabulary import TECHNIQUES

Facts = Mapping[str, Scalar | None]


@dataclass(frozen=True)
class CodeChoice:
    code: str
    alternatives: tuple[str, ...] = ()
    reason: str = ""
    uncertain: str | None = None  # what could not be verified (e.g. a channel count)
    rule: str = ""  # the id of the rules.toml row that chose the code
    gaps: tuple[str, ...] = ()  # documentation keys the row asks for because a deciding fact is unknown


def follow_up_evidenced(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> bool:
    """A care plan covering the follow-up window after treatment, or a follow-up visit order."""
    windows = knowledge.windows
    start_by = order.when + timedelta(days=windows.plan_start_grace_days)
    covers_until = order.when + timedelta(days=windows.follow_up_days)
    for plan in patient.care_plans:
        if (plan.start is None or plan.start <= start_by) and (plan.end is None or plan.end >= covers_until):
            return True
    # A follow-up visit order counts when it is undated or falls after the treatment and within the window.
    return any(when is None or order.when <= when <= covers_until for when in patient.follow_up_orders)


def therapy(order: TherapyOrder) -> str:
    """What the order is, in the order the decision asks: electronic, an applicator's insertion,
    sealed sources, or an unsealed radiopharmaceutical."""
    if order.electronic:
        return "electronic"
    if order.applicator and order.applicator_insertion:
        return "applicator-insertion"
    return "sealed" if order.sealed else "unsealed"


def _sealed_traits(order: TherapyOrder, knowledge: Knowledge) -> tuple[str | None, str | None]:
    """Technique and dose rate, falling back on what the ordered (even deleted) code implies,
    then on the knowledge's default dose rate for the technique."""
    ordered = knowledge.codes.get(order.ordered_code or "")
    technique = order.route_kind if order.route_kind in TECHNIQUES else None
    if technique is None and ordered and len(ordered.techniques) == 1:
        technique = ordered.techniques[0]
    rate = order.dose_rate or (ordered.dose_rate if ordered else None)
    if rate is None and technique:
        rate = knowledge.sealed_dose_rate_default.get(technique)
    return technique, rate


def order_facts(order: TherapyOrder, follow_up: bool, knowledge: Knowledge) -> dict[str, Scalar | None]:
    """The named facts of one order that the decision table's ``when`` tests (None: not stated)."""
    ordered = knowledge.codes.get(order.ordered_code or "")
    technique, rate = _sealed_traits(order, knowledge) if order.sealed else (None, None)
    return {
        "therapy": therapy(order),
        "carrier": order.carrier,
        "route_kind": order.route_kind,
        "body_site": order.body_site,
        "applicator": order.applicator,
        "technique": technique,
        "dose_rate": rate,
        "count": order.count,
        "lesions": order.lesions,
        "lesion_cm": order.lesion_cm,
        "ordered_code": order.ordered_code,
        "ordered_kind": ordered.kind if ordered else None,
        "ordered_active": ordered is not None and not ordered.deleted,
        "follow_up": follow_up,
    }


def first_rule(facts: Facts, knowledge: Knowledge) -> CodeRule:
    """The first row of the decision table that holds (the loader guarantees the last always does)."""
    return next(rule for rule in knowledge.code_rules if rule.holds(facts))


def choose_code(order: TherapyOrder, facts: Facts, knowledge: Knowledge) -> CodeChoice:
    """The recommended CPT code, its alternatives, the reason and what is uncertain."""
    rule = first_rule(facts, knowledge)
    code = rule.code or order.ordered_code or ""
    reason = rule.reason.format_map({name: "" if value is None else value for name, value in facts.items()})
    alternatives = rule.alternatives
    ordered = knowledge.codes.get(order.ordered_code or "")
    if ordered and ordered.deleted:
        # A deleted code on the order: offer its current replacements beside the chosen code.
        alternatives += tuple(c for c in ordered.replaced_by if c != code and c not in alternatives)
    # The row's gaps stand only while their order fact is unknown (a stated size is not a gap).
    gaps = tuple(key for key in rule.gaps
                 if (item := knowledge.doc_items.get(key)) is None or item.order_fact is None
                 or facts.get(item.order_fact) is None)
    return CodeChoice(code, alternatives, reason, rule.uncertain, rule.id, gaps)


def modifiers(code: str, setting: str | None, payer: PayerPolicy, knowledge: Knowledge) -> tuple[str, ...]:
    """The modifiers of the recommended code: the first row of the modifier table that holds."""
    info = knowledge.codes.get(code)
    facts: dict[str, Scalar | None] = {
        "pctc": info.pctc if info else None,
        "payer_modifier_policy": payer.modifier_policy,
        "setting": setting,
    }
    rule = next((rule for rule in knowledge.modifier_rules if rule.holds(facts)), None)
    return rule.modifiers if rule else ()
