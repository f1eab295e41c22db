"""Which CPT code fits a therapy order: design §3's decision order, first match wins.

Pure functions over :class:`TherapyOrder`, :class:`PatientFacts` and the knowledge. Every place
where the design or the research left a choice open carries the reason next to the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from cds_service.engine.facts import PatientFacts, TherapyOrder
from cds_service.knowledge.model import CodeInfo, Knowledge

FOLLOW_UP_DAYS = 90
# Judgement: a plan that starts within a week of treatment still owns the 3-month follow-up; the
# first post-treatment visit is rarely on the day of the infusion.
PLAN_START_GRACE_DAYS = 7
SKIN_SMALL_LESION_CM = 2.0


@dataclass(frozen=True)
class CodeChoice:
    code: str
    alternatives: tuple[str, ...] = ()
    reason: str = ""
    uncertain: str | None = None  # what could not be verified (e.g. a channel count)


def follow_up_evidenced(order: TherapyOrder, patient: PatientFacts) -> bool:
    """Design §3: a care plan covering the 90 days after treatment, or a follow-up order."""
    start_by = order.when + timedelta(days=PLAN_START_GRACE_DAYS)
    covers_until = order.when + timedelta(days=FOLLOW_UP_DAYS)
    for plan in patient.care_plans:
        if (plan.start is None or plan.start <= start_by) and (plan.end is None or plan.end >= covers_until):
            return True
    # A follow-up visit order counts when it is undated or falls after the treatment and within the window.
    return any(when is None or order.when <= when <= covers_until for when in patient.follow_up_orders)


def _choose_electronic(order: TherapyOrder) -> CodeChoice:
    if order.route_kind == "surface" or order.body_site in ("skin",):
        return CodeChoice("0394T", ("0395T",), "electronic (x-ray) source on the skin surface")
    if order.route_kind in ("cavity", "interstitial") or order.body_site:
        return CodeChoice("0395T", ("0394T",), "electronic (x-ray) source placed interstitially or in a cavity")
    # Judgement: with no site, keep an electronic code the order already carries; otherwise the
    # skin code, because nearly all electronic brachytherapy billed today treats skin cancer.
    if order.ordered_code in ("0394T", "0395T"):
        other = "0395T" if order.ordered_code == "0394T" else "0394T"
        return CodeChoice(order.ordered_code, (other,), "electronic brachytherapy; the site is not stated",
                          "the treatment site (skin surface or not)")
    return CodeChoice("0394T", ("0395T",), "electronic brachytherapy; the site is not stated",
                      "the treatment site (skin surface or not)")


def _sealed_traits(order: TherapyOrder, knowledge: Knowledge) -> tuple[str | None, str | None]:
    """Technique and dose rate, falling back on what the ordered (even deleted) code implies."""
    ordered = knowledge.codes.get(order.ordered_code or "")
    technique = order.route_kind if order.route_kind in ("cavity", "interstitial", "surface") else None
    if technique is None and ordered and len(ordered.techniques) == 1:
        technique = ordered.techniques[0]
    rate = order.dose_rate or (ordered.dose_rate if ordered else None)
    if rate is None and technique:
        # Judgement: cavity and skin treatments without a stated dose rate are almost always HDR
        # afterloading today; interstitial implants without one are almost always permanent seeds.
        rate = "ldr" if technique == "interstitial" else "hdr"
    return technique, rate


def _by_count(group: tuple[CodeInfo, ...], count: int | None, ordered: str | None) -> CodeChoice:
    codes = tuple(info.code for info in group)
    if len(group) == 1:
        return CodeChoice(codes[0], (), "")
    if count is not None:
        for info in group:
            if info.count and info.count[0] <= count <= info.count[1]:
                return CodeChoice(info.code, tuple(c for c in codes if c != info.code), f"{count} sources/channels")
    # Judgement: never up-code on an undocumented count. Keep an ordered code of this group,
    # otherwise take the lowest level and ask for the count.
    chosen = ordered if ordered in codes else codes[0]
    return CodeChoice(chosen, tuple(c for c in codes if c != chosen), "", "the number of sources or channels")


def _choose_sealed(order: TherapyOrder, knowledge: Knowledge) -> CodeChoice:
    technique, rate = _sealed_traits(order, knowledge)
    group = knowledge.sealed_family.get((technique or "", rate or ""))
    ordered = order.ordered_code
    if not group:
        ordered_info = knowledge.codes.get(ordered or "")
        if ordered and ordered_info and ordered_info.kind == "sealed" and not ordered_info.deleted:
            return CodeChoice(ordered, (), "sealed-source brachytherapy; technique not stated", "the technique")
        return CodeChoice("77799", (), "sealed-source brachytherapy that no specific code describes from the order",
                          "the technique (intracavitary, interstitial or surface) and dose rate")
    label = f"sealed-source {rate.upper() if rate else ''} {technique} brachytherapy".replace("  ", " ")
    if technique == "surface" and rate == "hdr":
        if order.lesions is None and order.lesion_cm is None:
            chosen = ordered if ordered in ("77767", "77768") else "77767"
            other = "77768" if chosen == "77767" else "77767"
            return CodeChoice(chosen, (other,), label, "the lesion size and number")
        large = (order.lesions or 1) > 1 or (order.lesion_cm or 0) > SKIN_SMALL_LESION_CM
        return (CodeChoice("77768", ("77767",), label + ", larger or several lesions") if large
                else CodeChoice("77767", ("77768",), label + ", one small lesion"))
    choice = _by_count(group, order.count, ordered)
    return CodeChoice(choice.code, choice.alternatives, ", ".join(p for p in (label, choice.reason) if p), choice.uncertain)


def _choose_unsealed(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> CodeChoice:
    carrier, kind = order.carrier, order.route_kind
    if carrier == "antibody":
        return CodeChoice("79403", (), "radiolabelled monoclonal antibody given intravenously")
    if carrier == "microspheres" or (kind == "intra-arterial" and carrier in (None, "colloid")):
        # Judgement: an intra-arterial radioelement with no named agent is, in practice, Y-90 microspheres.
        return CodeChoice("79445", (), "particulate radioelement delivered through an artery")
    if kind == "oral":
        return CodeChoice("79005", (), "radiopharmaceutical given by mouth")
    if kind == "intra-articular":
        return CodeChoice("79440", (), "radiopharmaceutical injected into a joint")
    if kind == "interstitial":
        if carrier in (None, "colloid"):
            return CodeChoice("79300", (), "radioactive colloid injected into tissue")
        return CodeChoice("79999", ("79300",), "interstitial radiopharmaceutical that is not a colloid")
    if kind == "intra-arterial":
        return CodeChoice("79999", ("79445",), "intra-arterial radiopharmaceutical that is not particulate")
    follow_up = follow_up_evidenced(order, patient)
    if kind == "cavity":
        if follow_up:
            return CodeChoice("77750", ("79200",), "instillation into a body cavity with the 3-month follow-up planned")
        return CodeChoice("79200", ("77750",), "instillation into a body cavity; no 3-month follow-up is on file")
    if kind == "iv":
        if follow_up:
            return CodeChoice("77750", ("79101",), "intravenous non-antibody radioelement with the 3-month follow-up planned")
        return CodeChoice("79101", ("77750",), "intravenous non-antibody radioelement; no 3-month follow-up is on file")
    ordered = knowledge.codes.get(order.ordered_code or "")
    if ordered and ordered.kind == "unsealed" and not ordered.deleted:
        return CodeChoice(ordered.code, (), "radiopharmaceutical therapy; the route is not stated", "the route")
    return CodeChoice("79999", ("79101", "79200", "77750"), "radiopharmaceutical therapy; the route is not stated",
                      "the route")


def choose_code(order: TherapyOrder, patient: PatientFacts, knowledge: Knowledge) -> CodeChoice:
    """The recommended CPT code and its alternatives, following design §3 in order."""
    if order.electronic:
        choice = _choose_electronic(order)
    elif order.applicator and order.applicator_insertion:
        code = knowledge.applicators[order.applicator].code
        others = tuple(a.code for a in knowledge.applicators.values() if a.code != code)
        choice = CodeChoice(code, others, f"insertion of the {order.applicator.replace('-', ' ')} applicator only")
    elif order.sealed:
        choice = _choose_sealed(order, knowledge)
    else:
        choice = _choose_unsealed(order, patient, knowledge)
    ordered = knowledge.codes.get(order.ordered_code or "")
    if ordered and ordered.deleted:
        extra = tuple(c for c in ordered.replaced_by if c != choice.code and c not in choice.alternatives)
        choice = CodeChoice(choice.code, choice.alternatives + extra, choice.reason, choice.uncertain)
    return choice


def modifiers(code: str, patient: PatientFacts, knowledge: Knowledge, coverage_ids: tuple[str, ...]) -> tuple[str, ...]:
    """Modifier 26 for PC/TC indicator 1 codes billed by the physician in a facility setting.

    Indicator 0 codes (applicators, electronic brachytherapy) never take 26 or TC. A payer
    policy keyed by the Coverage payor identifier may override the default.
    """
    info = knowledge.codes.get(code)
    if info is None or info.pctc != 1:
        return ()
    policy = knowledge.payer(coverage_ids)
    if policy.modifier_policy == "global-only":
        return ()
    if policy.modifier_policy == "always-26":
        return ("26",)
    return ("26",) if patient.setting in ("inpatient", "hospital-outpatient") else ()
