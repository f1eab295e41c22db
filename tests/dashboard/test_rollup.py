"""Stored per-day aggregates (dashboard_rollup): read back on the next render, dropped when rows
for a stored day arrive later (new ids, a late commit below the last id seen, a card recorded
after its feedback), never kept for today; the numbers always equal a live count."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, insert, select, update

from cds_service.ops import rollup
from cds_service.ops.audit_stats import audit_stats
from cds_service.ops.report import build_report
from cds_service.storage.db import audit, feedback, issued_cards, make_engine
from tests.dashboard.seed import FIRST_DAY, SIGN

START, END = FIRST_DAY, FIRST_DAY + timedelta(days=21)
DAY = FIRST_DAY.date() + timedelta(days=4)


def _calls(stats, day: date) -> int:
    return next((d.calls for d in stats.days if d.day == day), 0)


def _audit_row(**values):
    row = {"hook_instance": "late", "service_id": SIGN, "hook": "order-sign", "status": 200,
           "started_at": datetime.combine(DAY, datetime.min.time(), timezone.utc) + timedelta(hours=9),
           "duration_ms": 12.0, "decision_count": 1, "recommended_codes": ["79101"], "knowledge_version": "2026.1"}
    row.update(values)
    return row


def test_stored_days_are_read_back_and_dropped_by_later_rows(seeded_url: str) -> None:
    engine = make_engine(seeded_url)
    try:
        live = audit_stats(engine, START, END)
        first = audit_stats(engine, START, END, stored=True)
        assert [d.as_dict() for d in first.days] == [d.as_dict() for d in live.days]
        with engine.connect() as connection:
            stored = connection.execute(select(func.count()).select_from(rollup.rollup)
                                        .where(rollup.rollup.c.source == "audit")).scalar_one()
        assert stored == 21  # every day of the range, empty ones too
        # Proof that the next render reads the store: doctor one stored day.
        with engine.begin() as connection:
            payload = connection.execute(select(rollup.rollup.c.payload).where(
                rollup.rollup.c.source == "audit", rollup.rollup.c.scope == "*", rollup.rollup.c.day == DAY)).scalar_one()
            connection.execute(update(rollup.rollup).where(
                rollup.rollup.c.source == "audit", rollup.rollup.c.scope == "*", rollup.rollup.c.day == DAY)
                .values(payload={**payload, "calls": 999}))
        assert _calls(audit_stats(engine, START, END, stored=True), DAY) == 999
        # A row for that day arrives late (the spool): the stored day is dropped and recounted.
        with engine.begin() as connection:
            connection.execute(insert(audit), [_audit_row()])
        again = audit_stats(engine, START, END, stored=True)
        assert _calls(again, DAY) == _calls(live, DAY) + 1
        assert [d.as_dict() for d in again.days] == [d.as_dict() for d in audit_stats(engine, START, END).days]
    finally:
        engine.dispose()


def test_a_late_commit_below_the_last_id_seen_is_caught(seeded_url: str) -> None:
    engine = make_engine(seeded_url)
    try:
        with engine.connect() as connection:
            top = connection.execute(select(func.max(audit.c.id))).scalar_one()
        # id top+1 is taken but not committed yet; top+2 commits first
        with engine.begin() as connection:
            connection.execute(insert(audit), [_audit_row(id=top + 2, hook_instance="first",
                                                          started_at=datetime(2026, 11, 20, 9, tzinfo=timezone.utc))])
        before = audit_stats(engine, START, END, stored=True)
        with engine.begin() as connection:
            connection.execute(insert(audit), [_audit_row(id=top + 1, hook_instance="slow")])
        after = audit_stats(engine, START, END, stored=True)
        assert _calls(after, DAY) == _calls(before, DAY) + 1
    finally:
        engine.dispose()


def test_a_card_recorded_after_its_feedback_updates_that_day(seeded_url: str) -> None:
    engine = make_engine(seeded_url)
    moment = datetime.combine(DAY, datetime.min.time(), timezone.utc) + timedelta(hours=15)
    try:
        with engine.begin() as connection:
            connection.execute(insert(feedback), [{"service_id": SIGN, "card_uuid": "spooled-card", "outcome": "accepted",
                                                   "outcome_timestamp": moment, "received_at": moment}])
        before = build_report(engine, START, END, stored=True)
        unknown = {r["card_type"]: r["feedback"] for r in before["by_card_type"]}["(unknown card)"]
        with engine.begin() as connection:  # the audit write reaches the database after the feedback
            connection.execute(insert(issued_cards), [{"card_uuid": "spooled-card", "hook_instance": "h", "service_id": SIGN,
                                                       "card_type": "edit", "recommended_code": "79101",
                                                       "knowledge_version": "2026.1", "issued_at": moment}])
        after = build_report(engine, START, END, stored=True)
        assert {r["card_type"]: r["feedback"] for r in after["by_card_type"]}["(unknown card)"] == unknown - 1
        assert after == build_report(engine, START, END)
    finally:
        engine.dispose()


def test_today_is_never_stored(seeded_url: str) -> None:
    engine = make_engine(seeded_url)
    today = datetime.now(timezone.utc).date()
    try:
        with engine.begin() as connection:
            connection.execute(insert(audit), [_audit_row(started_at=datetime.now(timezone.utc))])
        start = datetime.combine(today - timedelta(days=2), datetime.min.time(), timezone.utc)
        stats = audit_stats(engine, start, start + timedelta(days=3), stored=True)
        assert _calls(stats, today) == 1
        with engine.connect() as connection:
            days = {rollup._as_day(d) for (d,) in connection.execute(select(rollup.rollup.c.day))}
        assert today not in days and today - timedelta(days=1) in days
    finally:
        engine.dispose()
