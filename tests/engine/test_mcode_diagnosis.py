"""Issue 20: how an mCODE cancer Condition documents the diagnosis, and what never does."""

from __future__ import annotations

from typing import Any

import pytest
from engine_builders import knowledge

from cds_service.engine.patient import _has_value, cancer_signal, documents_cancer

HISTOLOGY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior"
PRIMARY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-primary-cancer-condition"
SECONDARY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-secondary-cancer-condition"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
SCT = "http://snomed.info/sct"


def cancer(code: tuple[str, str] | None = None, *, morphology: tuple[str, str, str] | None = None,
           profile: str | None = None) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Condition", "id": "c-1"}
    if code:
        resource["code"] = {"coding": [{"system": code[0], "code": code[1]}]}
    if morphology:
        system, value, display = morphology
        resource["extension"] = [{"url": HISTOLOGY, "valueCodeableConcept": {
            "coding": [{"system": system, "code": value, "display": display}]}}]
    if profile:
        resource["meta"] = {"profile": [profile]}
    return resource


@pytest.mark.parametrize("digit, counts", [("0", False), ("1", False), ("2", False), ("3", True), ("6", True), ("9", True)])
def test_icdo3_behaviour_digit_decides(digit, counts):
    resource = cancer(morphology=(ICDO3, f"8140/{digit}", ""), profile=PRIMARY)
    assert documents_cancer(resource, knowledge()) is counts


def test_benign_or_in_situ_histology_vetoes_a_malignant_code():
    generic = (SCT, "363346000")
    assert documents_cancer(cancer(generic), knowledge())
    assert not documents_cancer(cancer(generic, morphology=(ICDO3, "8140/0", "Adenoma")), knowledge())
    assert not documents_cancer(cancer(generic, morphology=(SCT, "77284006", "Lobular carcinoma in situ")), knowledge())
    # An unlisted SNOMED morphology whose words say in situ vetoes too; otherwise it is malignant.
    assert not documents_cancer(cancer(generic, morphology=(SCT, "1234567", "Ductal carcinoma in situ")), knowledge())
    assert documents_cancer(cancer(morphology=(SCT, "1234567", "Squamous cell carcinoma")), knowledge())


def test_primary_profile_alone_never_counts_secondary_profile_does():
    assert not documents_cancer(cancer(("http://hl7.org/fhir/sid/icd-10-cm", "D32.9"), profile=PRIMARY), knowledge())
    assert not documents_cancer(cancer(profile=PRIMARY), knowledge())
    assert documents_cancer(cancer(profile=SECONDARY), knowledge())


def test_profile_and_behaviour_data_live_in_knowledge():
    signals = knowledge().cancer
    assert signals.roles_by_profile[SECONDARY] == "secondary"
    assert {"provisional", "differential", "unconfirmed", "refuted"} <= signals.never_verification
    assert signals.never_behaviour == {"0", "1", "2"}


def test_observation_needs_a_value():
    assert _has_value({"valueInteger": 0})
    assert _has_value({"component": [{"valueCodeableConcept": {"text": "T2"}}]})
    assert not _has_value({"dataAbsentReason": {"text": "not performed"}})
    assert not _has_value({"code": {"text": "ECOG"}})


# -- text, the last resort (lower confidence) ---------------------------------------------------
def worded(text: str | None = None, *, coding: dict[str, Any] | None = None) -> dict[str, Any]:
    code: dict[str, Any] = {}
    if text:
        code["text"] = text
    if coding:
        code["coding"] = [coding]
    return {"resourceType": "Condition", "id": "c-1", "code": code}


@pytest.mark.parametrize("text", [
    "Adenocarcinoma of left lower lobe of lung, metastatic to pleura", "Prostate cancer", "Diffuse large B-cell lymphoma",
    "Malignant neoplasm of pancreas", "Multiple myeloma", "Metastatic castration-resistant prostate cancer",
])
def test_text_that_names_a_malignancy_is_the_last_resort(text):
    assert cancer_signal(worded(text), knowledge()) == "text"


@pytest.mark.parametrize("text", [
    "History of malignant neoplasm of lung, treated 2015", "Cytology negative for malignancy",
    "No evidence of metastatic disease", "Suspected lung cancer", "Lung mass, r/o adenocarcinoma",
    "Rule out lymphoma", "Possible carcinoma", "Ductal carcinoma in situ", "Benign neoplasm of colon",
    "Family history of breast cancer", "Screening for prostate cancer", "Neoplasm of prostate", "? lung cancer",
])
def test_negated_uncertain_historical_or_benign_text_never_counts(text):
    assert cancer_signal(worded(text), knowledge()) is None


