"""Design §3's decision order, one test per branch and per alternative code."""

from __future__ import annotations

import pytest

from engine_builders import (
    SNOMED, bone_chart, care_plan, concept, condition, encounter, follow_up_order, imaging_report, lung_chart,
    medication_request, observation, only_decision, run, service_request,
)

CHROMIC = "Intrapleural instillation of P-32 chromic phosphate"


def decision_for(draft, chart=()):
    return only_decision(run(draft, chart))


# --- unsealed, the seed's three situations ---------------------------------------------------

def test_intrapleural_instillation_with_follow_up_is_77750():
    got = decision_for([service_request(text=CHROMIC, quantity={"value": 15, "unit": "mCi", "code": "mCi"})], lung_chart())
    assert (got["recommendedCode"], got["alternatives"]) == ("77750", ["79200"])
    assert got["supply"] == [{"code": "A9564", "units": 15}]


def test_intrapleural_instillation_without_follow_up_is_79200():
    got = decision_for([service_request(text=CHROMIC)], lung_chart(follow_up=False))
    assert (got["recommendedCode"], got["alternatives"]) == ("79200", ["77750"])
    assert "follow-up-plan" in got["missingDocumentation"]


def test_intraperitoneal_instillation_follows_the_route_code():
    draft = [service_request(cpt=None, text="Radioactive colloid instillation", reason=["C78.6"]),
             medication_request(text="chromic phosphate P 32 suspension", route="38239002", dose=(370, "MBq"))]
    chart = [condition("c-1", "C56.9"), condition("c-2", "C78.6"), care_plan()]
    got = decision_for(draft, chart)
    assert got["recommendedCode"] == "77750"
    assert got["order"] == "ServiceRequest/sr-1"
    assert got["supply"] == [{"code": "A9564", "units": 10}]  # 370 MBq = 10 mCi
    assert "orderedCode" not in got


def test_iv_radium_with_follow_up_is_77750_and_without_is_79101():
    draft = [service_request(cpt="77750", text="Radium-223 infusion", reason=["C61", "C79.51"]),
             medication_request(text="Xofigo", rxnorm="1424214", dose=(55, "kBq/kg"))]
    with_plan = decision_for(draft, bone_chart())
    without = decision_for(draft, bone_chart(follow_up=False))
    assert (with_plan["recommendedCode"], with_plan["alternatives"]) == ("77750", ["79101"])
    assert (without["recommendedCode"], without["alternatives"]) == ("79101", ["77750"])
    assert with_plan["supply"] == [{"code": "A9606", "units": 119}]  # 55 kBq/kg x 80 kg = 118.9 uCi


def test_follow_up_order_in_the_draft_counts_as_follow_up():
    draft = [service_request(cpt="79101", text="Sr-89 chloride IV", reason=["C79.51"]), follow_up_order()]
    assert decision_for(draft, bone_chart(follow_up=False))["recommendedCode"] == "77750"


def test_unrelated_or_short_care_plan_is_not_follow_up():
    draft = [service_request(cpt="77750", text="Sr-89 chloride IV", reason=["C79.51"])]
    short = care_plan(end=30)
    unrelated = care_plan("cp-2", addresses=("Condition/diabetes",))
    chart = bone_chart(follow_up=False) + [short, unrelated, condition("diabetes", "E11.9")]
    assert decision_for(draft, chart)["recommendedCode"] == "79101"


# --- other unsealed branches ---------------------------------------------------------------

def test_antibody_is_79403_whatever_was_ordered():
    draft = [service_request(cpt="79101", text="Zevalin Y-90 ibritumomab tiuxetan", reason=["C82.90"])]
    got = decision_for(draft, [condition("c-1", "C82.90"), care_plan()])
    assert got["recommendedCode"] == "79403"
    assert got["supply"] == [{"code": "A9543", "units": 1}]


def test_y90_microspheres_are_79445():
    draft = [service_request(cpt="77750", text="Y-90 TheraSphere radioembolization", reason=["C22.0"],
                             body_site=concept(SNOMED, "10200004", "Liver"))]
    got = decision_for(draft, [condition("c-1", "C22.0"), encounter(klass="OBSENC")])
    assert got["recommendedCode"] == "79445"
    assert got["supply"] == [{"code": "C2616", "units": 1}]


