"""Facts extraction: pairing, dates, units, setting, and validating only what the decision uses."""

from __future__ import annotations

import pytest

from cds_service.engine.activity import from_quantity, from_text, round_units
from cds_service.engine.orders import therapy_orders
from cds_service.engine.patient import patient_facts
from cds_service.fhir.parsing import InvalidFhir
from engine_builders import (
    TODAY, bone_chart, encounter, hook_call, knowledge, lung_chart, medication_request, only_decision, run,
    service_request,
)


@pytest.mark.parametrize("value, unit, mci", [
    (37, "MBq", 1.0), (7.4, "GBq", 200.0), (100, "uCi", 0.1), (100, "µCi", 0.1), (37000, "kBq", 1.0), (2, "mCi", 2.0),
])
def test_activity_units_convert_to_millicuries(value, unit, mci):
    assert from_quantity(value, unit, None).mci == pytest.approx(mci)


def test_per_kg_activity_needs_a_weight():
    without = from_quantity(55, "kBq/kg", None)
    assert without.mci is None and without.needs_weight
    assert from_quantity(55, "kBq/kg", 80).mci == pytest.approx(55 * 80 / 37000)
    assert from_text("give 200 mCi IV", None).mci == 200
    assert from_quantity(5, "mg", None) is None


def test_units_round_up_to_the_next_unit_and_never_to_zero():
    # CMS (issue 17, C7b): a dose that is not a whole multiple bills the next highest unit.
    assert round_units(107.03) == 108 and round_units(0.2) == 1 and round_units(199.49) == 200
    # ... but a float error is not a fraction: 7.4 GBq is exactly 200 mCi.
    assert round_units(7400 / 37) == 200 and round_units(200.00000000000003) == 200
    assert round_units(200.001) == 201


def test_rounding_comes_from_the_knowledge_data():
    from engine_builders import knowledge
    rounding = knowledge().unit_rounding
    assert rounding.direction == "up" and rounding.tolerance == 1e-6 and rounding.minimum == 1
    assert "JW" in (rounding.note or "") and "administered" in (rounding.note or "")


def test_per_kg_without_weight_keeps_the_supply_code_without_units():
    draft = [service_request(cpt="79101", text="Xofigo", reason=["C61", "C79.51"]),
             medication_request(text="Xofigo", dose=(55, "kBq/kg"))]
    got = only_decision(run(draft, bone_chart(weight=None)))
    assert got["supply"] == [{"code": "A9606"}]
    assert "activity" not in got["missingDocumentation"]


def test_procedure_and_drug_order_form_one_therapy_order():
    draft = (service_request("sr-1", "77750", "Radium-223 infusion"), medication_request("mr-1", "Xofigo", dose=(55, "kBq/kg")))
    [order] = therapy_orders(draft, TODAY, knowledge())
    assert order.reference == "ServiceRequest/sr-1"
    assert order.members == ("ServiceRequest/sr-1", "MedicationRequest/mr-1")
    assert order.agent == "ra223" and order.route == "intravenous" and order.route_stated


def test_two_therapies_pair_by_reference_and_agent():
    draft = (service_request("sr-a", "79101", "Lutathera infusion"), service_request("sr-b", "79101", "Pluvicto infusion"),
             medication_request("mr-b", "Pluvicto", dose=(200, "mCi")),
             medication_request("mr-a", "Lutathera", dose=(7.4, "GBq"), based_on="ServiceRequest/sr-a"))
    orders = {o.reference: o for o in therapy_orders(draft, TODAY, knowledge())}
    assert orders["ServiceRequest/sr-a"].members[1] == "MedicationRequest/mr-a"
    assert orders["ServiceRequest/sr-b"].members[1] == "MedicationRequest/mr-b"
    assert round(orders["ServiceRequest/sr-a"].activity.mci) == 200


def test_ndc_codes_match_in_any_hyphenation():
    draft = (medication_request("mr-1", ndc="50419-0208-01"),)
    assert therapy_orders(draft, TODAY, knowledge())[0].agent == "ra223"


def test_diagnostic_radionuclide_orders_are_not_therapy():
    draft = (service_request("pet-1", None, "Ga-68 dotatate PET/CT"), service_request("scan-1", None, "I-131 whole body scan"))
    assert therapy_orders(draft, TODAY, knowledge()) == ()


def test_order_date_comes_from_the_order_not_the_calendar():
    far_future = service_request("sr-1", "77750", "Radium-223 infusion", when=400)
    [order] = therapy_orders((far_future,), TODAY, knowledge())
    assert (order.when - TODAY).days == 400
    undated = dict(far_future)
    undated.pop("occurrenceDateTime")
    assert therapy_orders((undated,), TODAY, knowledge())[0].when == TODAY


@pytest.mark.parametrize("klass, pos, text, setting", [
    ("IMP", None, None, "inpatient"), ("OBSENC", None, None, "hospital-outpatient"),
    ("EMER", None, None, "hospital-outpatient"), ("AMB", None, None, "office"),
    ("AMB", "22", None, "hospital-outpatient"), ("AMB", None, "Hospital outpatient department visit", "hospital-outpatient"),
])
def test_encounter_setting(klass, pos, text, setting):
    call = hook_call([service_request()], [encounter(klass=klass, pos=pos, type_text=text)], encounter_id="enc-1")
    orders = therapy_orders(call.draft_orders, TODAY, knowledge())
    assert patient_facts(call, orders, knowledge()).setting == setting


def test_modifier_26_only_in_facility_settings():
    draft = [service_request(text="Intrapleural instillation of P-32 chromic phosphate")]
    office = only_decision(run(draft, lung_chart() + [encounter(klass="AMB")], encounter_id="enc-1"))
    inpatient = only_decision(run(draft, lung_chart() + [encounter(klass="IMP")], encounter_id="enc-1"))
    assert office["modifiers"] == [] and inpatient["modifiers"] == ["26"]


def test_only_selected_prefetch_resources_are_validated():
    broken_unrelated = {"resourceType": "Condition", "id": "bad-1", "subject": {"reference": "Patient/pat-1"},
                        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]},
                        "onsetDateTime": "not a date"}
    broken_used = dict(broken_unrelated, id="bad-2", code={"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                                        "code": "C34.90"}]})
    draft = [service_request(text="Intrapleural instillation of P-32 chromic phosphate")]
    run(draft, lung_chart() + [broken_unrelated])  # not read, not validated, no error
    with pytest.raises(InvalidFhir):
        run(draft, lung_chart() + [broken_used])


def test_lenient_and_validated_prefetch_give_the_same_decisions():
    from cds_service.engine import advise
    from cds_service.fhir.parsing import validate_resource
    from dataclasses import replace

    draft = [service_request(cpt="77750", text="Radium-223 infusion", reason=["C61", "C79.51"]),
             medication_request(text="Xofigo", dose=(55, "kBq/kg"))]
    call = hook_call(draft, bone_chart() + lung_chart())
    strict = replace(call, prefetch={k: tuple(validate_resource(r) for r in v) for k, v in call.prefetch.items()})
    assert advise(call, knowledge()).decisions == advise(strict, knowledge()).decisions
