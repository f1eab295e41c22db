"""Plain words for patients, per code and language (``data/plain_words.toml``).

Why a module of its own: the library pages show these texts, and the patient-explanation card
will hand them to the clinician in the patient's language, so both read one validated copy.
The file is checked strictly at start-up (pydantic, unknown keys refused); a bad file stops the
service with one message naming the file, the entry and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cds_service.knowledge.loader import KnowledgeError

DATA_DIR = Path(__file__).resolve().parent / "data"
FILE_NAME = "plain_words.toml"

#: The ten library languages (primary BCP-47 subtags), in the order the language switcher shows them.
LANGUAGES: tuple[str, ...] = ("en", "es", "zh", "ru", "ar", "vi", "fr", "de", "ko", "tl")
DEFAULT_LANGUAGE = "en"

_CODE = re.compile(r"^[0-9]{4}[0-9A-Z]$")
_SUBTAG = re.compile(r"^[A-Za-z]{2,8}$")


class PlainWordsError(KnowledgeError):
    """The plain-words or library file is invalid; the message names file, entry and key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Labels(_Strict):
    """Page labels in one language; every key is required so no page mixes in a blank."""

    skip: str = Field(min_length=1)
    library: str = Field(min_length=1)
    index_intro: str = Field(min_length=1)
    language: str = Field(min_length=1)
    descriptor: str = Field(min_length=1)
    in_simple_words: str = Field(min_length=1)
    guidelines: str = Field(min_length=1)
    modifiers: str = Field(min_length=1)
    medical_necessity: str = Field(min_length=1)
    supervision: str = Field(min_length=1)
    alternatives: str = Field(min_length=1)
    examples: str = Field(min_length=1)
    checklist: str = Field(min_length=1)
    supply: str = Field(min_length=1)
    global_period: str = Field(min_length=1)
    sources: str = Field(min_length=1)
    code_set: str = Field(min_length=1)
    effective: str = Field(min_length=1)
    not_found: str = Field(min_length=1)
    not_found_text: str = Field(min_length=1)
    back: str = Field(min_length=1)
    english_note: str = Field(min_length=1)
    plain_fallback: str = Field(min_length=1)
    case_specific: str = Field(min_length=1)


class Language(_Strict):
    code: Literal["en", "es", "zh", "ru", "ar", "vi", "fr", "de", "ko", "tl"]
    name: str = Field(min_length=1)
    direction: Literal["ltr", "rtl"]
    labels: Labels


