"""library.toml: every fact sourced and tied to codes the knowledge has; a bad file stops start-up."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.knowledge import plain_words as pw
from cds_service.knowledge.plain_words import PlainWordsError
from cds_service.library import build_library, facts
from cds_service.library.content import load_library


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


@pytest.fixture(scope="module")
def library(knowledge):
    return build_library(knowledge)


@pytest.fixture
def data_copy(tmp_path: Path) -> Path:
    for name in ("plain_words.toml", "library.toml"):
        shutil.copy(pw.DATA_DIR / name, tmp_path / name)
    return tmp_path


def test_every_fact_cites_known_sources_with_a_confidence(library) -> None:
    content = library.content
    every = [fact for items in content.facts.values() for fact in items]
    every += [alt for items in content.alternatives.values() for alt in items]
    every += list(content.pctc.values()) + list(content.global_days.values())
    assert every
    for fact in every:
        assert fact.sources and all(key in content.sources for key in fact.sources), fact
        assert fact.confidence in {"confirmed", "secondary", "unconfirmed", "judgement"}


def test_every_recommendable_code_has_guidelines_supervision_and_examples(library) -> None:
    for code in library.recommendable:
        for section in ("guidelines", "medical_necessity", "examples"):
            assert library.content.section(code, section), (code, section)
        assert library.content.section(code, "supervision"), code


def test_alternatives_are_symmetric_and_point_at_known_codes(library) -> None:
    for code, alternatives in library.content.alternatives.items():
        for alternative in alternatives:
            assert alternative.code in library.codes
            assert any(back.code == code for back in library.content.alternatives[alternative.code])


def test_every_global_value_and_pctc_indicator_in_use_is_explained(library) -> None:
    for view in library.codes.values():
        if view.global_days:
            assert view.global_days in library.content.global_days, view.code
        if view.pctc is not None:
            assert view.pctc in library.content.pctc, view.code


def test_confidence_is_the_weakest_source_unless_stated(library) -> None:
    guideline = library.content.section("77767", "guidelines")
    levels = {fact.text[:30]: fact.confidence for fact in guideline}
    assert "secondary" in levels.values()  # AAPC-BRACHY (secondary) with PPRRVU25D (confirmed)
    stated = [fact for fact in library.content.section("58346", "examples")]
    assert stated and stated[0].confidence == "unconfirmed"


def test_supply_codes_map_to_their_administration_codes(knowledge) -> None:
    supplies = {supply.code: supply for supply in facts.supplies(knowledge)}
    assert supplies["A9606"].used_with == ("77750", "79101")  # radium-223, intravenous
    assert supplies["A9543"].used_with == ("79403",)  # the antibody
    assert supplies["C2616"].used_with == ("79445",)  # microspheres
    assert "79005" in supplies["A9530"].used_with  # oral iodine


def test_documentation_for_77750_adds_the_follow_up_items(knowledge) -> None:
    keys = [doc.key for doc in facts.documentation(knowledge, "77750")]
    assert keys[:2] == ["diagnosis", "indication"]
    assert "follow-up-plan" in keys and "follow-up-notes" in keys
    assert "follow-up-plan" not in [doc.key for doc in facts.documentation(knowledge, "79101")]


def test_documentation_phase_follows_the_rule_lists(knowledge) -> None:
    """Before treatment: the rule's `keys`; after a completed procedure: its `post` list."""
    phases = {doc.key: doc.phase for doc in facts.documentation(knowledge, "77750")}
    assert phases["diagnosis"] == phases["follow-up-plan"] == "pre"
    assert phases["response-assessment"] == phases["follow-up-notes"] == "post"
    assert {doc.phase for doc in facts.documentation(knowledge, "57155")} == {"pre"}  # applicators: no post list
    assert facts.documentation(knowledge, "99999") == []


def test_supply_codes_follow_the_decision_table(knowledge) -> None:
    """Drop the follow-up rows and radium-223's supply goes with 79101 only: the mapping is asked of rules.toml."""
    rules = tuple(rule for rule in knowledge.code_rules if rule.id != "iv-with-follow-up")
    supplies = {supply.code: supply for supply in facts.supplies(dataclasses.replace(knowledge, code_rules=rules))}
    assert supplies["A9606"].used_with == ("79101",)
    sealed = [agent for agent in knowledge.agents.values() if agent.sealed and agent.supply is not None]
    for agent in sealed:  # the engine bills no supply line beside a sealed or electronic code
        assert all(view.used_with == () for view in facts.supplies(knowledge) if view.code == agent.supply.code)


@pytest.mark.parametrize(("old", "new", "message"), [
    ('codes = ["79440"]', 'codes = ["79441"]', r"\[\[fact\]\] entry \d+ \(examples\) key 'codes': code 79441 is not in codes.toml"),
    ('source = ["ASTRO-BRACHY-FAQ"]\n', 'source = ["NO-SUCH-SOURCE"]\n', r"key 'source': source 'NO-SUCH-SOURCE' is not defined"),
    ('section = "supervision"', 'section = "billing"', r"\[\[fact\]\] entry 19 \(\['group:radiopharmaceutical', 'group:sealed', 'group:electronic'\]\) key 'section'"),
    ('rule = "A radiolabelled', 'rules = "A radiolabelled', r"\[\[alternative\]\]"),
])
def test_bad_library_file_names_entry_and_key(data_copy: Path, knowledge, old: str, new: str, message: str) -> None:
    path = data_copy / "library.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PlainWordsError, match=message):
        load_library(set(facts.codes(knowledge)), facts.sources(knowledge), data_copy)


def test_a_bad_file_stops_start_up_with_one_message(data_copy: Path, settings, monkeypatch) -> None:
    text = (data_copy / "plain_words.toml").read_text(encoding="utf-8")
    (data_copy / "plain_words.toml").write_text(text.replace('name = "Tiếng Việt"', 'nom = "Tiếng Việt"'), encoding="utf-8")
    monkeypatch.setattr(pw, "DATA_DIR", data_copy)
    with pytest.raises(KnowledgeError) as caught:
        create_app(settings)
    assert str(caught.value).startswith("plain_words.toml: [[language]] entry 6 ('vi') key 'name': Field required")
