"""``cds-service report --format csv``: the same numbers as ``--format json``, one tidy table."""

from __future__ import annotations

import csv
import io
import json

from cds_service.cli import main
from cds_service.ops.report import CSV_BREAKDOWNS, CSV_COLUMNS, csv_text
from tests.dashboard.seed import SELECT

RANGE = ["--since", "2026-11-01", "--until", "2026-11-30"]


def _cell(value):
    return "" if value is None else str(value)


def test_csv_rows_equal_the_json_report(seeded_url: str, capsys) -> None:
    assert main(["report", "--database-url", seeded_url, *RANGE, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main(["report", "--database-url", seeded_url, *RANGE, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert {row["breakdown"] for row in rows} == set(CSV_BREAKDOWNS)
    for name in CSV_BREAKDOWNS:
        expected = [report["total"]] if name == "total" else report[name]
        got = [row for row in rows if row["breakdown"] == name]
        assert len(got) == len(expected) > 0, name
        for want, have in zip(expected, got):
            for key, value in want.items():
                if key != "by_card_type":  # the reason's per-type split stays in the JSON
                    assert have[key] == _cell(value), (name, key)


def test_service_option_and_table_sections(seeded_url: str, capsys) -> None:
    assert main(["report", "--database-url", seeded_url, *RANGE, "--service", SELECT, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["service"] == SELECT and report["total"]["feedback"] > 0
    assert main(["report", "--database-url", seeded_url, *RANGE, "--service", SELECT]) == 0
    text = capsys.readouterr().out
    assert f"service {SELECT}" in text
    assert "By week (starting Monday)" in text and "By knowledge version" in text and "2026.2" in text


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised() -> None:
    text = csv_text(["reason", "n"], [{"reason": "=HYPERLINK(\"x\")", "n": 1}, {"reason": "a,b", "n": None}])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["reason", "n"], ["'=HYPERLINK(\"x\")", "1"], ["a,b", ""]]
