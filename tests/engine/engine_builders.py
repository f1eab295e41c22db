"""Small builders for FHIR resources and HookCall objects, so each test states only what matters.

Dates are offsets from ORDER_DAY, the date every draft order carries, so the tests mean the same
thing whatever the calendar says.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Iterable

from cds_service.engine import advise
from cds_service.hooks.model import Guidance, HookCall
from cds_service.knowledge import Knowledge, load_knowledge

ORDER_DAY = date(2026, 3, 2)
TODAY = date(2026, 3, 2)
PATIENT = "pat-1"
SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"
LOINC = "http://loinc.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
Resource = dict[str, Any]


@lru_cache(maxsize=1)
def knowledge() -> Knowledge:
    return load_knowledge()


def day(offset: int = 0) -> str:
    return (ORDER_DAY + timedelta(days=offset)).isoformat()


def concept(system: str | None = None, code: str | None = None, text: str | None = None, display: str | None = None) -> dict:
    out: dict[str, Any] = {}
    if code:
        coding = {"system": system, "code": code}
        if display:
            coding["display"] = display
        out["coding"] = [coding]
    if text:
        out["text"] = text
    return out


def service_request(rid: str = "sr-1", cpt: str | None = "77750", text: str | None = None, *,
                    snomed: str | None = None, body_site: dict | None = None, reason: Iterable[str] = ("C34.90",),
                    reason_refs: Iterable[str] = (), when: int = 0, quantity: dict | None = None,
                    order_detail: list | None = None, encounter: str | None = None, **extra: Any) -> Resource:
    codings = []
    if cpt:
        codings.append({"system": CPT, "code": cpt})
    if snomed:
        codings.append({"system": SNOMED, "code": snomed})
    resource: Resource = {
        "resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"}, "occurrenceDateTime": day(when),
        "code": {**({"coding": codings} if codings else {}), **({"text": text} if text else {})},
    }
    if body_site:
        resource["bodySite"] = [body_site]
    if reason:
        resource["reasonCode"] = [concept(ICD10, code) for code in reason]
    if reason_refs:
        resource["reasonReference"] = [{"reference": ref} for ref in reason_refs]
    if quantity:
        resource["quantityQuantity"] = quantity
    if order_detail:
        resource["orderDetail"] = order_detail
    if encounter:
        resource["encounter"] = {"reference": f"Encounter/{encounter}"}
    resource.update(extra)
    return resource


def procedure_order(rid: str = "proc-1", cpt: str | None = "77750", status: str = "completed", when: int = 0,
                    **extra: Any) -> Resource:
    resource = service_request(rid, cpt, when=when, **extra)
    resource["resourceType"] = "Procedure"
    resource["status"] = status
    resource.pop("intent")
    resource["performedDateTime"] = resource.pop("occurrenceDateTime")
    return resource


def medication_request(rid: str = "mr-1", text: str | None = None, *, rxnorm: str | None = None,
                       snomed: str | None = None, ndc: str | None = None, route: str | None = "47625008",
                       dose: tuple[float, str] | None = None, based_on: str | None = None,
                       reason: Iterable[str] = (), dosage_text: str | None = None, when: int = 0) -> Resource:
    codings = []
    if rxnorm:
        codings.append({"system": RXNORM, "code": rxnorm})
    if snomed:
        codings.append({"system": SNOMED, "code": snomed})
    if ndc:
        codings.append({"system": "http://hl7.org/fhir/sid/ndc", "code": ndc})
    dosage: dict[str, Any] = {}
    if route:
        dosage["route"] = concept(SNOMED, route)
    if dose:
        dosage["doseAndRate"] = [{"doseQuantity": {"value": dose[0], "unit": dose[1], "system": "http://unitsofmeasure.org",
                                                   "code": dose[1]}}]
    if dosage_text:
        dosage["text"] = dosage_text
    resource: Resource = {
        "resourceType": "MedicationRequest", "id": rid, "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"}, "authoredOn": day(when),
        "medicationCodeableConcept": {**({"coding": codings} if codings else {}), **({"text": text} if text else {})},
    }
    if dosage:
        resource["dosageInstruction"] = [dosage]
    if based_on:
        resource["basedOn"] = [{"reference": based_on}]
    if reason:
        resource["reasonCode"] = [concept(ICD10, code) for code in reason]
    return resource


def condition(rid: str, icd10: str | None = None, *, snomed: str | None = None, status: str = "active",
              staged: bool = False) -> Resource:
    codings = []
    if icd10:
        codings.append({"system": ICD10, "code": icd10})
    if snomed:
        codings.append({"system": SNOMED, "code": snomed})
    resource: Resource = {
        "resourceType": "Condition", "id": rid, "subject": {"reference": f"Patient/{PATIENT}"},
        "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", status),
        "code": {"coding": codings},
    }
    if staged:
        resource["stage"] = [{"summary": concept(SNOMED, "258219007", "Stage IV")}]
    return resource


def observation(rid: str, loinc: str, offset: int, value: Any = None) -> Resource:
    resource: Resource = {
        "resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": f"Patient/{PATIENT}"},
        "code": concept(LOINC, loinc), "effectiveDateTime": day(offset),
    }
    if isinstance(value, (int, float)):
        resource["valueQuantity"] = {"value": value, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
    elif isinstance(value, str):
        resource["valueString"] = value
    return resource


def imaging_report(rid: str, offset: int, loinc: str = "25045-6") -> Resource:
    return {
        "resourceType": "DiagnosticReport", "id": rid, "status": "final", "subject": {"reference": f"Patient/{PATIENT}"},
        "code": concept(LOINC, loinc), "effectiveDateTime": day(offset),
    }


def care_plan(rid: str = "cp-1", start: int = 0, end: int | None = 120, status: str = "active",
              addresses: Iterable[str] = ("Condition/c-1",)) -> Resource:
    period = {"start": day(start)}
    if end is not None:
        period["end"] = day(end)
    return {
        "resourceType": "CarePlan", "id": rid, "status": status, "intent": "plan",
        "subject": {"reference": f"Patient/{PATIENT}"}, "period": period,
        "addresses": [{"reference": ref} for ref in addresses],
    }


def follow_up_order(rid: str = "fu-1", offset: int = 30) -> Resource:
    return {
        "resourceType": "ServiceRequest", "id": rid, "status": "draft", "intent": "order",
        "subject": {"reference": f"Patient/{PATIENT}"}, "code": concept(CPT, "99024"),
        "occurrenceDateTime": day(offset),
    }


def history(rid: str, cpt: str, offset: int, status: str = "completed") -> Resource:
    return {
        "resourceType": "Procedure", "id": rid, "status": status, "subject": {"reference": f"Patient/{PATIENT}"},
        "code": concept(CPT, cpt), "performedDateTime": day(offset),
    }


def encounter(rid: str = "enc-1", klass: str = "AMB", *, pos: str | None = None, status: str = "in-progress",
              offset: int = 0, type_text: str | None = None) -> Resource:
    resource: Resource = {
        "resourceType": "Encounter", "id": rid, "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
        "subject": {"reference": f"Patient/{PATIENT}"}, "period": {"start": day(offset)},
    }
    types = []
    if pos:
        types.append(concept("https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set", pos))
    if type_text:
        types.append({"text": type_text})
    if types:
        resource["type"] = types
    return resource


def coverage(rid: str = "cov-1", payer: str = "Acme Health", identifier: str | None = None) -> Resource:
    payor: dict[str, Any] = {"display": payer}
    if identifier:
        system, value = identifier.split("|")
        payor["identifier"] = {"system": system, "value": value}
    return {
        "resourceType": "Coverage", "id": rid, "status": "active",
        "beneficiary": {"reference": f"Patient/{PATIENT}"}, "payor": [payor],
    }


def progress_note(rid: str, offset: int, loinc: str = "11506-3", status: str = "current") -> Resource:
    return {"resourceType": "DocumentReference", "id": rid, "status": status, "type": concept(LOINC, loinc),
            "subject": {"reference": f"Patient/{PATIENT}"}, "date": f"{day(offset)}T10:00:00Z",
            "content": [{"attachment": {"contentType": "text/plain", "data": "Rm9sbG93LXVw"}}]}


def adverse_event(rid: str, offset: int) -> Resource:
    return {"resourceType": "AdverseEvent", "id": rid, "actuality": "actual",
            "subject": {"reference": f"Patient/{PATIENT}"}, "date": day(offset)}


_KEYS = {
    "Condition": "conditions", "Observation": "observations", "DiagnosticReport": "reports",
    "ImagingStudy": "reports", "Procedure": "procedures", "CarePlan": "carePlans", "Coverage": "coverage",
    "Encounter": "encounter", "ServiceRequest": "serviceRequests", "Patient": "patient",
    "AdverseEvent": "adverseEvents", "DocumentReference": "notes",
    "MedicationRequest": "medications", "MedicationStatement": "medications", "Medication": "medications",
}


def hook_call(draft: Iterable[Resource], chart: Iterable[Resource] = (), *, hook: str = "order-sign",
              selections: Iterable[str] = (), unavailable: dict[str, str] | None = None,
              encounter_id: str | None = None, today: date = TODAY,
              keyed: dict[str, Iterable[Resource]] | None = None) -> HookCall:
    """``chart`` goes under the usual key of each resource type; ``keyed`` under the keys given."""
    prefetch: dict[str, list[Resource]] = {}
    for resource in chart:
        prefetch.setdefault(_KEYS[resource["resourceType"]], []).append(resource)
    for key, resources in (keyed or {}).items():
        prefetch.setdefault(key, []).extend(resources)
    return HookCall(
        service_id="radioelement-order-sign" if hook == "order-sign" else "radioelement-order-select",
        hook=hook, hook_instance="00000000-0000-4000-8000-000000000000", patient_id=PATIENT,
        user_id="Practitioner/dr-1", draft_orders=tuple(draft), today=today, encounter_id=encounter_id,
        selections=tuple(selections), prefetch={key: tuple(value) for key, value in prefetch.items()},
        unavailable=unavailable or {},
    )


def run(draft: Iterable[Resource], chart: Iterable[Resource] = (), **kwargs: Any) -> Guidance:
    return advise(hook_call(draft, chart, **kwargs), knowledge())


def only_decision(guidance: Guidance) -> dict[str, Any]:
    assert len(guidance.decisions) == 1, guidance.decisions
    return guidance.decisions[0]


def lung_chart(*, follow_up: bool = True, extra: Iterable[Resource] = ()) -> list[Resource]:
    """A complete chart for a malignant pleural effusion from lung cancer."""
    chart = [
        condition("c-1", "C34.90"), condition("c-2", "J91.0"),
        observation("stage-1", "21908-9", -40, "Stage IV"),
        observation("ecog-1", "89247-1", -10, "1"),
        imaging_report("ct-1", -20),
    ]
    if follow_up:
        chart.append(care_plan())
    return chart + list(extra)


def bone_chart(*, follow_up: bool = True, weight: float | None = 80.0) -> list[Resource]:
    """A complete chart for castration-resistant prostate cancer with bone metastases."""
    chart = [
        condition("c-1", "C61"), condition("c-3", "C79.51"),
        observation("stage-1", "21908-9", -200, "Stage IVB"),
        observation("ecog-1", "89247-1", -5, "1"),
        imaging_report("bone-scan-1", -30, "49118-3"),
        # Xofigo's label excludes visceral metastases: the complete chart states their absence.
        dict(imaging_report("ct-1", -25, "24627-2"), conclusion="Osseous metastases. No visceral metastatic disease."),
    ]
    if weight is not None:
        chart.append(observation("wt-1", "29463-7", -3, weight))
    if follow_up:
        chart.append(care_plan())
    return chart
