"""The spool in process (Flask test client), against a PostgreSQL cluster that the tests stop
and start, and against SQLite that is locked or full: nothing acknowledged is lost, nothing is
written twice, no 5xx except the documented 503 + Retry-After."""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.hooks.catalog import SERVICES_BY_ID
from cds_service.storage import spool as spool_module
from cds_service.storage.db import audit, feedback, issued_cards, make_engine, migrate
from cds_service.storage.outbox import Outbox
from cds_service.storage.spool import SpoolFile, decode, encode
from tests.conftest import full_prefetch, therapy_request
from tests.reliability.conftest import BASE, Tokens, feedback_body

SIGN_ID = "radioelement-order-sign"
SIGN = f"/cds-services/{SIGN_ID}"
FEEDBACK = SIGN + "/feedback"


def sign_body() -> dict[str, Any]:
    return therapy_request(prefetch=full_prefetch(list(SERVICES_BY_ID[SIGN_ID].prefetch)))


def counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (audit, issued_cards, feedback)}


def jti_rows(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM jwt_jti")).scalar_one()


@pytest.fixture
def build(tmp_path: Path):
    apps = []

    def make(url: str, **overrides: Any):
        settings = Settings(database_url=url, auth_enabled=False, spool_dir=str(tmp_path / "spool"))
        app = create_app(settings.with_overrides(**overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["cds_outbox"].close()
        app.extensions["cds_db"].dispose()


# -- the file format -----------------------------------------------------------------------------

def test_records_keep_their_types_and_damage_is_detected(tmp_path: Path) -> None:
    when = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=timezone.utc)
    record = {"kind": "call", "audit": {"started_at": when, "decisions": [{"order": "x"}], "duration_ms": 1.5},
              "cards": []}
    line = encode(record)
    assert decode(line[:-1]) == record
    assert decode(line[:-1]).get("audit")["started_at"] == when
    damaged = line[:-1].replace(b"1.5", b"2.5")
    assert decode(damaged) is None  # checksum mismatch


def test_a_line_cut_short_by_a_crash_is_never_read(tmp_path: Path) -> None:
    handle = SpoolFile.create(tmp_path)
    handle.append(encode({"kind": "feedback", "rows": [{"a": 1}]}), 1 << 20)
    os.write(handle.fd, encode({"kind": "feedback", "rows": [{"a": 2}]})[:-7])  # torn write
    lines = list(spool_module.read_lines(handle.fd, 0))
    assert [line.record for line in lines] == [{"kind": "feedback", "rows": [{"a": 1}]}]
    handle.close()


def test_depth_follows_appends_and_flushes(tmp_path: Path) -> None:
    handle = SpoolFile.create(tmp_path)
    line = encode({"kind": "feedback", "rows": [{"a": 1}]})
    for _ in range(3):
        handle.append(line, 1 << 20)
    assert spool_module.depth_of(tmp_path) == (3, 3 * len(line))
    handle.append(line, 1 << 20)  # counted incrementally from where the last count stopped
    assert spool_module.depth_of(tmp_path) == (4, 4 * len(line))
    handle.mark_flushed(2 * len(line), 2)
    assert spool_module.depth_of(tmp_path) == (2, 2 * len(line))
    with pytest.raises(spool_module.SpoolFull):
        handle.append(line, 4 * len(line))  # the bound: the newest is refused, the file unchanged
    assert spool_module.depth_of(tmp_path) == (2, 2 * len(line))
    handle.reset()
    assert spool_module.depth_of(tmp_path) == (0, 0)
    handle.close()


# -- PostgreSQL outage, in process ---------------------------------------------------------------

def test_outage_order_sign_and_feedback_are_spooled_then_stored_exactly_once(build, pg, pg_url, caplog) -> None:
    app = build(pg_url)
    client = app.test_client()
    outbox: Outbox = app.extensions["cds_outbox"]
    engine = make_engine(pg_url)
    before = client.post(SIGN, json=sign_body())
    assert before.status_code == 200

    caplog.set_level(logging.WARNING, logger="cds_service.storage.outbox")
    pg.stop()
    answered, cards = 0, []
    for _ in range(5):
        response = client.post(SIGN, json=sign_body())
        assert response.status_code == 200 and response.get_json()["cards"]  # cards keep coming
        answered += 1
        cards += [card["uuid"] for card in response.get_json()["cards"]]
    acknowledged = client.post(FEEDBACK, json=feedback_body(cards[:4]))
    assert acknowledged.status_code == 200 and acknowledged.get_json() == {"stored": 4}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "degraded"
    assert ready.get_json()["checks"]["spool"]["depth"] == 6  # 5 calls + 1 feedback post
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics").get_data(as_text=True)
    assert "cds_spool_depth 6.0" in metrics
    starts = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(starts) == 1  # one line when the outage starts, not one per call

    pg.start()
    outbox.flush_once()
    assert counts(engine) == {"audit": 6, "issued_cards": len(cards) + len(before.get_json()["cards"]),
                              "feedback": 4}
    assert client.get("/readyz").get_json()["status"] == "ready"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'cds_spool_flushed_total{kind="call"} 5.0' in metrics
    assert 'cds_spool_flushed_total{kind="feedback"} 1.0' in metrics
    assert "cds_spool_depth 0.0" in metrics
    assert len([r for r in caplog.records if "spool drained" in r.getMessage()]) == 1

    engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_second_flush_of_the_same_records_writes_nothing(build, request, tmp_path, backend) -> None:
    if backend == "postgresql":
        pg = request.getfixturevalue("pg")
        url = request.getfixturevalue("pg_url")
        outage, back = pg.stop, pg.start
    else:
        url = f"sqlite:///{tmp_path / 'cds.sqlite3'}"
        blocker = sqlite3.connect(tmp_path / "cds.sqlite3", timeout=0, isolation_level=None)
        outage, back = (lambda: blocker.execute("BEGIN EXCLUSIVE")), (lambda: blocker.execute("ROLLBACK"))
    app = build(url, sqlite_busy_timeout=0.2)
    client = app.test_client()
    outbox: Outbox = app.extensions["cds_outbox"]
    outage()
    response = client.post(SIGN, json=sign_body())
    cards = [card["uuid"] for card in response.get_json()["cards"]]
    assert client.post(FEEDBACK, json=feedback_body(cards)).status_code == 200
    (spooled,) = spool_module.spool_files(outbox.directory)
    copy = spooled.read_bytes()
    back()
    outbox.flush_once()
    engine = make_engine(url)
    first = counts(engine)
    assert first == {"audit": 1, "issued_cards": len(cards), "feedback": len(cards)}
    # The same bytes again, as if the process had crashed after the commit, before noting its
    # position: the spool file of an exited process, claimed and flushed, changes nothing.
    (outbox.directory / "spool-1-replayed.jsonl").write_bytes(copy)
    assert outbox.flush_once() == 2
    assert counts(engine) == first
    assert all(path.stat().st_size == 0 for path in spool_module.spool_files(outbox.directory))
    engine.dispose()


def test_the_spool_of_an_exited_process_is_flushed_by_the_next_one(tmp_path, pg, pg_url) -> None:
    """A process spools during an outage and dies (os._exit, no clean-up); the next start flushes."""
    directory = tmp_path / "spool"
    script = textwrap.dedent(f"""
        import os
        from datetime import datetime, timezone
        from cds_service.storage.db import make_engine
        from cds_service.storage.outbox import Outbox
        outbox = Outbox(make_engine({pg_url!r}), {str(directory)!r})
        now = datetime.now(timezone.utc)
        outbox.report_outage(RuntimeError("test"))
        outbox.record_call({{"hook_instance": "h-dead", "service_id": "s", "hook": "order-sign", "status": 200,
                            "started_at": now, "duration_ms": 1.0}},
                           [{{"card_uuid": "c-dead", "hook_instance": "h-dead", "service_id": "s", "issued_at": now}}])
        os._exit(0)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    (spooled,) = spool_module.spool_files(directory)
    with open(spooled, "ab") as handle:  # and it died in the middle of writing a second record
        handle.write(encode({"kind": "feedback", "rows": [{"card_uuid": "x"}]})[:40])
    assert spool_module.depth_of(directory)[0] == 1
    engine = make_engine(pg_url)
    migrate(engine)
    outbox = Outbox(engine, directory)
    assert outbox.flush_once() == 1
    assert counts(engine) == {"audit": 1, "issued_cards": 1, "feedback": 0}
    assert spool_module.spool_files(directory) == []
    outbox.close()
    engine.dispose()


def test_spool_full_keeps_the_oldest_refuses_the_newest_and_feedback_gets_503(build, pg, pg_url) -> None:
    app = build(pg_url, spool_max_bytes=6000)
    client = app.test_client()
    pg.stop()
    answered = spooled_feedback = refused_feedback = 0
    cards: list[str] = []
    for _ in range(12):
        response = client.post(SIGN, json=sign_body())
        assert response.status_code == 200  # cards are answered even when the audit row cannot be kept
        answered += 1
        cards += [card["uuid"] for card in response.get_json()["cards"]]
        fb = client.post(FEEDBACK, json=feedback_body(cards[-1:]))
        assert fb.status_code in (200, 503)
        if fb.status_code == 503:
            assert fb.headers["Retry-After"] == "30"
            assert "send it again later" in fb.get_json()["error"]
            refused_feedback += 1
        else:
            spooled_feedback += 1
    assert refused_feedback and spooled_feedback
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'cds_spool_refused_total{kind="feedback"}' in metrics
    assert 'cds_spool_refused_total{kind="call"}' in metrics
    depth = client.get("/readyz").get_json()["checks"]["spool"]["depth"]
    pg.start()
    app.extensions["cds_outbox"].flush_once()
    engine = make_engine(pg_url)
    stored = counts(engine)
    assert stored["feedback"] == spooled_feedback  # every acknowledged item, none refused
    assert stored["audit"] + spooled_feedback == depth  # the oldest records were kept
    engine.dispose()


def test_feedback_gets_503_when_the_spool_disk_is_full(build, pg, pg_url, monkeypatch) -> None:
    app = build(pg_url)
    client = app.test_client()
    pg.stop()

    def no_space(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool_module.os, "write", no_space)
    response = client.post(FEEDBACK, json=feedback_body(["card-1"]))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.post(SIGN, json=sign_body()).status_code == 200


# -- SQLite: locked, full ------------------------------------------------------------------------

def test_sqlite_locked_calls_and_feedback_answer_then_flush(build, tmp_path) -> None:
    path = tmp_path / "cds.sqlite3"
    app = build(f"sqlite:///{path}", sqlite_busy_timeout=0.2)
    client = app.test_client()
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    response = client.post(SIGN, json=sign_body())
    assert response.status_code == 200
    cards = [card["uuid"] for card in response.get_json()["cards"]]
    assert client.post(FEEDBACK, json=feedback_body(cards)).status_code == 200
    assert client.get("/readyz").get_json()["checks"]["spool"]["depth"] == 2
    blocker.execute("ROLLBACK")
    blocker.close()
    app.extensions["cds_outbox"].flush_once()
    assert counts(app.extensions["cds_db"]) == {"audit": 1, "issued_cards": len(cards), "feedback": len(cards)}


def test_sqlite_full_database_is_an_outage_not_a_500(build, tmp_path) -> None:
    path = tmp_path / "cds.sqlite3"
    app = build(f"sqlite:///{path}")
    client = app.test_client()
    engine = app.extensions["cds_db"]
    limit = {"pages": None}

    @event.listens_for(engine, "connect")
    def _cap(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        if limit["pages"]:
            dbapi_connection.execute(f"PRAGMA max_page_count={limit['pages']}")

    with engine.connect() as connection:
        limit["pages"] = connection.execute(text("PRAGMA page_count")).scalar_one()
    engine.dispose()  # new connections get the cap: the database file cannot grow ("disk full")
    statuses = []
    cards: list[str] = []
    calls = 0
    # The capped file still has slack in its last pages (how much depends on the rows a call
    # writes): call until the database is full and records go to the spool, then ten more.
    while calls < 400 and (calls < 20 or app.extensions["cds_outbox"].status()["depth"] < 10):
        calls += 1
        response = client.post(SIGN, json=sign_body())
        statuses.append(response.status_code)
        cards += [card["uuid"] for card in response.get_json()["cards"]]
        statuses.append(client.post(FEEDBACK, json=feedback_body(cards[-1:])).status_code)
    assert set(statuses) == {200}
    assert app.extensions["cds_outbox"].status()["depth"] > 0  # some went to the spool
    limit["pages"] = None
    engine.dispose()
    app.extensions["cds_outbox"].flush_once()
    assert counts(engine) == {"audit": calls, "issued_cards": len(cards), "feedback": calls}


# -- the jti replay check during an outage -------------------------------------------------------

def test_jti_replay_is_refused_during_an_outage_and_caught_up_afterwards(build, pg, pg_url, tokens: Tokens) -> None:
    common = dict(auth_enabled=True, profile="production", public_base_url=BASE,
                  trusted_issuers_path=str(tokens.issuers_file))
    first = build(pg_url, **common)
    second = build(pg_url, **common)  # another worker on the same host (same spool folder)
    engine = make_engine(pg_url)
    pg.stop()
    token = tokens.make(SIGN)
    headers = {"Authorization": f"Bearer {token}"}
    accepted = first.test_client().post(SIGN, json=sign_body(), headers=headers)
    assert accepted.status_code == 200  # order-sign keeps answering with authentication on
    assert first.test_client().post(SIGN, json=sign_body(), headers=headers).status_code == 401
    assert second.test_client().post(SIGN, json=sign_body(), headers=headers).status_code == 401
    pg.start()
    first.extensions["cds_outbox"].flush_once()
    assert jti_rows(engine) == 1  # the spool caught the replay cache up
    second.extensions["cds_outbox"].flush_once()
    # once in the database, a replay is refused by the database check (any replica)
    third = build(pg_url, **dict(common, spool_dir=str(Path(first.extensions["cds_outbox"].directory).parent / "other")))
    assert third.test_client().post(SIGN, json=sign_body(), headers=headers).status_code == 401
    fresh = {"Authorization": f"Bearer {tokens.make(SIGN)}"}
    assert third.test_client().post(SIGN, json=sign_body(), headers=fresh).status_code == 200
    engine.dispose()


def test_jti_check_fails_closed_with_503_when_nothing_can_be_kept(build, pg, pg_url, tokens: Tokens) -> None:
    app = build(pg_url, auth_enabled=True, profile="production", public_base_url=BASE,
                trusted_issuers_path=str(tokens.issuers_file), spool_max_bytes=65536)
    app.extensions["cds_outbox"].max_bytes = 10  # no record fits
    pg.stop()
    token = tokens.make(SIGN)
    response = app.test_client().post(SIGN, json=sign_body(), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"].startswith("the token replay check is unavailable")
    pg.start()
    app.extensions["cds_outbox"].flush_once()  # the flusher finds the database back
    # the refused token was not remembered: sending it again once the database is back works
    again = app.test_client().post(SIGN, json=sign_body(), headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200
