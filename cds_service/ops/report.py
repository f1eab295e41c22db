"""``cds-service report``: which cards clinicians accept and which they override.

Reads the feedback table joined to the cards the service issued (``feedback.card_uuid`` =
``issued_cards.card_uuid``) and prints acceptance and override rates per card type, per
recommended code and per override reason, for feedback whose outcome time falls in a date range.

Rates are shares of the feedback items in the group: ``acceptance_rate = accepted / feedback``
and ``override_rate = overridden / feedback``. For override reasons the rate is the share of all
overrides in the range. Feedback about a card this database never issued (another replica's
database, a purged row) is grouped under ``(unknown card)``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import and_, func, inspect, select
from sqlalchemy.engine import Engine, make_url

from cds_service.config import Settings
from cds_service.ops import rollup
from cds_service.storage.db import feedback, issued_cards, make_engine

UNKNOWN_CARD = "(unknown card)"
UNSPECIFIED = "(unspecified)"
NO_REASON = "(no reason given)"
DEFAULT_DAYS = 30


@dataclass
class Tally:
    feedback: int = 0
    accepted: int = 0
    overridden: int = 0

    def add(self, outcome: str, count: int) -> None:
        self.feedback += count
        if outcome == "accepted":
            self.accepted += count
        elif outcome == "overridden":
            self.overridden += count

    def as_dict(self) -> dict[str, Any]:
        return {
            "feedback": self.feedback,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "acceptance_rate": _rate(self.accepted, self.feedback),
            "override_rate": _rate(self.overridden, self.feedback),
        }


@dataclass
class ReasonTally:
    overrides: int = 0
    display: str | None = None
    card_types: dict[str, int] = field(default_factory=dict)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def parse_bound(value: str, *, end: bool) -> datetime:
    """``YYYY-MM-DD`` → the start of that day (``--since``) or the start of the next day
    (``--until``, so the whole day is included); a full ISO date-time is taken as is (UTC if no
    offset)."""
    try:
        if "T" not in value and " " not in value.strip():
            day = date.fromisoformat(value.strip())
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=timezone.utc)
            return moment
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO date-time: {value!r}") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def date_range(since: str | None, until: str | None, today: date | None = None) -> tuple[datetime, datetime]:
    """[start, end) in UTC. Defaults: ``--until`` today, ``--since`` 30 days back (inclusive)."""
    today = today or datetime.now(timezone.utc).date()
    end = parse_bound(until, end=True) if until else datetime.combine(today + timedelta(days=1), time.min, timezone.utc)
    start = parse_bound(since, end=False) if since else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise argparse.ArgumentTypeError("--since must be before --until")
    return start, end


def day_expression(column: Any, dialect: str) -> Any:
    """The UTC calendar day of a timestamp column, in SQL (PostgreSQL converts explicitly; SQLite
    stores naive UTC text, so ``date()`` already reads the UTC day)."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", column))
    return func.date(column)


def as_day(value: Any) -> date:
    """PostgreSQL returns ``date``, SQLite an ISO string: one type for the roll-ups."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def week_of(day: date) -> date:
    """The Monday that starts ``day``'s ISO week: the report's and the dashboard's week key."""
    return day - timedelta(days=day.weekday())


@dataclass(frozen=True)
class FeedbackCell:
    """One group of the feedback query: every breakdown is a sum over these cells."""

    day: date
    card_type: str
    recommended_code: str
    knowledge_version: str
    outcome: str
    override_code: str | None
    override_display: str | None
    count: int


def feedback_cells(engine: Engine, start: datetime, end: datetime, service: str | None = None,
                   stored: bool = False) -> list[FeedbackCell]:
    """The single SQL aggregation behind the report and the dashboard's feedback charts.

    Groups feedback in [start, end) (optionally of one service) by UTC day, card type,
    recommended code, knowledge version, outcome and override reason. A few thousand cells at
    most, whatever the table size; every breakdown is then a sum over them, so the report and
    the dashboard agree by construction. ``stored`` (the dashboard, whole days only) reads
    settled days from :mod:`cds_service.ops.rollup`, which stores these same cells.
    """
    tables = set(inspect(engine).get_table_names())
    missing = {"feedback", "issued_cards"} - tables
    if missing:
        names = " and ".join(sorted(missing))
        raise LookupError(f"the database has no {names} table{'s' if len(missing) > 1 else ''}: "
                          "has the service ever run on it?")
    if stored:
        days = rollup.per_day(engine, "feedback", start.date(), (end - timedelta(days=1)).date(), service,
                              _cell_payloads)
        return [FeedbackCell(day, *cell) for day, payload in sorted(days.items()) for cell in payload["cells"]]
    with engine.connect() as connection:
        return _query_cells(connection, start, end, service)


