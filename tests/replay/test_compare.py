"""Decision comparison and fixture loading, without running the service."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from cds_service.replay.compare import compare_decisions, compare_response
from cds_service.replay.fixtures import FixtureError, discover, expectation_from, fixture_from_document, substitute_dates

EXPECTED = {
    "order": "ServiceRequest/sr-1",
    "orderedCode": "77750",
    "recommendedCode": "79101",
    "alternatives": ["77750"],
    "modifiers": ["26"],
    "supply": [{"code": "A9606", "units": 110}],
    "missingDocumentation": ["staging", "follow-up-plan"],
    "warnings": [],
}


def response(*decisions: dict) -> dict:
    return {"cards": [], "extension": {"cds-service.decisions": list(decisions)}}


def test_identical_decisions_have_no_differences():
    assert compare_decisions([EXPECTED], [dict(EXPECTED)]) == []


def test_absent_lists_count_as_empty_because_the_service_prunes_them():
    actual = {key: value for key, value in EXPECTED.items() if key != "warnings"}
    assert compare_decisions([EXPECTED], [actual]) == []
    expected = {"order": "ServiceRequest/sr-1", "recommendedCode": "79101", "warnings": []}
    assert compare_decisions([expected], [{"order": "ServiceRequest/sr-1", "recommendedCode": "79101"}]) == []


def test_set_fields_ignore_order_but_not_content():
    actual = dict(EXPECTED, missingDocumentation=["follow-up-plan", "staging"])
    assert compare_decisions([EXPECTED], [actual]) == []
    actual = dict(EXPECTED, missingDocumentation=["staging", "route"])
    [difference] = compare_decisions([EXPECTED], [actual])
    assert (difference.order, difference.field) == ("ServiceRequest/sr-1", "missingDocumentation")
    assert "missing ['follow-up-plan']" in difference.message()
    assert "unexpected ['route']" in difference.message()


def test_supply_units_compare_numerically_and_codes_exactly():
    assert compare_decisions([EXPECTED], [dict(EXPECTED, supply=[{"code": "A9606", "units": 110.0}])]) == []
    [difference] = compare_decisions([EXPECTED], [dict(EXPECTED, supply=[{"code": "A9606", "units": 111}])])
    assert difference.field == "supply" and "A9606 × 110" in difference.message() and "A9606 × 111" in difference.message()
    [difference] = compare_decisions([EXPECTED], [dict(EXPECTED, supply=[])])
    assert difference.field == "supply" and "got nothing" in difference.message()


def test_decisions_are_matched_by_order_and_missing_or_extra_ones_are_named():
    other = dict(EXPECTED, order="MedicationRequest/mr-1", recommendedCode="79005")
    assert compare_decisions([EXPECTED, other], [other, EXPECTED]) == []
    differences = compare_decisions([EXPECTED], [other])
    messages = sorted(d.message() for d in differences)
    assert any(m.startswith("ServiceRequest/sr-1 · decision: expected a decision") for m in messages)
    assert any(m.startswith("MedicationRequest/mr-1 · decision: unexpected decision") for m in messages)


def test_recommended_code_difference_names_order_field_and_values():
    [difference] = compare_decisions([EXPECTED], [dict(EXPECTED, recommendedCode="77750")])
    assert difference.message() == "ServiceRequest/sr-1 · recommendedCode: expected '79101', got '77750'"


def test_status_mismatch_stops_the_comparison_and_quotes_the_error():
    differences = compare_response({"status": 200, "decisions": [EXPECTED]}, 422, {"error": "invalid FHIR: x"})
    assert [d.field for d in differences] == ["status"]
    assert "expected HTTP 200, got 422 (invalid FHIR: x)" in differences[0].message()


def test_error_contains_and_card_count():
    assert compare_response({"status": 400, "error_contains": "JSON"}, 400, {"error": "body is not valid json"}) == []
    [difference] = compare_response({"status": 400, "error_contains": "context"}, 400, {"error": "hook: wrong"})
    assert difference.field == "error"
    [difference] = compare_response({"status": 200, "card_count": 0}, 200, {"cards": [{"summary": "x"}]})
    assert difference.field == "cards"


def test_expectation_from_a_response_round_trips_through_the_comparison():
    pruned = {key: value for key, value in EXPECTED.items() if key != "warnings"}
    expect = expectation_from(200, response(pruned))
    assert expect["decisions"][0]["warnings"] == [] and expect["status"] == 200
    assert compare_response(expect, 200, response(pruned)) == []
    assert expectation_from(413, {"error": "too big"}) == {"status": 413}


def test_date_tokens_are_replaced_relative_to_the_replay_day():
    value = {"a": "${today}", "b": ["${today-30}T10:00:00Z"], "c": "${today+90}", "d": "plain"}
    assert substitute_dates(value, date(2026, 1, 15)) == {
        "a": "2026-01-15", "b": ["2025-12-16T10:00:00Z"], "c": "2026-04-15", "d": "plain"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"request": {}, "expected": {}}, "unknown keys ['expected']"),
        ({"description": "no request"}, "needs a 'request'"),
        ({"request": {}, "expect": {"status": "200"}}, "expect.status"),
        ({"request": {}, "expect": {"decisions": [{"recommendedCode": "77750"}]}}, "'order'"),
        ({"request": {}, "expect": {"decisions": [{"order": "A/1"}, {"order": "A/1"}]}}, "expected twice"),
        ({"request": {}, "expect": {"decisions": [{"order": "A/1", "warnings": "deleted-code"}]}}, "warnings must be a list"),
        ({"request": {}, "raw_body": "{}"}, "not both"),
    ],
)
def test_broken_fixtures_are_rejected_with_a_precise_message(document, message):
    with pytest.raises(FixtureError) as caught:
        fixture_from_document(document, Path("x.json"), "x.json", date(2026, 1, 1))
    assert message in str(caught.value)


def test_discovery_reports_unreadable_files_and_skips_unrelated_json(tmp_path):
    (tmp_path / "broken.json").write_text("{nope")
    (tmp_path / "other.json").write_text(json.dumps({"some": "config"}))
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.json").write_text("{nope")
    found = discover([tmp_path])
    assert len(found.problems) == 1 and found.problems[0][0].endswith("/broken.json")
    assert found.fixtures == [] and len(found.skipped) == 1
    named = discover([tmp_path / "other.json"])
    assert "neither a fixture" in named.problems[0][1]
