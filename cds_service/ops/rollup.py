"""Per-day aggregates of past days, kept so the dashboard need not rescan a million audit rows.

A day's aggregate is computed by the same SQL as a live one, for that day only, and stored in
``dashboard_rollup`` (per source table, service scope and UTC day). Today is always counted live.
A stored day is dropped again when rows for it arrive later: every table read has an increasing
``id``, and each render first looks at the rows whose id is past the last one it saw (an index
range on the primary key, cheap), and for ten minutes again at lower ids that were missing then
(a transaction that committed late). A day that rows changed while it was being computed is used
for that render but not stored. A retention purge clears the stored days before the oldest
remaining row; after any other deletion from the source tables, call :func:`clear`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Sequence

from sqlalchemy import JSON, BigInteger, Column, Date, DateTime, String, Table, and_, delete, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from cds_service.storage.db import audit, feedback, issued_cards, metadata

ALL_SERVICES = "*"
LIVE_DAYS = 1  # today: still being written, never stored
PENDING_FOR = timedelta(minutes=10)  # how long a missing id is looked for again
MAX_PENDING = 1_000  # missing ids tracked at most (rolled-back inserts leave gaps too)
ROLLUP_LOCK_KEY = 7_775_077_751

rollup = Table(
    "dashboard_rollup",
    metadata,
    Column("source", String(16), primary_key=True),
    Column("scope", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("payload", JSON, nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
)

rollup_mark = Table(
    "dashboard_rollup_mark",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("last_id", BigInteger, nullable=False),
    Column("pending", JSON, nullable=True),
)

Payload = dict[str, Any]
Compute = Callable[[Connection, datetime, datetime, "str | None"], dict[date, Payload]]


@dataclass(frozen=True)
class Watch:
    """A table whose new rows make days of a source stale; ``rows`` selects (id, day) of the rows
    that match a condition on the table's id."""

    name: str
    table: Table
    rows: Callable[[str, Any], Any]  # (dialect, id condition) -> SELECT id, day ...


def _day(column: Any, dialect: str) -> Any:
    return func.date(func.timezone("UTC", column)) if dialect == "postgresql" else func.date(column)


def _as_day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


WATCHES: dict[str, tuple[Watch, ...]] = {
    "audit": (Watch("audit", audit, lambda dialect, condition: select(audit.c.id, _day(audit.c.started_at, dialect))
                    .where(condition)),),
    "feedback": (
        Watch("feedback", feedback, lambda dialect, condition: select(
            feedback.c.id, _day(feedback.c.outcome_timestamp, dialect)).where(condition)),
        # a card recorded after its feedback arrived (the audit write was spooled) changes that day
        Watch("issued_cards", issued_cards, lambda dialect, condition: select(
            issued_cards.c.id, _day(feedback.c.outcome_timestamp, dialect))
            .select_from(issued_cards.outerjoin(feedback, feedback.c.card_uuid == issued_cards.c.card_uuid))
            .where(condition)),
    ),
}
OLDEST: dict[str, Any] = {"audit": audit.c.started_at, "feedback": feedback.c.outcome_timestamp}


@dataclass
class Mark:
    """The last id seen in a table, and the lower ids that were missing then (a transaction that
    had not committed yet, or one rolled back), looked at again until they are old."""

    last_id: int
    pending: dict[str, str]  # id -> when first missed (ISO), JSON-friendly

    def condition(self, table: Table) -> Any:
        ids = [int(key) for key in self.pending]
        newer = table.c.id > self.last_id
        return or_(newer, table.c.id.in_(ids)) if ids else newer


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROLLUP_LOCK_KEY})


def _marks(connection: Connection) -> dict[str, Mark]:
    return {row.source: Mark(int(row.last_id), dict(row.pending or {})) for row in connection.execute(select(rollup_mark))}


def _touched(connection: Connection, watch: Watch, mark: Mark) -> tuple[set[date], set[int]]:
    days: set[date] = set()
    ids: set[int] = set()
    for row_id, day in connection.execute(watch.rows(connection.dialect.name, mark.condition(watch.table))):
        ids.add(int(row_id))
        if day is not None:  # a card nobody has sent feedback about yet changes no day
            days.add(_as_day(day))
    return days, ids


