"""The knowledge files: load, carry a versioned header, cite a source for every fact, and fail
fast with a message naming file and entry when broken."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from cds_service.knowledge import KnowledgeError, load_knowledge
from cds_service.knowledge.loader import DATA_DIR, FILES


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def test_every_file_has_a_versioned_header():
    for name in FILES:
        meta = tomllib.loads((DATA_DIR / f"{name}.toml").read_text())["meta"]
        assert meta["code_set_year"] >= 2025 and meta["effective_date"] and meta["version"]


def test_every_fact_has_a_known_source(knowledge):
    assert len(knowledge.provenance) > 100
    for where, sources in knowledge.provenance.items():
        assert sources, where
        assert all(source in knowledge.sources for source in sources), where


def test_every_code_agent_and_route_is_sourced(knowledge):
    wheres = set(knowledge.provenance)
    for code in knowledge.codes:
        assert f"codes.toml code {code!r}" in wheres
    for agent in knowledge.agents:
        assert f"agents.toml agent {agent!r}" in wheres
    for route in knowledge.routes:
        assert f"routes.toml route {route!r}" in wheres


def test_descriptors_are_paraphrases_not_the_cpt_text(knowledge):
    # The CPT descriptor of 77750 begins "Infusion or instillation of radioelement solution"; ours must not.
    assert not knowledge.codes["77750"].descriptor.lower().startswith("infusion or instillation of radioelement")


def test_indexes_are_dict_lookups(knowledge):
    assert knowledge.agent_matcher.code("rxnorm", "1424214") == "ra223"
    assert knowledge.agent_matcher.code("ndc", "50419020801") == "ra223"
    assert knowledge.route_matcher.code("snomed", "372469009") == "intrapleural"
    assert knowledge.codes["77750"].global_days == "090" and knowledge.codes["57155"].pctc == 0
    assert knowledge.codes["77785"].deleted


@pytest.mark.parametrize("file, old, new, message", [
    ("agents.toml", 'source = ["CGS-XOFIGO", "SNMMI-1895", "AAPC-XOFIGO", "OPENFDA-NDC", "DICOM-CID25"]\n', "",
     "agents.toml agent 'ra223': fact has no 'source'"),
    ("agents.toml", 'carrier = "antibody"', 'carrier = "protein"', "agents.toml agent 'y90-ibritumomab': 'carrier' has unknown value"),
    ("agents.toml", 'only_route = "oral"', 'only_route = "nasal"', "agents.toml agent 'i131-nai-solution'"),
    ("agents.toml", "text = 'zevalin|ibritumomab'", "text = 'zevalin|(ibritumomab'", "text pattern does not compile"),
    ("codes.toml", 'replaced_by = ["77772"]', 'replaced_by = ["77999"]', "codes.toml code '77787': replacement '77999'"),
    ("codes.toml", 'source = "PPRRVU25D"\n', 'source = "NOWHERE"\n', "source 'NOWHERE' is not defined in sources.toml"),
    ("edits.toml", 'with = ["79101"]', 'with = ["79102"]', "edits.toml bundling '79403': code '79102' is not in codes.toml"),
    ("documentation.toml", 'keys = ["diagnosis", "indication"]', 'keys = ["diagnosis", "reason"]',
     "documentation.toml rule 'applicator': documentation key 'reason' is not defined"),
    ("payers.toml", 'modifier_policy = "facility-26"\ncovered', 'modifier_policy = "sometimes"\ncovered',
     "payers.toml default: 'modifier_policy' has unknown value 'sometimes'"),
    ("routes.toml", 'implies_route = "intra-articular"', 'implies_route = "intra-joint"',
     "routes.toml site 'joint': implies_route 'intra-joint'"),
    ("evidence.toml", "[meta]\n", "[metadata]\n", "evidence.toml: unknown key 'metadata' (did you mean 'meta'?)"),
])
def test_a_corrupted_file_fails_fast_naming_file_and_entry(data_copy, file, old, new, message):
    edit(data_copy / file, old, new)
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(data_copy)
    assert message in str(error.value)


def test_invalid_toml_and_missing_files_are_named(data_copy):
    (data_copy / "routes.toml").write_text("[[route]\nkey=")
    with pytest.raises(KnowledgeError, match=r"routes\.toml: not valid TOML"):
        load_knowledge(data_copy)
    (data_copy / "routes.toml").unlink()
    with pytest.raises(KnowledgeError, match=r"routes\.toml: knowledge file is missing"):
        load_knowledge(data_copy)


def test_a_code_claimed_by_two_agents_is_refused(data_copy):
    edit(data_copy / "agents.toml", 'snomed = ["125701003"]', 'snomed = ["724024003"]')
    with pytest.raises(KnowledgeError, match="snomed code 724024003 is already used by 'ra223'"):
        load_knowledge(data_copy)


@pytest.mark.parametrize("text, route", [
    ("Lutathera 7.4 GBq IV over 30 minutes", "intravenous"),
    ("give i.v. over 1 minute", "intravenous"),
    ("I.V. push", "intravenous"),
    ("IVPB over 30 min", "intravenous"),
    ("slow IV-push", "intravenous"),
    ("(IV)", "intravenous"),
    ("Stage IV prostate cancer", None),
    ("stage IVB", None),
    ("grade IV, cycle IV", None),
    ("ivory; naive; survival", None),
    ("150 mCi PO once", "oral"),
    ("p.o. with water", "oral"),
    ("per os", "oral"),
    ("PO4 buffer", None),
    ("Y-90 SIRT to the right lobe", "intra-arterial"),
    ("TARE, segment 7", "intra-arterial"),
    ("stage IA", None),
])
def test_route_words_are_whole_tokens(knowledge, text, route):
    assert knowledge.route_matcher.text(text) == route


def test_modifier_split_rule_is_loaded_and_checked(knowledge, data_copy):
    # Issue 17, C2: every indicator without a 26/TC split (6 allows 26 only and is left out).
    assert knowledge.pctc_without_split == frozenset({0, 2, 3, 4, 5, 7, 8, 9})
    assert {code for code, info in knowledge.codes.items() if info.pctc == 0} >= {"57155", "57156", "58346", "0394T", "0395T"}
    edit(data_copy / "edits.toml", "pctc_without_split = [0, 2,", "pctc_without_split = [0, 1, 2,")
    with pytest.raises(KnowledgeError, match="indicator 1 is the one that takes 26/TC"):
        load_knowledge(data_copy)


def test_a_recheck_names_what_was_verified(knowledge, data_copy):
    """Issue 17 (d): a source re-checked on a date says which of its facts were verified."""
    assert {key for key, source in knowledge.sources.items() if source.rechecked} >= {"PLUVICTO-LABEL", "OPENFDA-ARPI"}
    assert all(source.rechecked_note for source in knowledge.sources.values() if source.rechecked)
    edit(data_copy / "sources.toml", 'rechecked_note = "openFDA label (last_updated 2026-07-18)',
         'rechecked_noted = "openFDA label (last_updated 2026-07-18)')
    with pytest.raises(KnowledgeError):
        load_knowledge(data_copy)


@pytest.mark.parametrize("old, new, message", [
    ('[agent.supply.setting_notes]\noffice =', '[agent.supply.setting_notes]\nhospital-outpatient = "x"\noffice =',
     "setting_notes: 'hospital-outpatient' is not a setting the code is withheld in"),
    ('medication_text = ', 'medication_texts = ', "unknown key"),
])
def test_new_knowledge_fields_are_checked(data_copy, old, new, message):
    file = "agents.toml" if "setting_notes" in old else "documentation.toml"
    edit(data_copy / file, old, new)
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(data_copy)
    assert message in str(error.value)
