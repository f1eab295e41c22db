"""Write the engine's replay fixtures under fhir_fixtures/engine/ (run: python tests/engine/make_fixtures.py).

Each scenario states its expected decisions literally, as a coder would write them down; the
engine is not consulted here. test_fixtures.py replays every file against the engine.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable

sys.path.insert(0, str(Path(__file__).parent))

from engine_builders import (  # noqa: E402
    PATIENT, SNOMED, adverse_event, bone_chart, care_plan, concept, condition, coverage, encounter, history,
    imaging_report, lung_chart, medication_request, observation, procedure_order, service_request,
)

OUT = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "engine"
KEYS = {"Condition": "conditions", "Observation": "observations", "DiagnosticReport": "reports",
        "Procedure": "procedures", "CarePlan": "carePlans", "Coverage": "coverage", "ServiceRequest": "serviceRequests",
        "Encounter": "encounters", "DocumentReference": "notes", "AdverseEvent": "adverseEvents"}
# What the service reads after a completed procedure (charge capture): follow-up visits and notes, adverse events.
POST_KEYS = ("encounters", "notes", "adverseEvents")
PLEURAL = "Intrapleural instillation of P-32 chromic phosphate"
DOSE_15 = {"value": 15, "unit": "mCi", "system": "http://unitsofmeasure.org", "code": "mCi"}


def bundle(resources: Iterable[dict], kind: str) -> dict[str, Any]:
    entries = [{"resource": r} for r in resources]
    out: dict[str, Any] = {"resourceType": "Bundle", "type": kind}
    if kind == "searchset":
        out["total"] = len(entries)
    if entries:
        out["entry"] = entries
    return out


def request(name: str, draft: list[dict], chart: list[dict], hook: str = "order-sign", enc: dict | None = None,
            selections: list[str] | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/dr-1", "patientId": PATIENT,
                               "draftOrders": bundle(draft, "collection")}
    if selections:
        context["selections"] = selections
    prefetch: dict[str, Any] = {"patient": {"resourceType": "Patient", "id": PATIENT, "gender": "unknown",
                                            "birthDate": "1955-04-12"}}
    # order-select asks only for what decides the code (the catalog's ORDER_SELECT_PREFETCH).
    keys = (("conditions", "carePlans", "serviceRequests") if hook == "order-select" else
            ("conditions", "observations", "reports", "procedures", "carePlans", "serviceRequests", "coverage"))
    if hook == "order-sign" and any(r["resourceType"] == "Procedure" and r.get("status") == "completed" for r in draft):
        keys += POST_KEYS  # an EHR fulfils them; empty searchsets where the chart has nothing
    for key in keys:
        prefetch[key] = bundle([r for r in chart if KEYS.get(r["resourceType"]) == key], "searchset")
    if enc is not None:
        context["encounterId"] = enc["id"]
        prefetch["encounter"] = enc
    return {"hook": hook, "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cds-service/fixtures/{name}")),
            "context": context, "prefetch": prefetch}


def decision(order: str, recommended: str, ordered: str | None = None, alternatives=(), modifiers=(), supply=(),
             missing=(), warnings=()) -> dict[str, Any]:
    out: dict[str, Any] = {"order": order}
    if ordered:
        out["orderedCode"] = ordered
    out.update(recommendedCode=recommended, alternatives=list(alternatives), modifiers=list(modifiers),
               supply=[dict(s) for s in supply], missingDocumentation=list(missing), warnings=list(warnings))
    return out


SR = "ServiceRequest/sr-1"
GYN = [condition("c-1", "C53.9"), observation("stage-1", "21908-9", -30, "Stage IIB"), imaging_report("mr-1", -25, "25056-3")]
SKIN = [condition("c-1", "C44.311"), observation("stage-1", "21908-9", -30, "Stage I"), imaging_report("us-1", -15, "18748-4")]
RA_DRAFT = [service_request(cpt="77750", text="Radium-223 dichloride infusion, cycle 1", reason=["C61", "C79.51"]),
            medication_request(text="Xofigo (radium Ra 223 dichloride) injection", rxnorm="1424214",
                               dose=(55, "kBq/kg"), based_on=SR)]

SCENARIOS: list[tuple[str, str, dict, list[dict]]] = [
    ("77750-intrapleural-lung-effusion",
     "Seed situation 1: intrapleural P-32 colloid for a malignant pleural effusion from lung cancer, follow-up planned, complete chart.",
     request("a", [service_request(text=PLEURAL, quantity=DOSE_15, reason=["C34.90", "J91.0"])], lung_chart()),
     [decision(SR, "77750", "77750", ["79200"], supply=[{"code": "A9564", "units": 15}])]),
    ("79200-intrapleural-no-followup",
     "Intrapleural instillation ordered as 77750 with no 3-month follow-up on file: 79200, 77750 offered, follow-up plan missing.",
     request("b", [service_request(text=PLEURAL, quantity=DOSE_15, reason=["C34.90", "J91.0"])], lung_chart(follow_up=False)),
     [decision(SR, "79200", "77750", ["77750"], supply=[{"code": "A9564", "units": 15}], missing=["follow-up-plan"])]),
    ("77750-iv-radium-bone-metastases",
     "Seed situation 2: IV radium-223 for bone metastases of prostate cancer, follow-up planned, hospital outpatient, covered patient.",
     request("c", RA_DRAFT, bone_chart() + [coverage(payer="Acme Health")], enc=encounter(pos="22")),
     [decision(SR, "77750", "77750", ["79101"], ["26"], [{"code": "A9606", "units": 119}])]),
    ("79101-ra223-no-followup",
     "IV radium-223 ordered as 77750 in the office with no 3-month follow-up plan: 79101 with 77750 as the alternative.",
     request("d", RA_DRAFT, bone_chart(follow_up=False), enc=encounter(klass="AMB")),
     [decision(SR, "79101", "77750", ["77750"], supply=[{"code": "A9606", "units": 119}], missing=["follow-up-plan"])]),
    ("77750-intraperitoneal-carcinomatosis",
     "Seed situation 3: intraperitoneal P-32 colloid for peritoneal carcinomatosis from ovarian cancer, drug order carries route and activity.",
     request("e", [service_request(cpt="77750", text="Radioactive colloid instillation, peritoneal carcinomatosis",
                                   reason=["C56.9", "C78.6"]),
                   medication_request(text="Chromic phosphate P 32 suspension", route="38239002", dose=(370, "MBq"),
                                      based_on=SR)],
             [condition("c-1", "C56.9"), condition("c-2", "C78.6"), observation("stage-1", "21908-9", -60, "Stage IIIC"),
              observation("ecog-1", "89247-1", -7, "1"), imaging_report("ct-1", -21, "41806-1"), care_plan()]),
     [decision(SR, "77750", "77750", ["79200"], supply=[{"code": "A9564", "units": 10}])]),
    ("79403-zevalin-antibody",
     "Y-90 ibritumomab tiuxetan (a radiolabelled antibody) ordered as 77750: 79403, per-dose supply code.",
     request("f", [service_request(cpt="77750", text="Zevalin Y-90 ibritumomab tiuxetan IV infusion", reason=["C82.90"]),
                   medication_request(text="Zevalin", dose=(32, "mCi"), based_on=SR)],
             [condition("c-1", "C82.90"), observation("stage-1", "21908-9", -50, "Stage III"),
              observation("ecog-1", "89247-1", -10, "0"), imaging_report("pet-1", -20, "44136-0"), care_plan()]),
     [decision(SR, "79403", "77750", supply=[{"code": "A9543", "units": 1}])]),
    ("79445-y90-microspheres",
     "Y-90 glass microspheres to the right hepatic lobe for hepatocellular carcinoma: 79445, hospital outpatient.",
     request("g", [service_request(cpt="77750", text="Y-90 TheraSphere radioembolization", reason=["C22.0"],
                                   body_site=concept(SNOMED, "10200004", "Liver, right lobe"),
                                   quantity={"value": 3.2, "unit": "GBq", "system": "http://unitsofmeasure.org", "code": "GBq"})],
             [condition("c-1", "C22.0"), observation("stage-1", "21908-9", -30, "BCLC B"),
              observation("ecog-1", "89247-1", -10, "0"), imaging_report("ct-1", -14, "41806-1")],
             enc=encounter(klass="OBSENC")),
     [decision(SR, "79445", "77750", modifiers=["26"], supply=[{"code": "C2616", "units": 1}])]),
    ("79005-oral-i131-thyroid",
     "Oral I-131 sodium iodide capsules after thyroidectomy for thyroid cancer: a drug order alone, 79005.",
     request("h", [medication_request(text="Sodium iodide I-131 capsules", route="26643006", dose=(100, "mCi"), reason=["C73"])],
             [condition("c-1", "C73"), observation("stage-1", "21908-9", -60, "Stage II"),
              observation("ecog-1", "89247-1", -10, "0"), imaging_report("nm-1", -20, "49118-3")]),
     [decision("MedicationRequest/mr-1", "79005", supply=[{"code": "A9517", "units": 100}])]),
    ("79440-radiosynovectomy-knee",
     "P-32 colloid radiosynovectomy of the knee for a synovial sarcoma: 79440; chromic phosphate is not labelled for this, so the indication warning shows.",
     request("i", [service_request(cpt=None, text="Radiosynovectomy with P-32 chromic phosphate colloid",
                                   reason=["C49.22"], body_site=concept(SNOMED, "72696002", "Right knee joint"),
                                   quantity={"value": 1, "unit": "mCi", "system": "http://unitsofmeasure.org", "code": "mCi"})],
             [condition("c-1", "C49.22"), observation("stage-1", "21908-9", -60, "Stage II"),
              observation("ecog-1", "89247-1", -10, "0"), imaging_report("mr-1", -20, "25056-3")]),
     [decision(SR, "79440", supply=[{"code": "A9564", "units": 1}], warnings=["indication-mismatch"])]),
    ("79300-interstitial-colloid",
     "Interstitial injection of P-32 colloid into a peritoneal deposit: 79300, location documented.",
     request("j", [service_request(cpt="79300", text="Interstitial injection of P-32 chromic phosphate colloid",
                                   reason=["C78.6"], body_site={"text": "peritoneal tumour deposit"}, quantity=DOSE_15)],
             [condition("c-1", "C78.6"), observation("stage-1", "21908-9", -60, "Stage IV"),
              observation("ecog-1", "89247-1", -10, "1"), imaging_report("ct-1", -20, "41806-1")]),
     [decision(SR, "79300", "79300", supply=[{"code": "A9564", "units": 15}])]),
    ("0394T-electronic-skin",
     "Electronic brachytherapy of a basal cell carcinoma of the nose, ordered with 77767 and modifier 26: 0394T, no modifier, and the ordered 26 flagged (modifier-not-applicable).",
     request("k", [service_request(cpt="77767", text="Electronic brachytherapy (Xoft) skin surface", reason=["C44.311"],
                                   body_site={"text": "skin of nose"},
                                   order_detail=[concept("http://www.ama-assn.org/go/cpt", "26")])], SKIN,
             enc=encounter(pos="22")),
     [decision(SR, "0394T", "77767", ["0395T"], warnings=["modifier-not-applicable"])]),
    ("0395T-electronic-vaginal-cuff",
     "Electronic brachytherapy to the vaginal cuff for endometrial cancer: 0395T.",
     request("l", [service_request(cpt="0395T", text="Electronic brachytherapy, vaginal cuff, intracavitary", reason=["C54.1"])],
             [condition("c-1", "C54.1"), observation("stage-1", "21908-9", -30, "Stage IB"), imaging_report("ct-1", -20)]),
     [decision(SR, "0395T", "0395T", ["0394T"])]),
    ("57155-tandem-ovoids",
     "Tandem and ovoids placement for cervical cancer ordered as 77750: 57155 (applicator only).",
     request("m", [service_request(cpt="77750", text="Insertion of tandem and ovoids for brachytherapy", reason=["C53.9"])], GYN),
     [decision(SR, "57155", "77750", ["58346", "57156"])]),
    ("58346-heyman-capsules",
     "Heyman capsules for endometrial cancer: 58346, correctly ordered.",
     request("n", [service_request(cpt="58346", text="Insertion of Heyman capsules for brachytherapy", reason=["C54.1"])],
             [condition("c-1", "C54.1")]),
     [decision(SR, "58346", "58346", ["57155", "57156"])]),
    ("57156-vaginal-cylinder",
     "Vaginal cylinder placement with no reason on the order: 57156 and the indication gap.",
     request("o", [service_request(cpt="57156", text="Insertion of vaginal cylinder for brachytherapy", reason=())],
             [condition("c-1", "C54.1")]),
     [decision(SR, "57156", "57156", ["57155", "58346"], missing=["indication"])]),
    ("77771-hdr-cervix-channels",
     "HDR Ir-192 intracavitary brachytherapy with three channels ordered as 77750: 77771, modifier 26 inpatient.",
     request("p", [service_request(cpt="77750", text="HDR Ir-192 intracavitary brachytherapy, cervix", reason=["C53.9"],
                                   body_site={"text": "uterine cervix"}, quantity={"value": 3, "unit": "channels"})], GYN,
             enc=encounter(klass="IMP")),
     [decision(SR, "77771", "77750", ["77770", "77772"], ["26"])]),
    ("77778-prostate-seeds",
     "Permanent I-125 seed implant of the prostate ordered with deleted 77777: 77778 and the deleted-code warning.",
     request("q", [service_request(cpt="77777", text="I-125 seed implant, interstitial", reason=["C61"],
                                   body_site={"text": "prostate"}, quantity={"value": 72, "unit": "seeds"})],
             [condition("c-1", "C61"), observation("stage-1", "21908-9", -40, "Stage IIA"), imaging_report("mr-1", -30, "25056-3")]),
     [decision(SR, "77778", "77777", ["77799"], warnings=["deleted-code"])]),
    ("77761-ldr-intracavitary",
     "LDR intracavitary brachytherapy with three sources: 77761.",
     request("r", [service_request(cpt="77761", text="LDR intracavitary brachytherapy", reason=["C53.9"],
                                   body_site={"text": "uterine cervix"}, quantity={"value": 3, "unit": "sources"})], GYN),
     [decision(SR, "77761", "77761", ["77762", "77763"])]),
    ("77767-hdr-skin-single-lesion",
     "HDR Ir-192 surface brachytherapy of one 1.5 cm skin lesion: 77767.",
     request("s", [service_request(cpt="77767", text="HDR Ir-192 surface brachytherapy, single lesion 1.5 cm",
                                   reason=["C44.311"], body_site={"text": "skin of nose"})], SKIN),
     [decision(SR, "77767", "77767", ["77768"])]),
    ("77789-sr90-eye-applicator",
     "Sr-90 surface applicator to the eye ordered as 77750: 77789.",
     request("t", [service_request(cpt="77750", text="Strontium-90 surface applicator to pterygium", reason=["C69.00"],
                                   body_site={"text": "left eye conjunctiva"})],
             [condition("c-1", "C69.00"), observation("stage-1", "21908-9", -40, "Stage I"), imaging_report("ct-1", -30)]),
     [decision(SR, "77789", "77750")]),
    ("no-decision-ct-talc-statin",
     "A CT, a talc pleurodesis (32560) and a statin: no radioelement therapy, no decision.",
     request("u", [service_request("ct-1", "71250", "CT chest with contrast", reason=()),
                   service_request("talc-1", "32560", "Talc pleurodesis via chest tube", reason=["J91.0"]),
                   medication_request("statin", "atorvastatin 20 MG Oral Tablet", rxnorm="617318", route="26643006")],
             lung_chart()),
     []),
    ("77750-completed-radium-post-gaps",
     "A completed radium-223 Procedure replayed for charge capture: the post-procedure documentation is missing, and a 77750 28 days earlier leaves a global period open.",
     request("v", [procedure_order("proc-1", "77750", text="Radium-223 dichloride infusion", reason=["C61", "C79.51"],
                                   note=[{"text": "Administered 119 microcuries"}])],
             bone_chart() + [history("old-1", "77750", -28)]),
     [decision("Procedure/proc-1", "77750", "77750", ["79101"], supply=[{"code": "A9606", "units": 119}],
               missing=["route", "response-assessment", "adverse-events", "post-imaging", "follow-up-notes"],
               warnings=["global-period-overlap"])]),
    ("79101-order-select-radium",
     "order-select for the radium drug order: the recommended code only, no documentation check; without a body weight in the light prefetch the A9606 units are left to order-sign.",
     request("w", RA_DRAFT, bone_chart(follow_up=False), hook="order-select", selections=["MedicationRequest/mr-1"]),
     [{"order": SR, "orderedCode": "77750", "recommendedCode": "79101", "alternatives": ["77750"], "modifiers": [],
       "supply": [{"code": "A9606"}]}]),
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, description, body, decisions in SCENARIOS:
        fixture = {"description": description, "request": body, "expect": {"status": 200, "decisions": decisions}}
        (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {len(SCENARIOS)} fixtures to {OUT}")


if __name__ == "__main__":
    main()
