"""Each warning of design §3 appears when its condition holds and is absent when it does not."""

from __future__ import annotations

from engine_builders import (
    CPT, bone_chart, condition, history, lung_chart, medication_request, only_decision, run, service_request,
)

RA223 = [service_request(cpt="77750", text="Radium-223 infusion", reason=["C61", "C79.51"]),
         medication_request(text="Xofigo", rxnorm="1424214", dose=(55, "kBq/kg"))]
PLEURAL = "Intrapleural instillation of P-32 chromic phosphate"


def warnings(draft, chart):
    return only_decision(run(draft, chart))["warnings"]


def test_global_period_overlap_from_a_recent_77750():
    assert "global-period-overlap" in warnings(RA223, bone_chart() + [history("old-1", "77750", -28)])


def test_no_global_period_overlap_once_90_days_have_passed_or_for_xxx_codes():
    assert "global-period-overlap" not in warnings(RA223, bone_chart() + [history("old-1", "77750", -120)])
    assert "global-period-overlap" not in warnings(RA223, bone_chart() + [history("old-2", "79101", -28)])


def test_completed_procedure_is_not_its_own_global_period():
    # The replayed Procedure may also come back in the history prefetch: it must not flag itself.
    from engine_builders import procedure_order
    done = procedure_order("proc-1", "77750", text="Radium-223 infusion", reason=["C61", "C79.51"])
    chart = bone_chart() + [dict(done)]
    assert "global-period-overlap" not in warnings([done], chart)


def test_bundling_conflict_iv_push_with_79101():
    draft = RA223 + [service_request("sr-2", "96374", "IV push", reason=())]
    assert "bundling-conflict" in warnings(draft, bone_chart(follow_up=False))


def test_bundling_conflict_77750_with_a_79xxx_order_the_same_day():
    assert "bundling-conflict" in warnings(RA223, bone_chart() + [history("same-day", "79101", 0)])


def test_no_bundling_conflict_with_unrelated_orders():
    draft = RA223 + [service_request("sr-2", "71250", "CT chest", reason=())]
    assert "bundling-conflict" not in warnings(draft, bone_chart())


def test_indication_mismatch_for_radium_without_bone_metastasis():
    chart = [c for c in bone_chart() if c["id"] != "c-3"]
    draft = [service_request(cpt="77750", text="Radium-223 infusion", reason=["C61"]),
             medication_request(text="Xofigo", dose=(55, "kBq/kg"))]
    assert "indication-mismatch" in warnings(draft, chart)


def test_indication_met_for_radium_with_prostate_cancer_and_bone_metastasis():
    assert "indication-mismatch" not in warnings(RA223, bone_chart())


def test_no_indication_mismatch_claimed_on_an_empty_problem_list():
    draft = [service_request(cpt="77750", text="Radium-223 infusion", reason=()),
             medication_request(text="Xofigo", dose=(55, "kBq/kg"))]
    assert "indication-mismatch" not in warnings(draft, [])


def test_diagnosis_sequencing_when_effusion_has_no_neoplasm():
    draft = [service_request(text=PLEURAL, reason=["J91.0"])]
    assert "diagnosis-sequencing" in warnings(draft, [condition("c-2", "J91.0")])


def test_diagnosis_sequencing_when_effusion_is_listed_first():
    draft = [service_request(text=PLEURAL, reason=["J91.0", "C34.90"])]
    assert "diagnosis-sequencing" in warnings(draft, lung_chart())


def test_no_diagnosis_sequencing_when_neoplasm_is_coded_first():
    draft = [service_request(text=PLEURAL, reason=["C34.90", "J91.0"])]
    assert "diagnosis-sequencing" not in warnings(draft, lung_chart())


def test_malignant_ascites_follows_the_same_rule():
    draft = [service_request(text="Intraperitoneal instillation of chromic phosphate P-32", reason=["R18.0"])]
    assert "diagnosis-sequencing" in warnings(draft, [condition("c-9", "R18.0")])
    # The order itself lists only R18.0, so "code first" is still broken even with the cancer on file.
    assert "diagnosis-sequencing" in warnings(draft, [condition("c-9", "R18.0"), condition("c-1", "C56.9")])
    ordered_right = [service_request(text="Intraperitoneal instillation of chromic phosphate P-32", reason=["C56.9", "R18.0"])]
    assert "diagnosis-sequencing" not in warnings(ordered_right, [condition("c-9", "R18.0"), condition("c-1", "C56.9")])


def test_deleted_code_warning_only_for_deleted_codes():
    seeds = "LDR interstitial I-125 seed implant"
    assert "deleted-code" in warnings([service_request(cpt="77776", text=seeds, reason=["C61"])], [])
    assert "deleted-code" not in warnings([service_request(cpt="77778", text=seeds, reason=["C61"])], [])


def test_checks_that_could_not_run_are_not_claimed():
    draft = [service_request(text=PLEURAL, reason=["J91.0"])]
    guidance = run(draft, [condition("c-2", "J91.0")], unavailable={"conditions": "timeout"})
    assert "diagnosis-sequencing" not in only_decision(guidance)["warnings"]
    assert "diagnosis" not in only_decision(guidance)["missingDocumentation"]


