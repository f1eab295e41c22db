"""A clinician follows a card's link from a real hook answer to the library page, in Chromium."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
from cds_service.knowledge.plain_words import default_plain_words
from tests.conftest import full_prefetch, therapy_request


def _sign(base: str, language: str) -> dict[str, Any]:
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    body["prefetch"]["patient"]["communication"] = [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": language}]}, "preferred": True}]
    request = urllib.request.Request(f"{base}/cds-services/radioelement-order-sign", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback test server)
        answer: dict[str, Any] = json.load(response)
    return answer


def _card(answer: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(card for card in answer["cards"] if card["extension"]["cds-service.card-type"] == kind)


def test_card_links_open_the_library_page_of_the_recommended_code(serve_service, open_page) -> None:
    base = serve_service()
    answer = _sign(base, "ar-EG")
    code = answer["extension"]["cds-service.decisions"][0]["recommendedCode"]
    view = open_page(base)

    code_link = _card(answer, "code")["links"][0]["url"]
    assert code_link == f"{base}/library/{code}"
    assert view.page.goto(code_link).status == 200
    assert view.page.evaluate("() => document.documentElement.lang") == "en"
    assert code in view.page.locator("h1").inner_text()

    explanation = _card(answer, "patient-explanation")
    assert explanation["extension"]["cds-service.language"] == "ar"
    assert view.page.goto(explanation["links"][0]["url"]).status == 200
    assert view.page.evaluate("() => [document.documentElement.lang, document.documentElement.dir]") == ["ar", "rtl"]
    words = default_plain_words().text(code, "ar")
    assert words is not None
    # The page shows the patient the very words the card gave the clinician.
    assert view.page.locator("p.plain-text").inner_text() == words[0]
    assert words[0] in explanation["detail"]
    view.screenshot(f"card-link-library-{code}-ar")
    assert view.outside_requests == []
