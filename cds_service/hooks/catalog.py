"""The services this CDS service offers, as discovery lists them. Ids and hooks are a contract.

Prefetch templates use only CDS Hooks 2.0 tokens (``{{context.patientId}}``,
``{{context.encounterId}}``) and the recommended query subset (reference and token equality,
``_sort``, ``_count``), so EHRs and the public Sandbox can fulfil them as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from cds_service.knowledge.loader import observation_search_codes

# Observations the decision reads: stage groups and TNM categories, ECOG and Karnofsky
# performance status, cancer disease status (response), body weight (kBq/kg dosing). Generated
# from evidence.toml's Observation groups (one definition, the one the engine matches against).
OBSERVATION_CODES: tuple[str, ...] = observation_search_codes()

PATIENT = "{{context.patientId}}"

ORDER_SIGN_PREFETCH: dict[str, str] = {
    "patient": f"Patient/{PATIENT}",
    "conditions": f"Condition?patient={PATIENT}",
    "observations": f"Observation?patient={PATIENT}&code={','.join(OBSERVATION_CODES)}",
    "reports": f"DiagnosticReport?patient={PATIENT}&_sort=-date&_count=100",
    "procedures": f"Procedure?patient={PATIENT}&_sort=-date&_count=100",
    "carePlans": f"CarePlan?patient={PATIENT}",
    "serviceRequests": f"ServiceRequest?patient={PATIENT}&_sort=-authored&_count=100",
    "coverage": f"Coverage?patient={PATIENT}&status=active",
    "encounter": "Encounter/{{context.encounterId}}",
    # For completed procedures (charge capture): follow-up visits, notes and adverse events.
    "encounters": f"Encounter?patient={PATIENT}&_sort=-date&_count=100",
    "notes": f"DocumentReference?patient={PATIENT}&_sort=-date&_count=100",
    "adverseEvents": f"AdverseEvent?subject=Patient/{PATIENT}",
    # Prior therapies an agent's label requires (an androgen-receptor-pathway inhibitor before
    # Lu-177 PSMA). Fetched only when such an agent is ordered. An EHR may also send
    # MedicationStatements here: both are read.
    "medications": f"MedicationRequest?patient={PATIENT}&_count=100",
}

# order-select gives early, light guidance: the code only, so it needs only what decides the code.
ORDER_SELECT_PREFETCH: dict[str, str] = {
    "patient": f"Patient/{PATIENT}",
    "conditions": f"Condition?patient={PATIENT}",
    "carePlans": f"CarePlan?patient={PATIENT}",
    "serviceRequests": f"ServiceRequest?patient={PATIENT}&_sort=-authored&_count=100",
    "encounter": "Encounter/{{context.encounterId}}",
}

# What each prefetch key lets the service check, for the card that says what could not run.
CHECKS_BY_KEY: Mapping[str, str] = {
    "patient": "patient demographics and preferred language (weight-based activity, patient explanation)",
    "conditions": "diagnosis, indication and diagnosis sequencing",
    "observations": "staging and performance status",
    "reports": "imaging before and after therapy",
    "procedures": "procedure history (90-day global period)",
    "carePlans": "the 3-month follow-up plan",
    "serviceRequests": "follow-up orders and bundling with other orders",
    "coverage": "payer modifier policy and coverage information",
    "encounter": "encounter setting (modifier 26)",
    "encounters": "follow-up visits after a completed procedure",
    "notes": "follow-up notes after a completed procedure",
    "adverseEvents": "adverse events after a completed procedure",
    "medications": "prior therapies the agent's label requires (an androgen-receptor-pathway inhibitor before Lu-177 PSMA)",
}


# Da Vinci CRD card types (CRD 2.0.1 temporary code system) this service can return, with what
# switching each off hides. CRD asks a server to offer one boolean option per card type.
CARD_TYPE_OPTIONS: Mapping[str, str] = {
    "therapy-alternatives-opt": "Cards that recommend a different CPT code for the order",
    "guideline": "Cards that confirm the ordered code fits",
    "clinical-reminder": ("Cards that list missing documentation or checks that could not run, and the words "
                          "to explain the treatment to the patient in their language"),
    "claim": "Cards about claim edits: global period, bundling, deleted codes, modifiers, diagnosis order",
    "off-guideline": "Cards saying the agent's labelled indication is not on the problem list",
}
MAX_CARDS_OPTION = "max-cards"


@dataclass(frozen=True)
class ServiceDefinition:
    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str] = field(default_factory=dict)
    card_types: tuple[str, ...] = tuple(CARD_TYPE_OPTIONS)

    def configuration_options(self) -> list[dict[str, Any]]:
        options: list[dict[str, Any]] = [
            {"code": code, "type": "boolean", "name": code.replace("-", " ").capitalize(),
             "description": CARD_TYPE_OPTIONS[code], "default": True}
            for code in self.card_types
        ]
        options.append({"code": MAX_CARDS_OPTION, "type": "integer", "name": "Maximum cards",
                        "description": "Return at most this many cards, most important first", "default": 20})
        return options

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": dict(self.prefetch),
            "extension": {"davinci-crd.configuration-options": self.configuration_options()},
        }


SERVICES: tuple[ServiceDefinition, ...] = (
    ServiceDefinition(
        id="radioelement-order-sign",
        hook="order-sign",
        title="Radioelement therapy coding (order-sign)",
        description=(
            "Checks radioelement and brachytherapy orders at signing: confirms the ordered CPT code "
            "(radioelement infusion or instillation with follow-up, radiopharmaceutical therapy, "
            "applicator insertion, electronic or sealed-source brachytherapy) or recommends the "
            "code that fits, advises on modifier 26/TC and the "
            "radiopharmaceutical HCPCS supply code, and lists missing medical-necessity documentation."
        ),
        prefetch=ORDER_SIGN_PREFETCH,
    ),
    ServiceDefinition(
        id="radioelement-order-select",
        hook="order-select",
        title="Radioelement therapy coding (order-select)",
        description=(
            "Early guidance while a radioelement or brachytherapy order is being chosen: the CPT "
            "code that fits the selected order, without documentation reminders."
        ),
        prefetch=ORDER_SELECT_PREFETCH,
        card_types=("therapy-alternatives-opt", "guideline"),
    ),
)

SERVICES_BY_ID: Mapping[str, ServiceDefinition] = {service.id: service for service in SERVICES}


def discovery_document() -> dict[str, Any]:
    return {"services": [service.discovery_entry() for service in SERVICES]}
