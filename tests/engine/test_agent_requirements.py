"""Issue 17: per-agent label requirements are data (documentation.toml) evaluated by small code."""

from __future__ import annotations

from engine_builders import (
    bone_chart, condition, day, imaging_report, knowledge, medication_request, only_decision, run, service_request,
)

RA223 = [service_request(cpt="79101", text="Radium-223 infusion", reason=["C61", "C79.51"]),
         medication_request(text="Xofigo", rxnorm="1424214", dose=(55, "kBq/kg"))]
PSMA = [medication_request(text="Pluvicto lutetium Lu 177 vipivotide tetraxetan", dose=(200, "mCi"),
                           reason=["C61", "C79.51"])]


def chart_with_ct(conclusion, offset=-20):
    base = [r for r in bone_chart() if r["id"] != "ct-1"]
    return base + [dict(imaging_report("ct-2", offset, "24627-2"), conclusion=conclusion)]


def gaps(draft, chart):
    return only_decision(run(draft, chart))["missingDocumentation"]


def test_ra223_needs_a_recent_statement_of_no_visceral_metastases():
    assert "no-visceral-metastases" not in gaps(RA223, bone_chart())
    assert "no-visceral-metastases" in gaps(RA223, chart_with_ct("Osseous metastases."))
    # Older than the 90-day window: no longer the current statement.
    assert "no-visceral-metastases" in gaps(RA223, chart_with_ct("No visceral metastatic disease.", -120))


def test_an_active_visceral_metastasis_contradicts_the_radium_label():
    got = only_decision(run(RA223, bone_chart() + [condition("c-9", "C78.7")]))
    assert "indication-mismatch" in got["warnings"] and "no-visceral-metastases" in got["missingDocumentation"]
    # Bone (C79.51) is not visceral.
    assert "indication-mismatch" not in only_decision(run(RA223, bone_chart()))["warnings"]


def test_psma_pet_counts_unless_negated_and_a_negative_scan_is_a_label_conflict():
    positive = chart_with_ct("PSMA PET (piflufolastat): multiple PSMA-avid osseous lesions.")
    negative = chart_with_ct("PSMA PET: lesions without PSMA uptake (PSMA-negative disease).")
    assert "psma-pet" not in gaps(PSMA, positive)
    got = only_decision(run(PSMA, negative))
    assert "psma-pet" in got["missingDocumentation"] and "indication-mismatch" in got["warnings"]
    assert "psma-pet" in gaps(PSMA, bone_chart())


