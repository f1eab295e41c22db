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
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from sqlalchemy import DateTime, and_, bindparam, case, func, select, text
from sqlalchemy.engine import Connection, Engine

from cds_service.ops import rollup
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
            only_if: str | None = None) -> Iterable[Any]:
    """``(day, element, count)`` for a JSON list column, counting each listed element once per row.

    Table-valued functions in FROM are lateral on both backends; rows whose list is NULL are
    skipped before anything is unpacked.
    """
    if connection.dialect.name == "postgresql":
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
    statement = text(
        f"SELECT {day} AS day, e.value AS value, count(*) AS n FROM audit AS a, {element} "
        f"WHERE {' AND '.join(filters)} GROUP BY {day}, e.value"
    ).bindparams(bindparam("start", type_=DateTime(timezone=True)), bindparam("end", type_=DateTime(timezone=True)))
    params: dict[str, Any] = {"start": start, "end": end}
    if service:
        params["service"] = service
    return connection.execute(statement, params)


def day_payloads(connection: Connection, start: datetime, end: datetime, service: str | None) -> dict[date, dict[str, Any]]:
    """Every aggregate of the audit rows in [start, end), per UTC day, as JSON-ready payloads
    (what :mod:`cds_service.ops.rollup` stores for a settled day)."""
    dialect = connection.dialect.name
    postgres = dialect == "postgresql"
    condition = _range_condition(start, end, service)
    day = day_expression(audit.c.started_at, dialect).label("day")
    answered = audit.c.status == ANSWERED
    columns = [
        day,
        func.count().label("calls"),
        func.sum(case((answered, 1), else_=0)).label("answered"),
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
    out: dict[date, dict[str, Any]] = {}

    def payload(key: Any) -> dict[str, Any]:
        return out.setdefault(as_day(key), {"codes": {}, "gaps": {}, "unavailable": {}, "versions": {}})

    for row in connection.execute(select(*columns).where(condition).group_by(day)):
        payload(row.day).update({
            "calls": int(row.calls), "answered": int(row.answered or 0), "refused": int(row.refused or 0),
            "decisions": int(row.decisions or 0), "with_decisions": int(row.with_decisions or 0),
            "checks_unavailable": int(row.checks_unavailable or 0),
            "p50_ms": row.p50 if postgres else None, "p95_ms": row.p95 if postgres else None,
        })
    if not postgres:  # SQLite has no ordered-set aggregates: the same interpolation, in Python
        durations: dict[date, list[float]] = defaultdict(list)
        statement = select(day, audit.c.duration_ms).where(and_(condition, answered)).order_by(day, audit.c.duration_ms)
        for row in connection.execute(statement):
            durations[as_day(row.day)].append(float(row.duration_ms))
        for key, values in durations.items():
            payload(key).update({"p50_ms": percentile_cont(values, 0.5), "p95_ms": percentile_cont(values, 0.95)})
    for name, column, only_if in (("codes", "recommended_codes", None), ("gaps", "documentation_gaps", None),
                                  ("unavailable", "unavailable_keys", "a.checks_unavailable")):
        for row in _unnest(connection, column, start, end, service, only_if=only_if):
            payload(row.day)[name][str(row.value)] = int(row.n)
    version = func.coalesce(audit.c.knowledge_version, "(unrecorded)").label("version")
    statement = (select(day, version, func.count().label("calls"), func.min(audit.c.started_at).label("first"),
                        func.max(audit.c.started_at).label("last"))
                 .where(condition).group_by(day, version))
    for row in connection.execute(statement):
        payload(row.day)["versions"][row.version] = [int(row.calls), _utc_text(row.first), _utc_text(row.last)]
    return out


def from_payloads(payloads: dict[date, dict[str, Any]]) -> AuditStats:
    """Merge per-day payloads (stored or live) into the dashboard's aggregates."""
    stats = AuditStats()
    versions: dict[str, list[Any]] = {}
    unavailable: dict[str, int] = defaultdict(int)
    for day in sorted(payloads):
        item = payloads[day]
        if "calls" in item:
            stats.days.append(DayStats(day, item["calls"], item["answered"], item["refused"], item["decisions"],
                                       item["checks_unavailable"], item["p50_ms"], item["p95_ms"]))
            stats.with_decisions += item["with_decisions"]
        for key, n in item["codes"].items():
            stats.codes[(day, key)] = n
        for key, n in item["gaps"].items():
            stats.gaps[(day, key)] = n
        for key, n in item["unavailable"].items():
            unavailable[key] += n
        for version, (calls, first, last) in item["versions"].items():
            seen = versions.setdefault(version, [0, first, last])
            seen[0] += calls
            seen[1], seen[2] = min(seen[1], first), max(seen[2], last)
    stats.unavailable_keys = dict(unavailable)
    stats.versions = sorted(({"knowledge_version": version, "calls": calls, "first_seen": first, "last_seen": last}
                             for version, (calls, first, last) in versions.items()), key=lambda row: row["first_seen"])
    return stats


def audit_stats(engine: Engine, start: datetime, end: datetime, service: str | None = None,
                stored: bool = False) -> AuditStats:
    """Aggregate the audit rows whose call started in [start, end), optionally of one service.

    ``stored``: read settled whole days from the rollup (the dashboard; [start, end) must be
    whole UTC days); otherwise everything is counted live (the same SQL, the same numbers).
    """
    if stored:
        first, last = start.date(), (end - timedelta(days=1)).date()
        return from_payloads(rollup.per_day(engine, "audit", first, last, service, day_payloads))
    with engine.connect() as connection:
        return from_payloads(day_payloads(connection, start, end, service))


def _utc_text(value: Any) -> str:
    """A timestamp as ISO text in UTC, minutes only (what a reader needs, and no more)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M") + " UTC"
