"""`cds-service report` on seeded feedback, with exact numbers, on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, timezone

import pytest

from cds_service.cli import main
from cds_service.ops.report import build_report, date_range, format_table
from cds_service.storage.db import make_engine, migrate
from cds_service.storage.records import Store

SERVICE = "radioelement-order-sign"


def card(uuid: str, card_type: str | None, code: str | None, indicator: str = "info") -> dict:
    extension = {}
    if card_type:
        extension["cds-service.card-type"] = card_type
    if code:
        extension["cds-service.recommended-code"] = code
    return {"uuid": uuid, "indicator": indicator, "extension": extension}


def accepted(card_uuid: str, at: str) -> dict:
    return {"card": card_uuid, "outcome": "accepted", "acceptedSuggestions": [{"id": "s"}], "outcomeTimestamp": at}


def overridden(card_uuid: str, at: str, reason: str | None = None, display: str | None = None) -> dict:
    item = {"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": at}
    if reason:
        item["overrideReason"] = {"reason": {"code": reason, "system": "https://example.org/reasons",
                                             "display": display}}
    return item


def seed(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    store = Store(engine)
    audit = {"service_id": SERVICE, "hook": "order-sign", "status": 200, "started_at": datetime.now(timezone.utc),
             "duration_ms": 1.0}
    store.add_audit(dict(audit, hook_instance="h1"), [
        card("c1", "code-change", "79101", "warning"),
        card("c2", "code-change", "79101", "warning"),
        card("c3", "code-confirmed", "77750"),
    ])
    store.add_audit(dict(audit, hook_instance="h2"), [
        card("c4", "documentation-gap", None, "warning"),
        card("c5", "code-change", "79005", "warning"),
    ])
    store.add_feedback(SERVICE, [
        accepted("c1", "2026-11-03T09:00:00Z"),
        overridden("c1", "2026-11-03T09:01:00Z", "payer-policy", "Payer policy"),
        overridden("c2", "2026-11-10T12:00:00Z", "payer-policy", "Payer policy"),
        accepted("c3", "2026-11-11T08:00:00Z"),
        accepted("c3", "2026-11-12T08:00:00Z"),
        overridden("c4", "2026-11-15T16:00:00Z", "already-documented", "Already documented"),
        overridden("c5", "2026-11-20T10:00:00Z"),
        accepted("not-issued-here", "2026-11-21T10:00:00Z"),
        # 23:30 UTC on the 30th, written with an offset: inside --until 2026-11-30.
        accepted("c5", "2026-12-01T00:30:00+01:00"),
        # Outside the range on either side.
        overridden("c3", "2026-10-31T23:59:59Z", "clinical-judgement"),
        accepted("c1", "2026-12-01T00:00:00Z"),
    ])
    engine.dispose()


def rates(feedback: int, accepted_: int, overridden_: int) -> dict:
    return {"feedback": feedback, "accepted": accepted_, "overridden": overridden_,
            "acceptance_rate": round(accepted_ / feedback, 4), "override_rate": round(overridden_ / feedback, 4)}


EXPECTED = {
    "total": rates(9, 5, 4),
    "by_card_type": [
        {"card_type": "code-change", **rates(5, 2, 3)},
        {"card_type": "code-confirmed", **rates(2, 2, 0)},
        {"card_type": "(unknown card)", **rates(1, 1, 0)},
        {"card_type": "documentation-gap", **rates(1, 0, 1)},
    ],
    "by_recommended_code": [
        {"recommended_code": "79101", **rates(3, 1, 2)},
        {"recommended_code": "77750", **rates(2, 2, 0)},
        {"recommended_code": "79005", **rates(2, 1, 1)},
        {"recommended_code": "(unknown card)", **rates(1, 1, 0)},
        {"recommended_code": "(unspecified)", **rates(1, 0, 1)},
    ],
    "by_override_reason": [
        {"reason": "payer-policy", "display": "Payer policy", "overrides": 2, "share_of_overrides": 0.5,
         "by_card_type": {"code-change": 2}},
        {"reason": "(no reason given)", "display": None, "overrides": 1, "share_of_overrides": 0.25,
         "by_card_type": {"code-change": 1}},
        {"reason": "already-documented", "display": "Already documented", "overrides": 1, "share_of_overrides": 0.25,
         "by_card_type": {"documentation-gap": 1}},
    ],
}


def test_report_numbers_are_exact(db_url):
    seed(db_url)
    engine = make_engine(db_url)
    try:
        start, end = date_range("2026-11-01", "2026-11-30")
        report = build_report(engine, start, end)
    finally:
        engine.dispose()
    assert report["since"] == "2026-11-01T00:00:00+00:00"
    assert report["until"] == "2026-12-01T00:00:00+00:00"
    for key, expected in EXPECTED.items():
        assert report[key] == expected, key
    assert report["by_card_type"][0]["acceptance_rate"] == 0.4
    assert report["by_recommended_code"][0]["override_rate"] == 0.6667


def test_cli_json_output(db_url, capsys):
    seed(db_url)
    code = main(["report", "--database-url", db_url, "--since", "2026-11-01", "--until", "2026-11-30",
                 "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == EXPECTED["total"]
    assert report["by_override_reason"] == EXPECTED["by_override_reason"]


def test_cli_table_output_and_narrower_range(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'report.sqlite3'}"
    seed(url)
    monkeypatch.setenv("DATABASE_URL", url)  # the same database the service would use
    assert main(["report", "--since", "2026-11-10", "--until", "2026-11-12"]) == 0
    out = capsys.readouterr().out
    # c2 overridden (11-10), c3 accepted twice (11-11, 11-12): 3 items, 2 accepted.
    assert "3 feedback items: 2 accepted (66.7%), 1 overridden (33.3%)" in out
    lines = out.splitlines()
    assert ["code-confirmed", "2", "2", "0", "100.0%", "0.0%"] in [line.split() for line in lines], out
    assert ["79101", "1", "0", "1", "0.0%", "100.0%"] in [line.split() for line in lines], out
    assert any(line.split() == ["payer-policy", "Payer", "policy", "1", "100.0%"] for line in lines), out


def test_empty_range_and_missing_tables(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert main(["report", "--database-url", url]) == 1
    assert "no SQLite database at" in capsys.readouterr().err
    assert not (tmp_path / "empty.sqlite3").exists()  # a typo in the path creates nothing
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
    assert main(["report", "--database-url", url]) == 1
    assert "no feedback and issued_cards tables" in capsys.readouterr().err
    migrate(engine)
    engine.dispose()
    assert main(["report", "--database-url", url, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == {"feedback": 0, "accepted": 0, "overridden": 0,
                               "acceptance_rate": None, "override_rate": None}
    assert main(["report", "--database-url", url]) == 0
    assert "(no feedback)" in capsys.readouterr().out


def test_date_range_defaults_and_errors(capsys):
    start, end = date_range(None, None, today=date(2026, 11, 27))
    assert (start.isoformat(), end.isoformat()) == ("2026-10-29T00:00:00+00:00", "2026-11-28T00:00:00+00:00")
    start, end = date_range("2026-11-01T12:00:00+02:00", None, today=date(2026, 11, 27))
    assert start == datetime(2026, 11, 1, 10, 0, tzinfo=timezone.utc)
    with pytest.raises(argparse.ArgumentTypeError):
        date_range("2026-11-30", "2026-11-01")
    assert main(["report", "--since", "yesterday"]) == 2
    assert "not a date" in capsys.readouterr().err


def test_format_table_renders_every_section():
    text = format_table({**EXPECTED, "since": "2026-11-01T00:00:00+00:00", "until": "2026-12-01T00:00:00+00:00",
                         "by_week": [], "by_knowledge_version": []})
    assert [line for line in text.splitlines() if line.startswith("By ")] == [
        "By card type", "By recommended code", "By week (starting Monday)", "By knowledge version",
        "By override reason"]
    assert "9 feedback items: 5 accepted (55.6%), 4 overridden (44.4%)" in text