class Text(_Strict):
    """One explanation; ``en`` is required (the fallback), the other nine are checked by a test."""

    codes: tuple[str, ...] = Field(min_length=1)
    source: tuple[str, ...] = Field(min_length=1)
    en: str = Field(min_length=1)
    es: str | None = Field(default=None, min_length=1)
    zh: str | None = Field(default=None, min_length=1)
    ru: str | None = Field(default=None, min_length=1)
    ar: str | None = Field(default=None, min_length=1)
    vi: str | None = Field(default=None, min_length=1)
    fr: str | None = Field(default=None, min_length=1)
    de: str | None = Field(default=None, min_length=1)
    ko: str | None = Field(default=None, min_length=1)
    tl: str | None = Field(default=None, min_length=1)

    @field_validator("codes")
    @classmethod
    def _codes_look_like_codes(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            if not _CODE.match(code):
                raise ValueError(f"{code!r} is not a five-character CPT/HCPCS code")
        return codes


class Meta(_Strict):
    version: str = Field(min_length=1)


class PlainWordsFile(_Strict):
    meta: Meta
    language: tuple[Language, ...]
    text: tuple[Text, ...]


@dataclass(frozen=True)
class PlainWords:
    """The loaded texts, indexed by code; immutable and shared by every request."""

    version: str
    languages: Mapping[str, Language]
    by_code: Mapping[str, Text]
    source_keys: frozenset[str]

    def text(self, code: str, language: str) -> tuple[str, str] | None:
        """The text for ``code`` in ``language``, else English: ``(text, language_used)``."""
        entry = self.by_code.get(code)
        if entry is None:
            return None
        wanted = getattr(entry, language, None) if language in LANGUAGES else None
        if wanted:
            return wanted, language
        return entry.en, DEFAULT_LANGUAGE

    def missing(self, codes: Iterable[str]) -> list[tuple[str, str]]:
        """``(code, language)`` pairs without a text: the test of completeness reads this."""
        gaps = []
        for code in codes:
            entry = self.by_code.get(code)
            for language in LANGUAGES:
                if entry is None or not getattr(entry, language):
                    gaps.append((code, language))
        return gaps


def _where(data: dict[str, Any], location: tuple[Any, ...]) -> str:
    """Turn a pydantic error location into 'entry ... key ...' words a data editor can find."""
    if len(location) >= 2 and isinstance(location[0], str) and isinstance(location[1], int):
        table, index = location[0], location[1]
        found = data.get(table)
        rows: list[Any] = found if isinstance(found, list) else []
        entry = rows[index] if index < len(rows) and isinstance(rows[index], dict) else {}
        name = next((entry[key] for key in ("codes", "code", "between", "indicator", "days") if key in entry), None)
        key = ".".join(str(part) for part in location[2:]) or "(entry)"
        return f"[[{table}]] entry {index + 1} ({name!r}) key {key!r}"
    return "key " + repr(".".join(str(part) for part in location))


def read_toml_model(path: Path, model: type[BaseModel]) -> tuple[BaseModel, dict[str, Any]]:
    """Read ``path`` into ``model``; any problem becomes one :class:`PlainWordsError` naming file, entry, key."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PlainWordsError(f"{path.name}: file is missing (looked in {path.parent})") from None
    except tomllib.TOMLDecodeError as error:
        raise PlainWordsError(f"{path.name}: not valid TOML: {error}") from None
    try:
        return model.model_validate(data), data
    except ValidationError as error:
        first = error.errors()[0]
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise PlainWordsError(f"{path.name}: {_where(data, tuple(first['loc']))}: {first['msg']}{more}") from None


def load_plain_words(directory: Path | str | None = None) -> PlainWords:
    """Load and check ``plain_words.toml``; raise :class:`PlainWordsError` on the first problem."""
    path = Path(directory or DATA_DIR) / FILE_NAME
    parsed, _ = read_toml_model(path, PlainWordsFile)
    assert isinstance(parsed, PlainWordsFile)
    languages: dict[str, Language] = {}
    for index, language in enumerate(parsed.language):
        if language.code in languages:
            raise PlainWordsError(f"{FILE_NAME}: [[language]] entry {index + 1} ({language.code!r}) key 'code': "
                                  "language defined twice")
        languages[language.code] = language
    absent = [code for code in LANGUAGES if code not in languages]
    if absent:
        raise PlainWordsError(f"{FILE_NAME}: [[language]] entries missing for {', '.join(absent)}")
    by_code: dict[str, Text] = {}
    for index, entry in enumerate(parsed.text):
        for code in entry.codes:
            if code in by_code:
                raise PlainWordsError(f"{FILE_NAME}: [[text]] entry {index + 1} ({list(entry.codes)!r}) key 'codes': "
                                      f"code {code} already has a text")
            by_code[code] = entry
    sources = frozenset(key for entry in parsed.text for key in entry.source)
    return PlainWords(parsed.meta.version, {code: languages[code] for code in LANGUAGES}, by_code, sources)


@lru_cache(maxsize=1)
def default_plain_words() -> PlainWords:
    """The packaged texts, loaded once per process."""
    return load_plain_words()


def primary_subtag(tag: str | None) -> str | None:
    """``es-MX`` → ``es``; ``zh-Hans-CN`` → ``zh``; anything not a language tag → ``None``."""
    if not tag or not isinstance(tag, str):
        return None
    head = tag.strip().replace("_", "-").split("-", 1)[0]
    return head.lower() if _SUBTAG.match(head) else None


def plain_words(code: str, language: str, data: PlainWords | None = None) -> tuple[str, str] | None:
    """Plain words for ``code`` in ``language`` (a BCP-47 tag), English when that language lacks it.

    Returns ``(text, language_used)`` so a caller can say when it fell back to English, or ``None``
    when the code has no plain-words text at all.
    """
    return (data or default_plain_words()).text(code, primary_subtag(language) or DEFAULT_LANGUAGE)


def patient_language(patient: Mapping[str, Any] | None) -> str:
    """The patient's language from FHIR ``Patient.communication``: the ``preferred`` one, else the first.

    Reads ``language.coding[].code`` (urn:ietf:bcp:47) and falls back to ``language.text`` when it
    is itself a tag; returns the primary subtag (``es-MX`` → ``es``), or ``en`` when none is given.
    The result may be a language the library lacks; :func:`plain_words` then falls back to English.
    """
    communications = patient.get("communication") if isinstance(patient, Mapping) else None
    if not isinstance(communications, list):
        return DEFAULT_LANGUAGE
    entries = [entry for entry in communications if isinstance(entry, Mapping)]
    ordered = [entry for entry in entries if entry.get("preferred") is True] + entries
    for entry in ordered:
        language = entry.get("language")
        if not isinstance(language, Mapping):
            continue
        for coding in language.get("coding") or []:
            if isinstance(coding, Mapping) and (subtag := primary_subtag(coding.get("code"))):
                return subtag
        if subtag := primary_subtag(language.get("text")):
            return subtag
    return DEFAULT_LANGUAGE


__all__ = [
    "DEFAULT_LANGUAGE", "LANGUAGES", "Labels", "Language", "PlainWords", "PlainWordsError", "Text",
    "default_plain_words", "load_plain_words", "patient_language", "plain_words", "primary_subtag",
    "read_toml_model",
]
