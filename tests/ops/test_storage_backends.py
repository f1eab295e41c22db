"""Storage on both backends: every test here runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timezone

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, inspect, select, text

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.storage.db import feedback, issued_cards, make_engine, metadata, migrate
from cds_service.storage.records import Store

SIGN = "/cds-services/radioelement-order-sign"


def utc(value: datetime) -> datetime:
    """SQLite hands back naive UTC, PostgreSQL aware datetimes: compare both as aware UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def test_backend_is_the_one_asked_for(db_url):
    engine = make_engine(db_url)
    try:
        assert engine.dialect.name == db_url.split(":")[0].split("+")[0]
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_feedback_is_durable_across_restarts(db_url):
    settings = Settings(database_url=db_url, auth_enabled=False)
    card = str(uuid.uuid4())
    body = {"feedback": [
        {"card": card, "outcome": "accepted", "acceptedSuggestions": [{"id": "recode-79101"}],
         "outcomeTimestamp": "2026-11-27T10:05:31Z"},
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T11:06:00+01:00",
         "overrideReason": {"reason": {"code": "payer-policy", "system": "https://example.org/override",
                                       "display": "Payer policy"}, "userComment": "payer wants 79101"}},
    ]}
    first = create_app(settings)
    response = first.test_client().post(SIGN + "/feedback", json=body)
    assert response.status_code == 200 and response.get_json() == {"stored": 2}
    first.extensions["cds_db"].dispose()

    second = create_app(settings)  # a restart (or the other replica) on the same database
    rows = second.extensions["cds_store"].feedback_for_card(card)
    second.extensions["cds_db"].dispose()
    assert [row["outcome"] for row in rows] == ["accepted", "overridden"]
    assert rows[0]["accepted_suggestions"] == ["recode-79101"]
    assert (rows[1]["override_code"], rows[1]["override_display"]) == ("payer-policy", "Payer policy")
    assert rows[1]["user_comment"] == "payer wants 79101"
    # Offsets are normalised to UTC on both backends (SQLite keeps no offset of its own).
    assert utc(rows[0]["outcome_timestamp"]) == datetime(2026, 11, 27, 10, 5, 31, tzinfo=timezone.utc)
    assert utc(rows[1]["outcome_timestamp"]) == datetime(2026, 11, 27, 10, 6, 0, tzinfo=timezone.utc)


