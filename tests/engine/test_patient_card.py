"""The patient-explanation card as a pure function: language choice, English beside, fallbacks, link."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.engine.patient_card import (
    PATIENT_EXPLANATION_CARD, find_patient, library_url, patient_explanation_card,
)
from cds_service.knowledge.plain_words import LANGUAGES, default_plain_words

CODE = "79101"  # a recommendable code with all ten texts
BASE = "https://cds.example.org/"


def _patient(*communications: dict[str, Any], patient_id: str = "p1") -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": patient_id}
    if communications:
        patient["communication"] = list(communications)
    return patient


def _speaks(tag: str, preferred: bool | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": tag}]}}
    if preferred is not None:
        entry["preferred"] = preferred
    return entry


def _card(patient: dict[str, Any] | None, code: str = CODE, base_url: str | None = BASE) -> dict[str, Any]:
    card = patient_explanation_card(code, patient, associated=["ServiceRequest/sr-1"],
                                    order_label="Order text (ServiceRequest/sr-1)", source_label="Test label",
                                    base_url=base_url)
    assert card is not None
    return card


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_library_language_gets_its_own_words_with_english_beside(language: str) -> None:
    plain = default_plain_words()
    card = _card(_patient(_speaks(language, preferred=True)))
    own, used = plain.text(CODE, language) or ("", "")
    english, _ = plain.text(CODE, "en") or ("", "")
    assert used == language
    assert card["extension"]["cds-service.language"] == language
    assert card["extension"]["cds-service.card-type"] == PATIENT_EXPLANATION_CARD
    assert card["extension"]["cds-service.recommended-code"] == CODE
    assert own in card["detail"]
    if language == "en":
        assert "The same in English" not in card["detail"]
    else:
        assert "**The same in English:**" in card["detail"]
        assert english in card["detail"]
        assert card["detail"].index(own) < card["detail"].index(english)
    assert card["links"][0]["url"] == f"https://cds.example.org/library/{CODE}?lang={language}"
    assert card["links"][0]["type"] == "absolute"


def test_a_regional_tag_uses_its_primary_subtag() -> None:
    card = _card(_patient(_speaks("es-MX")))
    assert card["extension"]["cds-service.language"] == "es"
    assert default_plain_words().text(CODE, "es")[0] in card["detail"]  # type: ignore[index]


def test_the_preferred_language_wins_over_the_first() -> None:
    card = _card(_patient(_speaks("fr"), _speaks("vi", preferred=True)))
    assert card["extension"]["cds-service.language"] == "vi"


def test_without_a_preferred_flag_the_first_language_is_used() -> None:
    card = _card(_patient(_speaks("ko"), _speaks("de")))
    assert card["extension"]["cds-service.language"] == "ko"


def test_a_language_the_library_lacks_falls_back_to_english_and_says_so() -> None:
    card = _card(_patient(_speaks("pt-BR", preferred=True)))
    assert card["extension"]["cds-service.language"] == "en"
    assert "no text in that language" in card["detail"]
    assert "pt" in card["summary"]
    assert "The same in English" not in card["detail"]
    assert card["links"][0]["url"].endswith("?lang=en")


def test_no_recorded_language_and_no_patient_are_english_with_the_reason() -> None:
    silent = _card(_patient())
    assert silent["extension"]["cds-service.language"] == "en"
    assert "No preferred language is recorded" in silent["detail"]
    absent = _card(None)
    assert absent["extension"]["cds-service.language"] == "en"
    assert "record was not available" in absent["detail"]


def test_a_code_without_plain_words_gets_no_card() -> None:
    assert patient_explanation_card("00000", _patient(_speaks("es")), associated=[], order_label="x",
                                    source_label="y") is None


def test_the_card_is_a_crd_card_with_a_bounded_summary_and_no_link_without_a_base() -> None:
    card = _card(_patient(_speaks("ar")), base_url=None)
    assert "links" not in card
    assert card["indicator"] == "info"
    assert len(card["summary"]) < 140
    assert card["source"]["topic"]["system"] == "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
    assert card["source"]["topic"]["code"] == "clinical-reminder"
    assert card["extension"]["davinci-crd.associated-resource"] == ["ServiceRequest/sr-1"]


def test_library_url_is_absolute_and_escapes_what_it_is_given() -> None:
    assert library_url("http://h:8080/", "0394T") == "http://h:8080/library/0394T"
    assert library_url("http://h", "a/b", "e n") == "http://h/library/a%2Fb?lang=e%20n"


def test_find_patient_takes_the_context_patient_only() -> None:
    other, mine = _patient(patient_id="p2"), _patient(patient_id="p1")
    assert find_patient([{"resourceType": "Condition", "id": "p1"}, other, mine], "p1") is mine
    assert find_patient([other], "p1") is None
