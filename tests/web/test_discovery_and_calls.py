"""Discovery, both hooks, hook/service mismatch, error statuses, CORS, response hygiene."""

from __future__ import annotations

import json
import re

import pytest

from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH, SERVICES
from tests.conftest import full_prefetch, therapy_request

SIGN = "/cds-services/radioelement-order-sign"
SELECT = "/cds-services/radioelement-order-select"
ALLOWED_TOKENS = {"context.patientId", "context.encounterId", "context.userId", "userPractitionerId",
                  "userPractitionerRoleId", "userPatientId", "userRelatedPersonId"}


def test_discovery_lists_both_services_with_valid_prefetch(client):
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {service["id"]: service for service in response.get_json()["services"]}
    assert services["radioelement-order-sign"]["hook"] == "order-sign"
    assert services["radioelement-order-select"]["hook"] == "order-select"
    for service in services.values():
        assert service["title"] and service["description"]
        for key in ("patient", "conditions"):
            assert key in service["prefetch"]
        for template in service["prefetch"].values():
            for token in re.findall(r"\{\{\s*(.*?)\s*\}\}", template):
                assert token in ALLOWED_TOKENS, f"{token} is not a CDS Hooks 2.0 prefetch token"
    sign_keys = set(services["radioelement-order-sign"]["prefetch"])
    assert {"patient", "conditions", "observations", "reports", "procedures", "carePlans", "coverage", "encounter"} <= sign_keys


def test_sandbox_request_gets_200_and_no_decision(client, sandbox_request):
    response = client.post(SIGN, json=sandbox_request)
    assert response.status_code == 200
    body = response.get_json()
    assert "cds-service.decisions" not in body.get("extension", {})


@pytest.mark.parametrize("path,hook", [(SIGN, "order-sign"), (SELECT, "order-select")])
def test_both_hooks_answer_a_realistic_request(client, path, hook):
    keys = [s for s in SERVICES if s.hook == hook][0].prefetch
    body = therapy_request(hook=hook, prefetch=full_prefetch(list(keys)))
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    assert isinstance(response.get_json()["cards"], list)


def test_wrong_hook_for_service_is_400_naming_the_hook(client):
    response = client.post(SELECT, json=therapy_request(hook="order-sign", prefetch={}))
    assert response.status_code == 400
    assert "hook" in response.get_json()["error"]
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_unknown_service_is_404(client):
    response = client.post("/cds-services/nope", json=therapy_request())
    assert response.status_code == 404
    assert "radioelement-order-sign" in response.get_json()["error"]


def test_unknown_path_is_json_404(client):
    response = client.get("/nowhere")
    assert response.status_code == 404 and response.is_json


def test_wrong_method_is_405(client):
    response = client.get(SIGN)
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert response.is_json