def _cell_payloads(connection: Any, start: datetime, end: datetime, service: str | None) -> dict[date, dict[str, Any]]:
    out: dict[date, dict[str, Any]] = {}
    for cell in _query_cells(connection, start, end, service):
        out.setdefault(cell.day, {"cells": []})["cells"].append(
            [cell.card_type, cell.recommended_code, cell.knowledge_version, cell.outcome, cell.override_code,
             cell.override_display, cell.count])
    return out


def _query_cells(connection: Any, start: datetime, end: datetime, service: str | None) -> list[FeedbackCell]:
    day = day_expression(feedback.c.outcome_timestamp, connection.dialect.name).label("day")
    unknown = issued_cards.c.card_uuid.is_(None)
    joined = feedback.outerjoin(issued_cards, issued_cards.c.card_uuid == feedback.c.card_uuid)
    condition = and_(feedback.c.outcome_timestamp >= start, feedback.c.outcome_timestamp < end)
    if service:
        condition = and_(condition, feedback.c.service_id == service)
    statement = (
        select(
            day,
            unknown.label("unknown"),
            issued_cards.c.card_type,
            issued_cards.c.recommended_code,
            issued_cards.c.knowledge_version,
            feedback.c.outcome,
            feedback.c.override_code,
            func.max(feedback.c.override_display).label("override_display"),
            func.count().label("n"),
        )
        .select_from(joined)
        .where(condition)
        .group_by(day, unknown, issued_cards.c.card_type, issued_cards.c.recommended_code,
                  issued_cards.c.knowledge_version, feedback.c.outcome, feedback.c.override_code)
    )
    return [
        FeedbackCell(
            day=as_day(row.day),
            card_type=UNKNOWN_CARD if row.unknown else (row.card_type or UNSPECIFIED),
            recommended_code=UNKNOWN_CARD if row.unknown else (row.recommended_code or UNSPECIFIED),
            knowledge_version=UNKNOWN_CARD if row.unknown else (row.knowledge_version or UNSPECIFIED),
            outcome=row.outcome,
            override_code=row.override_code,
            override_display=row.override_display,
            count=int(row.n),
        )
        for row in connection.execute(statement)
    ]


def _ordered(groups: dict[Any, Tally], names: Sequence[str], by_key: bool = False) -> list[dict[str, Any]]:
    """Rows of a breakdown: most feedback first (or in key order, for time series)."""
    def sort_key(item: tuple[Any, Tally]) -> Any:
        return item[0] if by_key else (-item[1].feedback, item[0])

    rows = []
    for key, tally in sorted(groups.items(), key=sort_key):
        values = key if isinstance(key, tuple) else (key,)
        rows.append({**{name: str(value) for name, value in zip(names, values)}, **tally.as_dict()})
    return rows


def summarise(cells: Sequence[FeedbackCell], start: datetime, end: datetime,
              service: str | None = None) -> dict[str, Any]:
    """Every breakdown of the report from the query's cells (plain JSON-ready dict)."""
    total = Tally()
    groups: dict[str, dict[Any, Tally]] = {name: {} for name in (
        "card_type", "recommended_code", "week", "week_card_type", "week_code", "knowledge_version")}
    reasons: dict[str, ReasonTally] = {}
    for cell in cells:
        week = week_of(cell.day).isoformat()
        keys = {
            "card_type": cell.card_type,
            "recommended_code": cell.recommended_code,
            "week": week,
            "week_card_type": (week, cell.card_type),
            "week_code": (week, cell.recommended_code),
            "knowledge_version": cell.knowledge_version,
        }
        total.add(cell.outcome, cell.count)
        for name, key in keys.items():
            groups[name].setdefault(key, Tally()).add(cell.outcome, cell.count)
        if cell.outcome == "overridden":
            reason = reasons.setdefault(cell.override_code or NO_REASON, ReasonTally())
            reason.overrides += cell.count
            reason.display = max(filter(None, (reason.display, cell.override_display)), default=None)
            reason.card_types[cell.card_type] = reason.card_types.get(cell.card_type, 0) + cell.count
    return {
        "since": start.isoformat(),
        "until": end.isoformat(),
        "service": service,
        "total": total.as_dict(),
        "by_card_type": _ordered(groups["card_type"], ["card_type"]),
        "by_recommended_code": _ordered(groups["recommended_code"], ["recommended_code"]),
        "by_override_reason": [
            {
                "reason": code,
                "display": tally.display,
                "overrides": tally.overrides,
                "share_of_overrides": _rate(tally.overrides, total.overridden),
                "by_card_type": dict(sorted(tally.card_types.items())),
            }
            for code, tally in sorted(reasons.items(), key=lambda item: (-item[1].overrides, item[0]))
        ],
        "by_week": _ordered(groups["week"], ["week"], by_key=True),
        "by_week_and_card_type": _ordered(groups["week_card_type"], ["week", "card_type"], by_key=True),
        "by_week_and_recommended_code": _ordered(groups["week_code"], ["week", "recommended_code"], by_key=True),
        "by_knowledge_version": _ordered(groups["knowledge_version"], ["knowledge_version"]),
    }


