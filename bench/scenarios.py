"""Request bodies for the benchmark and the fast-path tests: realistic, deterministic, valid FHIR R4.

* :func:`order_sign_request` — the typical order-sign call: a radium-223 (Xofigo) or lutetium-177
  PSMA (Pluvicto) order for metastatic castration-resistant prostate cancer with bone metastases,
  and about 60 prefetched resources (conditions, staging and ECOG observations, labs, imaging
  reports, procedures, a care plan, orders, coverage, encounter).
* :func:`order_select_request` — the same patient at order-select (the lighter prefetch).
* :func:`big_chart_request` — an order-sign call whose prefetch holds exactly ``size`` resources:
  the relevant few of the typical case plus years of routine labs, vitals, problem-list entries,
  lab reports and minor procedures that the decision must ignore.

Everything is generated from a seed and a reference date, so the same arguments give the same
body (dates stay relative to ``today``, because the decision looks 90 days back and forward).
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from cds_service.hooks.catalog import SERVICES_BY_ID

Resource = dict[str, Any]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"

PATIENT_ID = "bench-pat-1"
ENCOUNTER_ID = "bench-enc-1"
USER_ID = "Practitioner/bench-dr-1"
_NAMESPACE = uuid.UUID("5d1f0e4c-6b7a-4e0f-9a43-2f3c1b0d9e77")

ORDER_SIGN_SERVICE = "radioelement-order-sign"
ORDER_SELECT_SERVICE = "radioelement-order-select"


def hook_instance(label: str) -> str:
    """A stable, schema-valid hookInstance for a label, so audit rows can be found per scenario."""
    return str(uuid.uuid5(_NAMESPACE, label))


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [_coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


def _instant(day: date, hour: int = 9) -> str:
    return datetime.combine(day, time(hour, 0), tzinfo=timezone.utc).isoformat().replace("+00:00", "Z")


def _patient_ref() -> dict[str, str]:
    return {"reference": f"Patient/{PATIENT_ID}"}


def _bundle(resources: list[Resource], base: str = "https://ehr.example.org/fhir") -> Resource:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


# --- the clinically relevant record -------------------------------------------------------------


def _condition(ident: str, code: str, display: str, onset: date, snomed: str | None = None,
               category: str = "problem-list-item", status: str = "active") -> Resource:
    codings = [_coding(ICD10, code, display)]
    if snomed:
        codings.append(_coding(SNOMED, snomed))
    return {
        "resourceType": "Condition",
        "id": ident,
        "clinicalStatus": _concept(CLINICAL_STATUS, status),
        "verificationStatus": _concept(VERIFICATION, "confirmed"),
        "category": [_concept(CONDITION_CATEGORY, category)],
        "code": {"coding": codings, "text": display},
        "subject": _patient_ref(),
        "onsetDateTime": onset.isoformat(),
        "recordedDate": onset.isoformat(),
    }


def _observation(ident: str, code: str, display: str, when: date, value: dict[str, Any],
                 category: str = "laboratory", system: str = LOINC) -> Resource:
    resource: Resource = {
        "resourceType": "Observation",
        "id": ident,
        "status": "final",
        "category": [_concept(OBS_CATEGORY, category)],
        "code": _concept(system, code, display),
        "subject": _patient_ref(),
        "effectiveDateTime": _instant(when),
    }
    resource.update(value)
    return resource


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}


def _imaging_report(ident: str, code: str, display: str, when: date, conclusion: str, modality: str = "RAD") -> Resource:
    return {
        "resourceType": "DiagnosticReport",
        "id": ident,
        "status": "final",
        "category": [_concept(V2_0074, modality), _concept(LOINC, "LP29684-5", "Radiology")],
        "code": _concept(LOINC, code, display),
        "subject": _patient_ref(),
        "effectiveDateTime": _instant(when, 11),
        "issued": _instant(when, 15),
        "conclusion": conclusion,
    }


def _procedure(ident: str, system: str, code: str, display: str, when: date, status: str = "completed") -> Resource:
    return {
        "resourceType": "Procedure",
        "id": ident,
        "status": status,
        "code": _concept(system, code, display),
        "subject": _patient_ref(),
        "performedDateTime": _instant(when, 10),
    }


def _service_request(ident: str, system: str, code: str, display: str, when: date, status: str = "active") -> Resource:
    return {
        "resourceType": "ServiceRequest",
        "id": ident,
        "status": status,
        "intent": "order",
        "code": _concept(system, code, display),
        "subject": _patient_ref(),
        "authoredOn": when.isoformat(),
        "occurrenceDateTime": _instant(when + timedelta(days=28)),
    }


AGENTS: dict[str, dict[str, Any]] = {
    "ra223": {
        "text": "Radium-223 dichloride (Xofigo) 55 kBq/kg IV, cycle 1 of 6",
        "rxnorm": ("1424214", "radium Ra-223 dichloride 1100 kBq/mL Injectable Solution [Xofigo]"),
        "hcpcs": "A9606",
        "dose": {"value": 4.015, "unit": "MBq", "system": UCUM, "code": "MBq"},  # 55 kBq/kg x 73 kg
        "plan": "Radium-223 therapy: six injections every 4 weeks, follow-up for 3 months after",
        "cycles": 6,
    },
    "lu177-psma": {
        "text": "Lutetium Lu-177 vipivotide tetraxetan (Pluvicto) 7.4 GBq IV, cycle 1 of 6",
        "rxnorm": ("2597944", "lutetium Lu-177 vipivotide tetraxetan 1000 MBq/mL Injectable Solution [Pluvicto]"),
        "hcpcs": "A9607",
        "dose": {"value": 7.4, "unit": "GBq", "system": UCUM, "code": "GBq"},
        "plan": "Lu-177 PSMA therapy: six doses every 6 weeks, follow-up for 3 months after",
        "cycles": 6,
    },
}


def draft_orders(agent: str, today: date) -> list[Resource]:
    """The procedure order (coded 77750 by the ordering clinician) and the drug order for the agent."""
    info = AGENTS[agent]
    reason = [_concept(ICD10, "C79.51", "Secondary malignant neoplasm of bone"),
              _concept(ICD10, "C61", "Malignant neoplasm of prostate")]
    procedure_order = {
        "resourceType": "ServiceRequest",
        "id": f"sr-{agent}",
        "status": "draft",
        "intent": "order",
        "category": [_concept(SNOMED, "108290001", "Radiation oncology AND/OR radiotherapy")],
        "code": {"coding": [_coding(CPT, "77750", "Infusion or instillation of radioelement solution")],
                 "text": info["text"]},
        "subject": _patient_ref(),
        "encounter": {"reference": f"Encounter/{ENCOUNTER_ID}"},
        "authoredOn": today.isoformat(),
        "occurrenceDateTime": _instant(today + timedelta(days=7)),
        "requester": {"reference": USER_ID},
        "reasonCode": reason,
        "reasonReference": [{"reference": "Condition/cond-bone-mets"}],
        "bodySite": [_concept(SNOMED, "272673000", "Bone structure")],
    }
    drug_order = {
        "resourceType": "MedicationRequest",
        "id": f"mr-{agent}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [_coding(RXNORM, info["rxnorm"][0], info["rxnorm"][1]), _coding(HCPCS, info["hcpcs"])],
            "text": info["text"],
        },
        "subject": _patient_ref(),
        "encounter": {"reference": f"Encounter/{ENCOUNTER_ID}"},
        "authoredOn": today.isoformat(),
        "requester": {"reference": USER_ID},
        "reasonReference": [{"reference": "Condition/cond-bone-mets"}],
        "basedOn": [{"reference": f"ServiceRequest/sr-{agent}"}],
        "dosageInstruction": [{
            "text": info["text"],
            "route": _concept(SNOMED, "47625008", "Intravenous route"),
            "doseAndRate": [{"doseQuantity": info["dose"]}],
        }],
    }
    return [procedure_order, drug_order]


def relevant_record(agent: str, today: date) -> dict[str, list[Resource]]:
    """The typical chart, by prefetch key (about 60 resources in all)."""
    d = lambda days: today - timedelta(days=days)  # noqa: E731 - a date this many days ago
    conditions = [
        _condition("cond-prostate", "C61", "Malignant neoplasm of prostate", d(1900), "399068003", "encounter-diagnosis"),
        _condition("cond-bone-mets", "C79.51", "Secondary malignant neoplasm of bone", d(240), "94222008", "encounter-diagnosis"),
        _condition("cond-htn", "I10", "Essential (primary) hypertension", d(4000)),
        _condition("cond-dm2", "E11.9", "Type 2 diabetes mellitus without complications", d(3000)),
        _condition("cond-lipid", "E78.5", "Hyperlipidemia, unspecified", d(3500)),
        _condition("cond-pain", "G89.3", "Neoplasm related pain (acute) (chronic)", d(200)),
        _condition("cond-anemia", "D63.0", "Anemia in neoplastic disease", d(120)),
        _condition("cond-ckd", "N18.2", "Chronic kidney disease, stage 2 (mild)", d(900)),
        _condition("cond-gerd", "K21.9", "Gastro-esophageal reflux disease without esophagitis", d(2500), status="resolved"),
    ]
    stage = lambda code, display, value: _observation(  # noqa: E731
        f"obs-stage-{code}", code, display, d(230),
        {"valueCodeableConcept": {"text": value}, "focus": [{"reference": "Condition/cond-prostate"}]}, "survey")
    observations = [
        stage("21908-9", "Stage group.clinical Cancer", "Stage IVB"),
        stage("21905-5", "Primary tumor.clinical [Class] Cancer", "cT3b"),
        stage("21906-3", "Regional lymph nodes.clinical [Class] Cancer", "cN1"),
        stage("21907-1", "Distant metastases.clinical [Class] Cancer", "cM1b"),
    ]
    for index, (days, ecog) in enumerate(((12, 1), (70, 1), (150, 0))):
        observations.append(_observation(f"obs-ecog-{index}", "89247-1", "ECOG Performance Status score", d(days),
                                         {"valueInteger": ecog}, "survey"))
    for index, (days, kg) in enumerate(((12, 73.0), (70, 74.2), (150, 76.5))):
        observations.append(_observation(f"obs-weight-{index}", "29463-7", "Body weight", d(days),
                                         _quantity(kg, "kg"), "vital-signs"))
    for index, days in enumerate((30, 230)):
        observations.append(_observation(
            f"obs-status-{index}", "97509-4", "Cancer disease status", d(days),
            {"valueCodeableConcept": _concept(SNOMED, "271299001", "Patient's condition worsened")}, "survey"))
    for index, days in enumerate((12, 40, 70)):
        observations.append(_observation(f"obs-psa-{index}", "2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma",
                                         d(days), _quantity(round(48.0 - index * 6.5, 1), "ng/mL")))
    observations.append(_observation("obs-anc-0", "751-8", "Neutrophils [#/volume] in Blood", d(12),
                                     _quantity(3.1, "10*3/uL")))
    for index, days in enumerate((12, 40, 70)):
        observations.append(_observation(f"obs-hgb-{index}", "718-7", "Hemoglobin [Mass/volume] in Blood", d(days),
                                         _quantity(11.2 + index * 0.2, "g/dL")))
        observations.append(_observation(f"obs-plt-{index}", "777-3", "Platelets [#/volume] in Blood", d(days),
                                         _quantity(210 - index * 8, "10*3/uL")))
        observations.append(_observation(f"obs-alp-{index}", "6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
                                         d(days), _quantity(310 - index * 20, "U/L")))
    reports = [
        _imaging_report("dr-bone-scan", "49118-3", "Nuclear medicine report", d(21),
                        "Multiple new osseous metastases in the spine, pelvis and ribs; no visceral disease.", "NMS"),
        _imaging_report("dr-ct-ap", "41806-1", "CT Abdomen", d(25), "No visceral or nodal metastases above 3 cm.", "CT"),
        _imaging_report("dr-ct-chest", "24627-2", "CT Chest", d(25), "No pulmonary metastases.", "CT"),
        _imaging_report("dr-psma-pet", "44139-4", "PET whole body", d(60), "PSMA-avid osseous lesions.", "NMR"),
        _imaging_report("dr-bone-scan-old", "49118-3", "Nuclear medicine report", d(240), "Osseous metastases, T8 and L2.", "NMS"),
        _imaging_report("dr-mri-spine", "25056-3", "MRI", d(200), "No cord compression.", "RAD"),
    ]
    procedures = [
        _procedure("proc-prostatectomy", SNOMED, "26294005", "Radical prostatectomy", d(1850)),
        _procedure("proc-ebrt-spine", SNOMED, "33195004", "Teleradiotherapy procedure", d(190)),
        _procedure("proc-docetaxel-1", CPT, "96413", "Chemotherapy administration, intravenous infusion", d(180)),
        _procedure("proc-docetaxel-2", CPT, "96413", "Chemotherapy administration, intravenous infusion", d(159)),
        _procedure("proc-port", CPT, "36561", "Insertion of tunneled centrally inserted central venous access device", d(185)),
        _procedure("proc-colonoscopy", CPT, "45378", "Colonoscopy, diagnostic", d(1400)),
    ]
    info = AGENTS[agent]
    care_plans = [{
        "resourceType": "CarePlan",
        "id": f"cp-{agent}",
        "status": "active",
        "intent": "plan",
        "category": [_concept(SNOMED, "736353004", "Oncology care plan")],
        "title": info["plan"],
        "subject": _patient_ref(),
        "period": {"start": today.isoformat(), "end": (today + timedelta(days=28 * info["cycles"] + 90)).isoformat()},
        "addresses": [{"reference": "Condition/cond-bone-mets"}],
        "activity": [{"detail": {"status": "scheduled",
                                 "code": _concept(SNOMED, "390906007", "Follow-up encounter"),
                                 "description": "Radiation oncology follow-up visits for 3 months after the last dose"}}],
    }]
    service_requests = [
        _service_request("sr-followup", CPT, "99024", "Postoperative follow-up visit", today),
        _service_request("sr-cbc-1", LOINC, "58410-2", "CBC panel - Blood by Automated count", today),
        _service_request("sr-cmp-1", LOINC, "24323-8", "Comprehensive metabolic panel", today),
        _service_request("sr-psa-1", LOINC, "2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", today),
        _service_request("sr-bone-scan-3m", LOINC, "49118-3", "Nuclear medicine report", today + timedelta(days=60)),
    ]
    coverage = [{
        "resourceType": "Coverage",
        "id": "cov-medicare",
        "status": "active",
        "type": _concept("http://terminology.hl7.org/CodeSystem/v3-ActCode", "SUBSIDIZ", "subsidized health program"),
        "subscriberId": "1EG4TE5MK73",
        "beneficiary": _patient_ref(),
        "relationship": _concept("http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self"),
        "period": {"start": "2015-01-01"},
        "payor": [{"identifier": {"system": "https://cds-service.example.org/payer-id", "value": "medicare"},
                   "display": "Medicare Part B"}],
    }]
    encounters = [{
        "resourceType": "Encounter",
        "id": f"enc-visit-{index}",
        "status": "finished",
        "class": _coding(ACT_CODE, "AMB", "ambulatory"),
        "type": [{"text": "Radiation oncology consultation" if index == 0 else "Medical oncology follow-up"}],
        "subject": _patient_ref(),
        "period": {"start": _instant(d(days), 10), "end": _instant(d(days), 11)},
    } for index, days in enumerate((14, 45, 90))]
    notes = [{
        "resourceType": "DocumentReference",
        "id": f"doc-note-{index}",
        "status": "current",
        "type": _concept(LOINC, "11506-3", "Progress note"),
        "subject": _patient_ref(),
        "date": _instant(d(days), 12),
        "content": [{"attachment": {"contentType": "text/plain", "url": f"Binary/note-{index}"}}],
    } for index, days in enumerate((14, 45))]
    return {
        "encounters": encounters,
        "notes": notes,
        "adverseEvents": [],
        "conditions": conditions,
        "observations": observations,
        "reports": reports,
        "procedures": procedures,
        "carePlans": care_plans,
        "serviceRequests": service_requests,
        "coverage": coverage,
    }


def patient() -> Resource:
    return {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "identifier": [{"system": "https://ehr.example.org/mrn", "value": "MRN-0042917"}],
        "name": [{"family": "Okafor", "given": ["James", "T."]}],
        "gender": "male",
        "birthDate": "1951-03-14",
    }


def encounter(today: date) -> Resource:
    return {
        "resourceType": "Encounter",
        "id": ENCOUNTER_ID,
        "status": "in-progress",
        "class": _coding(ACT_CODE, "AMB", "ambulatory"),
        "type": [{"coding": [_coding(POS, "22", "On Campus-Outpatient Hospital")],
                  "text": "Hospital outpatient department, radiation oncology"}],
        "subject": _patient_ref(),
        "period": {"start": _instant(today, 8)},
    }


def _envelope(hook: str, agent: str, today: date, label: str, prefetch: dict[str, Any]) -> dict[str, Any]:
    orders = draft_orders(agent, today)
    context: dict[str, Any] = {
        "userId": USER_ID,
        "patientId": PATIENT_ID,
        "encounterId": ENCOUNTER_ID,
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]},
    }
    if hook == "order-select":
        context["selections"] = [f"ServiceRequest/{orders[0]['id']}"]
    return {"hook": hook, "hookInstance": hook_instance(label), "context": context, "prefetch": prefetch}


def _prefetch(service_id: str, record: dict[str, list[Resource]], today: date) -> dict[str, Any]:
    """Every prefetch key the service's discovery entry asks for, answered as an EHR would:
    the two reads as resources, each search as a searchset Bundle (empty when the chart has none)."""
    prefetch: dict[str, Any] = {}
    for key, template in SERVICES_BY_ID[service_id].prefetch.items():
        if key == "patient":
            prefetch[key] = patient()
        elif key == "encounter":
            prefetch[key] = encounter(today)
        elif "?" in template:
            prefetch[key] = _bundle(record.get(key, []))
    return prefetch


def order_sign_request(agent: str = "ra223", today: date | None = None, label: str | None = None) -> dict[str, Any]:
    """The typical order-sign call with every prefetch key answered (about 60 resources)."""
    today = today or date.today()
    prefetch = _prefetch(ORDER_SIGN_SERVICE, relevant_record(agent, today), today)
    return _envelope("order-sign", agent, today, label or f"order-sign-{agent}", prefetch)


def order_select_request(agent: str = "lu177-psma", today: date | None = None, label: str | None = None) -> dict[str, Any]:
    """order-select for the same patient: only the keys the order-select service prefetches."""
    today = today or date.today()
    prefetch = _prefetch(ORDER_SELECT_SERVICE, relevant_record(agent, today), today)
    return _envelope("order-select", agent, today, label or f"order-select-{agent}", prefetch)


# --- the noise of a long record -----------------------------------------------------------------

_LABS = (
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 10.0, 15.5),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 3.5, 11.0),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 140, 400),
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 180),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.6),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 133, 146),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.4, 5.2),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 8, 60),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.4, 8.9),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 120, 260),
)
_VITALS = (
    ("8867-4", "Heart rate", "/min", 52, 110),
    ("8310-5", "Body temperature", "Cel", 36.1, 38.0),
    ("9279-1", "Respiratory rate", "/min", 12, 22),
    ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 90, 100),
)
_HISTORY = (
    ("J45.909", "Unspecified asthma, uncomplicated"), ("M17.11", "Unilateral primary osteoarthritis, right knee"),
    ("H25.9", "Unspecified age-related cataract"), ("K57.30", "Diverticulosis of large intestine without bleeding"),
    ("J06.9", "Acute upper respiratory infection, unspecified"), ("S93.401A", "Sprain of right ankle, initial encounter"),
    ("L57.0", "Actinic keratosis"), ("M54.50", "Low back pain, unspecified"), ("N39.0", "Urinary tract infection"),
    ("R05.9", "Cough, unspecified"), ("Z23", "Encounter for immunization"), ("F41.1", "Generalized anxiety disorder"),
)
_MINOR_PROCEDURES = (
    ("36415", "Collection of venous blood by venipuncture"), ("90471", "Immunization administration"),
    ("93000", "Electrocardiogram, routine, with interpretation and report"), ("11102", "Tangential biopsy of skin"),
)


def filler(count: int, today: date, seed: int = 77750) -> dict[str, list[Resource]]:
    """``count`` irrelevant resources: 80 % labs and vitals, 12 % old problems, the rest lab reports
    and minor procedures, spread over ten years."""
    rng = random.Random(seed)
    out: dict[str, list[Resource]] = {"observations": [], "conditions": [], "reports": [], "procedures": []}
    for index in range(count):
        kind = index % 25
        when = today - timedelta(days=rng.randint(1, 3650))
        if kind < 20:
            table = _VITALS if kind % 4 == 0 else _LABS
            code, display, unit, low, high = table[rng.randrange(len(table))]
            value = round(rng.uniform(low, high), 1)
            category = "vital-signs" if table is _VITALS else "laboratory"
            out["observations"].append(_observation(f"obs-f{index}", code, display, when, _quantity(value, unit), category))
        elif kind < 23:
            code, display = _HISTORY[rng.randrange(len(_HISTORY))]
            out["conditions"].append(_condition(f"cond-f{index}", code, display, when, status="resolved"))
        elif kind == 23:
            out["reports"].append({
                "resourceType": "DiagnosticReport", "id": f"dr-f{index}", "status": "final",
                "category": [_concept(V2_0074, "LAB")],
                "code": _concept(LOINC, "58410-2", "CBC panel - Blood by Automated count"),
                "subject": _patient_ref(), "effectiveDateTime": _instant(when), "issued": _instant(when, 14),
            })
        else:
            code, display = _MINOR_PROCEDURES[rng.randrange(len(_MINOR_PROCEDURES))]
            out["procedures"].append(_procedure(f"proc-f{index}", CPT, code, display, when))
    return out


def big_chart_request(size: int, agent: str = "ra223", today: date | None = None, label: str | None = None,
                      seed: int = 77750) -> dict[str, Any]:
    """An order-sign call whose prefetch holds exactly ``size`` resources (the typical chart plus noise)."""
    today = today or date.today()
    body = order_sign_request(agent, today, label or f"chart-{size}-{agent}")
    core = prefetch_count(body)
    if size < core:
        raise ValueError(f"a chart needs at least {core} resources (the typical case); got {size}")
    record = relevant_record(agent, today)
    for key, items in filler(size - core, today, seed).items():
        record[key].extend(items)
    for key in body["prefetch"]:
        if key in record:
            body["prefetch"][key] = _bundle(record[key])
    return body


def prefetch_count(body: dict[str, Any]) -> int:
    """How many resources a request's prefetch carries (Bundles counted by entry)."""
    total = 0
    for value in (body.get("prefetch") or {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            total += len(value.get("entry") or [])
        elif value is not None:
            total += 1
    return total


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


# --- traffic an EHR really sends: distinct therapy calls, and orders that are not therapy ----------

_ID_IN_TEXT = '"id":"{}"'


def distinct_order_sign_requests(count: int, today: date | None = None, seed: int = 14) -> list[dict[str, Any]]:
    """``count`` typical order-sign calls that share no patient, resource id, hookInstance or
    measured value: every id gets the call's number, the patient's name, MRN and birth date
    change, and weights, labs and scores move, so that no cache keyed by a body or by a
    resource's content can serve one call from another. Agents alternate (radium-223, Lu-177)."""
    today = today or date.today()
    rng = random.Random(seed)
    bodies = []
    for number in range(count):
        agent = "ra223" if number % 2 == 0 else "lu177-psma"
        body = order_sign_request(agent, today, label=f"distinct-{seed}-{number}")
        kg = round(rng.uniform(58.0, 96.0), 1)
        for resource in _resources_in(body):
            quantity = resource.get("valueQuantity")
            if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)):
                if resource["id"].startswith("obs-weight-"):
                    quantity["value"] = round(kg + rng.uniform(-3.0, 3.0), 1)
                else:
                    quantity["value"] = round(quantity["value"] * rng.uniform(0.8, 1.2), 1)
            if resource.get("resourceType") == "Patient":
                resource["name"] = [{"family": f"Testpatient{number}", "given": ["Sam", chr(65 + number % 26) + "."]}]
                resource["identifier"][0]["value"] = f"MRN-{rng.randrange(10**6, 10**7)}"
                resource["birthDate"] = (date(1940, 1, 1) + timedelta(days=rng.randrange(0, 9000))).isoformat()
        text = json.dumps(body, separators=(",", ":"))
        ids = {PATIENT_ID, ENCOUNTER_ID} | {str(resource["id"]) for resource in _resources_in(body)}
        for ident in sorted(ids, key=len, reverse=True):
            renamed = f"{ident}-{number:03d}"
            text = text.replace(_ID_IN_TEXT.format(ident), _ID_IN_TEXT.format(renamed))
            text = text.replace(f'/{ident}"', f'/{renamed}"').replace(f'"{ident}"', f'"{renamed}"')
        bodies.append(json.loads(text))
    return bodies


