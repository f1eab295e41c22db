"""Plain words: complete for every code the engine can recommend, strict when loaded, and the
small API the patient-explanation card will call (language choice with English fallback)."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import pytest

from cds_service.knowledge import load_knowledge
from cds_service.knowledge import plain_words as pw
from cds_service.knowledge.plain_words import (LANGUAGES, PlainWordsError, default_plain_words, load_plain_words,
                                               patient_language, plain_words, primary_subtag)
from cds_service.library import facts


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    """A copy of the packaged data files a test may break."""
    for name in ("plain_words.toml", "library.toml"):
        shutil.copy(pw.DATA_DIR / name, tmp_path / name)
    return tmp_path


def test_every_recommendable_code_has_all_ten_languages(knowledge) -> None:
    codes = facts.recommendable_codes(knowledge)
    assert len(codes) >= 20
    assert default_plain_words().missing(codes) == []


def test_a_missing_language_is_reported_for_that_code_and_language(data_copy: Path, knowledge) -> None:
    path = data_copy / "plain_words.toml"
    text = path.read_text(encoding="utf-8")
    # Drop the Korean line of the 79101 entry only.
    start = text.index('codes = ["79101"]')
    korean = text.index("\nko = ", start)
    end = text.index("\n", korean + 1)
    path.write_text(text[:korean] + text[end:], encoding="utf-8")
    words = load_plain_words(data_copy)
    assert words.missing(facts.recommendable_codes(knowledge)) == [("79101", "ko")]


def test_a_code_without_any_text_is_reported_in_every_language(knowledge) -> None:
    gaps = default_plain_words().missing(("77750", "99999"))
    assert gaps == [("99999", language) for language in LANGUAGES]


def test_recommendable_codes_come_from_the_decision_table(knowledge) -> None:
    codes = set(facts.recommendable_codes(knowledge))
    assert {"77750", "79101", "79200", "79403", "79445", "77778", "0394T", "0395T", "57155", "58346"} <= codes
    assert not {"77776", "77787", "36400", "99024", "77790"} & codes  # deleted and related codes


def test_every_code_a_rules_row_can_recommend_is_recommendable_and_nothing_else(knowledge) -> None:
    """Read rules.toml itself: each row's code and alternatives, and for a keep_ordered row the
    live codes of the kind it keeps, make exactly the recommendable set (so each has its texts)."""
    with (pw.DATA_DIR / "rules.toml").open("rb") as handle:
        rows = tomllib.load(handle)["rule"]
    with (pw.DATA_DIR / "codes.toml").open("rb") as handle:
        code_file = tomllib.load(handle)
    entries = [entry for table in code_file.values() if isinstance(table, list) for entry in table
               if isinstance(entry, dict) and "code" in entry]
    live = {entry["code"]: entry.get("kind") for entry in entries if entry.get("status") != "deleted"}
    named: set[str] = set()
    for row in rows:
        if row.get("keep_ordered"):
            kind = row["when"]["ordered_kind"]
            named |= {code for code, code_kind in live.items() if code_kind == kind}
        else:
            named |= {row["code"], *row.get("alternatives", ())}
    assert len(named) >= 20
    assert named == set(facts.recommendable_codes(knowledge))


def test_a_code_no_row_names_any_more_is_no_longer_recommendable(knowledge) -> None:
    rules = tuple(rule for rule in knowledge.code_rules if rule.code != "57156" and "57156" not in rule.alternatives)
    assert len(rules) < len(knowledge.code_rules)
    trimmed = dataclasses.replace(knowledge, code_rules=rules)
    assert "57156" in facts.recommendable_codes(knowledge)
    assert "57156" not in facts.recommendable_codes(trimmed)  # no keep_ordered row keeps an applicator code


def test_a_keep_ordered_row_makes_every_live_code_of_its_kind_recommendable(knowledge) -> None:
    """A keep_ordered row can hand back any live code of the kind it keeps, so all of them need texts."""
    keep = [rule for rule in knowledge.code_rules if rule.code is None]
    assert keep
    only_keep = dataclasses.replace(knowledge, code_rules=tuple(keep))
    kept = set(facts.recommendable_codes(only_keep))
    live = {code for code, info in knowledge.codes.items() if not info.deleted}
    assert {code for code in live if knowledge.codes[code].kind in {"sealed", "unsealed"}} == kept


@pytest.mark.parametrize(("tag", "expected"), [
    ("es-MX", "es"), ("ZH-Hans-CN", "zh"), ("ar", "ar"), ("pt_BR", "pt"), ("", None), (None, None),
    ("1234", None), ("<script>", None),
])
def test_primary_subtag(tag, expected) -> None:
    assert primary_subtag(tag) == expected


def test_plain_words_in_the_language_asked_for() -> None:
    text, used = plain_words("77750", "es-MX")
    assert used == "es" and "tres meses" in text
    text, used = plain_words("77750", "ar")
    assert used == "ar" and "الأشهر الثلاثة" in text


def test_plain_words_fall_back_to_english_for_a_language_the_library_lacks() -> None:
    english, used = plain_words("79101", "ja")
    assert used == "en" and english == default_plain_words().by_code["79101"].en
    assert plain_words("79101", "") == (english, "en")


def test_plain_words_for_a_code_without_text_is_none() -> None:
    assert plain_words("36400", "en") is None


def _patient(*communications):
    return {"resourceType": "Patient", "communication": list(communications)}


def _language(code=None, text=None, preferred=None):
    entry = {"language": {}}
    if code:
        entry["language"]["coding"] = [{"system": "urn:ietf:bcp:47", "code": code}]
    if text:
        entry["language"]["text"] = text
    if preferred is not None:
        entry["preferred"] = preferred
    return entry


def test_patient_language_prefers_the_preferred_entry() -> None:
    assert patient_language(_patient(_language("fr"), _language("es-MX", preferred=True))) == "es"


def test_patient_language_takes_the_first_when_none_is_preferred() -> None:
    assert patient_language(_patient(_language("vi"), _language("ko"))) == "vi"


def test_patient_language_reads_a_tag_in_text_and_defaults_to_english() -> None:
    assert patient_language(_patient(_language(text="tl"))) == "tl"
    assert patient_language({"resourceType": "Patient"}) == "en"
    assert patient_language(None) == "en"
    assert patient_language({"communication": "not a list"}) == "en"
    assert patient_language(_patient({"language": "de"}, _language("ru"))) == "ru"


def test_patient_language_may_be_one_the_library_lacks() -> None:
    assert patient_language(_patient(_language("ja-JP"))) == "ja"


def _break(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unknown_key_names_file_entry_and_key(data_copy: Path) -> None:
    _break(data_copy / "plain_words.toml", 'codes = ["79200"]', 'codes = ["79200"]\npt = "texto"')
    with pytest.raises(PlainWordsError) as caught:
        load_plain_words(data_copy)
    message = str(caught.value)
    assert message.startswith("plain_words.toml: [[text]] entry 3 (['79200']) key 'pt'")
    assert "Extra inputs are not permitted" in message


def test_missing_english_is_refused(data_copy: Path) -> None:
    text = (data_copy / "plain_words.toml").read_text(encoding="utf-8")
    start = text.index('codes = ["79005"]')
    english = text.index("\nen = ", start)
    (data_copy / "plain_words.toml").write_text(text[:english] + text[text.index("\n", english + 1):], encoding="utf-8")
    with pytest.raises(PlainWordsError, match=r"\[\[text\]\] entry 4 \(\['79005'\]\) key 'en': Field required"):
        load_plain_words(data_copy)


def test_a_code_with_two_texts_is_refused(data_copy: Path) -> None:
    _break(data_copy / "plain_words.toml", 'codes = ["79300"]', 'codes = ["79300", "77750"]')
    with pytest.raises(PlainWordsError, match="code 77750 already has a text"):
        load_plain_words(data_copy)


def test_a_missing_page_label_is_refused(data_copy: Path) -> None:
    _break(data_copy / "plain_words.toml", 'back = "Zurück zur Bibliothek"\n', "")
    with pytest.raises(PlainWordsError, match=r"\[\[language\]\] entry 8 \('de'\) key 'labels.back': Field required"):
        load_plain_words(data_copy)


def test_invalid_toml_and_missing_file_are_named(data_copy: Path, tmp_path: Path) -> None:
    (data_copy / "plain_words.toml").write_text("[meta\n", encoding="utf-8")
    with pytest.raises(PlainWordsError, match="plain_words.toml: not valid TOML"):
        load_plain_words(data_copy)
    with pytest.raises(PlainWordsError, match="plain_words.toml: file is missing"):
        load_plain_words(tmp_path / "nowhere")
