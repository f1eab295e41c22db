"""Each documentation key of design §4: missing without its evidence, absent with it."""

from __future__ import annotations

import pytest

from engine_builders import (
    SNOMED, adverse_event, bone_chart, care_plan, concept, condition, encounter, imaging_report, lung_chart,
    medication_request, observation, only_decision, procedure_order, progress_note, run, service_request,
)

PLEURAL = "Intrapleural instillation of P-32 chromic phosphate"
DOSE = {"value": 15, "unit": "mCi", "code": "mCi"}


def missing(draft, chart):
    return only_decision(run(draft, chart))["missingDocumentation"]


def pleural(**kwargs):
    return [service_request(text=kwargs.pop("text", PLEURAL), quantity=kwargs.pop("quantity", DOSE), **kwargs)]


def test_complete_chart_has_no_gaps_and_no_warnings():
    got = only_decision(run(pleural(reason=["C34.90", "J91.0"]), lung_chart()))
    assert got["missingDocumentation"] == [] and got["warnings"] == []


def chart_without(resource_id):
    return [r for r in lung_chart() if r["id"] != resource_id]


@pytest.mark.parametrize("key, chart", [
    ("diagnosis", [r for r in lung_chart() if r["resourceType"] != "Condition"]),
    ("staging", chart_without("stage-1")),
    ("performance-status", chart_without("ecog-1")),
    ("pre-imaging", chart_without("ct-1")),
])
def test_chart_keys_appear_when_evidence_is_missing(key, chart):
    assert key in missing(pleural(), chart)
    assert key not in missing(pleural(), lung_chart())


def test_staging_on_the_condition_is_enough():
    chart = chart_without("stage-1") + [condition("c-5", "C34.91", staged=True)]
    assert "staging" not in missing(pleural(), chart)


def test_old_imaging_and_old_performance_status_do_not_count():
    chart = chart_without("ct-1")
    chart = [r for r in chart if r["id"] != "ecog-1"] + [imaging_report("ct-old", -120), observation("ecog-old", "89247-1", -100)]
    gaps = missing(pleural(), chart)
    assert "pre-imaging" in gaps and "performance-status" in gaps


def test_indication_key():
    assert "indication" in missing(pleural(reason=()), lung_chart())
    assert "indication" not in missing(pleural(reason=(), reason_refs=["Condition/c-1"]), lung_chart())


def test_radioelement_and_activity_keys():
    anonymous = pleural(text="Intrapleural radioelement instillation", quantity=None)
    gaps = missing(anonymous, lung_chart())
    assert "radioelement" in gaps and "activity" in gaps
    assert not {"radioelement", "activity"} & set(missing(pleural(), lung_chart()))


def test_activity_in_text_is_understood():
    assert "activity" not in missing(pleural(quantity=None, text=PLEURAL + " 15 mCi"), lung_chart())


def test_route_key_when_route_is_only_implied_by_the_agent():
    implied = [service_request(cpt="77750", text="Xofigo", reason=["C61", "C79.51"])]
    stated = [service_request(cpt="77750", text="Xofigo", reason=["C61", "C79.51"]),
              medication_request(text="Xofigo", dose=(55, "kBq/kg"))]
    assert "route" in missing(implied, bone_chart())
    assert "route" not in missing(stated, bone_chart())


def test_body_site_needed_for_a_generic_cavity_route_but_not_for_iv():
    generic = [service_request(cpt="77750", text="P-32 chromic phosphate body cavity instillation", quantity=DOSE)]
    sited = [service_request(cpt="77750", text="P-32 chromic phosphate body cavity instillation", quantity=DOSE,
                             body_site=concept(SNOMED, "264071002", "Pleural cavity"))]
    assert "body-site" in missing(generic, lung_chart())
    assert "body-site" not in missing(sited, lung_chart())
    iv = [service_request(cpt="77750", text="Xofigo", reason=["C61", "C79.51"]),
          medication_request(text="Xofigo", dose=(55, "kBq/kg"))]
    assert "body-site" not in missing(iv, bone_chart())


def test_follow_up_plan_key_only_when_77750_is_ordered_without_it():
    assert "follow-up-plan" in missing(pleural(), lung_chart(follow_up=False))
    assert "follow-up-plan" not in missing(pleural(), lung_chart())
    assert "follow-up-plan" not in missing(pleural(cpt="79200"), lung_chart(follow_up=False))


POST_KEYS = {"response-assessment", "adverse-events", "post-imaging", "follow-up-notes"}


def done(**kwargs):
    return [procedure_order(text=PLEURAL, quantity=DOSE, reason=["C34.90", "J91.0"], **kwargs)]