def build_report(engine: Engine, start: datetime, end: datetime, service: str | None = None,
                 stored: bool = False) -> dict[str, Any]:
    """Aggregate feedback in [start, end) into the report structure (plain JSON-ready dict)."""
    return summarise(feedback_cells(engine, start, end, service, stored), start, end, service)


# The report's breakdowns as CSV: one tidy table, a ``breakdown`` column naming each row's group.
CSV_BREAKDOWNS = ("total", "by_card_type", "by_recommended_code", "by_override_reason", "by_week",
                  "by_week_and_card_type", "by_week_and_recommended_code", "by_knowledge_version")
CSV_COLUMNS = ("breakdown", "week", "card_type", "recommended_code", "knowledge_version", "reason", "display",
               "feedback", "accepted", "overridden", "acceptance_rate", "override_rate", "overrides",
               "share_of_overrides")


def csv_text(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    """RFC 4180 CSV (CRLF line ends), None as an empty cell; columns missing from a row are empty.

    Cells that a spreadsheet would run as a formula are prefixed with a quote (CSV injection).
    """
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return out.getvalue()


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def format_csv(report: dict[str, Any]) -> str:
    rows: list[dict[str, Any]] = [{"breakdown": "total", **report["total"]}]
    for name in CSV_BREAKDOWNS[1:]:
        rows += [{"breakdown": name, **row} for row in report[name]]
    return csv_text(CSV_COLUMNS, rows)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: int = 1) -> str:
    """Plain-text table: the first ``text_columns`` columns left-aligned, numbers right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(  # noqa: E731
        str(cell).ljust(width) if index < text_columns else str(cell).rjust(width)
        for index, (cell, width) in enumerate(zip(cells, widths))
    ).rstrip()
    return "\n".join([line(headers), line(["-" * width for width in widths]), *(line(row) for row in rows)])


def format_table(report: dict[str, Any]) -> str:
    total = report["total"]
    out = [
        f"Feedback from {report['since']} to {report['until']} (end exclusive)"
        + (f", service {report['service']}" if report.get("service") else ""),
        f"{total['feedback']} feedback items: {total['accepted']} accepted ({_percent(total['acceptance_rate'])}), "
        f"{total['overridden']} overridden ({_percent(total['override_rate'])})",
    ]
    headers = ["feedback", "accepted", "overridden", "accept rate", "override rate"]
    for title, key in (("By card type", "card_type"), ("By recommended code", "recommended_code"),
                       ("By week (starting Monday)", "week"), ("By knowledge version", "knowledge_version")):
        rows = [
            [item[key], item["feedback"], item["accepted"], item["overridden"],
             _percent(item["acceptance_rate"]), _percent(item["override_rate"])]
            for item in report[f"by_{key}"]
        ]
        out += ["", title, _table([key.replace("_", " "), *headers], rows) if rows else "(no feedback)"]
    rows = [
        [item["reason"], item["display"] or "", item["overrides"], _percent(item["share_of_overrides"])]
        for item in report["by_override_reason"]
    ]
    out += ["", "By override reason",
            _table(["reason", "display", "overrides", "share of overrides"], rows, text_columns=2)
            if rows else "(no overrides)"]
    return "\n".join(out) + "\n"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="acceptance and override rates of the cards, from the feedback in the database",
        description="Acceptance and override rates per card type, per recommended code and per override reason.",
    )
    parser.add_argument("--since", help="first day included, YYYY-MM-DD (default: 30 days before --until)")
    parser.add_argument("--until", help="last day included, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="output format (default table; csv: one row per group, a 'breakdown' column names it)")
    parser.add_argument("--service", help="only the feedback of this service id (default: all services)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: DATABASE_URL / CDS_SQLITE_PATH, as serve)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        start, end = date_range(args.since, args.until)
    except argparse.ArgumentTypeError as error:
        print(f"cds-service report: {error}", file=sys.stderr)
        return 2
    database_url = args.database_url or Settings.from_env().database_url
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).expanduser().exists():
        print(f"cds-service report: no SQLite database at {url.database} (set DATABASE_URL or CDS_SQLITE_PATH)",
              file=sys.stderr)
        return 1
    engine = make_engine(database_url)
    try:
        report = build_report(engine, start, end, args.service)
    except LookupError as error:
        print(f"cds-service report: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(report, indent=2))
    elif args.format == "csv":
        sys.stdout.write(format_csv(report))
    else:
        print(format_table(report), end="")
    return 0