@pytest.mark.parametrize("chart_setting", [[encounter(klass="IMP")], [encounter(klass="AMB")], []])
def test_c2616_only_on_a_hospital_outpatient_claim(chart_setting):
    # Issue 17, C6/D6: C2616 is an OPPS code; inpatient, office or an unknown setting gets no supply line.
    draft = [service_request(cpt="77750", text="Y-90 TheraSphere radioembolization", reason=["C22.0"],
                             body_site=concept(SNOMED, "10200004", "Liver"))]
    got = decision_for(draft, [condition("c-1", "C22.0")] + chart_setting)
    assert got["recommendedCode"] == "79445"
    assert not got["supply"]


def test_oral_iodine_is_79005():
    draft = [medication_request(text="Sodium iodide I-131 capsule", route="26643006", dose=(100, "mCi"), reason=["C73"])]
    got = decision_for(draft, [condition("c-1", "C73")])
    assert got["recommendedCode"] == "79005"
    assert got["order"] == "MedicationRequest/mr-1"
    assert got["supply"] == [{"code": "A9517", "units": 100}]


def test_intra_articular_is_79440():
    draft = [service_request(cpt=None, text="Radiosynovectomy of the right knee with radioactive colloid",
                             reason=["M12.561"], body_site=concept(SNOMED, "72696002", "Knee joint"))]
    assert decision_for(draft)["recommendedCode"] == "79440"


def test_interstitial_colloid_is_79300():
    draft = [service_request(cpt=None, text="Interstitial injection of P-32 chromic phosphate colloid", reason=["C78.6"])]
    assert decision_for(draft)["recommendedCode"] == "79300"


def test_unknown_route_without_code_is_unlisted_with_candidates():
    draft = [service_request(cpt=None, text="Radioelement therapy", reason=["C34.90"])]
    got = decision_for(draft)
    assert got["recommendedCode"] == "79999"
    assert set(got["alternatives"]) == {"79101", "79200", "77750"}


# --- brachytherapy branches ----------------------------------------------------------------

def test_electronic_skin_is_0394T_and_elsewhere_0395T():
    skin = [service_request(cpt="77750", text="Electronic brachytherapy (Xoft) to basal cell carcinoma",
                            reason=["C44.311"], body_site={"text": "skin of nose"})]
    vaginal = [service_request(cpt=None, text="Electronic brachytherapy vaginal cuff intracavitary", reason=["C54.1"])]
    assert decision_for(skin)["recommendedCode"] == "0394T"
    assert decision_for(skin)["modifiers"] == []
    assert decision_for(vaginal)["recommendedCode"] == "0395T"


@pytest.mark.parametrize("text, code", [
    ("Insertion of tandem and ovoids for brachytherapy", "57155"),
    ("Insertion of Heyman capsules for brachytherapy", "58346"),
    ("Insertion of vaginal cylinder for brachytherapy", "57156"),
])
def test_applicator_insertion(text, code):
    got = decision_for([service_request(cpt="77750", text=text, reason=["C53.9"])])
    assert got["recommendedCode"] == code
    assert got["modifiers"] == [] and got["supply"] == []


@pytest.mark.parametrize("cpt, text, quantity, code", [
    # a treatment through an applicator already there is the treatment, not the insertion
    (None, "HDR Ir-192 intracavitary brachytherapy via tandem and ring", {"value": 3, "unit": "channels"}, "77771"),
    (None, "HDR brachytherapy via vaginal cylinder, 1 channel", None, "77770"),
    ("77771", "Tandem and ovoids HDR brachytherapy", None, "77771"),
    (None, "Brachytherapy through the tandem and ovoids already in place, 3 channels", None, "77771"),
    (None, "HDR brachytherapy via tandem and ovoids previously inserted, 3 channels", None, "77771"),
    # the insertion: by the ordered code, by the wording, or an order naming only the applicator
    ("57155", "Tandem and ovoids for HDR brachytherapy, 3 channels", None, "57155"),
    (None, "Placement of tandem and ring for HDR brachytherapy", None, "57155"),
    (None, "Insertion of vaginal cylinder for HDR brachytherapy", None, "57156"),
    (None, "Tandem and ovoids, brachytherapy", None, "57155"),
])
def test_applicator_insertion_or_treatment_through_it(cpt, text, quantity, code):
    got = decision_for([service_request(cpt=cpt, text=text, reason=["C53.9"], quantity=quantity,
                                        body_site={"text": "uterine cervix"})])
    assert got["recommendedCode"] == code


