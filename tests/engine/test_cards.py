"""Cards and systemActions: CDS Hooks 2.0 and CRD card rules, agreement with the decisions."""

from __future__ import annotations

import uuid
from typing import Any

from engine_builders import (
    CPT, bone_chart, coverage, encounter, lung_chart, medication_request, only_decision, run, service_request,
)

PLEURAL = "Intrapleural instillation of P-32 chromic phosphate"
DOSE = {"value": 15, "unit": "mCi", "code": "mCi"}
RA223 = [service_request(cpt="77750", text="Radium-223 infusion", reason=["C61", "C79.51"]),
         medication_request(text="Xofigo", rxnorm="1424214", dose=(55, "kBq/kg"))]
CRD_TOPICS = {"coverage-info", "claim", "insurance", "limits", "network", "appropriate-use", "cost",
              "therapy-alternatives-opt", "therapy-alternatives-req", "clinical-reminder", "duplicate-therapy",
              "contraindication", "guideline", "off-guideline"}


def no_empties(value: Any, path: str = "") -> None:
    assert value not in (None, "", [], {}), f"empty value at {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            no_empties(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            no_empties(item, f"{path}[{index}]")


def check_card(card: dict) -> None:
    uuid.UUID(card["uuid"])
    assert 0 < len(card["summary"]) <= 139
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"]
    assert card["source"]["topic"]["code"] in CRD_TOPICS
    assert card["extension"]["davinci-crd.associated-resource"]
    for suggestion in card.get("suggestions", []):
        uuid.UUID(suggestion["uuid"])
        assert suggestion["label"] and suggestion["actions"]
        assert card["selectionBehavior"] == "at-most-one"
    for reason in card.get("overrideReasons", []):
        assert reason["code"] and reason["system"] and reason["display"]
    for link in card.get("links", []):
        assert link["type"] == "absolute" and link["url"].startswith("https://") and "appContext" not in link
    no_empties(card)


def test_clean_order_gets_one_short_info_card():
    guidance = run([service_request(text=PLEURAL, quantity=DOSE, reason=["C34.90", "J91.0"])], lung_chart())
    # one coding card; the patient-explanation card follows it (the words, not advice)
    kinds = [card["extension"]["cds-service.card-type"] for card in guidance.cards]
    assert kinds == ["code", "patient-explanation"]
    card = guidance.cards[0]
    check_card(card)
    assert card["indicator"] == "info" and "suggestions" not in card
    assert card["links"], "the code card is the External Reference card"
    assert guidance.system_actions == []


def test_recoded_order_gets_a_suggestion_with_the_whole_order():
    draft = RA223
    guidance = run(draft, bone_chart(follow_up=False))
    code_card = guidance.cards[0]
    check_card(code_card)
    assert code_card["indicator"] == "warning" and "79101" in code_card["summary"]
    first = code_card["suggestions"][0]
    assert first["isRecommended"] is True
    action = first["actions"][0]
    assert action["type"] == "update"
    resource = action["resource"]
    assert resource["id"] == "sr-1" and resource["reasonCode"] == draft[0]["reasonCode"]
    cpt = [c for c in resource["code"]["coding"] if c["system"] == CPT]
    assert [c["code"] for c in cpt] == ["79101"]
    assert draft[0]["code"]["coding"][0]["code"] == "77750", "the draft itself is not mutated"


def test_documentation_card_lists_each_gap_in_plain_words():
    guidance = run([service_request(text=PLEURAL, quantity=None, reason=())], lung_chart(follow_up=False))
    decision = only_decision(guidance)
    docs = [c for c in guidance.cards if c["extension"]["cds-service.card-type"] == "documentation"]
    assert len(docs) == 1
    check_card(docs[0])
    assert docs[0]["indicator"] == "warning"
    assert docs[0]["extension"]["cds-service.missing-documentation"] == decision["missingDocumentation"]
    assert docs[0]["detail"].count("\n- ") == len(decision["missingDocumentation"])
    assert "suggestions" not in docs[0] and "links" not in docs[0], "an Instructions card"


def test_one_edit_card_per_warning_and_cards_agree_with_decisions():
    from engine_builders import history
    guidance = run(RA223, bone_chart() + [history("old-1", "77750", -20)])
    decision = only_decision(guidance)
    edits = [c["extension"]["cds-service.warning"] for c in guidance.cards
             if c["extension"]["cds-service.card-type"] == "edit"]
    assert edits == decision["warnings"] == ["global-period-overlap"]
    for card in guidance.cards:
        check_card(card)
        assert card["extension"]["cds-service.recommended-code"] == decision["recommendedCode"]


