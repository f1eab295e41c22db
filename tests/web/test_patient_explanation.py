"""The patient-explanation card and the code card's library link, through the real HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
from cds_service.knowledge.plain_words import LANGUAGES, default_plain_words
from tests.conftest import full_prefetch, therapy_request

SIGN = "/cds-services/radioelement-order-sign"
SELECT = "/cds-services/radioelement-order-select"


def _speaking(*communications: dict[str, Any]) -> dict[str, Any]:
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    body["prefetch"]["patient"]["communication"] = list(communications)
    return body


def _language(tag: str, preferred: bool | None = None, *, as_text: bool = False) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": tag} if as_text else {
        "coding": [{"system": "urn:ietf:bcp:47", "code": tag}]}
    entry: dict[str, Any] = {"language": concept}
    if preferred is not None:
        entry["preferred"] = preferred
    return entry


def _cards(response: Any, kind: str) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [card for card in response.get_json()["cards"]
            if card["extension"]["cds-service.card-type"] == kind]


def _recommended(response: Any) -> str:
    return str(response.get_json()["extension"]["cds-service.decisions"][0]["recommendedCode"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_patient_explanation_card_in_each_library_language(client: Any, language: str) -> None:
    response = client.post(SIGN, json=_speaking(_language(language, preferred=True)))
    [card] = _cards(response, "patient-explanation")
    code = _recommended(response)
    own, used = default_plain_words().text(code, language) or ("", "")
    english, _ = default_plain_words().text(code, "en") or ("", "")
    assert used == language
    assert card["extension"]["cds-service.language"] == language
    assert card["extension"]["cds-service.recommended-code"] == code
    assert card["extension"]["davinci-crd.associated-resource"] == ["ServiceRequest/sr-ra223"]
    assert own in card["detail"]
    assert (english in card["detail"]) and ((language == "en") != ("The same in English" in card["detail"]))
    assert card["links"][0]["url"] == f"http://localhost/library/{code}?lang={language}"


def test_regional_tag_and_preferred_entry_choose_the_language(client: Any) -> None:
    regional = client.post(SIGN, json=_speaking(_language("de"), _language("es-MX", preferred=True)))
    assert _cards(regional, "patient-explanation")[0]["extension"]["cds-service.language"] == "es"
    first = client.post(SIGN, json=_speaking(_language("tl", as_text=True), _language("fr")))
    assert _cards(first, "patient-explanation")[0]["extension"]["cds-service.language"] == "tl"


def test_a_language_the_library_lacks_is_english_and_the_card_says_so(client: Any) -> None:
    response = client.post(SIGN, json=_speaking(_language("pt-BR", preferred=True)))
    [card] = _cards(response, "patient-explanation")
    assert card["extension"]["cds-service.language"] == "en"
    assert "no text in that language" in card["detail"]
    assert "The same in English" not in card["detail"]


def test_the_patient_is_fetched_from_the_fhir_server_when_not_prefetched(client: Any, fhir_server: Any) -> None:
    fhir_server.resources = [{"resourceType": "Patient", "id": "pat-1",
                              "communication": [_language("ko", preferred=True)]}]
    body = therapy_request(prefetch={key: value for key, value in full_prefetch(list(ORDER_SIGN_PREFETCH)).items()
                                     if key != "patient"})
    body["fhirServer"] = fhir_server.base_url
    response = client.post(SIGN, json=body)
    assert "Patient/pat-1" in {seen["path"] for seen in fhir_server.requests_seen}
    assert _cards(response, "patient-explanation")[0]["extension"]["cds-service.language"] == "ko"


def test_the_card_honours_the_crd_configuration(client: Any) -> None:
    body = _speaking(_language("vi"))
    body["extension"] = {"davinci-crd.configuration": {"clinical-reminder": False}}
    assert _cards(client.post(SIGN, json=body), "patient-explanation") == []
    body["extension"] = {"davinci-crd.configuration": {"max-cards": 1}}
    cards = client.post(SIGN, json=body).get_json()["cards"]
    assert [card["extension"]["cds-service.card-type"] for card in cards] == ["code"]


def test_the_explanation_comes_after_every_coding_card(client: Any) -> None:
    cards = client.post(SIGN, json=_speaking(_language("ar"))).get_json()["cards"]
    kinds = [card["extension"]["cds-service.card-type"] for card in cards]
    assert kinds[-1] == "patient-explanation" and kinds.count("patient-explanation") == 1


def test_code_card_links_to_the_library_first_then_the_external_source(client: Any) -> None:
    response = client.post(SIGN, json=_speaking(_language("en")))
    [card] = _cards(response, "code")
    code = _recommended(response)
    urls = [link["url"] for link in card["links"]]
    assert urls[0] == f"http://localhost/library/{code}"
    assert len(urls) >= 2 and all(url.startswith("https://") for url in urls[1:])
    assert all(link["type"] == "absolute" for link in card["links"])
    assert client.get(f"/library/{code}").status_code == 200


def test_public_base_url_wins_over_the_request_url(make_app: Any) -> None:
    client = make_app(public_base_url="https://cds.example.org/base/").test_client()
    response = client.post(SIGN, json=_speaking(_language("fr")))
    code = _recommended(response)
    assert _cards(response, "code")[0]["links"][0]["url"] == f"https://cds.example.org/base/library/{code}"
    assert (_cards(response, "patient-explanation")[0]["links"][0]["url"]
            == f"https://cds.example.org/base/library/{code}?lang=fr")


def test_order_select_stays_light_without_an_explanation(client: Any) -> None:
    body = therapy_request(hook="order-select", prefetch=full_prefetch(["patient", "conditions", "carePlans",
                                                                        "serviceRequests"]))
    body["prefetch"]["patient"]["communication"] = [_language("es")]
    response = client.post(SELECT, json=body)
    assert _cards(response, "patient-explanation") == []
    assert _cards(response, "code")[0]["links"][0]["url"].startswith("http://localhost/library/")