def invalidate(engine: Engine, source: str) -> dict[str, Mark]:
    """Drop the stored days that rows written since the last look have changed; returns the
    marks that a later store checks again."""
    now = datetime.now(timezone.utc)
    with engine.begin() as connection:
        _lock(connection)
        marks = _marks(connection)
        for watch in WATCHES[source]:
            newest = int(connection.execute(select(func.max(watch.table.c.id))).scalar() or 0)
            mark = marks.get(watch.name)
            if mark is None:  # first look: nothing stored can be trusted; recent gaps may be late commits
                connection.execute(delete(rollup).where(rollup.c.source == source))
                floor = max(0, newest - MAX_PENDING)
                present = {int(i) for (i,) in connection.execute(select(watch.table.c.id).where(watch.table.c.id > floor))}
                mark = Mark(newest, {str(i): now.isoformat() for i in range(floor + 1, newest + 1) if i not in present})
                connection.execute(rollup_mark.insert().values(source=watch.name, last_id=newest, pending=mark.pending))
            else:
                days, seen_ids = _touched(connection, watch, mark)
                if days:
                    connection.execute(delete(rollup).where(and_(rollup.c.source == source, rollup.c.day.in_(days))))
                pending = {key: when for key, when in mark.pending.items()
                           if int(key) not in seen_ids and now - datetime.fromisoformat(when) < PENDING_FOR}
                top = max(newest, mark.last_id)
                missing = set(range(max(mark.last_id, top - MAX_PENDING) + 1, top + 1)) - seen_ids
                pending.update({str(key): now.isoformat() for key in missing})
                pending = dict(sorted(pending.items(), key=lambda item: int(item[0]))[-MAX_PENDING:])
                mark = Mark(top, pending)
                connection.execute(rollup_mark.update().where(rollup_mark.c.source == watch.name)
                                   .values(last_id=mark.last_id, pending=mark.pending))
            marks[watch.name] = mark
        oldest = connection.execute(select(func.min(OLDEST[source]))).scalar()
        if oldest is not None:
            first = _as_day(oldest.astimezone(timezone.utc) if isinstance(oldest, datetime) and oldest.tzinfo
                            else oldest)
            connection.execute(delete(rollup).where(and_(rollup.c.source == source, rollup.c.day < first)))
        return {watch.name: marks[watch.name] for watch in WATCHES[source]}


def _tune(connection: Connection) -> None:
    """Day-sized queries on a busy server: PostgreSQL's JIT compilation (set off by the row
    estimates of JSON unpacking) and parallel-worker start-up each cost more than the query."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL jit = off"))
        connection.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, timezone.utc)


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """Consecutive days as [first, last] runs, so each run is one range query."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def per_day(engine: Engine, source: str, first: date, last: date, service: str | None, compute: Compute,
            today: date | None = None) -> dict[date, Payload]:
    """The payload of every day in [first, last] that has rows: stored days read back, missing
    settled days computed and stored, the live days computed."""
    today = today or datetime.now(timezone.utc).date()
    scope = service or ALL_SERVICES
    settled_last = min(last, today - timedelta(days=LIVE_DAYS))
    out: dict[date, Payload] = {}
    marks = invalidate(engine, source) if first <= settled_last else {}
    if first <= settled_last:
        with engine.connect() as connection:
            stored = connection.execute(select(rollup.c.day, rollup.c.payload).where(and_(
                rollup.c.source == source, rollup.c.scope == scope, rollup.c.day >= first,
                rollup.c.day <= settled_last)))
            found = {_as_day(row.day): row.payload for row in stored}
        missing = [first + timedelta(days=n) for n in range((settled_last - first).days + 1)
                   if first + timedelta(days=n) not in found]
        computed: dict[date, Payload] = {}
        with engine.connect() as connection:
            _tune(connection)
            for run_first, run_last in _runs(missing):
                computed.update(compute(connection, _midnight(run_first), _midnight(run_last + timedelta(days=1)),
                                        service))
        if missing:
            _store(engine, source, scope, {day: computed.get(day, {}) for day in missing}, marks)
        out.update({day: payload for day, payload in found.items() if payload})
        out.update({day: payload for day, payload in computed.items() if payload})
    live_first = max(first, settled_last + timedelta(days=1))
    if live_first <= last:
        with engine.connect() as connection:
            _tune(connection)
            out.update(compute(connection, _midnight(live_first), _midnight(last + timedelta(days=1)), service))
    return out


def _store(engine: Engine, source: str, scope: str, payloads: dict[date, Payload], marks: dict[str, Mark]) -> None:
    """Keep the computed days, except those that rows written since the marks may have changed."""
    now = datetime.now(timezone.utc)
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as connection:
        _lock(connection)
        touched: set[date] = set()
        for watch in WATCHES[source]:
            touched |= _touched(connection, watch, marks[watch.name])[0]
        rows = [{"source": source, "scope": scope, "day": day, "payload": payload, "computed_at": now}
                for day, payload in payloads.items() if day not in touched]
        if rows:
            connection.execute(insert(rollup).on_conflict_do_nothing(), rows)


def clear(engine: Engine) -> None:
    """Forget every stored day (after deleting source rows other than a retention purge)."""
    with engine.begin() as connection:
        connection.execute(delete(rollup))
        connection.execute(delete(rollup_mark))