def test_treatment_through_an_applicator_names_the_separate_insertion_on_the_card():
    guidance = run([service_request(cpt=None, text="HDR Ir-192 brachytherapy via tandem and ring, 3 channels",
                                    reason=["C53.9"], body_site={"text": "cervix"})])
    assert only_decision(guidance)["recommendedCode"] == "77771"
    assert "CPT 57155" in guidance.cards[0]["detail"]


@pytest.mark.parametrize("text, quantity, code", [
    ("HDR Ir-192 intracavitary brachytherapy", {"value": 3, "unit": "channels"}, "77771"),
    ("HDR Ir-192 interstitial brachytherapy", {"value": 1, "unit": "channel"}, "77770"),
    ("HDR Ir-192 interstitial brachytherapy", {"value": 18, "unit": "channels"}, "77772"),
    ("LDR intracavitary brachytherapy", {"value": 3, "unit": "sources"}, "77761"),
    ("LDR intracavitary brachytherapy", {"value": 8, "unit": "sources"}, "77762"),
    ("LDR intracavitary brachytherapy", {"value": 14, "unit": "sources"}, "77763"),
    ("I-125 seed implant, interstitial", {"value": 80, "unit": "seeds"}, "77778"),
    ("Strontium-90 surface applicator to pterygium", None, "77789"),
    ("HDR Ir-192 surface brachytherapy to skin lesion 1.5 cm", None, "77767"),
    ("HDR Ir-192 surface brachytherapy to skin, 3 lesions", None, "77768"),
])
def test_sealed_source_family(text, quantity, code):
    got = decision_for([service_request(cpt="77750", text=text, reason=["C53.9"], quantity=quantity)])
    assert got["recommendedCode"] == code
    assert got["recommendedCode"] != "77750"


def test_sealed_count_unknown_never_upcodes():
    got = decision_for([service_request(cpt=None, text="HDR Ir-192 intracavitary brachytherapy", reason=["C53.9"])])
    assert got["recommendedCode"] == "77770"
    assert got["alternatives"] == ["77771", "77772"]


def test_deleted_code_is_replaced_and_offers_replacements():
    # Issue 17, C3: deleted 77777 (5-10 sources) with no count is 77799, never the complex 77778.
    got = decision_for([service_request(cpt="77777", text="LDR interstitial seed implant", reason=["C61"])])
    assert got["recommendedCode"] == "77799"
    assert got["alternatives"] == ["77778"]
    assert "deleted-code" in got["warnings"]


@pytest.mark.parametrize("text, count_code", [
    ("Interstitial I-125 seed implant, 8 seeds", "77799"),
    ("Interstitial Pd-103 seed implant, 60 seeds", "77778"),
    ("Interstitial Cs-131 seed implant 3 seeds", "77799"),
])
def test_nuclide_mass_number_is_never_the_source_count(text, count_code):
    # Issue 17: "I-125 ... 8 seeds" is 8 sources, not 125 (which would steer to the complex 77778).
    got = decision_for([service_request(cpt="77777", text=text, reason=["C61"])])
    assert got["recommendedCode"] == count_code


def test_nuclide_alone_gives_no_count():
    from cds_service.engine.orders import _COUNT
    assert _COUNT.search("I-125 seeds, Pd103 sources, Cs 131 seeds") is None
    assert _COUNT.search("Ir-192 HDR via 2 channels").group(1) == "2"


@pytest.mark.parametrize("chart_setting, says", [
    ([encounter(klass="AMB")], ["Q3001", "S2095", "payer"]),   # office: which code depends on the payer
    ([], ["not known", "Q3001", "S2095", "hospital outpatient"]),  # unknown: the setting is the gap
    ([encounter(klass="IMP")], ["inpatient stay"]),
    ([encounter(klass="OBSENC")], []),  # hospital outpatient: the C2616 line itself, no note
])
def test_the_code_card_says_which_source_code_applies_outside_the_hospital_outpatient_setting(chart_setting, says):
    draft = [service_request(cpt="77750", text="Y-90 TheraSphere radioembolization", reason=["C22.0"],
                             body_site=concept(SNOMED, "10200004", "Liver"))]
    guidance = run(draft, [condition("c-1", "C22.0")] + chart_setting)
    code_card = guidance.cards[0]["detail"]
    supply = [line for line in code_card.split("\n\n") if line.startswith("Supply:")]
    assert len(supply) == 1
    if says:
        assert "HCPCS C2616," not in supply[0] and all(word in supply[0] for word in says), supply[0]
    else:
        assert supply[0].startswith("Supply: HCPCS C2616, 1 unit")
