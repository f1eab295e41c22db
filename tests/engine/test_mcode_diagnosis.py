"""Issue 20: how an mCODE cancer Condition documents the diagnosis, and what never does."""

from __future__ import annotations

from typing import Any

import pytest
from engine_builders import knowledge

from cds_service.engine.patient import _has_value, documents_cancer

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
