"""The dashboard's tables: each one a chart's data, its text alternative and a CSV download.

The feedback tables are the rows of ``cds-service report`` (same function, same numbers); the
audit tables come from :mod:`cds_service.ops.audit_stats`. Aggregates only, never a patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Callable, Sequence

from sqlalchemy.engine import Engine

from cds_service.ops.audit_stats import AuditStats, audit_stats
from cds_service.ops.report import DEFAULT_DAYS, build_report

RATE_COLUMNS = ("feedback", "accepted", "overridden", "acceptance_rate", "override_rate")
MAX_DAYS = 3 * 366  # a bounded page: three years of days at most


@dataclass(frozen=True)
class TableSpec:
    """One downloadable table: its URL name, caption, columns and where its rows come from."""

    name: str
    title: str
    columns: tuple[str, ...]
    source: str  # "report" or "audit"
    rows: Callable[[Any], list[dict[str, Any]]]
    report_key: str | None = None  # the ``cds-service report --format json`` list it equals


def _report(key: str) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    return lambda report: report[key]


TABLES: tuple[TableSpec, ...] = (
    TableSpec("calls-per-day", "Hook calls, therapy decisions and answer times per day",
              ("day", "calls", "answered", "refused", "decisions", "checks_unavailable", "checks_unavailable_rate",
               "p50_ms", "p95_ms"), "audit", lambda stats: [day.as_dict() for day in stats.days]),
    TableSpec("recommended-codes", "Recommended codes (one per therapy decision)",
              ("recommended_code", "decisions", "share"), "audit", lambda stats: stats.code_totals()),
    TableSpec("acceptance-by-card-type", "Acceptance and override per card type",
              ("card_type", *RATE_COLUMNS), "report", _report("by_card_type"), "by_card_type"),
    TableSpec("acceptance-by-recommended-code", "Acceptance and override per recommended code",
              ("recommended_code", *RATE_COLUMNS), "report", _report("by_recommended_code"), "by_recommended_code"),
    TableSpec("acceptance-by-week", "Acceptance and override per week (weeks start on Monday)",
              ("week", *RATE_COLUMNS), "report", _report("by_week"), "by_week"),
    TableSpec("acceptance-by-week-and-card-type", "Acceptance and override per week and card type",
              ("week", "card_type", *RATE_COLUMNS), "report", _report("by_week_and_card_type"),
              "by_week_and_card_type"),
    TableSpec("acceptance-by-week-and-recommended-code", "Acceptance and override per week and recommended code",
              ("week", "recommended_code", *RATE_COLUMNS), "report", _report("by_week_and_recommended_code"),
              "by_week_and_recommended_code"),
    TableSpec("override-reasons", "Override reasons", ("reason", "display", "overrides", "share_of_overrides"),
              "report", _report("by_override_reason"), "by_override_reason"),
    TableSpec("acceptance-by-knowledge-version", "Acceptance and override per knowledge version",
              ("knowledge_version", *RATE_COLUMNS), "report", _report("by_knowledge_version"),
              "by_knowledge_version"),
    TableSpec("documentation-gaps", "Documentation gaps by key (calls where the item was missing)",
              ("documentation_key", "calls", "share_of_calls_with_decisions"), "audit",
              lambda stats: stats.gap_totals()),
    TableSpec("documentation-gaps-by-week", "Documentation gaps by key and week",
              ("week", "documentation_key", "calls"), "audit", lambda stats: stats.gaps_by_week()),
    TableSpec("unavailable-prefetch-keys", "Prefetch data that was unavailable when checks could not run",
              ("prefetch_key", "calls", "share_of_calls_with_checks_unavailable"), "audit",
              lambda stats: stats.unavailable_totals()),
    TableSpec("knowledge-versions", "Knowledge versions that answered the calls",
              ("knowledge_version", "calls", "first_seen", "last_seen"), "audit", lambda stats: stats.versions),
)
TABLES_BY_NAME = {table.name: table for table in TABLES}


class FilterError(ValueError):
    """A filter value the page cannot use; the message says which and why."""


@dataclass(frozen=True)
class Filters:
    since: date
    until: date  # inclusive
    service: str | None

    @property
    def start(self) -> datetime:
        return datetime.combine(self.since, time.min, timezone.utc)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.until + timedelta(days=1), time.min, timezone.utc)

    def days(self) -> list[date]:
        return [self.since + timedelta(days=offset) for offset in range((self.until - self.since).days + 1)]

    def query(self) -> dict[str, str]:
        out = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        if self.service:
            out["service"] = self.service
        return out


def parse_filters(args: Any, services: Sequence[str], today: date | None = None) -> Filters:
    """``since``/``until`` (YYYY-MM-DD, whole UTC days, default the last 30 days) and ``service``."""
    today = today or datetime.now(timezone.utc).date()

    def day(name: str, default: date) -> date:
        raw = (args.get(name) or "").strip()
        if not raw:
            return default
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise FilterError(f"{name} must be a date as YYYY-MM-DD, got {raw[:40]!r}") from None

    until = day("until", today)
    since = day("since", until - timedelta(days=DEFAULT_DAYS - 1))
    if since > until:
        raise FilterError("since must be on or before until")
    if (until - since).days >= MAX_DAYS:
        raise FilterError(f"the date range may span at most {MAX_DAYS} days")
    service = (args.get("service") or "").strip() or None
    if service is not None and service not in services:
        raise FilterError(f"unknown service {service[:64]!r}; choose one of: {', '.join(services)}")
    return Filters(since, until, service)


@dataclass
class DashboardData:
    filters: Filters
    report: dict[str, Any]
    stats: AuditStats

    def rows(self, table: TableSpec) -> list[dict[str, Any]]:
        return table.rows(self.report if table.source == "report" else self.stats)


def load(engine: Engine, filters: Filters, sources: Sequence[str] = ("report", "audit")) -> DashboardData:
    """Run only the aggregations the caller needs (a CSV needs one of the two)."""
    report = build_report(engine, filters.start, filters.end, filters.service, stored=True) \
        if "report" in sources else {}
    stats = audit_stats(engine, filters.start, filters.end, filters.service, stored=True) \
        if "audit" in sources else AuditStats()
    return DashboardData(filters, report, stats)
