"""The audit row's coded summary, written by a real hook call, and its additive migration."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Float, Integer, MetaData, String, Table, inspect

from cds_service.ops.audit_columns import audit_columns
from cds_service.storage.db import make_engine, migrate
from tests.conftest import full_prefetch, therapy_request

SIGN = "/cds-services/radioelement-order-sign"


def test_a_hook_call_records_its_coded_summary(app, client) -> None:
    body = therapy_request(prefetch=full_prefetch(["patient", "conditions", "observations", "coverage"]))
    response = client.post(SIGN, json=body)
    assert response.status_code == 200
    answer = response.get_json()
    decisions = answer["extension"]["cds-service.decisions"]
    row = app.extensions["cds_store"].audit_rows(body["hookInstance"])[0]
    assert row["knowledge_version"] == app.extensions["cds_knowledge"].version
    assert row["decision_count"] == len(decisions) == 1
    assert row["recommended_codes"] == [decisions[0]["recommendedCode"]]
    assert row["documentation_gaps"] == (sorted(set(decisions[0].get("missingDocumentation") or [])) or None)
    assert row["card_types"] == [card["extension"]["cds-service.card-type"] for card in answer["cards"]]
    assert row["checks_unavailable"] is ("checks-unavailable" in row["card_types"])


def test_a_refused_call_records_no_summary(app, client) -> None:
    body = therapy_request()
    body["context"].pop("draftOrders")
    assert client.post(SIGN, json=body).status_code == 400
    row = app.extensions["cds_store"].audit_rows(body["hookInstance"])[0]
    assert (row["decision_count"], row["recommended_codes"], row["card_types"]) == (None, None, None)
    assert row["knowledge_version"] == app.extensions["cds_knowledge"].version


class _Outcome:
    def __init__(self, cards, decisions):
        self.body = {"cards": cards}
        self.decisions = decisions


def test_summary_keeps_codes_and_keys_only() -> None:
    outcome = _Outcome(
        [{"extension": {"cds-service.card-type": "checks-unavailable"}}, {"summary": "no type"}],
        [{"order": "ServiceRequest/secret", "recommendedCode": {"code": "79101", "display": "x"},
          "missingDocumentation": ["written-directive", {"key": "dosimetry-plan"}, "free text, not a key"]},
         {"order": "ServiceRequest/other", "recommendedCode": "77750", "missingDocumentation": ["written-directive"]}],
    )
    columns = audit_columns(outcome, "2026.2")
    assert columns == {"knowledge_version": "2026.2", "decision_count": 2, "recommended_codes": ["79101", "77750"],
                       "documentation_gaps": ["dosimetry-plan", "written-directive"],
                       "card_types": ["checks-unavailable", "unspecified"], "checks_unavailable": True}


def test_an_older_audit_table_gets_the_columns_and_indexes(db_url: str) -> None:
    old = MetaData()
    Table("audit", old, Column("id", Integer, primary_key=True), Column("hook_instance", String(64), nullable=False),
          Column("service_id", String(64), nullable=False), Column("status", Integer, nullable=False),
          Column("started_at", DateTime(timezone=True), nullable=False), Column("duration_ms", Float, nullable=False))
    engine = make_engine(db_url)
    try:
        old.create_all(engine)
        migrate(engine)
        migrate(engine)  # twice: nothing left to add the second time
        inspector = inspect(engine)
        columns = {column["name"] for column in inspector.get_columns("audit")}
        assert {"knowledge_version", "decision_count", "recommended_codes", "documentation_gaps", "card_types",
                "checks_unavailable"} <= columns
        assert "ix_audit_service_started" in {index["name"] for index in inspector.get_indexes("audit")}
        assert "ix_feedback_service_outcome_timestamp" in {index["name"] for index in inspector.get_indexes("feedback")}
        assert "knowledge_version" in {column["name"] for column in inspector.get_columns("issued_cards")}
    finally:
        engine.dispose()