def test_coverage_information_system_action():
    chart = bone_chart(follow_up=False) + [coverage(payer="Acme Health"), encounter(pos="22")]
    guidance = run(RA223, chart, encounter_id="enc-1")
    decision = only_decision(guidance)
    assert decision["modifiers"] == ["26"]
    assert all(card["source"]["label"] == "Acme Health" for card in guidance.cards)
    [action] = guidance.system_actions
    assert action["type"] == "update" and action["description"]
    no_empties(action)
    resource = action["resource"]
    assert resource["id"] == "sr-1"
    [ext] = [e for e in resource["extension"] if e["url"].endswith("ext-coverage-information")]
    parts = {part["url"]: part for part in ext["extension"]}
    assert parts["coverage"]["valueReference"]["reference"] == "Coverage/cov-1"
    assert parts["covered"]["valueCode"] == "conditional"
    assert parts["pa-needed"]["valueCode"] == "conditional"
    assert parts["billingCode"]["valueCoding"]["code"] == decision["recommendedCode"] == "79101"
    assert parts["doc-needed"]["valueCode"] == "clinical"
    assert parts["date"]["valueDate"] and parts["coverage-assertion-id"]["valueString"]


def test_no_doc_needed_when_documentation_is_complete():
    guidance = run(RA223, bone_chart() + [coverage()])
    parts = {p["url"] for p in guidance.system_actions[0]["resource"]["extension"][0]["extension"]}
    assert "doc-needed" not in parts


def test_order_select_gives_the_code_only_for_selected_orders():
    draft = RA223 + [service_request("sr-9", "77750", PLEURAL, quantity=DOSE)]
    guidance = run(draft, bone_chart(follow_up=False) + [coverage()], hook="order-select",
                   selections=["MedicationRequest/mr-1"])
    decision = only_decision(guidance)
    assert decision["order"] == "ServiceRequest/sr-1" and decision["recommendedCode"] == "79101"
    assert "missingDocumentation" not in decision and "warnings" not in decision
    assert [c["extension"]["cds-service.card-type"] for c in guidance.cards] == ["code"]
    assert guidance.system_actions == []


def test_non_therapy_orders_produce_nothing():
    draft = [service_request("ct-1", "71250", "CT chest with contrast", reason=()),
             service_request("talc-1", "32560", "Talc pleurodesis via chest tube", reason=["J91.0"]),
             medication_request("statin", "atorvastatin 20 MG Oral Tablet", rxnorm="617318", route="26643006")]
    guidance = run(draft, lung_chart())
    assert guidance.cards == [] and guidance.decisions == [] and guidance.system_actions == []


def test_payer_policy_by_identifier_can_override_modifiers(tmp_path):
    import shutil

    from cds_service.engine import advise
    from cds_service.knowledge import load_knowledge
    from engine_builders import hook_call

    data = tmp_path / "data"
    shutil.copytree(__import__("cds_service.knowledge.loader", fromlist=["DATA_DIR"]).DATA_DIR, data)
    with (data / "payers.toml").open("a") as handle:
        handle.write('\n[[payer]]\nkey = "global-payer"\nname = "Global Payer"\n'
                     'identifiers = ["urn:test|global"]\nmodifier_policy = "global-only"\n'
                     'covered = "covered"\npa_needed = "no-auth"\nsource = "TEAM-JUDGEMENT"\n')
    knowledge = load_knowledge(data)
    chart = bone_chart() + [encounter(pos="22")]
    default = advise(hook_call(RA223, chart + [coverage()], encounter_id="enc-1"), knowledge)
    special = advise(hook_call(RA223, chart + [coverage(identifier="urn:test|global")], encounter_id="enc-1"), knowledge)
    assert only_decision(default)["modifiers"] == ["26"]
    assert only_decision(special)["modifiers"] == []
    parts = {p["url"]: p for p in special.system_actions[0]["resource"]["extension"][0]["extension"]}
    assert parts["covered"]["valueCode"] == "covered" and parts["pa-needed"]["valueCode"] == "no-auth"


def test_modifier_on_an_indicator_zero_code_is_called_out():
    draft = [service_request(cpt="0394T", text="Electronic brachytherapy (Xoft) skin surface", reason=["C44.311"],
                             body_site={"text": "skin of nose"},
                             order_detail=[{"coding": [{"system": CPT, "code": "26"}]}])]
    guidance = run(draft, [encounter(pos="22")], encounter_id="enc-1")
    decision = only_decision(guidance)
    assert decision["modifiers"] == [] and decision["warnings"] == ["modifier-not-applicable"]
    [edit] = [c for c in guidance.cards if c["extension"]["cds-service.card-type"] == "edit"]
    check_card(edit)
    assert edit["indicator"] == "warning" and edit["extension"]["cds-service.warning"] == "modifier-not-applicable"
    assert edit["source"]["topic"]["code"] == "claim"
    assert "Remove modifier 26" in edit["detail"] and "0394T" in edit["summary"]


def test_follow_up_gap_says_it_matters_only_for_77750():
    guidance = run(RA223, bone_chart(follow_up=False))
    [docs] = [c for c in guidance.cards if c["extension"]["cds-service.card-type"] == "documentation"]
    assert "Needed only to bill CPT 77750" in docs["detail"]