def test_completed_procedure_needs_post_procedure_documentation():
    assert POST_KEYS <= set(missing(done(), lung_chart()))


def test_post_procedure_keys_absent_with_evidence():
    after = [observation("status-1", "97509-4", 45, "stable"), adverse_event("ae-1", 10),
             imaging_report("ct-after", 60), encounter("enc-fu", "AMB", status="finished", offset=30)]
    got = only_decision(run(done(), lung_chart() + after))
    assert got["missingDocumentation"] == [] and got["warnings"] == []


def test_complications_on_the_procedure_satisfy_adverse_events():
    assert "adverse-events" not in missing(done(complication=[{"text": "No complications"}]), lung_chart())


def test_draft_orders_never_ask_for_post_procedure_keys():
    assert not POST_KEYS & set(missing(pleural(), lung_chart()))


def test_follow_up_notes_only_for_77750():
    post = done(cpt="79200")
    assert "follow-up-notes" not in missing(post, lung_chart(follow_up=False))


# --- post-procedure evidence under the service's own prefetch keys (encounters, notes, adverseEvents)

def post_missing(draft, chart=(), **keyed):
    return only_decision(run(draft, chart, keyed=keyed))["missingDocumentation"]


def test_follow_up_visit_from_the_encounters_key_satisfies_follow_up_notes():
    ra = [procedure_order(cpt="77750", text="Radium-223 dichloride infusion", reason=["C61", "C79.51"])]
    assert "follow-up-notes" in post_missing(ra, bone_chart(), encounters=[], notes=[], adverseEvents=[])
    visit = encounter("enc-fu", "AMB", status="finished", offset=40)
    assert "follow-up-notes" not in post_missing(ra, bone_chart(), encounters=[visit], notes=[], adverseEvents=[])


def test_a_planned_or_same_day_encounter_is_not_a_follow_up_visit():
    ra = [procedure_order(cpt="77750", text="Radium-223 dichloride infusion", reason=["C61", "C79.51"])]
    planned = encounter("enc-planned", "AMB", status="planned", offset=40)
    same_day = encounter("enc-treatment", "AMB", status="finished", offset=0)
    assert "follow-up-notes" in post_missing(ra, bone_chart(), encounters=[planned, same_day], notes=[])


def test_progress_note_from_the_notes_key_satisfies_follow_up_notes():
    ra = [procedure_order(cpt="77750", text="Radium-223 dichloride infusion", reason=["C61", "C79.51"])]
    assert "follow-up-notes" not in post_missing(ra, bone_chart(), encounters=[], notes=[progress_note("n-1", 40)])
    # not a progress note, an entered-in-error note, or a note outside the 90 days: no evidence
    others = [progress_note("n-2", 40, loinc="34133-9"), progress_note("n-3", 40, status="entered-in-error"),
              progress_note("n-4", 120)]
    assert "follow-up-notes" in post_missing(ra, bone_chart(), encounters=[], notes=others)


def test_adverse_event_from_the_adverse_events_key_satisfies_adverse_events():
    assert "adverse-events" in post_missing(done(), lung_chart(), adverseEvents=[])
    assert "adverse-events" not in post_missing(done(), lung_chart(), adverseEvents=[adverse_event("ae-1", 12)])
    assert "adverse-events" in post_missing(done(), lung_chart(), adverseEvents=[adverse_event("ae-old", -30)])


def test_keys_that_could_not_be_had_are_not_claimed_as_gaps():
    ra = [procedure_order(cpt="77750", text="Radium-223 dichloride infusion", reason=["C61", "C79.51"])]
    unavailable = {"encounters": "not prefetched", "notes": "not prefetched", "adverseEvents": "not prefetched"}
    got = only_decision(run(ra, bone_chart(), unavailable=unavailable))["missingDocumentation"]
    assert not {"follow-up-notes", "adverse-events"} & set(got)


def test_the_patients_other_encounters_do_not_decide_the_setting():
    # Without an encounterId, a planned hospital visit found by the `encounters` search is not
    # where this order is carried out: no modifier 26 from it.
    draft = [service_request(cpt="77750", text="Radium-223 dichloride infusion", reason=["C61", "C79.51"]),
             medication_request(text="Xofigo", rxnorm="1424214", dose=(55, "kBq/kg"))]
    planned_inpatient = encounter("enc-later", "IMP", status="planned", offset=20)
    got = only_decision(run(draft, bone_chart(), keyed={"encounters": [planned_inpatient]}))
    assert got["modifiers"] == []
    # the same encounter sent as the current encounter still decides it
    assert only_decision(run(draft, bone_chart() + [planned_inpatient]))["modifiers"] == ["26"]


