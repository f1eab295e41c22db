"""One decision per therapy order: code, alternatives, modifiers, supply, gaps and warnings.

:meth:`Decision.as_json` is the machine-readable contract analytics and replay read, published at
``extension["cds-service.decisions"]``; cards are rendered from the same object so the two
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds_service.engine import documentation, edits
from cds_service.engine.activity import round_units
from cds_service.engine.coding import CodeChoice, choose_code, follow_up_evidenced, modifiers, order_facts
from cds_service.engine.edits import Warning
from cds_service.engine.facts import PatientFacts, TherapyOrder
from cds_service.knowledge.model import Knowledge, Supply
from cds_service.knowledge.vocabulary import DIAGNOSIS_SIGNALS


@dataclass(frozen=True)
class SupplyLine:
    code: str
    units: int | None
    unit: str
    note: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "units": self.units} if self.units is not None else {"code": self.code}


@dataclass(frozen=True)
class Decision:
    order: TherapyOrder
    choice: CodeChoice
    modifiers: tuple[str, ...]
    supply: tuple[SupplyLine, ...]
    required: tuple[str, ...]  # the documentation keys this order needs (``missing`` is a subset)
    missing: tuple[str, ...]
    warnings: tuple[Warning, ...]
    advice: tuple[str, ...] = ()  # advice documentation keys not evidenced: worth documenting, never gaps
    sources: tuple[str, ...] = ()  # the knowledge sources behind the code, its row and the supply line
    knowledge_version: str = ""
    supply_note: str | None = None  # said on the card instead of a supply line withheld in this setting
    # When the diagnosis is documented by a signal other than a code: which one, and the Conditions
    # (reference, words) it rests on. "text" is the lower-confidence last resort.
    diagnosis_signal: str | None = None
    diagnosis_evidence: tuple[tuple[str, str], ...] = ()

    @property
    def diagnosis_from_text(self) -> bool:
        return self.diagnosis_signal == "text"

    @property
    def code(self) -> str:
        return self.choice.code

    @property
    def code_matches(self) -> bool:
        return self.order.ordered_code == self.code

    def as_json(self, light: bool = False) -> dict[str, Any]:
        """The decision as published. ``light`` (order-select) leaves out the checks that were not run."""
        out: dict[str, Any] = {"order": self.order.reference}
        if self.order.ordered_code:
            out["orderedCode"] = self.order.ordered_code
        out["recommendedCode"] = self.code
        out["alternatives"] = list(self.choice.alternatives)
        out["modifiers"] = list(self.modifiers)
        out["supply"] = [line.as_json() for line in self.supply]
        out["rule"] = self.choice.rule
        out["sources"] = list(self.sources)
        out["knowledgeVersion"] = self.knowledge_version
        if not light:
            out["missingDocumentation"] = list(self.missing)
            if self.advice:
                out["documentationAdvice"] = list(self.advice)
            if self.diagnosis_signal:
                out["diagnosisSignal"] = self.diagnosis_signal
                if self.diagnosis_from_text:
                    out["diagnosisConfidence"] = "low"
            out["warnings"] = [warning.key for warning in self.warnings]
        return out


def _agent_supply(order: TherapyOrder, code: str, knowledge: Knowledge) -> Supply | None:
    """The ordered agent's separately billed supply code, when the recommended code is a
    radiopharmaceutical one (a sealed-source code carries its sources itself)."""
    agent = knowledge.agents.get(order.agent or "")
    info = knowledge.codes.get(code)
    if agent is None or info is None or info.kind != "unsealed":
        return None
    return agent.supply


def supply_lines(order: TherapyOrder, code: str, knowledge: Knowledge,
                 setting: str | None = None) -> tuple[SupplyLine, ...]:
    """The separately billed radiopharmaceutical and its units (per mCi, per µCi, or per dose).

    A supply code limited to some settings (a hospital-outpatient C-code) is never asserted
    without evidence of that setting."""
    supply = _agent_supply(order, code, knowledge)
    if supply is None or not supply.billed_in(setting):
        return ()
    unit = supply.unit
    rule = knowledge.supply_units[unit]
    if rule.fixed_units is not None:
        return (SupplyLine(supply.code, rule.fixed_units, unit),)
    activity = order.activity
    if activity is None or activity.mci is None or rule.units_per_mci is None:
        if activity is not None and activity.needs_weight:
            note = "a body weight is needed to turn the per-kg activity into billing units"
        elif order.dose_stated:
            note = (f"the order gives a dose of {order.dose_stated}; state the activity in MBq or mCi "
                    "to compute billing units")
        else:
            note = "the order states no activity; state it in MBq or mCi to compute billing units"
        return (SupplyLine(supply.code, None, unit, note),)
    rounding = knowledge.unit_rounding
    return (SupplyLine(supply.code, round_units(activity.mci * rule.units_per_mci, rounding), unit,
                       rounding.note),)


def supply_note(order: TherapyOrder, code: str, knowledge: Knowledge, setting: str | None = None) -> str | None:
    """Why no supply line is given when the agent's supply code is limited to other settings, and
    what applies instead (agents.toml ``setting_notes``): the card must not go silent on the source."""
    supply = _agent_supply(order, code, knowledge)
    if supply is None or supply.billed_in(setting):
        return None
    return supply.setting_notes.get(setting or "unknown")


def diagnosis_signal(required: tuple[str, ...], gaps: tuple[str, ...], patient: PatientFacts
                     ) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """The strongest signal the documented diagnosis rests on, when it is not a code, and the
    Conditions behind it; (None, ()) when a code shows it or the diagnosis is not in question."""
    if "diagnosis" not in required or "diagnosis" in gaps or not patient.malignant:
        return None, ()
    best = min((c.signal or "code" for c in patient.malignant), key=DIAGNOSIS_SIGNALS.index)
    if best == "code":
        return None, ()
    return best, tuple((c.reference, c.text) for c in patient.malignant if c.signal == best)


def decision_sources(order: TherapyOrder, choice: CodeChoice, knowledge: Knowledge) -> tuple[str, ...]:
    """Source keys behind a decision: the recommended code's, the rule row's, then the agent's
    (which carries the supply line), each once and in that order."""
    found: list[str] = []
    info = knowledge.codes.get(choice.code)
    if info is not None:
        found.extend(info.sources)
    rule = next((row for row in knowledge.code_rules if row.id == choice.rule), None)
    if rule is not None:
        found.extend(rule.sources)
    agent = knowledge.agents.get(order.agent or "")
    if agent is not None:
        found.extend(agent.sources)
    return tuple(dict.fromkeys(found))


def decide_all(orders: tuple[TherapyOrder, ...], other_codes: tuple[str, ...], patient: PatientFacts,
               knowledge: Knowledge) -> tuple[Decision, ...]:
    """Decide every order; each is checked for bundling against the others' recommended codes,
    the codes they carry as ordered, and the CPT codes of the non-therapy orders signed with it.

    Everything that does not depend on the order (the payer) is worked out once per call, and
    everything that does (its facts, its follow-up) once per order.
    """
    payer = knowledge.payer(tuple(i for coverage in patient.coverages for i in coverage.identifiers))
    choices: dict[str, CodeChoice] = {}
    follow_ups: dict[str, bool] = {}
    for order in orders:
        follow_ups[order.reference] = follow_up = follow_up_evidenced(order, patient, knowledge)
        choices[order.reference] = choose_code(order, order_facts(order, follow_up, knowledge), knowledge)
    billed: dict[str, list[str]] = {}
    for order in orders:
        recommended = choices[order.reference].code
        billed[order.reference] = [recommended] + (
            [order.ordered_code] if order.ordered_code and order.ordered_code != recommended else [])
    decisions = []
    for order in orders:
        choice = choices[order.reference]
        others = [code for ref, codes in billed.items() if ref != order.reference for code in codes] + list(other_codes)
        required = documentation.required_keys(choice.code, order, knowledge, choice.alternatives)
        gaps = documentation.missing(required, order, patient, knowledge, follow_ups[order.reference])
        if choice.gaps:  # facts the decision row needed and the order does not state (skin HDR)
            required = documentation.in_published_order(required + choice.gaps, knowledge)
            gaps = documentation.in_published_order(gaps + choice.gaps, knowledge)
        signal, evidence = diagnosis_signal(required, gaps, patient)
        decisions.append(Decision(
            order=order,
            choice=choice,
            modifiers=modifiers(choice.code, patient.setting, payer, knowledge),
            supply=supply_lines(order, choice.code, knowledge, patient.setting),
            supply_note=supply_note(order, choice.code, knowledge, patient.setting),
            diagnosis_signal=signal,
            diagnosis_evidence=evidence,
            required=required,
            missing=gaps,
            advice=documentation.advice(order, patient, knowledge),
            warnings=edits.warnings(choice.code, order, patient, others, knowledge),
            sources=decision_sources(order, choice, knowledge),
            knowledge_version=knowledge.version,
        ))
    return tuple(decisions)
