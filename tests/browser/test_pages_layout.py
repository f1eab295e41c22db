"""The shared page layout: its style sheet is served by the service itself, under the page CSP."""

from __future__ import annotations

from flask import Flask

from cds_service.pages import PAGE_CSP, render_page


def test_style_sheet_is_served_with_a_css_type(client) -> None:
    response = client.get("/static/pages/pages.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    assert b"@media print" in response.data


def test_rendered_page_states_language_direction_and_narrow_policy(app: Flask) -> None:
    with app.test_request_context("/"):
        app.jinja_env.from_string("")  # the environment exists before rendering
        response = render_page("pages/base.html", lang="ar", text_direction="rtl", section="library")
    html = response.get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in html
    assert 'aria-current="page">Library' in html
    assert '<main id="main"' in html
    assert response.headers["Content-Security-Policy"] == PAGE_CSP
    assert "script-src" not in PAGE_CSP and "default-src 'none'" in PAGE_CSP


def test_json_api_keeps_the_strict_policy(client) -> None:
    response = client.get("/cds-services")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_browser_fixture_loads_the_style_sheet_without_leaving_the_service(serve_service, open_page) -> None:
    base = serve_service()
    served = open_page(base)
    response = served.goto("/static/pages/pages.css")
    assert response is not None and response.status == 200
    assert served.outside_requests == []