def test_a_plain_iv_in_the_order_text_states_the_route():
    lutathera = [medication_request(text="Lutathera 7.4 GBq IV over 30 minutes", route=None, reason=["C7A.010"])]
    assert "route" not in missing(lutathera, [condition("c-1", "C7A.010")])
    roman = [medication_request(text="Lutathera 7.4 GBq for stage IV neuroendocrine tumour", route=None,
                                reason=["C7A.010"])]
    assert "route" in missing(roman, [condition("c-1", "C7A.010")])


def test_diagnosis_needs_a_malignant_neoplasm_on_file_not_a_manifestation():
    # P-32 colloid is labelled for malignant ascites (R18.0), but R18.0 is the manifestation:
    # the indication may match, the cancer diagnosis is still missing.
    ascites = [service_request(text="Intraperitoneal instillation of chromic phosphate P-32", quantity=DOSE,
                               reason=["R18.0"])]
    assert "diagnosis" in missing(ascites, [condition("c-9", "R18.0")])
    assert "diagnosis" in missing(pleural(reason=["J91.0"]), [condition("c-2", "J91.0")])
    # a malignant code only as the order's reason is the indication, not a Condition on file
    assert "diagnosis" in missing(pleural(reason=["C34.90"]), [])
    assert "diagnosis" not in missing(ascites, [condition("c-9", "R18.0"), condition("c-1", "C56.9")])


@pytest.mark.parametrize("chart", [
    [condition("c-1", "C7A.010")],                        # malignant neuroendocrine tumour
    [condition("c-1", "D45")],                            # polycythaemia vera, classed as malignant
    [condition("c-1", snomed="363346000")],               # SNOMED malignant neoplastic disease
])
def test_diagnosis_satisfied_by_any_malignant_neoplasm_code(chart):
    assert "diagnosis" not in missing(pleural(reason=["J91.0"]), chart)


def test_an_inactive_cancer_does_not_satisfy_diagnosis():
    assert "diagnosis" in missing(pleural(), [condition("c-1", "C34.90", status="resolved")])


def test_benign_labelled_indication_on_file_satisfies_diagnosis_and_needs_no_stage():
    """I-131 for hyperthyroidism: the labelled benign diagnosis is the diagnosis; there is no stage."""
    draft = [medication_request("mr-1", "Sodium iodide I-131 oral solution 15 mCi", route="26643006",
                                dose=(15, "mCi"), reason=("E05.00",))]
    with_condition = only_decision(run(draft, [condition("c-graves", "E05.00")]))
    assert "diagnosis" not in with_condition.get("missingDocumentation", [])
    assert "staging" not in with_condition.get("missingDocumentation", [])
    without = only_decision(run(draft, [condition("c-other", "I10")]))
    assert "diagnosis" in without["missingDocumentation"] and "staging" in without["missingDocumentation"]


def test_manifestation_code_alone_never_satisfies_diagnosis():
    draft = [medication_request("mr-1", "Chromic phosphate P-32 suspension 10 mCi intraperitoneal",
                                route="38239002", dose=(10, "mCi"), reason=("R18.0",))]
    got = only_decision(run(draft, [condition("c-ascites", "R18.0")]))
    assert "diagnosis" in got["missingDocumentation"]


@pytest.mark.parametrize("text, quantity, cpt, code, gaps", [
    ("HDR Ir-192 skin brachytherapy, single 2.5 cm lesion", None, None, "77767", ["channel-count"]),
    ("HDR Ir-192 skin brachytherapy, one lesion", {"value": 2, "unit": "channels"}, None, "77767", ["lesion-size"]),
    ("HDR Ir-192 skin brachytherapy", None, "77768", "77768", ["lesion-size", "channel-count"]),
    ("HDR Ir-192 skin brachytherapy, 1.5 cm lesion", None, None, "77767", []),
    ("HDR Ir-192 skin brachytherapy, 3.0 cm lesion", {"value": 4, "unit": "channels"}, None, "77768", []),
    ("HDR Ir-192 skin brachytherapy, 3 lesions", None, None, "77768", []),
])
def test_skin_hdr_names_only_the_facts_that_could_change_the_code(text, quantity, cpt, code, gaps):
    # Issue 17, C1/D1: lesion-size and channel-count are gaps only while they could change 77767/77768.
    got = only_decision(run([service_request(cpt=cpt, text=text, reason=["C44.91"], quantity=quantity,
                                             body_site={"text": "skin"})], []))
    assert got["recommendedCode"] == code
    assert [key for key in got["missingDocumentation"] if key in ("lesion-size", "channel-count")] == gaps
