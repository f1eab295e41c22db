"""The coding engine: pure functions from a :class:`HookCall` and the knowledge to :class:`Guidance`.

Pipeline: find the therapy orders in the draft (:mod:`orders`), read the chart (:mod:`patient`),
decide each order (:mod:`decision`), then render cards and the CRD systemAction (:mod:`cards`,
:mod:`coverage`). No Flask, no I/O beyond validating the resources it reads.
"""

from __future__ import annotations

from cds_service.engine.cards import code_card, documentation_card, edit_cards, order_label
from cds_service.engine.coverage import coverage_actions
from cds_service.engine.decision import Decision, decide_all
from cds_service.engine.fhirdata import code_keys, reference
from cds_service.engine.facts import TherapyOrder
from cds_service.engine.orders import therapy_order_agents, therapy_order_groups, therapy_orders
from cds_service.engine.patient import body_weight, patient_facts
from typing import Any, Mapping, Sequence

from cds_service.engine.patient_card import find_patient, patient_explanation_card
from cds_service.hooks.model import SERVICE_LABEL, Guidance, HookCall, Relevance
from cds_service.knowledge import Knowledge
from cds_service.knowledge.vocabulary import CORE_PREFETCH_KEYS, DOC_DEPENDS_ON, WEIGHT_PREFETCH_KEY


def _prefetch_keys_read(decisions: tuple[Decision, ...]) -> frozenset[str]:
    """The core keys plus those the required documentation items of these decisions depend on."""
    keys = set(CORE_PREFETCH_KEYS)
    for decision in decisions:
        for item in decision.required:
            keys.update(DOC_DEPENDS_ON.get(item, ()))
        if decision.order.activity is not None and decision.order.activity.needs_weight:
            keys.add(WEIGHT_PREFETCH_KEY)  # body weight turns kBq/kg into billing units
    return frozenset(keys)


def _selected(call: HookCall, orders: tuple[TherapyOrder, ...]) -> tuple[TherapyOrder, ...]:
    """order-select speaks only about the orders the clinician is selecting right now."""
    chosen = set(call.selections)
    return tuple(order for order in orders if chosen & set(order.members))


def prefetch_keys_for(completed: bool, light: bool, knowledge: Knowledge,
                      agents: frozenset[str] = frozenset()) -> frozenset[str]:
    """The prefetch keys the decisions on therapy orders can read, known before deciding them:
    the core keys, body weight, what any documentation rule may need, and what the ordered
    agents' own items need (the medication history only for an agent whose label asks for a
    prior therapy). After-treatment items count only for a completed procedure (a draft never
    needs post-procedure notes), and order-select, which gives the code alone, needs the core
    keys only."""
    keys = set(CORE_PREFETCH_KEYS)
    if light:
        return frozenset(keys)
    keys.add(WEIGHT_PREFETCH_KEY)
    for rule in (*knowledge.doc_by_kind.values(), *knowledge.doc_by_code.values()):
        for item in (*rule.keys, *(rule.post if completed else ())):
            keys.update(DOC_DEPENDS_ON.get(item, ()))
    for key, _ in knowledge.agent_requirements(agents):
        keys.update(DOC_DEPENDS_ON.get(key, ()))
    return frozenset(keys)


def relevant(draft_orders: Sequence[Any], medications: Mapping[str, Any], selections: Sequence[str],
             light: bool, knowledge: Knowledge) -> Relevance:
    """Which draft entries are therapy orders, from the drafts (and their Medications) alone.

    Runs on the raw, unvalidated JSON before anything is fetched or validated, so an order that
    is not radioelement therapy (a statin, a CT, an empty draft being filled in) costs nothing;
    it reads only what recognition reads, so a malformed field elsewhere cannot break it.
    """
    entries = [resource if isinstance(resource, dict) else {} for resource in draft_orders]
    groups = therapy_order_groups(entries, knowledge, medications)
    if light:
        chosen = set(selections)
        groups = [group for group in groups if chosen & {reference(resource) for resource in group}]
    members = {id(resource) for group in groups for resource in group}
    positions = frozenset(index for index, resource in enumerate(entries) if id(resource) in members)
    if not positions:
        return Relevance()
    completed = any(resource.get("resourceType") == "Procedure" and resource.get("status") == "completed"
                    for group in groups for resource in group[:1])
    agents = frozenset() if light else therapy_order_agents(groups, knowledge, medications)
    return Relevance(positions, prefetch_keys_for(completed, light, knowledge, agents))


def advise(call: HookCall, knowledge: Knowledge) -> Guidance:
    """Decide the coding guidance for one hook call."""
    light = call.hook == "order-select"
    weight = body_weight(call, knowledge)
    orders = therapy_orders(call.draft_orders, call.today, knowledge, weight, call.medications)
    if light:
        orders = _selected(call, orders)
    if not orders:
        return Guidance()
    patient = patient_facts(call, orders, knowledge, weight)
    members = {member for order in orders for member in order.members}
    other_codes = tuple(code.split("-")[0] for resource in call.draft_orders if reference(resource) not in members
                        for system, code in code_keys(resource.get("code")) if system == "cpt")
    decisions = decide_all(orders, other_codes, patient, knowledge)

    label = next((c.payer_name for c in patient.coverages if c.payer_name), None) or SERVICE_LABEL
    cards = []
    for decision in decisions:
        cards.append(code_card(decision, knowledge, label, light, call.base_url))
        if light:
            continue
        documentation = documentation_card(decision, knowledge, label)
        if documentation:
            cards.append(documentation)
        cards.extend(edit_cards(decision, knowledge, label))
    if not light:  # last, so ``max-cards`` drops the explanations before any coding advice
        person = find_patient(call.resources("Patient"), call.patient_id)
        for decision in decisions:
            explanation = patient_explanation_card(
                decision.code, person, associated=decision.order.members, order_label=order_label(decision, knowledge),
                source_label=label, base_url=call.base_url)
            if explanation:
                cards.append(explanation)
    actions = [] if light else coverage_actions(decisions, patient.coverages, call.today, knowledge)
    return Guidance(cards=cards, system_actions=actions,
                    decisions=[decision.as_json(light) for decision in decisions],
                    prefetch_keys_read=_prefetch_keys_read(decisions))