def test_malformed_json_is_400_with_position(client):
    response = client.post(SIGN, data='{"hook": "order-sign",', content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.get_json()["error"]
    assert "line 1" in response.get_json()["error"]


def test_schema_violation_names_the_field(client):
    body = therapy_request()
    del body["context"]["patientId"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 400
    assert "patientId" in response.get_json()["error"]


def test_bad_hook_instance_is_400(client):
    body = therapy_request()
    body["hookInstance"] = "not-a-uuid"
    response = client.post(SIGN, json=body)
    assert response.status_code == 400 and "hookInstance" in response.get_json()["error"]


def test_selection_outside_draft_orders_is_400(client):
    body = therapy_request(hook="order-select", selections=["ServiceRequest/other"])
    response = client.post(SELECT, json=body)
    assert response.status_code == 400 and "selections" in response.get_json()["error"]


def test_non_json_content_type_is_415(client):
    response = client.post(SIGN, data=json.dumps(therapy_request()), content_type="text/plain")
    assert response.status_code == 415


def test_body_over_limit_is_413(make_app):
    client = make_app(max_body_bytes=2048).test_client()
    body = therapy_request()
    body["extension"] = {"padding": "x" * 4096}
    response = client.post(SIGN, json=body)
    assert response.status_code == 413
    assert response.is_json and "limit" in response.get_json()["error"]


def test_invalid_fhir_in_draft_orders_is_422_naming_the_entry(client):
    body = therapy_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["subject"] = "Patient/pat-1"  # must be a Reference object
    response = client.post(SIGN, json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert "draftOrders.entry[0]" in error and "subject" in error


def test_draft_order_without_id_is_422(client):
    body = therapy_request()
    del body["context"]["draftOrders"]["entry"][0]["resource"]["id"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 422 and "id" in response.get_json()["error"]


def test_a_draft_that_is_not_ours_is_not_judged(client):
    """Relevance first: an entry that is not a therapy order (here not even a FHIR type) is the
    EHR's business; the therapy order beside it is still decided."""
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    body["context"]["draftOrders"]["entry"].append({"resource": {"resourceType": "Madeup", "id": "x"}})
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_json()
    orders = [d["order"] for d in response.get_json()["extension"]["cds-service.decisions"]]
    assert orders and "Madeup/x" not in orders


def test_a_malformed_therapy_order_is_still_422(client):
    body = therapy_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["status"] = "not-a-status"
    response = client.post(SIGN, json=body)
    assert response.status_code == 422 and "status" in response.get_json()["error"]


def test_no_stack_trace_on_internal_error(make_app, monkeypatch):
    app = make_app()

    def explode(call, knowledge):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["cds_handler"], "advise", explode)
    response = app.test_client().post(SIGN, json=therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH))))
    assert response.status_code == 500
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/cds-services", SIGN, SIGN + "/feedback"])
def test_cors_preflight_needs_no_token(make_app, path):
    client = make_app(auth_enabled=True).test_client()
    response = client.open(path, method="OPTIONS", headers={
        "Origin": "https://sandbox.cds-hooks.org",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    assert response.status_code in (200, 204)
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_every_answer_has_security_and_cors_headers(client):
    response = client.get("/cds-services")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Access-Control-Allow-Origin"]


def test_audit_row_written_per_call(app, client):
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    assert client.post(SIGN, json=body).status_code == 200
    rows = app.extensions["cds_store"].audit_rows(body["hookInstance"])
    assert len(rows) == 1
    row = rows[0]
    assert row["service_id"] == "radioelement-order-sign" and row["status"] == 200
    assert row["duration_ms"] >= 0
    assert "pat-1" not in json.dumps(row, default=str)  # no patient identifiers in the audit trail


def test_draft_order_status_outside_its_required_value_set_is_422(client):
    body = therapy_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["status"] = "pending-approval"
    response = client.post(SIGN, json=body)
    assert response.status_code == 422
    assert "status" in response.get_json()["error"] and "pending-approval" in response.get_json()["error"]


def test_refused_calls_are_logged_and_invalid_ones_audited(app, client, caplog):
    caplog.set_level("INFO")
    body = therapy_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["status"] = "bogus"
    assert client.post(SIGN, json=body).status_code == 422
    rows = app.extensions["cds_store"].audit_rows(body["hookInstance"])
    assert [row["status"] for row in rows] == [422]
    assert client.post("/cds-services/nope", json=body).status_code == 404
    lines = [r.getMessage() for r in caplog.records if '"event":"cds.call"' in r.getMessage()]
    assert any('"status":422' in line for line in lines)
    assert any('"status":404' in line and '"service":"unknown"' in line for line in lines)


def test_draft_order_status_of_the_wrong_type_is_422(client):
    body = therapy_request()
    body["context"]["draftOrders"]["entry"][0]["resource"]["status"] = ["draft"]
    response = client.post(SIGN, json=body)
    assert response.status_code == 422 and "status" in response.get_json()["error"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_numbers_are_400(client, constant):
    body = json.dumps(therapy_request())[:-1] + f', "x": {constant}}}'
    response = client.post(SIGN, data=body, content_type="application/json")
    assert response.status_code == 400
    assert constant.lstrip("-") in response.get_json()["error"]
