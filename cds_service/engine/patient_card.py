"""The patient-explanation card: words the clinician can use to explain the treatment to the patient.

Why a card of its own: the code card speaks to the coder; this one hands the clinician the
library's plain words for the recommended code in the patient's preferred language
(``Patient.communication``), with the English beside it so the clinician knows what the patient
reads. A language the library lacks falls back to English and the card says so, rather than
staying silent or guessing. Pure: a decision's code, the Patient resource and the texts in, a card
dict out.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from cds_service.knowledge.plain_words import (
    DEFAULT_LANGUAGE, PlainWords, default_plain_words, patient_language,
)
from cds_service.knowledge.vocabulary import (
    CRD_CARD_TYPE_SYSTEM, CRD_CARD_TYPES, PATIENT_EXPLANATION_CARD, PATIENT_EXPLANATION_TOPIC,
)

#: The library languages' names in English, for the clinician reading the card (the library's own
#: ``Language.name`` is the name in that language, shown beside it).
ENGLISH_NAMES: Mapping[str, str] = {
    "en": "English", "es": "Spanish", "zh": "Chinese", "ru": "Russian", "ar": "Arabic",
    "vi": "Vietnamese", "fr": "French", "de": "German", "ko": "Korean", "tl": "Tagalog",
}


def library_url(base_url: str, code: str, language: str | None = None) -> str:
    """The absolute URL of ``code``'s library page (``/library/{code}``), optionally in ``language``."""
    url = f"{base_url.rstrip('/')}/library/{quote(code, safe='')}"
    return f"{url}?lang={quote(language, safe='')}" if language else url


def find_patient(resources: Sequence[Mapping[str, Any]], patient_id: str) -> Mapping[str, Any] | None:
    """The call's Patient resource: the one whose id is the context's patient (or that has no id)."""
    for resource in resources:
        if resource.get("resourceType") == "Patient" and resource.get("id") in (None, patient_id):
            return resource
    return None


def _language_name(language: str, plain: PlainWords) -> str:
    """``Spanish (Español)`` for the clinician; a tag the library lacks is shown as the tag."""
    english = ENGLISH_NAMES.get(language)
    spec = plain.languages.get(language)
    if english and spec and spec.name != english:
        return f"{english} ({spec.name})"
    return english or language


def _has_communication(patient: Mapping[str, Any] | None) -> bool:
    communication = patient.get("communication") if patient is not None else None
    return isinstance(communication, list) and bool(communication)


def patient_explanation_card(code: str, patient: Mapping[str, Any] | None, *, associated: Sequence[str],
                             order_label: str, source_label: str, base_url: str | None = None,
                             plain: PlainWords | None = None) -> dict[str, Any] | None:
    """The card for one decided order, or ``None`` when the library has no plain words for ``code``.

    ``patient`` is the FHIR Patient (``None`` when the EHR did not send it and it could not be
    fetched): its preferred language decides the text; without one the card is in English and
    says why. ``base_url`` (absolute, the service's public base) adds a link to the library page
    in the language used; without it the card has no link.
    """
    texts = plain or default_plain_words()
    english = texts.text(code, DEFAULT_LANGUAGE)
    if english is None:
        return None
    wanted = patient_language(patient)
    found = texts.text(code, wanted)
    assert found is not None  # the code has an entry, so at least English comes back
    words, used = found

    lines = [f"**Order:** {order_label}", "",
             f"Words to explain this treatment (CPT {code}) to the patient, "
             f"in {_language_name(used, texts)}:", "", f"> {words}"]
    if used != DEFAULT_LANGUAGE:
        lines += ["", "**The same in English:**", "", f"> {english[0]}"]
    if patient is None:
        lines += ["", "The patient's record was not available, so the preferred language is unknown; "
                      "the words are in English."]
    elif not _has_communication(patient):
        lines += ["", "No preferred language is recorded for the patient (Patient.communication); "
                      "the words are in English."]
    elif used != wanted:
        lines += ["", f"The patient's preferred language is {_language_name(wanted, texts)}; the library has "
                      "no text in that language yet, so the words are in English. An interpreter may be needed."]

    summary = f"Explain CPT {code} to the patient in {ENGLISH_NAMES.get(used, used)}"
    if used != wanted and _has_communication(patient):
        summary = f"Explain CPT {code} to the patient (in English: no text in {wanted})"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary,
        "indicator": "info",
        "detail": "\n".join(lines),
        "source": {"label": source_label,
                   "topic": {"system": CRD_CARD_TYPE_SYSTEM, "code": PATIENT_EXPLANATION_TOPIC,
                             "display": CRD_CARD_TYPES[PATIENT_EXPLANATION_TOPIC]}},
        "extension": {
            "davinci-crd.associated-resource": list(associated),
            "cds-service.card-type": PATIENT_EXPLANATION_CARD,
            "cds-service.recommended-code": code,
            "cds-service.language": used,
        },
    }
    if base_url:
        card["links"] = [{"label": f"CPT {code} in the code library, in {_language_name(used, texts)}",
                          "url": library_url(base_url, code, used), "type": "absolute"}]
    return card


__all__ = [
    "ENGLISH_NAMES", "PATIENT_EXPLANATION_CARD", "PATIENT_EXPLANATION_TOPIC", "find_patient",
    "library_url", "patient_explanation_card",
]
