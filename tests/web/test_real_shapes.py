"""What real EHR clients send (issue 11), through the app and a real HTTP FHIR stand-in.

Relevance first: orders that are not radioelement therapy cost the EHR no FHIR request and get
no 4xx; order-select answers an empty draft with nothing; a Medication is found wherever the
request or the EHR holds it; the ordered activity is never read from a strength.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
from tests.conftest import full_prefetch, therapy_request

SIGN = "/cds-services/radioelement-order-sign"
SELECT = "/cds-services/radioelement-order-select"
SHAPES = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "real-shapes"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
XOFIGO_NAME = "radium Ra-223 dichloride 1100 kBq/mL Injectable Solution [Xofigo]"
PATIENT = {"resourceType": "Patient", "id": "smart-1288992", "gender": "male", "birthDate": "1945-12-23"}
MEDICATION = {"resourceType": "Medication", "id": "med-xofigo",
              "code": {"coding": [{"system": RXNORM, "code": "1424219", "display": XOFIGO_NAME}]}}


def shape(name: str) -> dict[str, Any]:
    """The request of one real-shapes fixture, with its ${today} tokens filled in."""
    from datetime import date

    text = (SHAPES / f"{name}.json").read_text().replace("${today}", date.today().isoformat())
    text = text.replace("${today-10}", date.today().isoformat())
    return json.loads(text)["request"]


def decisions(response: Any) -> list[dict[str, Any]]:
    return (response.get_json().get("extension") or {}).get("cds-service.decisions", [])


@pytest.mark.parametrize("name", ["statin-fhirserver-no-prefetch", "ct-order-fhirserver-no-prefetch",
                                  "malformed-statin-not-ours"])
def test_an_order_that_is_not_therapy_costs_no_fhir_request(client, fhir_server, name):
    fhir_server.resources = [PATIENT]
    body = shape(name)
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"cards": []}
    assert fhir_server.requests_seen == []


def test_the_sandbox_statin_is_answered_without_validating_prefetch(make_app, sandbox_request):
    """Strict mode validates prefetch, but only once a therapy order makes it matter."""
    body = sandbox_request
    body["prefetch"]["conditions"] = {"resourceType": "Condition", "id": "c-bad", "clinicalStatus": "active"}
    response = make_app(strict_fhir=True).test_client().post(SIGN, json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_order_select_with_an_empty_draft_is_200_without_cards(client, fhir_server):
    fhir_server.resources = [PATIENT]
    body = shape("rx-view-empty-draft")
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SELECT, json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}
    assert fhir_server.requests_seen == []


def test_order_select_codes_a_picked_drug_before_intent_is_set(client):
    response = client.post(SELECT, json=shape("rx-view-xofigo-picked-no-intent"))
    assert response.status_code == 200
    assert [d["recommendedCode"] for d in decisions(response)] == ["79101"]


def test_order_sign_still_judges_an_incomplete_therapy_order(client):
    body = shape("rx-sign-xofigo-pill-dose")
    del body["context"]["draftOrders"]["entry"][0]["resource"]["intent"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 422 and "intent" in response.get_json()["error"]


def test_a_pill_dose_gives_no_units_and_says_what_is_needed(client, fhir_server):
    fhir_server.resources = [PATIENT]
    body = shape("rx-sign-xofigo-pill-dose")
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    [decision] = decisions(response)
    assert decision["supply"] == [{"code": "A9606"}]  # the HCPCS code, without units
    assert "activity" in decision["missingDocumentation"]
    detail = response.get_json()["cards"][0]["detail"]
    assert "the order gives a dose of 1 {pill}" in detail and "MBq or mCi" in detail
    assert "Supply: HCPCS A9606, units to be set" in detail


def test_a_therapy_draft_fetches_only_the_keys_its_decision_reads(client, fhir_server):
    fhir_server.resources = [PATIENT]
    body = shape("xofigo-fhirserver-fetches-only-what-it-reads")
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert response.status_code == 200 and decisions(response)
    paths = sorted(seen["path"] for seen in fhir_server.requests_seen)
    assert paths == sorted(["Patient/smart-1288992", "Condition", "Observation", "DiagnosticReport", "Procedure",
                            "CarePlan", "ServiceRequest", "Coverage"])


@pytest.mark.parametrize("name", ["medref-in-draftorders-bundle", "medref-contained", "medref-in-prefetch"])
def test_medication_by_reference_in_the_request(client, name):
    response = client.post(SIGN, json=shape(name))
    assert response.status_code == 200, response.get_json()
    assert [line["code"] for d in decisions(response) for line in d["supply"]] == ["A9606"]


def test_medication_by_reference_read_from_the_fhir_server(client, fhir_server):
    fhir_server.resources = [PATIENT, MEDICATION]
    body = shape("medref-read-from-fhir-server")
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert [line["code"] for d in decisions(response) for line in d["supply"]] == ["A9606"]
    assert [seen["path"] for seen in fhir_server.requests_seen] == ["Medication/med-xofigo"]


def test_an_unreadable_medication_leaves_the_order_unrecognised_not_an_error(client, fhir_server):
    fhir_server.resources = [PATIENT]  # the server does not have the Medication
    body = shape("medref-read-from-fhir-server")
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}
    assert [seen["path"] for seen in fhir_server.requests_seen] == ["Medication/med-xofigo"]


def test_a_code_text_conflict_is_named_on_the_card(client):
    response = client.post(SIGN, json=shape("mislabelled-code-conflicts-with-text"))
    detail = response.get_json()["cards"][0]["detail"]
    assert "Check the drug" in detail and "Lutathera" in detail and "Xofigo" in detail


def test_every_decision_says_why(app, client):
    response = client.post(SIGN, json=therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH))))
    knowledge = app.extensions["cds_knowledge"]
    [decision] = decisions(response)
    assert decision["rule"] in {rule.id for rule in knowledge.code_rules}
    assert decision["sources"] and set(decision["sources"]) <= set(knowledge.sources)
    assert decision["knowledgeVersion"] == knowledge.version


def test_a_non_therapy_order_signed_with_a_therapy_order_is_not_validated(client):
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    statin = copy.deepcopy(shape("malformed-statin-not-ours")["context"]["draftOrders"]["entry"][0])
    body["context"]["draftOrders"]["entry"].append(statin)
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    assert [d["order"] for d in decisions(response)] == ["ServiceRequest/sr-ra223"]


def test_a_therapy_order_with_a_malformed_field_is_422_not_500(client, fhir_server):
    body = shape("rx-sign-xofigo-pill-dose")
    body["context"]["draftOrders"]["entry"][0]["resource"]["dosageInstruction"] = [{"timing": "daily"}]
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert response.status_code == 422 and "timing" in response.get_json()["error"]
    assert fhir_server.requests_seen == []


@pytest.mark.parametrize("where", ["code", "reasonCode"])
def test_a_malformed_coding_on_raw_drafts_is_never_a_500(client, where):
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    concept = order[where][0] if isinstance(order[where], list) else order[where]
    concept["coding"][0]["system"] = ["not", "a", "uri"]
    response = client.post(SIGN, json=body)
    assert response.status_code in (200, 422), response.get_json()


def test_a_broken_prefetch_bundle_does_not_stop_a_statin_answer(client, sandbox_request):
    sandbox_request["prefetch"]["activeMeds"] = {"resourceType": "Bundle", "entry": 7}
    response = client.post(SIGN, json=sandbox_request)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_order_select_reads_the_medication_of_the_selected_draft_only(client, fhir_server):
    fhir_server.resources = [PATIENT, MEDICATION]
    body = shape("medref-read-from-fhir-server")
    body["hook"] = "order-select"
    other = copy.deepcopy(body["context"]["draftOrders"]["entry"][0])
    other["resource"]["id"] = "request-456"
    other["resource"]["medicationReference"] = {"reference": "Medication/med-other"}
    body["context"]["draftOrders"]["entry"].append(other)
    body["context"]["selections"] = ["MedicationRequest/request-123"]
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SELECT, json=body)
    assert [d["order"] for d in decisions(response)] == ["MedicationRequest/request-123"]
    assert [seen["path"] for seen in fhir_server.requests_seen] == ["Medication/med-xofigo"]
