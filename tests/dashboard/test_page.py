"""GET /dashboard and its CSV downloads through the real app: charts and tables render, filters
change them, every feedback CSV equals the ``cds-service report`` JSON, and no patient data leaks."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest

from cds_service.app import create_app
from cds_service.cli import main
from cds_service.config import Settings
from cds_service.dashboard.data import TABLES
from cds_service.ops.audit_stats import audit_stats
from cds_service.pages import PAGE_CSP
from tests.dashboard.seed import FIRST_DAY, PATIENT_MARKERS, SELECT

RANGE = {"since": "2026-11-02", "until": "2026-11-29"}


@pytest.fixture
def client(seeded_url: str):
    app = create_app(Settings(database_url=seeded_url, auth_enabled=False))
    yield app.test_client()
    app.extensions["cds_db"].dispose()


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_page_draws_every_chart_with_a_text_alternative(client) -> None:
    response = client.get("/dashboard", query_string=RANGE)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    page = response.get_data(as_text=True)
    svgs = re.findall(r'<svg [^>]*role="img"[^>]*aria-labelledby="([^"]+)"', page)
    assert len(svgs) == 11
    for labels in svgs:
        title, desc = labels.split()
        assert f'<title id="{title}">' in page and f'<desc id="{desc}">' in page
    assert "No data in this date range." not in page  # every chart has seeded data to draw
    assert page.count("<polyline") >= 4 and page.count("<rect") >= 10
    assert 'aria-current="page">Performance' in page
    assert "<script" not in page
    for table in TABLES:
        assert f"/dashboard/{table.name}.csv?since=2026-11-02&amp;until=2026-11-29" in page


def test_filters_change_the_numbers(client, seeded_url: str, dataset) -> None:
    def figure(page: str, name: str) -> str:
        return re.search(rf'<dd id="figure-{name}">([^<]*)</dd>', page).group(1)

    everything = client.get("/dashboard", query_string=RANGE).get_data(as_text=True)
    one_service = client.get("/dashboard", query_string={**RANGE, "service": SELECT}).get_data(as_text=True)
    one_week = client.get("/dashboard", query_string={"since": "2026-11-02", "until": "2026-11-08"}).get_data(as_text=True)
    calls = [figure(page, "calls") for page in (everything, one_service, one_week)]
    assert len(set(calls)) == 3
    assert int(figure(one_service, "calls")) == sum(1 for c in dataset.calls if c.service == SELECT)
    assert f'<option value="{SELECT}" selected>' in one_service


def test_feedback_csv_downloads_equal_the_json_report(client, seeded_url: str, capsys) -> None:
    for service in (None, SELECT):
        args = ["report", "--database-url", seeded_url, "--since", RANGE["since"], "--until", RANGE["until"],
                "--format", "json"] + (["--service", service] if service else [])
        assert main(args) == 0
        report = json.loads(capsys.readouterr().out)
        query = {**RANGE, **({"service": service} if service else {})}
        checked = 0
        for table in TABLES:
            if table.report_key is None:
                continue
            rows = _csv(client.get(f"/dashboard/{table.name}.csv", query_string=query))
            expected = [{column: "" if item.get(column) is None else str(item[column]) for column in table.columns}
                        for item in report[table.report_key]]
            assert rows == expected and rows, table.name
            checked += 1
        assert checked == 7


def test_audit_csv_downloads_equal_the_aggregates(client, seeded_url: str) -> None:
    from cds_service.storage.db import make_engine
    from datetime import timedelta

    engine = make_engine(seeded_url)
    try:
        stats = audit_stats(engine, FIRST_DAY, FIRST_DAY + timedelta(days=28))
    finally:
        engine.dispose()
    for table in TABLES:
        if table.source != "audit":
            continue
        rows = _csv(client.get(f"/dashboard/{table.name}.csv", query_string=RANGE))
        expected = [{c: "" if r.get(c) is None else str(r[c]) for c in table.columns} for r in table.rows(stats)]
        assert rows == expected and rows, table.name
    download = client.get("/dashboard/calls-per-day.csv", query_string=RANGE)
    assert download.headers["Content-Disposition"] == \
        'attachment; filename="calls-per-day-2026-11-02-to-2026-11-29.csv"'


def test_no_patient_data_on_the_page_or_in_any_download(client) -> None:
    pages = [client.get("/dashboard", query_string=RANGE).get_data(as_text=True)]
    pages += [client.get(f"/dashboard/{t.name}.csv", query_string=RANGE).get_data(as_text=True) for t in TABLES]
    for text in pages:
        for marker in PATIENT_MARKERS:
            assert marker not in text


@pytest.mark.parametrize("query, message", [
    ({"since": "02/11/2026"}, "since must be a date as YYYY-MM-DD, got '02/11/2026'"),
    ({"since": "2026-11-20", "until": "2026-11-01"}, "since must be on or before until"),
    ({"service": "nope"}, "unknown service 'nope'; choose one of: radioelement-order-select, radioelement-order-sign"),
    ({"since": "2020-01-01", "until": "2026-01-01"}, "the date range may span at most 1098 days"),
])
def test_bad_filters_are_a_400_with_the_reason(client, query, message) -> None:
    page = client.get("/dashboard", query_string=query)
    assert page.status_code == 400 and message in html.unescape(page.get_data(as_text=True))
    assert 'role="alert"' in page.get_data(as_text=True)
    download = client.get("/dashboard/override-reasons.csv", query_string=query)
    assert download.status_code == 400 and download.get_json()["error"] == message


def test_unknown_table_is_a_404_naming_the_tables(client) -> None:
    response = client.get("/dashboard/patients.csv")
    assert response.status_code == 404
    assert response.get_json()["error"].startswith("no dashboard table 'patients'; tables: calls-per-day,")