def test_audit_rows_and_issued_cards(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    store = Store(engine)
    instance = str(uuid.uuid4())
    row = {
        "hook_instance": instance, "service_id": "radioelement-order-sign", "hook": "order-sign", "status": 200,
        "started_at": datetime.now(timezone.utc), "duration_ms": 12.5, "fetch_ms": 3.0, "engine_ms": 1.5,
        "issuer": "https://ehr.example.org", "fetched_keys": ["coverage"], "unavailable_keys": [],
        "decisions": [{"recommendedCode": "79101", "missingDocumentation": ["imaging-confirmation"]}], "error": None,
    }
    cards = [
        {"uuid": "card-a-" + instance, "indicator": "warning",
         "extension": {"cds-service.card-type": "code-change", "cds-service.recommended-code": "79101"}},
        {"uuid": "card-b-" + instance, "indicator": "info"},
        {"summary": "a card without uuid is not recorded"},
    ]
    try:
        store.add_audit(row, cards)
        store.add_audit(dict(row, status=200), cards)  # the EHR retried the same hook instance
        audit_rows = store.audit_rows(instance)
        assert len(audit_rows) == 2
        assert audit_rows[0]["decisions"] == row["decisions"]
        assert audit_rows[0]["fetched_keys"] == ["coverage"]
        with engine.connect() as connection:
            issued = connection.execute(
                select(issued_cards.c.card_uuid, issued_cards.c.card_type, issued_cards.c.recommended_code,
                       issued_cards.c.indicator)
                .where(issued_cards.c.hook_instance == instance).order_by(issued_cards.c.card_uuid)
            ).all()
        assert [tuple(r) for r in issued] == [
            ("card-a-" + instance, "code-change", "79101", "warning"),
            ("card-b-" + instance, None, None, "info"),
        ]
    finally:
        engine.dispose()


def test_a_service_call_writes_one_audit_row(db_url):
    from tests.conftest import therapy_request

    app = create_app(Settings(database_url=db_url, auth_enabled=False))
    body = therapy_request(prefetch={})
    response = app.test_client().post(SIGN, json=body)
    rows = app.extensions["cds_store"].audit_rows(body["hookInstance"])
    app.extensions["cds_db"].dispose()
    assert len(rows) == 1
    assert rows[0]["status"] == response.status_code
    assert rows[0]["service_id"] == "radioelement-order-sign"


def test_migration_adds_missing_columns_and_keeps_rows(db_url):
    engine = make_engine(db_url)
    old = MetaData()
    # The feedback table as an older release created it: no issuer, no user comment.
    Table(
        "feedback", old,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("service_id", String(64), nullable=False),
        Column("card_uuid", String(128), nullable=False),
        Column("outcome", String(16), nullable=False),
        Column("outcome_timestamp", DateTime(timezone=True), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
    )
    old.create_all(engine)
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        connection.execute(old.tables["feedback"].insert(), [
            {"service_id": "radioelement-order-sign", "card_uuid": "old-card", "outcome": "accepted",
             "outcome_timestamp": now, "received_at": now}])
    try:
        migrate(engine)
        migrate(engine)  # idempotent: a second start changes nothing and does not fail
        columns = {column["name"] for column in inspect(engine).get_columns("feedback")}
        assert {column.name for column in feedback.columns} <= columns
        assert {"audit", "issued_cards"} <= set(inspect(engine).get_table_names())
        store = Store(engine)
        assert [r["outcome"] for r in store.feedback_for_card("old-card")] == ["accepted"]
        assert store.feedback_for_card("old-card")[0]["issuer"] is None
        store.add_feedback("radioelement-order-sign", [
            {"card": "new-card", "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z",
             "overrideReason": {"userComment": "not applicable"}}], issuer="https://ehr.example.org")
        assert store.feedback_for_card("new-card")[0]["issuer"] == "https://ehr.example.org"
    finally:
        engine.dispose()


def test_two_replicas_migrating_at_once_both_start(db_url):
    """compose starts both replicas together on an empty database: neither may crash."""
    engines = [make_engine(db_url) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def start(engine) -> None:
        try:
            barrier.wait(timeout=10)
            migrate(engine)
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append(error)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert set(metadata.tables) <= set(inspect(engines[0]).get_table_names())
    finally:
        for engine in engines:
            engine.dispose()


def test_jti_replay_cache_is_shared_between_replicas(db_url):
    replay = pytest.importorskip("cds_service.security.replay")
    engines = [make_engine(db_url) for _ in range(2)]
    try:
        caches = [replay.ReplayCache(engine, metadata=MetaData()) for engine in engines]
        expires = time.time() + 300
        caches[0].register("https://ehr.example.org", "jti-1", expires)
        with pytest.raises(replay.ReplayDetected):
            caches[1].register("https://ehr.example.org", "jti-1", expires)
        caches[1].register("https://other.example.org", "jti-1", expires)
        assert caches[0].seen("https://other.example.org", "jti-1")
        # An expired use no longer blocks the jti, and purge removes it.
        caches[0].register("https://ehr.example.org", "jti-old", time.time() - 120)
        assert caches[1].purge() >= 1
        assert not caches[0].seen("https://ehr.example.org", "jti-old")
    finally:
        for engine in engines:
            engine.dispose()


def test_app_start_creates_every_table_under_the_migration_lock(db_url):
    """The jti replay table is created by migrate (serialised between replicas), not afterwards."""
    from sqlalchemy import event

    created_outside: list[str] = []
    engine_calls = {"in_migrate": False}
    import cds_service.app as app_module

    real_migrate = app_module.migrate

    def watching_migrate(engine, *args, **kwargs):
        engine_calls["in_migrate"] = True
        try:
            return real_migrate(engine, *args, **kwargs)
        finally:
            engine_calls["in_migrate"] = False

    def before_execute(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("CREATE TABLE") and not engine_calls["in_migrate"]:
            created_outside.append(statement.split("(")[0].strip())

    real_make_engine = app_module.make_engine

    def watched_engine(url, *args):
        engine = real_make_engine(url, *args)
        event.listen(engine, "before_cursor_execute", before_execute)
        return engine

    if "jwt_jti" in metadata.tables:  # as in a fresh process: no app has defined it yet
        metadata.remove(metadata.tables["jwt_jti"])
    app_module.migrate, app_module.make_engine = watching_migrate, watched_engine
    try:
        app = create_app(Settings(database_url=db_url, auth_enabled=True))
    finally:
        app_module.migrate, app_module.make_engine = real_migrate, real_make_engine
    try:
        assert "jwt_jti" in inspect(app.extensions["cds_db"]).get_table_names()
        assert created_outside == []
    finally:
        app.extensions["cds_db"].dispose()
