"""/healthz, /readyz, /metrics, and the JSON call log line, in one process."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.hooks.catalog import SERVICES_BY_ID
from cds_service.hooks.model import Guidance
from cds_service.ops.logs import CALL_LOGGER, JsonFormatter, configure_logging
from cds_service.ops.metrics import bounded_code, bounded_key
from cds_service.testing.fhir_standin import Behaviour
from tests.conftest import full_prefetch, therapy_request

SIGN = "/cds-services/radioelement-order-sign"
SELECT = "/cds-services/radioelement-order-select"
TOPIC = {"label": "test engine", "topic": {"system": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
                                           "code": "guideline", "display": "Guideline"}}


def all_prefetch(service_id: str = "radioelement-order-sign") -> dict[str, Any]:
    return full_prefetch(list(SERVICES_BY_ID[service_id].prefetch))


def samples(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def fake_engine(call, knowledge) -> Guidance:
    """Stands in for the coding engine: two cards and one decision with documentation gaps."""
    return Guidance(
        cards=[
            {"uuid": str(uuid.uuid4()), "summary": "Code 79101 instead of 77750", "indicator": "warning",
             "source": TOPIC,
             "extension": {"cds-service.card-type": "code-change", "cds-service.recommended-code": "79101"}},
            {"uuid": str(uuid.uuid4()), "summary": "Documentation missing", "indicator": "info",
             "source": TOPIC, "extension": {"cds-service.card-type": "documentation-gap"}},
        ],
        decisions=[{"order": "ServiceRequest/sr-ra223", "orderedCode": "77750", "recommendedCode": "79101",
                    "missingDocumentation": ["imaging-confirmation", {"key": "prior-therapy"}],
                    "warnings": [{"code": "separate-hcpcs"}, "Free text is never a key, it has spaces"]}],
    )


@pytest.fixture
def engine_app(make_app):
    app = make_app()
    app.extensions["cds_handler"].advise = fake_engine
    return app


def test_healthz_is_always_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_reports_database_and_knowledge(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True, "backend": "sqlite"}
    assert body["checks"]["knowledge"]["ok"] is True
    loaded = client.application.extensions["cds_knowledge"]
    assert body["checks"]["knowledge"]["version"] == loaded.version
    assert body["checks"]["knowledge"]["code_set_year"] == loaded.code_set_year


def test_readyz_is_degraded_not_503_when_the_database_is_unreachable_but_the_spool_works(app):
    """Issue 13: calls are still answered and their records spooled, so the replica stays in the
    load balancer (200, "degraded"); liveness is unaffected."""
    app.extensions["cds_db"] = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                             connect_args={"connect_timeout": 2})
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert body["checks"]["spool"]["writable"] is True and body["checks"]["spool"]["depth"] == 0
    assert "nobody" not in response.get_data(as_text=True)  # no connection details leak
    assert app.test_client().get("/healthz").status_code == 200  # liveness is unaffected


def test_readyz_is_503_when_the_database_is_unreachable_and_the_spool_cannot_be_written(app, tmp_path):
    app.extensions["cds_db"] = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none",
                                             connect_args={"connect_timeout": 2})
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    app.extensions["cds_outbox"].directory = blocker / "spool"  # below a file: cannot exist
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert app.test_client().get("/healthz").status_code == 200


def test_readyz_is_503_without_knowledge(app):
    del app.extensions["cds_knowledge"]
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["knowledge"] == {"ok": False, "error": "not loaded"}


def test_ops_endpoints_need_no_token_when_auth_is_on(make_app):
    app = make_app(auth_enabled=True)
    client = app.test_client()
    assert client.post(SIGN, json=therapy_request()).status_code == 401  # the services do
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_request_counter_moves(client):
    before = samples(client)
    client.get("/healthz")
    client.get("/healthz")
    client.get("/no/such/path")
    client.post(SIGN, data="{", content_type="application/json")
    after = samples(client)
    name = "cds_http_requests_total"
    assert value(after, name, endpoint="/healthz", method="GET", status="200") - \
        value(before, name, endpoint="/healthz", method="GET", status="200") == 2
    assert value(after, name, endpoint="unmatched", method="GET", status="404") == 1
    assert value(after, name, endpoint="/cds-services/<service_id>", method="POST", status="400") == 1


def test_call_metrics_move_with_calls(engine_app):
    client = engine_app.test_client()
    for _ in range(2):
        assert client.post(SIGN, json=therapy_request(prefetch=all_prefetch())).status_code == 200
    select_body = therapy_request("order-select", prefetch=all_prefetch("radioelement-order-select"))
    assert client.post(SELECT, json=select_body).status_code == 200
    found = samples(client)
    assert value(found, "cds_hook_calls_total", service="radioelement-order-sign", status="200") == 2
    assert value(found, "cds_hook_calls_total", service="radioelement-order-select", status="200") == 1
    assert value(found, "cds_hook_call_duration_seconds_count", service="radioelement-order-sign") == 2
    assert value(found, "cds_hook_phase_duration_seconds_count", service="radioelement-order-sign", phase="engine") == 2
    assert value(found, "cds_cards_total", service="radioelement-order-sign", indicator="warning",
                 card_type="code-change") == 2
    assert value(found, "cds_cards_total", service="radioelement-order-sign", indicator="info",
                 card_type="documentation-gap") == 2
    assert value(found, "cds_decisions_total", service="radioelement-order-sign", recommended_code="79101") == 2
    assert value(found, "cds_documentation_gaps_total", key="imaging-confirmation") == 3
    assert value(found, "cds_documentation_gaps_total", key="prior-therapy") == 3


def test_failed_calls_are_counted_with_their_status(client):
    body = therapy_request()
    body["hook"] = "order-select"
    assert client.post(SIGN, json=body).status_code == 400
    found = samples(client)
    assert value(found, "cds_hook_calls_total", service="radioelement-order-sign", status="400") == 1


def test_fhir_fallback_calls_and_failures(client, fhir_server):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}]
    fhir_server.behaviours["Observation"] = Behaviour(status=500, operation_outcome=True)
    body = therapy_request(prefetch={"patient": {"resourceType": "Patient", "id": "pat-1"}})
    body["fhirServer"] = fhir_server.base_url
    assert client.post(SIGN, json=body).status_code == 200
    found = samples(client)
    fetched = {labels[0][1]: v for (name, labels), v in found.items() if name == "cds_fhir_fallback_calls_total"}
    failed = {labels[0][1]: v for (name, labels), v in found.items() if name == "cds_fhir_fallback_failures_total"}
    assert "patient" not in fetched  # it was prefetched
    assert fetched and all(v == 1 for v in fetched.values())
    assert set(failed) == {key for key in fetched if "observation" in key.lower()} != set()


def test_feedback_outcomes_are_counted(client):
    body = {"feedback": [
        {"card": "c1", "outcome": "accepted", "acceptedSuggestions": [{"id": "s"}],
         "outcomeTimestamp": "2026-11-27T10:05:31Z"},
        {"card": "c1", "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:06:00Z"},
        {"card": "c2", "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:07:00Z"},
    ]}
    assert client.post(SIGN + "/feedback", json=body).status_code == 200
    found = samples(client)
    assert value(found, "cds_feedback_total", service="radioelement-order-sign", outcome="accepted") == 1
    assert value(found, "cds_feedback_total", service="radioelement-order-sign", outcome="overridden") == 2


def test_label_values_are_bounded():
    assert bounded_code("79101") == "79101" and bounded_code("0394T") == "0394T"
    assert bounded_code("Mr Smith's code") == "other" and bounded_code(None) == "other"
    assert bounded_key("imaging-confirmation") == "imaging-confirmation"
    assert bounded_key("x" * 200) == "other" and bounded_key("has space") == "other"


# -- the JSON call log line ------------------------------------------------------------------

def call_lines(text: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "cds.call"]


def test_one_json_line_per_call_with_decision_keys(engine_app, capsys):
    client = engine_app.test_client()
    body = therapy_request(prefetch=all_prefetch())
    assert client.post(SIGN, json=body).status_code == 200
    bad = therapy_request()
    bad["hook"] = "order-select"
    assert client.post(SIGN, json=bad).status_code == 400
    lines = call_lines(capsys.readouterr().out)
    assert len(lines) == 2
    ok, rejected = lines
    assert ok["hook_instance"] == body["hookInstance"]
    assert (ok["service"], ok["hook"], ok["status"], ok["issuer"]) == ("radioelement-order-sign", "order-sign", 200, None)
    assert ok["recommended_codes"] == ["79101"]
    assert ok["missing_documentation"] == ["imaging-confirmation", "prior-therapy"]
    assert ok["warnings"] == ["separate-hcpcs"]  # free text is not a key
    assert ok["card_types"] == ["code-change", "documentation-gap"] and ok["cards"] == 2
    assert ok["duration_ms"] >= ok["engine_ms"] >= 0
    assert rejected["status"] == 400 and rejected["recommended_codes"] == []


def test_call_log_carries_no_phi_and_no_token(client, fhir_server, capsys):
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1"}]
    body = therapy_request()
    body["context"]["patientId"] = "pat-1"
    body["fhirServer"] = fhir_server.base_url
    body["fhirAuthorization"] = {"access_token": "very-secret-token", "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}
    assert client.post(SIGN, json=body).status_code == 200
    out = capsys.readouterr().out
    (line,) = call_lines(out)
    raw = json.dumps(line)
    for secret in ("very-secret-token", "pat-1", "dr-1", "sr-ra223", "Radium", "C79.51", fhir_server.base_url):
        assert secret not in raw, secret
    assert line["fetched_keys"]  # the keys are there, the data is not


def test_hook_instance_that_is_not_an_id_is_not_logged(client, capsys):
    body = therapy_request(prefetch=full_prefetch(["patient"]))
    body["hookInstance"] = "John Smith 1950-01-01"
    client.post(SIGN, json=body)
    lines = call_lines(capsys.readouterr().out)
    assert len(lines) == 1 and lines[0]["hook_instance"] is None
    assert "John Smith" not in json.dumps(lines[0])


def test_json_log_format_for_every_log():
    root = logging.getLogger()
    saved = [(handler, handler.formatter) for handler in root.handlers]
    try:
        configure_logging("INFO", "json")
        assert root.handlers and all(isinstance(handler.formatter, JsonFormatter) for handler in root.handlers)
        record = logging.LogRecord("cds_service.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
        entry = json.loads(JsonFormatter().format(record))
        assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "cds_service.x", "hello world")
        assert logging.getLogger(CALL_LOGGER).propagate is False
    finally:
        for handler, formatter in saved:
            handler.setFormatter(formatter)


def test_log_format_setting():
    assert Settings.from_env({"CDS_LOG_FORMAT": "json"}).log_format == "json"
    assert Settings.from_env({}).log_format == "text"
    from cds_service.config import ConfigError

    with pytest.raises(ConfigError, match="CDS_LOG_FORMAT"):
        Settings.from_env({"CDS_LOG_FORMAT": "xml"})


def test_app_builds_with_env_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CDS_SQLITE_PATH", str(tmp_path / "x.sqlite3"))
    monkeypatch.setenv("CDS_AUTH", "off")
    app = create_app()
    assert app.test_client().get("/readyz").status_code == 200