def test_a_coding_display_is_text_but_an_icd10cm_code_decides_by_itself():
    local = {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.696871", "code": "1", "display": "Adenocarcinoma of lung"}
    assert cancer_signal(worded(coding=local), knowledge()) == "text"
    # A non-malignant ICD-10-CM code is complete evidence of what the Condition is: text cannot override it.
    icd = {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "R91.8", "display": "Lung nodule"}
    assert cancer_signal(worded("lung carcinoma", coding=icd), knowledge()) is None
    assert cancer_signal(cancer(("http://hl7.org/fhir/sid/icd-10-cm", "C34.90")), knowledge()) == "code"


def test_a_text_only_diagnosis_is_documented_with_lower_confidence_and_the_card_asks_for_a_code():
    from engine_builders import lung_chart, only_decision, run, service_request
    draft = [service_request(cpt="77750", text="P-32 chromic phosphate intrapleural instillation", reason=["J91.0"])]
    chart = [r for r in lung_chart() if r["id"] != "c-1"]
    text_only = dict(worded("Squamous cell carcinoma of right upper lobe"), subject={"reference": "Patient/pat-1"},
                     clinicalStatus={"coding": [{"code": "active"}]})
    guidance = run(draft, chart + [text_only])
    got = only_decision(guidance)
    assert "diagnosis" not in got["missingDocumentation"]
    assert got["diagnosisSignal"] == "text" and got["diagnosisConfidence"] == "low"
    card = guidance.cards[0]
    assert "documentation complete" not in card["summary"]
    assert ("Diagnosis recognised from text only (lower confidence): \u201cSquamous cell carcinoma of right upper "
            "lobe\u201d (Condition/c-1). Add the coded diagnosis (ICD-10-CM, or SNOMED CT)") in card["detail"]
    # A coded cancer on file wins: no flag, no sentence.
    coded = only_decision(run(draft, lung_chart() + [text_only]))
    assert "diagnosisSignal" not in coded and "diagnosisConfidence" not in coded
    # Negated text leaves the gap in place.
    negated = dict(text_only, code={"text": "Pleural effusion, negative for malignancy"})
    assert "diagnosis" in only_decision(run(draft, chart + [negated]))["missingDocumentation"]


def test_the_card_names_a_structured_non_code_signal():
    from engine_builders import lung_chart, only_decision, run, service_request
    draft = [service_request(cpt="77750", text="P-32 chromic phosphate intrapleural instillation", reason=["J91.0"])]
    chart = [r for r in lung_chart() if r["id"] != "c-1"]
    histology = dict(cancer(morphology=(ICDO3, "8140/3", "Adenocarcinoma")), subject={"reference": "Patient/pat-1"})
    guidance = run(draft, chart + [histology])
    assert only_decision(guidance)["diagnosisSignal"] == "histology"
    assert "diagnosisConfidence" not in only_decision(guidance)
    assert "Diagnosis recognised from the mCODE histology-morphology-behavior extension" in guidance.cards[0]["detail"]


def test_order_select_says_nothing_about_the_diagnosis_signal():
    from engine_builders import lung_chart, only_decision, run, service_request
    draft = [service_request(cpt="77750", text="P-32 chromic phosphate intrapleural instillation", reason=["J91.0"])]
    chart = [r for r in lung_chart() if r["id"] != "c-1"] + [
        dict(worded("Squamous cell carcinoma of lung"), subject={"reference": "Patient/pat-1"})]
    guidance = run(draft, chart, hook="order-select", selections=["ServiceRequest/sr-1"])
    assert "diagnosisSignal" not in only_decision(guidance)
    assert "Diagnosis recognised" not in guidance.cards[0]["detail"]


RELATED = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-related-condition"
CORE_RELATED = "http://hl7.org/fhir/StructureDefinition/condition-related"
PROSTATE = {"coding": [{"system": SCT, "code": "399068003"}, {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C61"}]}


def test_related_primary_concept_is_read_on_a_secondary_cancer_only():
    from cds_service.engine.patient import _related_primary_codes

    secondary = cancer((SCT, "94222008"), profile=SECONDARY)
    secondary["extension"] = [{"url": RELATED, "valueCodeableConcept": PROSTATE}]
    assert set(_related_primary_codes(secondary, knowledge())) == {("snomed", "399068003"), ("icd10cm", "C61")}
    # The same extension on a primary (or unprofiled) Condition names no primary.
    primary = dict(secondary, meta={"profile": [PRIMARY]})
    assert _related_primary_codes(primary, knowledge()) == ()
    # A Reference names a Condition that is read on its own when it is on file: no codes here.
    by_reference = dict(secondary, extension=[{"url": CORE_RELATED, "valueReference": {"reference": "Condition/p-1"}}])
    assert _related_primary_codes(by_reference, knowledge()) == ()
    # An unknown extension URL is not read.
    unknown = dict(secondary, extension=[{"url": "http://example.org/related", "valueCodeableConcept": PROSTATE}])
    assert _related_primary_codes(unknown, knowledge()) == ()


def test_related_primary_codes_meet_the_indication():
    from cds_service.engine.facts import ConditionFact, PatientFacts

    bone = ConditionFact(reference="Condition/c-1", codes=(("icd10cm", "C79.51"),), malignant=True, staged=False)
    linked = ConditionFact(reference="Condition/c-1", codes=(("icd10cm", "C79.51"),), malignant=True, staged=False,
                           related_primary_codes=(("icd10cm", "C61"),))
    assert ("icd10cm", "C61") not in PatientFacts(conditions=(bone,)).condition_codes
    assert ("icd10cm", "C61") in PatientFacts(conditions=(linked,)).condition_codes


def test_diagnosis_signals_are_one_vocabulary():
    from cds_service.engine.cards import _SIGNAL_WORDS
    from cds_service.knowledge.vocabulary import DIAGNOSIS_SIGNALS

    # Every signal the card names in words is a signal the engine ranks; a code is never named.
    assert set(_SIGNAL_WORDS) < set(DIAGNOSIS_SIGNALS) and "code" not in _SIGNAL_WORDS
    assert DIAGNOSIS_SIGNALS[0] == "code" and DIAGNOSIS_SIGNALS[-1] == "text"
