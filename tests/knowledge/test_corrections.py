"""Issue 17 (audit corrections) and issue 20 (mCODE malignancy codes): each test pins a corrected
fact, so it fails on the knowledge as it was before the correction and passes after."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from cds_service.engine.edits import modifier_not_applicable
from cds_service.knowledge import load_knowledge
from cds_service.knowledge.loader import KnowledgeError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from engine_builders import bone_chart, condition, only_decision, run, service_request  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "cds_service" / "knowledge" / "data"


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge()


def raw(name: str) -> dict:
    return tomllib.loads((DATA / name).read_text(encoding="utf-8"))


# -- C2: PC/TC indicators and MPFS status of the related codes (CMS RVU file) -------------------
@pytest.mark.parametrize("code, pctc, status", [
    ("36000", 9, "bundled"), ("99024", 9, "bundled"),
    ("96360", 5, "active"), ("96374", 5, "active"), ("96375", 5, "active"), ("96409", 5, "active"),
])
def test_related_codes_match_the_rvu_file(knowledge, code, pctc, status):
    info = knowledge.codes[code]
    assert (info.pctc, info.status) == (pctc, status)
    assert "PPRRVU25D" in info.sources or "PPRRVU25A" in info.sources


@pytest.mark.parametrize("code, indicator", [("96409", 5), ("36000", 9), ("77790", 3), ("0394T", 0)])
def test_modifier_26_is_flagged_on_every_code_without_a_split(knowledge, code, indicator):
    warning = modifier_not_applicable(code, SimpleNamespace(ordered_modifiers=("26",)), knowledge)
    assert warning is not None and warning.key == "modifier-not-applicable"
    assert f"PC/TC indicator {indicator}" in warning.detail


def test_modifier_26_is_not_flagged_on_a_split_code(knowledge):
    assert knowledge.codes["77750"].pctc == 1
    assert modifier_not_applicable("77750", SimpleNamespace(ordered_modifiers=("26",)), knowledge) is None


# -- C3: deleted codes' replacements only with a source; never steer to the complex code -----------
def test_77777_is_replaced_by_the_unlisted_code_the_source_names(knowledge):
    info = knowledge.codes["77777"]
    assert info.deleted and info.replaced_by == ("77799",)
    assert "CODINGAHEAD-77777" in info.sources and "77777" in knowledge.sources["CODINGAHEAD-77777"].title


def test_77776_has_no_published_replacement_and_is_not_steered_to_77778(knowledge):
    info = knowledge.codes["77776"]
    assert "77778" not in info.replaced_by
    entry = next(e for e in raw("codes.toml")["code"] if e["code"] == "77776")
    assert entry["confidence"] == "judgement" and "TEAM-JUDGEMENT" in entry["source"]


@pytest.mark.parametrize("text, cpt, code, alternatives", [
    ("LDR interstitial seed implant, 8 seeds", "77778", "77799", ["77778"]),
    ("LDR interstitial seed implant", "77776", "77799", ["77778"]),
    ("LDR interstitial seed implant, 60 seeds", "77778", "77778", []),
])
def test_interstitial_ldr_by_source_count(text, cpt, code, alternatives):
    got = only_decision(run([service_request(cpt=cpt, text=text, reason=["C61"])]))
    assert got["recommendedCode"] == code
    assert got["alternatives"] == alternatives


# -- C4: the 77750 + 79xxx bundling edit is the project's judgement ------------------------------
def test_bundling_77750_with_79xxx_is_labelled_judgement():
    row = next(b for b in raw("edits.toml")["bundling"] if b["code"] == "77750" and "79101" in b["with"])
    assert row["source"] == "TEAM-JUDGEMENT" and row["confidence"] == "judgement"
    assert "CPT-PARENTHETICALS" not in row["source"]


# -- C5: Azedra is discontinued and still recognised ----------------------------------------------
def test_azedra_is_recognised_and_the_card_says_it_is_discontinued(knowledge):
    agent = knowledge.agents["i131-iobenguane"]
    assert agent.supply is not None and agent.supply.code == "A9590"
    assert "discontinued" in (agent.note or "")
    guidance = run([service_request(cpt=None, text="Azedra (iobenguane I-131) 500 mCi IV", reason=["C74.10"])])
    assert any("discontinued" in card.get("detail", "") for card in guidance.cards)


# -- C1: skin HDR 77767 / 77768 by size, lesions and channels; never up-code ---------------------
@pytest.mark.parametrize("text, ordered, code, uncertain", [
    ("HDR Ir-192 surface brachytherapy, single lesion 2.5 cm, 1 channel", "77768", "77767", None),
    ("HDR Ir-192 surface brachytherapy, single lesion 2.5 cm", None, "77767", "channels"),
    ("HDR Ir-192 surface brachytherapy, single lesion 2.5 cm", "77768", "77768", "channels"),
    ("HDR Ir-192 surface brachytherapy, single lesion 3.0 cm, 4 channels", "77767", "77768", None),
    ("HDR Ir-192 surface brachytherapy, 3 lesions", None, "77768", None),
    ("HDR Ir-192 surface brachytherapy, 2 channels", None, "77767", "lesion size"),
    ("HDR Ir-192 surface brachytherapy, single lesion 1.5 cm, 3 channels", None, "77767", None),
])
def test_skin_hdr_code_follows_size_lesions_and_channels(text, ordered, code, uncertain):
    guidance = run([service_request(cpt=ordered, text=text, reason=["C44.91"])])
    assert only_decision(guidance)["recommendedCode"] == code
    code_card = next(card for card in guidance.cards
                     if card.get("extension", {}).get("cds-service.card-type") == "code")
    if uncertain:
        assert "Not on the order" in code_card["detail"] and uncertain in code_card["detail"]
    else:
        assert "Not on the order" not in code_card["detail"]


# -- Issue 20: malignancy as mCODE writes it ------------------------------------------------------
def test_mcode_cancer_disorder_value_sets_count_as_malignancy(knowledge):
    malignancy = knowledge.evidence["malignancy"]
    assert ("snomed", "254637007") in malignancy  # NSCLC, the IG's own primary-cancer example
    assert ("snomed", "94493005") in malignancy   # secondary malignant neoplasm of pleura
    assert len({code for system, code in malignancy if system == "snomed"}) >= 1400
    assert ("snomed", "126906006") not in malignancy  # "neoplasm of prostate": not malignant by itself
    groups = raw("evidence.toml")["evidence"]
    for name in ("malignancy-mcode-primary", "malignancy-mcode-secondary", "malignancy-practice"):
        assert groups[name]["source"], name


def test_nsclc_coded_only_in_snomed_is_a_documented_diagnosis():
    chart = [condition("c-1", snomed="254637007"), condition("c-2", "J91.0")]
    got = only_decision(run([service_request(cpt="79200", text="P-32 chromic phosphate intrapleural instillation",
                                             reason=[])], chart))
    assert "diagnosis" not in got["missingDocumentation"]


def test_a_malignancy_part_group_may_not_carry_icd10_prefixes(tmp_path):
    import shutil
    copy = tmp_path / "data"
    shutil.copytree(DATA, copy)
    path = copy / "evidence.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[evidence.malignancy-practice]\n",
                                 "[evidence.malignancy-practice]\nicd10cm_prefixes = [\"D3\"]\n"), encoding="utf-8")
    with pytest.raises(KnowledgeError, match="icd10cm_prefixes belong to the 'malignancy' group only"):
        load_knowledge(copy)


@pytest.mark.parametrize("group, system, code", [
    ("staging", "snomed", "399504009"), ("staging", "snomed", "371497001"), ("staging", "loinc", "21908-9"),
    ("disease-status", "loinc", "88040-1"), ("performance-status", "loinc", "89243-0"),
])
def test_mcode_staging_and_status_observables_are_evidence(knowledge, group, system, code):
    assert knowledge.is_evidence(group, system, code)


def test_radium_indication_accepts_mcode_snomed_codes():
    chart = [condition("c-1", snomed="459381000124106"), condition("c-2", snomed="94222008"), *bone_chart()[2:]]
    got = only_decision(run([service_request(cpt=None, text="Xofigo radium-223 IV", reason=[])], chart))
    assert "indication-mismatch" not in got["warnings"]


def test_skin_hdr_gaps_are_declared_documentation_items_bound_to_an_order_fact():
    from cds_service.knowledge import load_knowledge
    knowledge = load_knowledge()
    assert knowledge.doc_items["lesion-size"].order_fact == "lesion_cm"
    assert knowledge.doc_items["channel-count"].order_fact == "count"
    rows = {row.id: row for row in knowledge.code_rules}
    assert rows["skin-hdr-size-unknown"].gaps == ("lesion-size", "channel-count")
    assert rows["skin-hdr-channels-unknown"].gaps == ("channel-count",)
    assert all(not row.gaps for row in knowledge.code_rules if not row.id.startswith("skin-hdr"))


def test_a_rule_gap_must_be_a_documentation_key(tmp_path):
    import shutil
    from cds_service.knowledge import loader
    for path in loader.DATA_DIR.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    rules = tmp_path / "rules.toml"
    rules.write_text(rules.read_text().replace('gaps = ["channel-count"]', 'gaps = ["channel-cnt"]', 1))
    import pytest
    with pytest.raises(loader.KnowledgeError, match="channel-cnt"):
        loader.load_knowledge(tmp_path)
