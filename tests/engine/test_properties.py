"""Property checks: unit conversion is consistent, and any radium activity gives sane cards."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from cds_service.engine.activity import from_quantity, round_units
from engine_builders import bone_chart, medication_request, only_decision, run, service_request


@given(st.floats(min_value=0.01, max_value=10_000, allow_nan=False))
def test_the_same_activity_in_any_unit_is_the_same_millicuries(mci):
    spellings = [(mci, "mCi"), (mci * 37, "MBq"), (mci * 37 / 1000, "GBq"), (mci * 1000, "uCi"), (mci * 37_000, "kBq")]
    values = [from_quantity(value, unit, None).mci for value, unit in spellings]
    assert max(values) - min(values) <= 1e-9 * max(values)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=20_000))
def test_radium_units_are_the_rounded_microcuries(kbq):
    draft = [service_request(cpt="79101", text="Xofigo", reason=["C61", "C79.51"]),
             medication_request(text="Xofigo", dose=(kbq, "kBq"))]
    guidance = run(draft, bone_chart(follow_up=False))
    assert only_decision(guidance)["supply"] == [{"code": "A9606", "units": round_units(kbq / 37)}]
    assert all(len(card["summary"]) <= 139 for card in guidance.cards)
