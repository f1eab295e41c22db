"""The dashboard's audit aggregates, on SQLite and PostgreSQL, recounted here from the seeded data
with plain Python (an independent oracle), and the feedback breakdowns against the seed."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import pytest

from cds_service.ops.audit_stats import audit_stats, percentile_cont
from cds_service.ops.report import build_report, week_of
from cds_service.storage.db import make_engine
from tests.dashboard.seed import FIRST_DAY, SELECT, SIGN, Dataset

START = FIRST_DAY
END = FIRST_DAY + timedelta(days=21)


def _in(calls, start=START, end=END, service=None):
    return [c for c in calls if start <= c.started_at < end and (service is None or c.service == service)]


@pytest.mark.parametrize("service", [None, SIGN])
def test_audit_aggregates_match_a_python_recount(seeded_url: str, dataset: Dataset, service) -> None:
    engine = make_engine(seeded_url)
    try:
        stats = audit_stats(engine, START, END, service)
    finally:
        engine.dispose()
    calls = _in(dataset.calls, service=service)
    assert stats.calls == len(calls) and stats.calls > 50
    assert stats.decisions == sum(len(c.codes) for c in calls)
    by_day: dict[date, list] = {}
    for call in calls:
        by_day.setdefault(call.started_at.date(), []).append(call)
    assert [d.day for d in stats.days] == sorted(by_day)
    for day in stats.days:
        group = by_day[day.day]
        answered = sorted(c.duration_ms for c in group if c.status == 200)
        assert (day.calls, day.answered, day.refused) == (len(group), len(answered), len(group) - len(answered))
        assert day.checks_unavailable == sum(c.checks_unavailable for c in group)
        if len(answered) >= 2:  # statistics' "inclusive" quantiles interpolate as percentile_cont does
            quantiles = statistics.quantiles(answered, n=100, method="inclusive")
            assert day.p50_ms == pytest.approx(quantiles[49]) and day.p95_ms == pytest.approx(quantiles[94])
    codes = Counter(code for c in calls for code in c.codes)
    assert {row["recommended_code"]: row["decisions"] for row in stats.code_totals()} == dict(codes)
    assert [row["decisions"] for row in stats.code_totals()] == sorted(codes.values(), reverse=True)
    gaps = Counter(key for c in calls for key in c.gaps)
    assert {row["documentation_key"]: row["calls"] for row in stats.gap_totals()} == dict(gaps)
    weekly = Counter((week_of(c.started_at.date()).isoformat(), key) for c in calls for key in c.gaps)
    assert {(r["week"], r["documentation_key"]): r["calls"] for r in stats.gaps_by_week()} == dict(weekly)
    unavailable = Counter(key for c in calls if c.checks_unavailable for key in c.unavailable)
    assert {r["prefetch_key"]: r["calls"] for r in stats.unavailable_totals()} == dict(unavailable)
    versions = Counter(c.version for c in calls)
    assert {r["knowledge_version"]: r["calls"] for r in stats.versions} == dict(versions)
    assert [r["knowledge_version"] for r in stats.versions] == ["2026.1", "2026.2"]
    assert stats.current_version() == "2026.2"


def test_range_bounds_are_whole_utc_days(seeded_url: str, dataset: Dataset) -> None:
    start, end = FIRST_DAY + timedelta(days=3), FIRST_DAY + timedelta(days=5)
    engine = make_engine(seeded_url)
    try:
        stats = audit_stats(engine, start, end, SELECT)
    finally:
        engine.dispose()
    expected = _in(dataset.calls, start, end, SELECT)
    assert stats.calls == len(expected)
    assert {d.day for d in stats.days} <= {start.date(), (start + timedelta(days=1)).date()}


def test_feedback_breakdowns_by_week_and_version_match_the_seed(seeded_url: str, dataset: Dataset) -> None:
    engine = make_engine(seeded_url)
    try:
        report = build_report(engine, START, END + timedelta(days=7))
    finally:
        engine.dispose()
    items = dataset.feedback
    assert report["total"]["feedback"] == len(items)
    weeks = Counter(week_of(i.at.date()).isoformat() for i in items)
    assert {r["week"]: r["feedback"] for r in report["by_week"]} == dict(weeks)
    assert [r["week"] for r in report["by_week"]] == sorted(weeks)
    versions = Counter(dataset.card_info[i.card]["version"] if i.card in dataset.card_info else "(unknown card)"
                       for i in items)
    assert {r["knowledge_version"]: r["feedback"] for r in report["by_knowledge_version"]} == dict(versions)
    per_week_type = Counter((week_of(i.at.date()).isoformat(),
                             dataset.card_info[i.card]["card_type"] if i.card in dataset.card_info else "(unknown card)")
                            for i in items if i.outcome == "accepted")
    assert {(r["week"], r["card_type"]): r["accepted"] for r in report["by_week_and_card_type"] if r["accepted"]} \
        == dict(per_week_type)


def test_service_filter_on_feedback(seeded_url: str, dataset: Dataset) -> None:
    engine = make_engine(seeded_url)
    try:
        report = build_report(engine, START, END + timedelta(days=7), SELECT)
    finally:
        engine.dispose()
    assert report["service"] == SELECT
    assert report["total"]["feedback"] == sum(1 for i in dataset.feedback if i.service == SELECT) > 0


def test_percentile_matches_the_interpolation_postgres_uses() -> None:
    assert percentile_cont([], 0.5) is None
    assert percentile_cont([7.0], 0.95) == 7.0
    assert percentile_cont([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile_cont([10.0, 20.0], 0.95) == pytest.approx(19.5)


def test_empty_range_gives_empty_aggregates(seeded_url: str) -> None:
    engine = make_engine(seeded_url)
    try:
        moment = datetime(2020, 1, 1, tzinfo=timezone.utc)
        stats = audit_stats(engine, moment, moment + timedelta(days=1))
    finally:
        engine.dispose()
    assert (stats.days, stats.code_totals(), stats.versions, stats.current_version()) == ([], [], [], None)
