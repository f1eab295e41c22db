"""The performance dashboard in Debian's Chromium against the served service (gunicorn): charts
render with seeded data, the filters change them (with JavaScript off), the CSV downloads equal
``cds-service report --format json``, and nothing is fetched from elsewhere. Screenshots go to
the test artefacts."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cds_service.storage.db import make_engine
from tests.dashboard.seed import SELECT, make_dataset, write_dataset

RANGE = "since=2026-11-02&until=2026-11-29"


@pytest.fixture
def seeded_service(serve_service, tmp_path: Path) -> tuple[str, str]:
    database = tmp_path / "seeded.sqlite3"
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    try:
        write_dataset(engine, make_dataset())
    finally:
        engine.dispose()
    return serve_service(CDS_SQLITE_PATH=str(database)), url


def _report(database_url: str, *extra: str) -> dict:
    command = [sys.executable, "-m", "cds_service.cli", "report", "--database-url", database_url,
               "--since", "2026-11-02", "--until", "2026-11-29", "--format", "json", *extra]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def test_charts_render_with_seeded_data(seeded_service, open_page) -> None:
    base, _ = seeded_service
    served = open_page(base, viewport={"width": 1280, "height": 900})
    response = served.goto(f"/dashboard?{RANGE}")
    assert response is not None and response.status == 200
    page = served.page
    charts = page.locator("svg[role=img]")
    assert charts.count() == 11
    for index in range(charts.count()):
        chart = charts.nth(index)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 50
        assert chart.locator("title").first.text_content().strip()
    # accessible names come from the SVG titles
    assert page.get_by_role("img", name="Recommended codes").count() == 1
    assert page.get_by_role("img", name="Override reasons").is_visible()
    bars = page.locator("svg[role=img] rect")
    assert bars.count() > 20
    assert page.locator("#figure-calls").inner_text() != "0"
    assert page.locator('nav a[aria-current="page"]').inner_text() == "Performance"
    served.screenshot("dashboard")
    assert served.outside_requests == []


def test_filters_change_the_charts_without_javascript(seeded_service, open_page) -> None:
    base, _ = seeded_service
    served = open_page(base, java_script_enabled=False, viewport={"width": 1280, "height": 900})
    served.goto(f"/dashboard?{RANGE}")
    page = served.page
    before_calls = page.locator("#figure-calls").inner_text()
    before_chart = page.locator("svg[role=img]").first.inner_html()
    page.select_option("#service", SELECT)
    page.fill("#since", "2026-11-09")
    page.fill("#until", "2026-11-15")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert "service=radioelement-order-select" in page.url and "since=2026-11-09" in page.url
    assert page.locator("#figure-calls").inner_text() != before_calls
    assert page.locator("svg[role=img]").first.inner_html() != before_chart
    assert page.locator("#key-figures").inner_text().endswith("2026-11-09 to 2026-11-15, radioelement-order-select")
    served.screenshot("dashboard-filtered")
    # a bad range is explained on the page, not a stack trace
    served.goto("/dashboard?since=2026-11-20&until=2026-11-01")
    assert page.get_by_role("alert").inner_text() == "since must be on or before until"
    assert served.outside_requests == []


@pytest.mark.parametrize("service", [None, SELECT])
def test_csv_downloads_equal_the_json_report(seeded_service, open_page, tmp_path: Path, service) -> None:
    base, database_url = seeded_service
    report = _report(database_url, *(["--service", service] if service else []))
    served = open_page(base, accept_downloads=True)
    served.goto(f"/dashboard?{RANGE}" + (f"&service={service}" if service else ""))
    page = served.page
    pairs = {"override-reasons": ("by_override_reason", ("reason", "display", "overrides", "share_of_overrides")),
             "acceptance-by-card-type": ("by_card_type", None),
             "acceptance-by-week": ("by_week", None),
             "acceptance-by-knowledge-version": ("by_knowledge_version", None)}
    for table, (key, columns) in pairs.items():
        with page.expect_download() as info:
            page.locator(f'a[href^="/dashboard/{table}.csv"]').click()
        download = info.value
        path = tmp_path / download.suggested_filename
        download.save_as(path)
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        expected = report[key]
        assert len(rows) == len(expected) > 0, table
        for want, have in zip(expected, rows):
            for column in columns or want:
                assert have[column] == ("" if want[column] is None else str(want[column])), (table, column)
    assert served.outside_requests == []
