"""``GET /dashboard``: how the cards fare, as server-drawn charts with their data tables and CSV
downloads. Aggregates only; access as :mod:`cds_service.dashboard.access` decides."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from markupsafe import Markup

from cds_service.config import Settings
from cds_service.dashboard import charts
from cds_service.dashboard.access import DashboardAccess
from cds_service.dashboard.data import TABLES, TABLES_BY_NAME, DashboardData, FilterError, Filters, load, parse_filters
from cds_service.hooks.catalog import SERVICES_BY_ID
from cds_service.ops.report import csv_text
from cds_service.pages import render_page
from cds_service.security.web import UNAUTHORIZED_MESSAGE
from cds_service.web.errors import ApiError

blueprint = Blueprint("dashboard", __name__, template_folder="templates")
EXTENSION = "cds_dashboard_access"


def init_app(app: Flask, settings: Settings) -> None:
    """Decide the access rule once (a bad users file stops the start with a ConfigError)."""
    app.extensions[EXTENSION] = DashboardAccess.from_settings(settings)
    app.register_blueprint(blueprint)


@blueprint.before_request
def _guard() -> None:
    access: DashboardAccess = current_app.extensions[EXTENSION]
    if not access.enabled:
        raise ApiError(404, f"no such endpoint: GET {request.path}")
    if not access.allows(request.remote_addr, request.headers):
        raise ApiError(401, UNAUTHORIZED_MESSAGE, access.challenge)


def _services() -> list[str]:
    return sorted(SERVICES_BY_ID)


@blueprint.get("/dashboard")
def dashboard() -> Response:
    try:
        filters = parse_filters(request.args, _services())
    except FilterError as error:
        return render_page("dashboard/dashboard.html", status=400, section="dashboard", error=str(error),
                           services=_services(), form=request.args, data=None)
    data = load(current_app.extensions["cds_db"], filters)
    return render_page(
        "dashboard/dashboard.html", section="dashboard", error=None, services=_services(), form=filters.query(),
        data=data, charts=_charts(data), tables={table.name: (table, data.rows(table)) for table in TABLES},
        summary=_summary(data), knowledge_version=current_app.extensions["cds_knowledge"].version,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


@blueprint.get("/dashboard/<name>.csv")
def download(name: str) -> Response:
    table = TABLES_BY_NAME.get(name)
    if table is None:
        raise ApiError(404, f"no dashboard table {name[:64]!r}; tables: {', '.join(TABLES_BY_NAME)}")
    try:
        filters = parse_filters(request.args, _services())
    except FilterError as error:
        raise ApiError(400, str(error)) from None
    data = load(current_app.extensions["cds_db"], filters, sources=(table.source,))
    response = Response(csv_text(table.columns, data.rows(table)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{_file_name(table.name, filters)}"'
    return response


def _file_name(name: str, filters: Filters) -> str:
    service = f"-{filters.service}" if filters.service else ""
    return f"{name}{service}-{filters.since.isoformat()}-to-{filters.until.isoformat()}.csv"


def _summary(data: DashboardData) -> dict[str, Any]:
    total = data.report["total"]
    unavailable = sum(day.checks_unavailable for day in data.stats.days)
    return {
        "calls": data.stats.calls,
        "decisions": data.stats.decisions,
        "feedback": total["feedback"],
        "acceptance_rate": total["acceptance_rate"],
        "override_rate": total["override_rate"],
        "checks_unavailable_rate": round(unavailable / data.stats.answered, 4) if data.stats.answered else None,
        "version_in_range": data.stats.current_version(),
    }


def _charts(data: DashboardData) -> dict[str, Markup]:
    """Every chart of the page, keyed by the table that holds its data."""
    days = {day.day: day for day in data.stats.days}
    labels = [day.isoformat() for day in data.filters.days()]
    every_day = [days.get(day) for day in data.filters.days()]
    report = data.report

    def split(rows: list[dict[str, Any]], key: str) -> list[tuple[str, list[tuple[str, int]]]]:
        return [(row[key], [("accepted", row["accepted"]), ("overridden", row["overridden"]),
                            ("other outcome", row["feedback"] - row["accepted"] - row["overridden"])])
                for row in rows]

    weeks = [row["week"] for row in report["by_week"]]
    card_types = [row["card_type"] for row in report["by_card_type"]][:6]
    by_week_type = {(row["week"], row["card_type"]): row["acceptance_rate"] for row in report["by_week_and_card_type"]}
    gap_keys = [row["documentation_key"] for row in data.stats.gap_totals()][:6]
    gap_weeks = sorted({row["week"] for row in data.stats.gaps_by_week()})
    by_week_gap = {(row["week"], row["documentation_key"]): row["calls"] for row in data.stats.gaps_by_week()}
    return {
        "calls-per-day": charts.line_chart(
            "Hook calls and therapy decisions per day",
            f"{data.stats.calls} calls and {data.stats.decisions} decisions from {labels[0]} to {labels[-1]}.",
            labels, [charts.Series("hook calls", [d.calls if d else 0 for d in every_day]),
                     charts.Series("therapy decisions", [d.decisions if d else 0 for d in every_day])]),
        "answer-times": charts.line_chart(
            "Answer time per day (milliseconds, answered calls)",
            "Median (p50) and 95th percentile (p95) of the answer time per day; the table below lists the values.",
            labels, [charts.Series("p50", [d.p50_ms if d else None for d in every_day]),
                     charts.Series("p95", [d.p95_ms if d else None for d in every_day])]),
        "checks-unavailable-per-day": charts.line_chart(
            "Share of answered calls where checks could not run, per day",
            "The share of answered calls whose answer said some checks could not run for lack of patient data.",
            labels, [charts.Series("checks could not run",
                                   [d.as_dict()["checks_unavailable_rate"] if d else None for d in every_day])],
            fmt=charts.percent, top=max([0.1] + [d.as_dict()["checks_unavailable_rate"] or 0 for d in every_day if d])),
        "recommended-codes": charts.bar_chart(
            "Recommended codes", "Number of therapy decisions that recommended each code.",
            [(row["recommended_code"], row["decisions"]) for row in data.stats.code_totals()]),
        "acceptance-by-card-type": charts.split_bars(
            "Accepted and overridden cards per card type",
            "For each card type, the shares of its feedback that accepted or overrode the card.",
            split(report["by_card_type"], "card_type")),
        "acceptance-by-recommended-code": charts.split_bars(
            "Accepted and overridden cards per recommended code",
            "For each recommended code, the shares of its feedback that accepted or overrode the card.",
            split(report["by_recommended_code"], "recommended_code")),
        "acceptance-by-week-and-card-type": charts.line_chart(
            "Acceptance rate per week and card type",
            "Share of the feedback on each card type that accepted the card, week by week.",
            weeks, [charts.Series(card_type, [by_week_type.get((week, card_type)) for week in weeks])
                    for card_type in card_types], fmt=charts.percent, top=1.0),
        "override-reasons": charts.bar_chart(
            "Override reasons", "Number of overrides per reason given; shares are in the table.",
            [(row["display"] or row["reason"], row["overrides"]) for row in report["by_override_reason"]]),
        "documentation-gaps": charts.bar_chart(
            "Documentation gaps by key", "Number of calls where each documentation item was missing.",
            [(row["documentation_key"], row["calls"]) for row in data.stats.gap_totals()]),
        "documentation-gaps-by-week": charts.line_chart(
            "Documentation gaps per week (most frequent keys)",
            "Calls per week where each of the most frequently missing items was missing.",
            gap_weeks, [charts.Series(key, [by_week_gap.get((week, key), 0) for week in gap_weeks])
                        for key in gap_keys]),
        "unavailable-prefetch-keys": charts.bar_chart(
            "Unavailable prefetch data", "Calls where checks could not run, by the prefetch key that was unavailable.",
            [(row["prefetch_key"], row["calls"]) for row in data.stats.unavailable_totals()]),
    }