def test_bundling_conflict_with_the_code_another_order_carries():
    # A second order carrying 79101 for the infusion the 77750 order pays for: flagged on both,
    # even though that second order, read alone (IV, follow-up on file), would be recoded to 77750.
    draft = RA223 + [service_request("sr-2", "79101", "Radiopharmaceutical therapy, IV", reason=())]
    decisions = {d["order"]: d for d in run(draft, bone_chart()).decisions}
    assert decisions["ServiceRequest/sr-2"]["recommendedCode"] == "77750"
    assert "bundling-conflict" in decisions["ServiceRequest/sr-1"]["warnings"]
    assert "bundling-conflict" in decisions["ServiceRequest/sr-2"]["warnings"]


def test_diagnosis_sequencing_is_the_same_for_reason_codes_and_reason_references():
    chart = lung_chart()  # c-1 C34.90, c-2 J91.0
    by_code_first = [service_request(text=PLEURAL, reason=["J91.0", "C34.90"])]
    by_ref_first = [service_request(text=PLEURAL, reason=(), reason_refs=["Condition/c-2", "Condition/c-1"])]
    assert "diagnosis-sequencing" in warnings(by_code_first, chart)
    assert "diagnosis-sequencing" in warnings(by_ref_first, chart)
    by_ref_right = [service_request(text=PLEURAL, reason=(), reason_refs=["Condition/c-1", "Condition/c-2"])]
    assert "diagnosis-sequencing" not in warnings(by_ref_right, chart)
    # J91.0 alone by reference, no cancer on file: the same warning as J91.0 alone by code
    effusion_only = [condition("c-2", "J91.0")]
    assert "diagnosis-sequencing" in warnings([service_request(text=PLEURAL, reason=(), reason_refs=["Condition/c-2"])],
                                              effusion_only)


def test_modifier_not_applicable_on_indicator_zero_codes_only():
    tandem = "Insertion of tandem and ovoids"
    assert "modifier-not-applicable" in warnings([service_request(cpt="57155-26", text=tandem, reason=["C53.9"])], [])
    assert "modifier-not-applicable" in warnings(
        [service_request(cpt="57155", text=tandem, reason=["C53.9"],
                         order_detail=[{"coding": [{"system": CPT, "code": "TC"}]}])], [])
    assert "modifier-not-applicable" not in warnings([service_request(cpt="57155", text=tandem, reason=["C53.9"])], [])
    # 77750 has indicator 1: 26 is a valid modifier there
    ra_26 = [service_request(cpt="77750-26", text="Radium-223 infusion", reason=["C61", "C79.51"]), RA223[1]]
    assert "modifier-not-applicable" not in warnings(ra_26, bone_chart())


def test_modifier_warning_follows_the_recommended_code():
    # 77750-26 ordered for a tandem-and-ovoid insertion: recoded to 57155, whose indicator is 0.
    got = only_decision(run([service_request(cpt="77750-26", text="Insertion of tandem and ovoids for brachytherapy",
                                             reason=["C53.9"])], []))
    assert got["recommendedCode"] == "57155" and "modifier-not-applicable" in got["warnings"]


def test_deleted_code_without_published_replacement_says_so():
    # Issue 17, C3b: no source names a successor of 77776; the card must not pretend one does.
    guidance = run([service_request(cpt="77776", text="LDR interstitial I-125 seed implant", reason=["C61"])], [])
    details = " ".join(card.get("detail", "") for card in guidance.cards)
    assert "no published replacement" in details
    sourced = run([service_request(cpt="77777", text="LDR interstitial I-125 seed implant", reason=["C61"])], [])
    assert "no published replacement" not in " ".join(card.get("detail", "") for card in sourced.cards)


def test_provisional_or_differential_cancer_does_not_document_the_diagnosis():
    from engine_builders import condition as make_condition
    draft = [service_request(text=PLEURAL, reason=["J91.0"])]
    for status in ("provisional", "differential", "unconfirmed"):
        suspected = make_condition("c-1", "C34.90")
        suspected["verificationStatus"] = {"coding": [{"code": status}]}
        assert "diagnosis" in only_decision(run(draft, [suspected]))["missingDocumentation"]
    assert "diagnosis" not in only_decision(run(draft, [make_condition("c-1", "C34.90")]))["missingDocumentation"]


def test_modifier_card_names_what_the_pctc_indicator_means():
    # Issue 17, C2g: the warning says what the indicator means, from edits.toml.
    from dataclasses import replace
    from datetime import date

    from cds_service.engine.edits import modifier_not_applicable
    from cds_service.engine.orders import therapy_orders
    from engine_builders import knowledge
    draft = [service_request(cpt="57155", text="Insertion of tandem and ovoids", reason=["C53.9"])]
    order = replace(therapy_orders(draft, date.today(), knowledge())[0], ordered_modifiers=("26",))
    warning = modifier_not_applicable("57155", order, knowledge())
    assert warning is not None and "indicator 0: a physician service" in warning.detail
