"""Aggregates of the audit trail for the performance dashboard: volume, codes, documentation gaps,
checks that could not run, answer times and knowledge versions, per UTC day.

Everything is counted in SQL (a handful of grouped scans, whatever the table size); Python only
rolls days up into weeks and totals. Only codes, keys and counts leave the database: no patient
or order ids, no free text.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import DateTime, and_, bindparam, case, func, select, text
from sqlalchemy.engine import Connection, Engine

from cds_service.ops.report import as_day, day_expression, week_of
from cds_service.storage.db import audit

ANSWERED = 200  # answer times are those of answered calls; a refusal's speed says nothing


@dataclass
class DayStats:
    day: date
    calls: int = 0
    answered: int = 0
    refused: int = 0
    decisions: int = 0
    checks_unavailable: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "calls": self.calls,
            "answered": self.answered,
            "refused": self.refused,
            "decisions": self.decisions,
            "checks_unavailable": self.checks_unavailable,
            "checks_unavailable_rate": _rate(self.checks_unavailable, self.answered),
            "p50_ms": _ms(self.p50_ms),
            "p95_ms": _ms(self.p95_ms),
        }


@dataclass
class AuditStats:
    """The dashboard's audit aggregates for one date range and service filter."""

    days: list[DayStats] = field(default_factory=list)
    codes: dict[tuple[date, str], int] = field(default_factory=dict)
    gaps: dict[tuple[date, str], int] = field(default_factory=dict)
    unavailable_keys: dict[str, int] = field(default_factory=dict)
    versions: list[dict[str, Any]] = field(default_factory=list)
    with_decisions: int = 0  # answered calls with at least one therapy decision

    @property
    def calls(self) -> int:
        return sum(day.calls for day in self.days)

    @property
    def answered(self) -> int:
        return sum(day.answered for day in self.days)

    @property
    def decisions(self) -> int:
        return sum(day.decisions for day in self.days)

    def code_totals(self) -> list[dict[str, Any]]:
        totals = _sum_by_key(self.codes)
        whole = sum(totals.values())
        return [{"recommended_code": code, "decisions": n, "share": _rate(n, whole)} for code, n in _ranked(totals)]

    def gap_totals(self) -> list[dict[str, Any]]:
        totals = _sum_by_key(self.gaps)
        return [{"documentation_key": key, "calls": n, "share_of_calls_with_decisions": _rate(n, self.with_decisions)}
                for key, n in _ranked(totals)]

    def gaps_by_week(self) -> list[dict[str, Any]]:
        weekly: dict[tuple[str, str], int] = defaultdict(int)
        for (day, key), n in self.gaps.items():
            weekly[(week_of(day).isoformat(), key)] += n
        return [{"week": week, "documentation_key": key, "calls": n} for (week, key), n in sorted(weekly.items())]

    def unavailable_totals(self) -> list[dict[str, Any]]:
        whole = sum(day.checks_unavailable for day in self.days)
        return [{"prefetch_key": key, "calls": n, "share_of_calls_with_checks_unavailable": _rate(n, whole)}
                for key, n in _ranked(self.unavailable_keys)]

    def current_version(self) -> str | None:
        """The version that answered the latest call in the range."""
        return max(self.versions, key=lambda row: row["last_seen"])["knowledge_version"] if self.versions else None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def _sum_by_key(cells: dict[tuple[date, str], int]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for (_, key), n in cells.items():
        totals[key] += n
    return dict(totals)


def _ranked(totals: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def percentile_cont(ordered: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks: PostgreSQL's ``percentile_cont``, for SQLite."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _range_condition(start: datetime, end: datetime, service: str | None) -> Any:
    condition = and_(audit.c.started_at >= start, audit.c.started_at < end)
    return and_(condition, audit.c.service_id == service) if service else condition


def _unnest(connection: Connection, column: str, start: datetime, end: datetime, service: str | None,
            only_if: str | None = None, by_day: bool = True) -> Iterable[Any]:
    """``(day, element, count)`` for a JSON list column, counting each listed element once per row.

    Table-valued functions in FROM are lateral on both backends; rows whose list is NULL are
    skipped before anything is unpacked.
    """
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        jsonb = column in ("recommended_codes", "documentation_gaps", "card_types")
        function = "jsonb_array_elements_text" if jsonb else "json_array_elements_text"
        day = "date(timezone('UTC', a.started_at))"
        element = f"{function}(a.{column}) AS e(value)"
    else:
        day = "date(a.started_at)"
        element = f"json_each(a.{column}) AS e"
    filters = [f"a.{column} IS NOT NULL", "a.started_at >= :start", "a.started_at < :end"]
    if service:
        filters.append("a.service_id = :service")
    if only_if:
        filters.append(only_if)
    day_select = f"{day} AS day, " if by_day else ""
    group = "day, e.value" if by_day else "e.value"
    statement = text(
        f"SELECT {day_select}e.value AS value, count(*) AS n FROM audit AS a, {element} "
        f"WHERE {' AND '.join(filters)} GROUP BY {group}"
    ).bindparams(bindparam("start", type_=DateTime(timezone=True)), bindparam("end", type_=DateTime(timezone=True)))
    params: dict[str, Any] = {"start": start, "end": end}
    if service:
        params["service"] = service
    return connection.execute(statement, params)


def audit_stats(engine: Engine, start: datetime, end: datetime, service: str | None = None) -> AuditStats:
    """Aggregate the audit rows whose call started in [start, end), optionally of one service."""
    dialect = engine.dialect.name
    postgres = dialect == "postgresql"
    condition = _range_condition(start, end, service)
    day = day_expression(audit.c.started_at, dialect).label("day")
    answered = audit.c.status == ANSWERED
    columns = [
        day,
        func.count().label("calls"),
        func.count().filter(answered).label("answered") if postgres
        else func.sum(case((answered, 1), else_=0)).label("answered"),
        func.sum(case((audit.c.status >= 400, 1), else_=0)).label("refused"),
        func.coalesce(func.sum(audit.c.decision_count), 0).label("decisions"),
        func.sum(case((audit.c.decision_count > 0, 1), else_=0)).label("with_decisions"),
        func.sum(case((audit.c.checks_unavailable.is_(True), 1), else_=0)).label("checks_unavailable"),
    ]
    if postgres:
        columns += [
            func.percentile_cont(0.5).within_group(audit.c.duration_ms).filter(answered).label("p50"),
            func.percentile_cont(0.95).within_group(audit.c.duration_ms).filter(answered).label("p95"),
        ]
    stats = AuditStats()
    with engine.connect() as connection:
        days: dict[date, DayStats] = {}
        with_decisions = 0
        for row in connection.execute(select(*columns).where(condition).group_by(day).order_by(day)):
            current = DayStats(as_day(row.day), int(row.calls), int(row.answered or 0), int(row.refused or 0),
                               int(row.decisions or 0), int(row.checks_unavailable or 0))
            if postgres:
                current.p50_ms, current.p95_ms = row.p50, row.p95
            with_decisions += int(row.with_decisions or 0)
            days[current.day] = current
        if not postgres:  # SQLite has no ordered-set aggregates: the same interpolation, in Python
            durations: dict[date, list[float]] = defaultdict(list)
            statement = (select(day, audit.c.duration_ms).where(and_(condition, answered))
                         .order_by(day, audit.c.duration_ms))
            for row in connection.execute(statement):
                durations[as_day(row.day)].append(float(row.duration_ms))
            for key, values in durations.items():
                days[key].p50_ms = percentile_cont(values, 0.5)
                days[key].p95_ms = percentile_cont(values, 0.95)
        stats.days = [days[key] for key in sorted(days)]
        stats.with_decisions = with_decisions
        stats.codes = {(as_day(r.day), str(r.value)): int(r.n)
                       for r in _unnest(connection, "recommended_codes", start, end, service)}
        stats.gaps = {(as_day(r.day), str(r.value)): int(r.n)
                      for r in _unnest(connection, "documentation_gaps", start, end, service)}
        stats.unavailable_keys = {str(r.value): int(r.n) for r in _unnest(
            connection, "unavailable_keys", start, end, service, only_if="a.checks_unavailable", by_day=False)}
        version = func.coalesce(audit.c.knowledge_version, "(unrecorded)").label("version")
        statement = (select(version, func.count().label("calls"), func.min(audit.c.started_at).label("first"),
                            func.max(audit.c.started_at).label("last"))
                     .where(condition).group_by(version))
        stats.versions = sorted(
            ({"knowledge_version": row.version, "calls": int(row.calls),
              "first_seen": _utc_text(row.first), "last_seen": _utc_text(row.last)}
             for row in connection.execute(statement)),
            key=lambda item: item["first_seen"],
        )
    return stats


def _utc_text(value: Any) -> str:
    """A timestamp as ISO text in UTC, minutes only (what a reader needs, and no more)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M") + " UTC"
