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
import json
import sys
from pathlib import Path
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import and_, func, inspect, select
from sqlalchemy.engine import Engine, make_url

from cds_service.config import Settings
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


def build_report(engine: Engine, start: datetime, end: datetime) -> dict[str, Any]:
    """Aggregate feedback in [start, end) into the report structure (plain JSON-ready dict)."""
    tables = set(inspect(engine).get_table_names())
    missing = {"feedback", "issued_cards"} - tables
    if missing:
        names = " and ".join(sorted(missing))
        raise LookupError(f"the database has no {names} table{'s' if len(missing) > 1 else ''}: "
                          "has the service ever run on it?")
    joined = feedback.outerjoin(issued_cards, issued_cards.c.card_uuid == feedback.c.card_uuid)
    statement = (
        select(
            issued_cards.c.card_uuid.is_(None).label("unknown"),
            issued_cards.c.card_type,
            issued_cards.c.recommended_code,
            feedback.c.outcome,
            feedback.c.override_code,
            func.max(feedback.c.override_display).label("override_display"),
            func.count().label("n"),
        )
        .select_from(joined)
        .where(and_(feedback.c.outcome_timestamp >= start, feedback.c.outcome_timestamp < end))
        .group_by(
            issued_cards.c.card_uuid.is_(None),
            issued_cards.c.card_type,
            issued_cards.c.recommended_code,
            feedback.c.outcome,
            feedback.c.override_code,
        )
    )
    total = Tally()
    by_type: dict[str, Tally] = {}
    by_code: dict[str, Tally] = {}
    reasons: dict[str, ReasonTally] = {}
    with engine.connect() as connection:
        for row in connection.execute(statement):
            count = int(row.n)
            card_type = UNKNOWN_CARD if row.unknown else (row.card_type or UNSPECIFIED)
            code = UNKNOWN_CARD if row.unknown else (row.recommended_code or UNSPECIFIED)
            total.add(row.outcome, count)
            by_type.setdefault(card_type, Tally()).add(row.outcome, count)
            by_code.setdefault(code, Tally()).add(row.outcome, count)
            if row.outcome == "overridden":
                reason = reasons.setdefault(row.override_code or NO_REASON, ReasonTally())
                reason.overrides += count
                reason.display = reason.display or row.override_display
                reason.card_types[card_type] = reason.card_types.get(card_type, 0) + count

    def ordered(groups: dict[str, Tally], name: str) -> list[dict[str, Any]]:
        items = sorted(groups.items(), key=lambda item: (-item[1].feedback, item[0]))
        return [{name: key, **tally.as_dict()} for key, tally in items]

    return {
        "since": start.isoformat(),
        "until": end.isoformat(),
        "total": total.as_dict(),
        "by_card_type": ordered(by_type, "card_type"),
        "by_recommended_code": ordered(by_code, "recommended_code"),
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
    }


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
        f"Feedback from {report['since']} to {report['until']} (end exclusive)",
        f"{total['feedback']} feedback items: {total['accepted']} accepted ({_percent(total['acceptance_rate'])}), "
        f"{total['overridden']} overridden ({_percent(total['override_rate'])})",
    ]
    headers = ["feedback", "accepted", "overridden", "accept rate", "override rate"]
    for title, key in (("By card type", "card_type"), ("By recommended code", "recommended_code")):
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
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")
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
        report = build_report(engine, start, end)
    except LookupError as error:
        print(f"cds-service report: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if args.format == "json":
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report), end="")
    return 0
