"""Activity is what the order asks for (issue 11): never a strength, a concentration, a product
name or a quantity that is not radioactivity; and recognition survives mislabelled codings."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from cds_service.engine import activity
from cds_service.engine.decision import supply_lines
from cds_service.engine.orders import therapy_orders
from cds_service.knowledge.model import Matcher
from engine_builders import knowledge

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def xofigo_order(**extra):
    order = {"resourceType": "MedicationRequest", "id": "mr-1", "status": "draft", "intent": "order",
             "subject": {"reference": "Patient/p"},
             "medicationCodeableConcept": {"text": "radium Ra-223 dichloride 1100 kBq/mL Injectable Solution [Xofigo]"}}
    order.update(extra)
    return order


def dose(quantity):
    return [{"doseAndRate": [{"doseQuantity": quantity}]}]


@pytest.mark.parametrize("text", ["1100 kBq/mL", "1100 kBq per mL", "5 mCi/vial", "6 MBq / ml", "30 mCi per capsule"])
def test_a_strength_in_text_is_not_an_activity(text):
    assert activity.from_text(text, 80) is None


def test_an_amount_after_a_strength_is_still_read():
    found = activity.from_text("Xofigo 1100 kBq/mL; give 55 kBq/kg", 80)
    assert found is not None and found.mci_per_kg is not None


@pytest.mark.parametrize("unit", ["{pill}", "{tablet}", "mL", "mg", "{vial}"])
def test_a_dose_that_is_not_radioactivity_gives_no_units_and_a_gap(unit):
    [order] = therapy_orders([xofigo_order(dosageInstruction=dose({"value": 1, "code": unit}))],
                             date(2026, 1, 1), knowledge(), 80.0)
    assert order.agent == "ra223" and order.activity is None
    assert order.dose_stated == f"1 {unit}"
    [line] = supply_lines(order, "79101", knowledge())
    assert line.units is None and line.as_json() == {"code": "A9606"}
    assert f"1 {unit}" in (line.note or "")


def test_the_product_name_alone_is_not_the_activity():
    [order] = therapy_orders([xofigo_order()], date(2026, 1, 1), knowledge(), 80.0)
    assert order.activity is None and order.dose_stated is None


def test_medication_strength_and_a_volume_dispensed_are_not_the_activity():
    medication = {"resourceType": "Medication", "id": "m", "code": {"text": "Xofigo"}, "ingredient": [
        {"itemCodeableConcept": {"text": "radium Ra 223 dichloride"},
         "strength": {"numerator": {"value": 1100, "code": "kBq"}, "denominator": {"value": 1, "code": "mL"}}}]}
    order = xofigo_order(dispenseRequest={"quantity": {"value": 6, "code": "mL"}},
                         medicationReference={"reference": "Medication/m"})
    del order["medicationCodeableConcept"]
    [found] = therapy_orders([order], date(2026, 1, 1), knowledge(), 80.0, {"Medication/m": medication})
    assert found.agent == "ra223" and found.activity is None and found.dose_stated == "6 mL"


@pytest.mark.parametrize("rate, mci", [
    ({"doseQuantity": {"value": 200, "code": "mCi"}}, 200.0),
    ({"rateQuantity": {"value": 7400, "code": "MBq"}}, 200.0),
    ({"doseRange": {"low": {"value": 7.4, "code": "GBq"}, "high": {"value": 7.4, "code": "GBq"}}}, 200.0),
])
def test_a_radioactivity_quantity_is_the_activity(rate, mci):
    order = xofigo_order(dosageInstruction=[{"doseAndRate": [rate]}])
    [found] = therapy_orders([order], date(2026, 1, 1), knowledge(), 80.0)
    assert found.activity is not None and found.activity.mci == pytest.approx(mci)


def test_a_true_range_is_stated_but_not_an_activity():
    order = xofigo_order(dosageInstruction=[{"doseAndRate": [{"doseRange": {
        "low": {"value": 7.0, "unit": "GBq"}, "high": {"value": 7.4, "unit": "GBq"}}}]}])
    [found] = therapy_orders([order], date(2026, 1, 1), knowledge(), 80.0)
    assert found.activity is None and found.dose_stated == "a range of 7 GBq to 7.4 GBq"


def test_a_dispensed_activity_counts():
    order = xofigo_order(dispenseRequest={"quantity": {"value": 4400, "unit": "kBq"}})
    [found] = therapy_orders([order], date(2026, 1, 1), knowledge(), None)
    assert found.activity is not None and found.activity.mci == pytest.approx(4400 / 37000)


def coded(system, code):
    return xofigo_order(medicationCodeableConcept={"coding": [{"system": system, "code": code}]})


def test_a_code_under_the_wrong_system_counts_when_its_value_is_unambiguous():
    [found] = therapy_orders([coded("http://snomed.info/sct", "1424219")], date(2026, 1, 1), knowledge())
    assert found.agent == "ra223"


def test_an_ambiguous_value_under_the_wrong_system_is_not_guessed():
    base = knowledge()
    matcher = Matcher(by_code={**base.agent_matcher.by_code, ("snomed", "1424219"): "lu177-dotatate"},
                      patterns=base.agent_matcher.patterns)
    ambiguous = dataclasses.replace(base, agent_matcher=matcher)
    assert therapy_orders([coded("http://loinc.org", "1424219")], date(2026, 1, 1), ambiguous) == ()


def test_a_conflict_between_code_and_name_is_kept_for_the_card():
    order = xofigo_order(medicationCodeableConcept={"coding": [{"system": RXNORM, "code": "1999687"}],
                                                    "text": "Xofigo 1100 kBq/mL"})
    [found] = therapy_orders([order], date(2026, 1, 1), knowledge())
    assert found.agent == "lu177-dotatate"
    assert found.agent_conflict and "Xofigo" in found.agent_conflict and "Lutathera" in found.agent_conflict