def test_a_procedure_with_the_imaging_agents_hcpcs_code_satisfies_the_scan():
    procedure = {"resourceType": "Procedure", "id": "pet-1", "status": "completed",
                 "subject": {"reference": "Patient/pat-1"}, "performedDateTime": "2020-01-01",
                 "code": {"coding": [{"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                      "code": "A9595"}]}}
    assert "psma-pet" not in gaps(PSMA, bone_chart() + [procedure])


def test_requirements_are_declared_in_the_knowledge_with_a_source():
    items = knowledge().doc_items
    for key, agent in (("no-visceral-metastases", "ra223"), ("psma-pet", "lu177-psma"),
                       ("sstr-imaging", "lu177-dotatate"), ("iobenguane-scan", "i131-iobenguane")):
        requirement = items[key].requirement
        assert requirement is not None and agent in requirement.agents and requirement.strength == "required"
    assert knowledge().provenance  # every fact sourced (checked in tests/knowledge)


# -- advice items (weak source): shown as worth documenting, never as gaps ----------------------
def test_advice_is_listed_apart_from_gaps_and_on_the_card():
    guidance = run(RA223, bone_chart())
    got = only_decision(guidance)
    assert got["documentationAdvice"] == ["castration-resistant", "symptomatic-bone-metastases"]
    assert not set(got["documentationAdvice"]) & set(got.get("missingDocumentation", []))
    details = " ".join(card["detail"] for card in guidance.cards)
    assert "Worth documenting (advice, not required): castration resistance" in details


def test_advice_is_left_out_once_the_chart_shows_it():
    stated = chart_with_ct("Castration-resistant prostate cancer; symptomatic bone metastases. "
                           "No visceral metastatic disease.")
    assert "documentationAdvice" not in only_decision(run(RA223, stated))
    taxane = chart_with_ct("Progression after docetaxel. PSMA PET: PSMA-avid lesions. mCRPC.")
    assert "documentationAdvice" not in only_decision(run(PSMA, taxane))
    assert only_decision(run(PSMA, chart_with_ct("PSMA PET: PSMA-avid lesions.")))["documentationAdvice"] == [
        "castration-resistant", "prior-taxane-or-deferral"]


def test_advice_is_not_claimed_when_its_data_was_not_fetched():
    got = only_decision(run(RA223, bone_chart(), unavailable={"reports": "timeout"}))
    assert "castration-resistant" not in got.get("documentationAdvice", [])


def test_the_uptake_study_is_advised_only_for_hyperthyroidism():
    iodine = [medication_request(text="sodium iodide I-131 capsule", dose=(15, "mCi"), route="26643006")]
    cancer = [condition("c-1", "C73"), imaging_report("us-1", -10)]
    graves = [condition("c-1", "E05.00"), imaging_report("us-1", -10)]
    assert "documentationAdvice" not in only_decision(run(iodine, cancer))
    assert only_decision(run(iodine, graves)).get("documentationAdvice") == ["thyroid-uptake"]
    uptake = dict(imaging_report("up-1", -7), conclusion="24-hour radioactive iodine uptake 62%.")
    assert "documentationAdvice" not in only_decision(run(iodine, graves + [uptake]))


def test_advice_items_carry_a_source_and_the_advice_strength():
    items = knowledge().doc_items
    for key in ("castration-resistant", "symptomatic-bone-metastases", "prior-taxane-or-deferral",
                "thyroid-uptake", "lung-shunt-study"):
        requirement = items[key].requirement
        assert requirement is not None and requirement.strength == "advice"


def test_a_coded_diagnosis_clears_its_advice_item():
    """Z19.2 and G89.3 are unrelated to the indication, but they are the advice items' evidence:
    the chart reader must keep them (it used to drop every Condition not about the indication)."""
    assert only_decision(run(RA223, bone_chart()))["documentationAdvice"] == [
        "castration-resistant", "symptomatic-bone-metastases"]
    coded = bone_chart() + [condition("c-8", "Z19.2"), condition("c-9", "G89.3")]
    assert "documentationAdvice" not in only_decision(run(RA223, coded))
    assert only_decision(run(RA223, bone_chart() + [condition("c-8", "Z19.2")]))["documentationAdvice"] == [
        "symptomatic-bone-metastases"]
    # Kept for the agent whose advice item names it only: an unrelated code still clears nothing.
    assert only_decision(run(RA223, bone_chart() + [condition("c-8", "Z19.1")]))["documentationAdvice"] == [
        "castration-resistant", "symptomatic-bone-metastases"]


# -- prior-arpi: the medication history (prefetch key ``medications``) --------------------------
PSMA_PET = "PSMA PET (piflufolastat): multiple PSMA-avid osseous lesions."


def prior_medication(rid, *, resource_type="MedicationRequest", rxnorm=None, text=None, status="completed",
                     offset=-300, **extra):
    coding = [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm}] if rxnorm else []
    resource = {"resourceType": resource_type, "id": rid, "status": status, "subject": {"reference": "Patient/pat-1"},
                "medicationCodeableConcept": {**({"coding": coding} if coding else {}), **({"text": text} if text else {})}}
    if resource_type == "MedicationRequest":
        resource.update(intent="order", authoredOn=day(offset))
    else:
        resource["effectiveDateTime"] = day(offset)
    resource.update(extra)
    return resource


def test_lu177_psma_needs_a_prior_androgen_receptor_pathway_inhibitor():
    chart = chart_with_ct(PSMA_PET)
    assert "prior-arpi" in gaps(PSMA, chart)
    assert "prior-arpi" in gaps(PSMA, chart + [prior_medication("m-1", text="leuprolide 22.5 mg")])
    for medication in (prior_medication("m-1", rxnorm="1307298"),  # enzalutamide, ingredient code only
                       prior_medication("m-1", text="abiraterone acetate 1000 mg daily"),
                       prior_medication("m-1", resource_type="MedicationStatement", text="Erleada 240 mg")):
        assert "prior-arpi" not in gaps(PSMA, chart + [medication]), medication
    # Never given, or dated after the order, or only proposed: no prior therapy.
    for medication in (prior_medication("m-1", rxnorm="1307298", status="cancelled"),
                       prior_medication("m-1", rxnorm="1307298", offset=5),
                       prior_medication("m-1", rxnorm="1307298", intent="proposal"),
                       prior_medication("m-1", resource_type="MedicationStatement", text="darolutamide",
                                        status="not-taken")):
        assert "prior-arpi" in gaps(PSMA, chart + [medication]), medication
    # Radium-223's label asks for no prior therapy.
    assert "prior-arpi" not in gaps(RA223, bone_chart())


def test_a_medication_reference_is_read_for_the_history():
    contained = prior_medication("m-1", medicationReference={"reference": "#zy"},
                                 contained=[{"resourceType": "Medication", "id": "zy",
                                             "code": {"text": "Zytiga 250 mg tablet"}}])
    del contained["medicationCodeableConcept"]
    assert "prior-arpi" not in gaps(PSMA, chart_with_ct(PSMA_PET) + [contained])


def test_prior_arpi_is_not_claimed_when_the_medications_could_not_be_had():
    got = only_decision(run(PSMA, chart_with_ct(PSMA_PET), unavailable={"medications": "not prefetched"}))
    assert "prior-arpi" not in got.get("missingDocumentation", [])


def test_the_medication_history_is_fetched_only_for_an_agent_that_reads_it():
    from cds_service.engine import relevant

    def keys(draft):
        return relevant(draft, {}, (), False, knowledge()).prefetch_keys

    assert "medications" in keys(PSMA)
    assert "medications" not in keys(RA223)
    assert "medications" not in relevant(PSMA, {}, (), True, knowledge()).prefetch_keys  # order-select