def _resources_in(body: dict[str, Any]) -> list[Resource]:
    found: list[Resource] = [entry["resource"] for entry in body["context"]["draftOrders"]["entry"]]
    for value in body["prefetch"].values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            found.extend(entry["resource"] for entry in value.get("entry") or [])
        elif isinstance(value, dict):
            found.append(value)
    return found


def not_therapy_requests(fhir_server: str, count: int = 2, today: date | None = None) -> list[dict[str, Any]]:
    """Order-sign calls for orders that are not radioelement therapy (a statin, a CT scan), as
    most of an EHR's traffic is: ``fhirServer`` set, no prefetch at all. The service must answer
    them without a single FHIR request. Alternates the two kinds, each with its own patient."""
    today = today or date.today()
    bodies = []
    for number in range(count):
        patient_id = f"bench-other-{number:03d}"
        subject = {"reference": f"Patient/{patient_id}"}
        if number % 2 == 0:
            order: Resource = {
                "resourceType": "MedicationRequest", "id": f"mr-statin-{number:03d}", "status": "draft",
                "intent": "order",
                "medicationCodeableConcept": {"coding": [_coding(RXNORM, "617310", "atorvastatin 20 MG Oral Tablet")],
                                              "text": "Atorvastatin 20 mg tablet, once daily"},
                "subject": subject, "authoredOn": today.isoformat(), "requester": {"reference": USER_ID},
                "dosageInstruction": [{"text": "20 mg by mouth once daily"}],
            }
        else:
            order = {
                "resourceType": "ServiceRequest", "id": f"sr-ct-{number:03d}", "status": "draft", "intent": "order",
                "code": {"coding": [_coding(LOINC, "36813-4", "CT Abdomen and Pelvis W contrast IV")],
                         "text": "CT abdomen and pelvis with IV contrast"},
                "subject": subject, "authoredOn": today.isoformat(), "requester": {"reference": USER_ID},
            }
        bodies.append({
            "hook": "order-sign",
            "hookInstance": hook_instance(f"not-therapy-{number}"),
            "fhirServer": fhir_server,
            "context": {"userId": USER_ID, "patientId": patient_id,
                        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}},
        })
    return bodies
