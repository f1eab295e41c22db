"""The prefetch fallback against a real HTTP FHIR server on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from cds_service.fhir.client import Deadline, FhirClient, FhirError
from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
from cds_service.hooks.prefetch import render_template, resolve_prefetch
from cds_service.testing.fhir_standin import Behaviour
from tests.conftest import therapy_request

SIGN = "/cds-services/radioelement-order-sign"


def condition(index: int) -> dict:
    return {
        "resourceType": "Condition",
        "id": f"c{index}",
        "subject": {"reference": "Patient/pat-1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C61"}]},
    }


def test_render_template_fills_tokens_and_skips_missing_ones():
    context = {"patientId": "pat 1", "userId": "Practitioner/dr-1"}
    assert render_template("Condition?patient={{context.patientId}}", context) == "Condition?patient=pat%201"
    assert render_template("Practitioner/{{userPractitionerId}}", context) == "Practitioner/dr-1"
    assert render_template("Encounter/{{context.encounterId}}", context) is None


def test_missing_keys_are_fetched_with_bearer_token(fhir_server):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}, condition(1)]
    result = resolve_prefetch(
        {"patient": "Patient/{{context.patientId}}", "conditions": "Condition?patient={{context.patientId}}"},
        {"patientId": "pat-1"},
        {"patient": {"resourceType": "Patient", "id": "pat-1"}},
        lambda: FhirClient(fhir_server.base_url, access_token="tok-123"),
        budget_seconds=5,
    )
    assert result.unavailable == {}
    assert [r["id"] for r in result.resources["conditions"]] == ["c1"]
    assert result.fetched_keys == ("conditions",)
    assert [seen["path"] for seen in fhir_server.requests_seen] == ["Condition"]
    assert fhir_server.requests_seen[0]["authorization"] == "Bearer tok-123"


def test_paginated_bundle_is_followed_up_to_the_page_cap(fhir_server):
    fhir_server.resources = [condition(i) for i in range(23)]
    fhir_server.page_size = 5
    client = FhirClient(fhir_server.base_url, max_pages=10)
    assert len(client.fetch("Condition?patient=pat-1")) == 23
    capped = FhirClient(fhir_server.base_url, max_pages=2)
    assert len(capped.fetch("Condition?patient=pat-1")) == 10


def test_operation_outcome_is_reported_as_unavailable(fhir_server):
    fhir_server.behaviours["Condition"] = Behaviour(status=500, operation_outcome=True)
    result = resolve_prefetch(
        {"conditions": "Condition?patient={{context.patientId}}"}, {"patientId": "pat-1"}, {},
        lambda: FhirClient(fhir_server.base_url), budget_seconds=5,
    )
    assert "stand-in told to fail" in result.unavailable["conditions"]


def test_prefetched_operation_outcome_triggers_a_refetch(fhir_server):
    fhir_server.resources = [condition(1)]
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "timeout"}]}
    result = resolve_prefetch(
        {"conditions": "Condition?patient={{context.patientId}}"}, {"patientId": "pat-1"}, {"conditions": outcome},
        lambda: FhirClient(fhir_server.base_url), budget_seconds=5,
    )
    assert [r["id"] for r in result.resources["conditions"]] == ["c1"]


def test_slow_server_times_out_within_budget(fhir_server):
    fhir_server.behaviours["Condition"] = Behaviour(delay_seconds=3)
    started = time.monotonic()
    result = resolve_prefetch(
        {"conditions": "Condition?patient={{context.patientId}}"}, {"patientId": "pat-1"}, {},
        lambda: FhirClient(fhir_server.base_url, read_timeout=0.5, deadline=Deadline(1.0)), budget_seconds=1.0,
    )
    elapsed = time.monotonic() - started
    assert "conditions" in result.unavailable
    assert elapsed < 2.0


def test_unreachable_server_is_reported():
    client = FhirClient("http://127.0.0.1:9/fhir", connect_timeout=0.5)
    with pytest.raises(FhirError, match="could not be reached"):
        client.fetch("Patient/pat-1")


def test_redirect_is_not_followed(fhir_server):
    fhir_server.behaviours["Patient"] = Behaviour(status=302)
    with pytest.raises(FhirError):
        FhirClient(fhir_server.base_url).fetch("Patient/pat-1")


def test_next_link_to_another_host_is_not_followed(fhir_server):
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "link": [{"relation": "next", "url": "http://169.254.169.254/latest/meta-data"}]}
    with pytest.raises(FhirError, match="outside the FHIR server"):
        FhirClient(fhir_server.base_url).complete_bundle(bundle)


def test_service_call_fetches_missing_prefetch_and_answers(client, fhir_server):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}, condition(1)]
    body = therapy_request()
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    fetched = {seen["path"] for seen in fhir_server.requests_seen}
    assert {"Patient/pat-1", "Condition", "Observation", "Coverage"} <= fetched


def test_token_never_reaches_the_audit_trail_or_logs(app, client, fhir_server, caplog):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}]
    body = therapy_request()
    body["fhirServer"] = fhir_server.base_url
    body["fhirAuthorization"] = {"access_token": "very-secret-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}
    fhir_server.behaviours["Observation"] = Behaviour(status=401)
    caplog.set_level("DEBUG")
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    rows = app.extensions["cds_store"].audit_rows(body["hookInstance"])
    assert "very-secret-token" not in str(rows)
    assert "very-secret-token" not in caplog.text
    assert "very-secret-token" not in response.get_data(as_text=True)


def _one_decision(call, knowledge):
    from cds_service.hooks.model import Guidance

    return Guidance(decisions=[{"order": "ServiceRequest/sr-ra223", "recommendedCode": "79101"}])


def test_partial_data_adds_a_card_naming_the_checks_that_could_not_run(app, fhir_server, monkeypatch):
    monkeypatch.setattr(app.extensions["cds_handler"], "advise", _one_decision)
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}]
    fhir_server.behaviours["Observation"] = Behaviour(status=503)
    body = therapy_request()
    body["fhirServer"] = fhir_server.base_url
    response = app.test_client().post(SIGN, json=body)
    assert response.status_code == 200
    cards = response.get_json()["cards"]
    assert cards[0]["indicator"] == "warning"
    assert "staging and performance status" in cards[0]["detail"]
    assert "HTTP 503" in cards[0]["detail"]


def test_nothing_obtainable_is_412(app, monkeypatch):
    monkeypatch.setattr(app.extensions["cds_handler"], "advise", _one_decision)
    body = therapy_request()
    body["fhirServer"] = "http://127.0.0.1:9/fhir"  # nothing listens on the discard port
    response = app.test_client().post(SIGN, json=body)
    assert response.status_code == 412
    assert "could not be obtained" in response.get_json()["error"]


def test_no_therapy_order_needs_no_data(app, client, sandbox_request):
    body = sandbox_request  # a statin order: nothing to code, so missing data does not matter
    body["fhirServer"] = "http://127.0.0.1:9/fhir"
    body.pop("prefetch")
    response = client.post(SIGN, json=body)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


def test_unavailable_keys_the_decision_does_not_read_are_not_named(client):
    """A draft order does not use the post-procedure keys, so their absence is not noise."""
    from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
    from tests.conftest import full_prefetch

    prefetch = full_prefetch(list(ORDER_SIGN_PREFETCH))
    for key in ("encounters", "notes", "adverseEvents"):
        prefetch.pop(key)
    response = client.post(SIGN, json=therapy_request(prefetch=prefetch))
    assert response.status_code == 200
    assert not any("could not run" in card["summary"] for card in response.get_json()["cards"])
    prefetch.pop("observations")  # staging and performance status are read for this order
    response = client.post(SIGN, json=therapy_request(prefetch=prefetch))
    unavailable = [card for card in response.get_json()["cards"] if "could not run" in card["summary"]]
    assert len(unavailable) == 1 and "staging and performance status" in unavailable[0]["detail"]
    assert "follow-up notes" not in unavailable[0]["detail"]
