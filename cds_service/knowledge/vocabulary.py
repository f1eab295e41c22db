"""The names the service's contract and its rules are written in, each declared once.

Documentation keys, warning keys, card types, prefetch keys, time windows and the facts a rule
may test are read by the engine, the cards, the metrics label bounds, the loader and the tests
from here. A name changes in one place or not at all: analytics, replay expectations and EHR
configurations depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

# -- prefetch keys (the discovery document's prefetch template names) ---------------------------
PREFETCH_KEYS: tuple[str, ...] = (
    "patient", "conditions", "observations", "reports", "procedures", "carePlans", "serviceRequests",
    "coverage", "encounter", "encounters", "notes", "adverseEvents", "medications",
)
#: Read by every therapy decision: diagnosis and indication, the global period, follow-up
#: evidence, bundling with other orders, the setting (modifier 26) and the payer.
CORE_PREFETCH_KEYS: frozenset[str] = frozenset(
    {"patient", "conditions", "procedures", "carePlans", "serviceRequests", "coverage", "encounter"})
#: The prefetch key that carries body weight, needed to turn a per-kg activity into units.
WEIGHT_PREFETCH_KEY = "observations"
#: The evidence.toml groups the engine reads from Observations; the ``observations`` prefetch
#: template is generated from exactly these groups' LOINC and SNOMED codes, so the two cannot drift.
OBSERVATION_EVIDENCE_GROUPS: tuple[str, ...] = ("body-weight", "staging", "performance-status", "disease-status")

# -- documentation keys (``missingDocumentation``), in the order cards and decisions list them --
#: What shows that a Condition documents a malignancy (engine/patient.py ``cancer_signal``),
#: strongest first: a decision names any signal but a code, and "text" is the low-confidence last resort.
DIAGNOSIS_SIGNALS: tuple[str, ...] = ("code", "histology", "secondary-profile", "text")

DOC_KEYS: tuple[str, ...] = (
    "diagnosis", "indication", "staging", "radioelement", "activity", "route", "body-site",
    "lesion-size", "channel-count",  # skin HDR: raised by the decision row when the fact could change the code
    "no-visceral-metastases", "psma-pet", "prior-arpi", "sstr-imaging", "iobenguane-scan",  # per-agent label requirements
    # per-agent advice (``documentationAdvice``, never a gap)
    "castration-resistant", "symptomatic-bone-metastases", "prior-taxane-or-deferral", "thyroid-uptake",
    "lung-shunt-study",
    "pre-imaging", "performance-status", "follow-up-plan",
    "response-assessment", "adverse-events", "post-imaging", "follow-up-notes",
)
#: The prefetch keys whose data shows each item; a gap is not claimed when that data is missing.
DOC_DEPENDS_ON: Mapping[str, tuple[str, ...]] = {
    "diagnosis": ("conditions",),
    "staging": ("observations", "conditions"),
    "pre-imaging": ("reports",),
    "performance-status": ("observations",),
    "follow-up-plan": ("carePlans",),
    "response-assessment": ("observations",),
    "adverse-events": ("adverseEvents",),
    "post-imaging": ("reports",),
    "follow-up-notes": ("encounters", "notes"),
    "no-visceral-metastases": ("reports", "observations"),
    "psma-pet": ("reports", "procedures"),
    "prior-arpi": ("medications",),
    "sstr-imaging": ("reports", "procedures"),
    "iobenguane-scan": ("reports",),
    "castration-resistant": ("reports",),
    "symptomatic-bone-metastases": ("reports",),
    "prior-taxane-or-deferral": ("reports",),
    "thyroid-uptake": ("reports",),
    "lung-shunt-study": ("reports",),
}

# -- warning keys (``warnings``) ------------------------------------------------------------------
WARNING_KEYS: tuple[str, ...] = (
    "deleted-code", "global-period-overlap", "bundling-conflict", "indication-mismatch",
    "diagnosis-sequencing", "modifier-not-applicable",
)
#: A warning is not raised when the data that could show it is missing (it could not be checked).
WARNING_DEPENDS_ON: Mapping[str, tuple[str, ...]] = {
    "global-period-overlap": ("procedures",),
    "indication-mismatch": ("conditions",),
    "diagnosis-sequencing": ("conditions",),
}


@dataclass(frozen=True)
class WarningKind:
    title: str
    topic: str  # the Da Vinci CRD card type the warning's card carries


WARNINGS: Mapping[str, WarningKind] = {
    "deleted-code": WarningKind("Deleted CPT code on the order", "claim"),
    "global-period-overlap": WarningKind("Open 90-day global period", "claim"),
    "bundling-conflict": WarningKind("Codes that must not be billed together", "claim"),
    "indication-mismatch": WarningKind("Diagnosis does not match the agent's labelled indication", "off-guideline"),
    "diagnosis-sequencing": WarningKind("Diagnosis sequencing", "claim"),
    "modifier-not-applicable": WarningKind("Modifier 26/TC does not apply to this code", "claim"),
}

# -- card types -------------------------------------------------------------------------------------
#: Da Vinci CRD card types (CRD 2.0.1 temporary code system) and their display names.
CRD_CARD_TYPE_SYSTEM = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
CRD_CARD_TYPES: Mapping[str, str] = {
    "therapy-alternatives-opt": "Therapy alternatives (optional)",
    "guideline": "Guideline",
    "clinical-reminder": "Clinical reminder",
    "claim": "Claim",
    "off-guideline": "Off guideline",
}
#: This service's own card kinds (``extension["cds-service.card-type"]``, a metrics label).
CARD_KINDS: tuple[str, ...] = ("code", "documentation", "edit", "checks-unavailable", "patient-explanation")
CODE_CARD, DOCUMENTATION_CARD, EDIT_CARD, CHECKS_UNAVAILABLE_CARD, PATIENT_EXPLANATION_CARD = CARD_KINDS
#: The CRD card type the patient-explanation card travels under (so an EHR can switch it off):
#: a reminder to the clinician, like the documentation card, not a coding recommendation.
PATIENT_EXPLANATION_TOPIC = "clinical-reminder"

# -- time windows (their lengths are data: ``rules.toml [windows]``) ---------------------------------
WINDOWS: tuple[str, ...] = ("follow_up_days", "plan_start_grace_days", "before_treatment_days",
                            "after_treatment_days", "body_weight_days")

# -- value sets the knowledge files are checked against --------------------------------------------
CODE_KINDS = frozenset({"unsealed", "sealed", "electronic", "applicator", "related"})
CARRIERS = frozenset({"antibody", "small-molecule", "colloid", "microspheres", "sealed-source", "electronic"})
ROUTE_KINDS = frozenset({"iv", "oral", "cavity", "intra-arterial", "intra-articular", "interstitial", "surface"})
TECHNIQUES = frozenset({"cavity", "interstitial", "surface"})
DOSE_RATES = frozenset({"hdr", "ldr"})
SETTINGS = frozenset({"inpatient", "hospital-outpatient", "office"})
MODIFIER_POLICIES = frozenset({"facility-26", "global-only", "always-26"})
SUPPLY_UNITS = frozenset({"per-mCi", "per-uCi", "per-dose", "per-source"})
#: What a therapy order is, in the order the decision asks it.
THERAPIES = ("electronic", "applicator-insertion", "sealed", "unsealed")


@dataclass(frozen=True)
class Fact:
    """A named fact a rule may test: its kind and, for words, where the allowed values come from."""

    kind: str  # word | code | number | yes-no
    help: str
    values: str | frozenset[str] | None = None  # a value set above, or a knowledge table name


#: Facts of one therapy order, as the decision table's ``when`` sees them.
ORDER_FACTS: Mapping[str, Fact] = {
    "therapy": Fact("word", "what the order is: electronic, applicator-insertion, sealed or unsealed",
                    frozenset(THERAPIES)),
    "carrier": Fact("word", "the agent's carrier (antibody, microspheres, colloid, ...)", CARRIERS),
    "route_kind": Fact("word", "the class of the route (iv, oral, cavity, ...)", ROUTE_KINDS),
    "body_site": Fact("word", "the body-site key (routes.toml [[site]])", "sites"),
    "applicator": Fact("word", "the gynaecologic applicator key (routes.toml [[applicator]])", "applicators"),
    "technique": Fact("word", "sealed sources: cavity, interstitial or surface", TECHNIQUES),
    "dose_rate": Fact("word", "sealed sources: hdr or ldr", DOSE_RATES),
    "count": Fact("number", "the number of sources or channels written on the order"),
    "lesions": Fact("number", "the number of lesions written on the order"),
    "lesion_cm": Fact("number", "the lesion size in cm written on the order"),
    "ordered_code": Fact("code", "the CPT code the order carries"),
    "ordered_kind": Fact("word", "the kind of the ordered code (codes.toml kind)", CODE_KINDS),
    "ordered_active": Fact("yes-no", "the ordered code is known and not deleted"),
    "follow_up": Fact("yes-no", "the 3-month follow-up is on file (care plan or follow-up visit order)"),
}

#: Facts the modifier rules see about the recommended code, the payer and the setting.
BILLING_FACTS: Mapping[str, Fact] = {
    "pctc": Fact("number", "the CMS PC/TC indicator of the recommended code"),
    "payer_modifier_policy": Fact("word", "the payer's modifier policy (payers.toml)", MODIFIER_POLICIES),
    "setting": Fact("word", "inpatient, hospital-outpatient or office", SETTINGS),
}
