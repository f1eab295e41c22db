"""The prepared-statement writer stores exactly what ``insert(audit)`` stored before it.

Rows written both ways on SQLite and PostgreSQL (a throwaway cluster, skipped where initdb is
missing) are read back column by column, raw and through SQLAlchemy; a duplicate card uuid is
still ignored, and a failed write leaves neither the row nor its cards.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

from cds_service.storage.db import audit, insert_ignoring_duplicates, issued_cards, make_engine, migrate
from cds_service.storage.direct import DirectWriter


def audit_rows() -> list[dict[str, Any]]:
    started = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone.utc)
    full = {
        "hook_instance": "", "service_id": "radioelement-order-sign", "hook": "order-sign", "status": 200,
        "started_at": started, "duration_ms": 3.25, "fetch_ms": 0.5, "engine_ms": 2.0, "issuer": "https://ehr.example",
        "fetched_keys": ["observations"], "unavailable_keys": [], "decisions": [{"order": "ServiceRequest/a",
                                                                               "recommendedCode": {"code": "77750"}}],
        "error": None, "knowledge_version": "2025.2", "decision_count": 1, "recommended_codes": ["77750"],
        "documentation_gaps": None, "card_types": ["code", "patient-explanation"], "checks_unavailable": False,
    }
    refused = {  # a refused call: no outcome, so the JSON columns get None, and a local time
        **full, "status": 422, "started_at": datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        "fetch_ms": None, "engine_ms": None, "issuer": None, "fetched_keys": None, "unavailable_keys": None,
        "decisions": None, "error": "invalid FHIR: x", "decision_count": None, "recommended_codes": None,
        "card_types": None, "checks_unavailable": None, "knowledge_version": None,
    }
    sparse = {key: full[key] for key in ("hook_instance", "service_id", "status", "started_at", "duration_ms")}
    sparse["not_a_column"] = "ignored"
    return [full, refused, sparse, {**full, "checks_unavailable": True, "documentation_gaps": ["ecog"]}]


def card_rows(instance: str) -> list[dict[str, Any]]:
    now = datetime(2026, 3, 1, 12, 30, 6, tzinfo=timezone.utc)
    return [
        {"card_uuid": str(uuid.uuid4()), "hook_instance": instance, "service_id": "radioelement-order-sign",
         "card_type": "code", "indicator": "info", "recommended_code": "77750", "knowledge_version": "2025.2",
         "issued_at": now},
        {"card_uuid": str(uuid.uuid4()), "hook_instance": instance, "service_id": "radioelement-order-sign",
         "card_type": None, "indicator": "warning", "recommended_code": None, "knowledge_version": None,
         "issued_at": now},
    ]


def sqlalchemy_write(engine: Engine, row: dict[str, Any], cards: list[dict[str, Any]]) -> None:
    """What the outbox did before the direct writer (storage/outbox.py, _apply_call)."""
    with engine.begin() as connection:
        connection.execute(insert(audit), [{key: value for key, value in row.items() if key in audit.c}])
        if cards:
            connection.execute(insert_ignoring_duplicates(connection, issued_cards), cards)


def stored(engine: Engine, table: Any, instance: str) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        rows = connection.execute(select(table).where(table.c.hook_instance == instance).order_by(table.c.id))
        return [tuple(row)[1:] for row in rows]  # without the id


def compare(engine: Engine) -> None:
    writer = DirectWriter(engine)
    for row in audit_rows():
        cards = card_rows("")
        first, second = dict(row, hook_instance=str(uuid.uuid4())), dict(row, hook_instance=str(uuid.uuid4()))
        sqlalchemy_write(engine, first, [dict(card, hook_instance=first["hook_instance"]) for card in cards])
        writer.write_call(second, [dict(card, hook_instance=second["hook_instance"],
                                        card_uuid=card["card_uuid"] + "-d") for card in cards])
        old, new = stored(engine, audit, first["hook_instance"]), stored(engine, audit, second["hook_instance"])
        assert [r[1:] for r in old] == [r[1:] for r in new]  # all but hook_instance
        old_cards = [r[2:] for r in stored(engine, issued_cards, first["hook_instance"])]
        new_cards = [r[2:] for r in stored(engine, issued_cards, second["hook_instance"])]
        assert old_cards == new_cards and len(new_cards) == 2


def test_sqlite_rows_are_the_same_as_sqlalchemy_stored_them(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    compare(engine)
    # and the raw text in the file is the same too (what other readers, e.g. reports in SQL, see)
    raw = sqlite3.connect(path)
    texts = raw.execute("SELECT started_at, fetched_keys, decisions, checks_unavailable FROM audit ORDER BY id").fetchall()
    assert texts[0] == texts[1] and texts[2] == texts[3] and texts[4] == texts[5]
    assert texts[2][1] == "null" and texts[4][1] is None  # JSON null for None, SQL NULL for a column left out
    engine.dispose()


def test_postgresql_rows_are_the_same_as_sqlalchemy_stored_them(pg_url: str) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    compare(engine)
    engine.dispose()


def test_a_duplicate_card_is_ignored_and_a_failed_write_keeps_nothing(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.sqlite3'}")
    migrate(engine)
    writer = DirectWriter(engine)
    row = dict(audit_rows()[0], hook_instance="one")
    cards = card_rows("one")
    writer.write_call(row, cards)
    writer.write_call(dict(row, hook_instance="two"), [dict(card, hook_instance="two") for card in cards])
    assert len(stored(engine, audit, "two")) == 1 and stored(engine, issued_cards, "two") == []
    broken = dict(row, hook_instance="three", status=None)  # NOT NULL: the row fails
    with pytest.raises(Exception):
        writer.write_call(broken, card_rows("three"))
    assert stored(engine, audit, "three") == [] and stored(engine, issued_cards, "three") == []
    writer.write_call(dict(row, hook_instance="four"), card_rows("four"))  # the connection is usable again
    assert len(stored(engine, issued_cards, "four")) == 2
    engine.dispose()


def test_commits_leave_checkpoints_to_the_background_thread(tmp_path: Path) -> None:
    """With background checkpoints no commit checkpoints the WAL (the slow, syncing step that
    took 20-40 ms inside one call in a hundred); the writer's thread does it within seconds."""
    import shutil
    import time

    path = tmp_path / "a.sqlite3"
    engine = make_engine(f"sqlite:///{path}", 5.0, True)
    migrate(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    writer = DirectWriter(engine)
    assert writer._checkpointer is not None
    writer._checkpointer.interval = 0.2
    for number in range(300):
        writer.write_call(dict(audit_rows()[0], hook_instance=f"c{number}"), card_rows(f"c{number}"))

    def rows_in_main_file() -> int:
        copy = tmp_path / "copy.sqlite3"
        shutil.copyfile(path, copy)  # the main file alone, without its -wal
        try:
            return int(sqlite3.connect(copy).execute("SELECT count(*) FROM audit").fetchone()[0])
        except sqlite3.DatabaseError:
            return 0

    deadline = time.monotonic() + 10
    while rows_in_main_file() < 300 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rows_in_main_file() == 300
    engine.dispose()
