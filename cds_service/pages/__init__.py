"""HTML pages for people (the code library, the performance dashboard): one layout, one style
sheet, one content-security policy.

The JSON API keeps ``default-src 'none'``; a page needs only its own style sheet and inline SVG,
so its policy allows exactly that and nothing else (no script, no remote origin).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, make_response, render_template

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)

# Serves the layout's templates and /static/pages/*; the pages themselves are other blueprints.
blueprint = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/pages",
)


def render_page(template: str, *, status: int = 200, lang: str = "en", text_direction: str = "ltr",
                **context: Any) -> Response:
    """Render ``template`` (which extends ``pages/base.html``) as an HTML response with the page CSP.

    ``lang`` and ``text_direction`` set ``<html lang dir>``: screen readers and right-to-left
    scripts depend on them, so every page states them.
    """
    html = render_template(template, lang=lang, text_direction=text_direction, **context)
    response = make_response(html, status)
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)
