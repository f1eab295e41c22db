"""Replay every fixture modelled on Epic's and Oracle Health's documented request shapes, then
check each vendor's response limits on every card of the shaped answer, and that shaping left
every decision as it was."""

from __future__ import annotations

import copy

import pytest

from cds_service.vendors import get_profile, shape_response, violations
from cds_service.vendors.shaping import SHORTENED_NOTE

EPIC = ["epic/renamed-prefetch-keys", "epic/missing-prefetch-keys", "epic/empty-search-operationoutcome",
        "epic/contained-medication", "epic/alternatives-any-only"]
ORACLE = ["oracle/no-prefetch-registered-fhir-server", "oracle/long-documentation-detail",
          "oracle/suggestions-and-link"]
CMS = ("www.cms.gov",)


def test_every_vendor_fixture_is_covered(vendor_results):
    assert sorted(vendor_results) == sorted(EPIC + ORACLE)


@pytest.mark.parametrize("name", EPIC + ORACLE)
def test_vendor_request_shapes_reach_the_recorded_decisions(vendor_results, name):
    result = vendor_results[name]
    assert result.outcome == "passed", (result.outcome, result.differences, result.error)
    assert result.decisions, "the order was not recognised"


@pytest.mark.parametrize("name", EPIC + ORACLE)
@pytest.mark.parametrize("link_hosts", [(), CMS])
def test_shaped_answer_is_within_the_vendor_limits_and_keeps_the_decisions(vendor_results, name, link_hosts):
    body = vendor_results[name].body
    original = copy.deepcopy(body)
    profile = get_profile(name.split("/")[0])
    shaped = shape_response(body, profile, link_hosts)
    assert body == original  # shaping works on a copy
    assert violations(shaped, profile, link_hosts) == []
    assert shaped["extension"]["cds-service.decisions"] == body["extension"]["cds-service.decisions"]
    assert shaped.get("systemActions") == body.get("systemActions")
    assert [c["indicator"] for c in shaped["cards"]] == [c["indicator"] for c in body["cards"]]
    assert [c.get("overrideReasons") for c in shaped["cards"]] == [c.get("overrideReasons") for c in body["cards"]]


@pytest.mark.parametrize("name", EPIC + ORACLE)
def test_the_standard_answer_already_fits_generic_and_sandbox(vendor_results, name):
    body = vendor_results[name].body
    for profile in ("generic", "sandbox"):
        assert violations(body, get_profile(profile)) == []
        assert shape_response(body, get_profile(profile)) == body


@pytest.mark.parametrize("name", ["epic/renamed-prefetch-keys", "epic/missing-prefetch-keys"])
def test_epic_prefetch_keys_missing_or_renamed_means_fetching_from_fhir_server(vendor_results, name):
    result = vendor_results[name]
    assert result.fhir_requests > 0
    kinds = [c["extension"].get("cds-service.card-type") for c in result.cards]
    assert "checks-unavailable" not in kinds


def test_epic_empty_search_operationoutcome_is_nothing_found(vendor_results):
    """Epic: a Bundle holding only an OperationOutcome is an empty search, not an error."""
    result = vendor_results["epic/empty-search-operationoutcome"]
    assert result.fhir_requests == 0, "an empty search must not be fetched again"
    kinds = [c["extension"].get("cds-service.card-type") for c in result.cards]
    assert "checks-unavailable" not in kinds


def test_epic_contained_medication_is_recognised(vendor_results):
    decision = vendor_results["epic/contained-medication"].decisions[0]
    assert decision["order"] == "MedicationRequest/request-ra223"
    assert decision["supply"][0]["code"] == "A9606"


def test_epic_keeps_only_the_recommended_suggestion_with_any(vendor_results):
    body = vendor_results["epic/alternatives-any-only"].body
    standard = [c for c in body["cards"] if len(c.get("suggestions", [])) > 1]
    assert standard and standard[0]["selectionBehavior"] == "at-most-one"
    shaped = shape_response(body, get_profile("epic"))
    card = next(c for c in shaped["cards"] if c["uuid"] == standard[0]["uuid"])
    assert card["selectionBehavior"] == "any"
    assert [s["isRecommended"] for s in card["suggestions"]] == [True]
    assert card["suggestions"][0]["uuid"] == standard[0]["suggestions"][0]["uuid"]
    assert "Alternatives:" in card["detail"]  # the alternatives are still named to the user


def test_epic_topic_codes_are_the_same_on_every_call(vendor_results):
    body = vendor_results["epic/alternatives-any-only"].body
    first = shape_response(body, get_profile("epic"))
    again = shape_response(copy.deepcopy(body), get_profile("epic"))
    codes = [c["source"]["topic"]["code"] for c in first["cards"]]
    assert codes == [c["source"]["topic"]["code"] for c in again["cards"]]
    assert codes[0] == "TherapyAlternativesOptCode77771"


def test_oracle_side_panel_detail_is_shortened_and_summary_kept(vendor_results):
    body = vendor_results["oracle/long-documentation-detail"].body
    longest = max(body["cards"], key=lambda c: len(c.get("detail", "")))
    assert len(longest["detail"]) > get_profile("oracle").detail_limit
    shaped = shape_response(body, get_profile("oracle"))
    card = next(c for c in shaped["cards"] if c["uuid"] == longest["uuid"])
    assert card["summary"] == longest["summary"]
    assert card["detail"].endswith(SHORTENED_NOTE)
    assert longest["detail"].startswith(card["detail"][: -len(SHORTENED_NOTE)].rstrip())


def test_oracle_keeps_only_registered_links(vendor_results):
    body = vendor_results["oracle/suggestions-and-link"].body
    assert any(c.get("links") for c in body["cards"])
    unregistered = shape_response(body, get_profile("oracle"))
    assert not any(c.get("links") for c in unregistered["cards"])
    registered = shape_response(body, get_profile("oracle"), (*CMS, "localhost"))
    assert [c.get("links") for c in registered["cards"]] == [c.get("links") for c in body["cards"]]
    # the service's own library page is a link like any other: kept only when its host is registered
    external = shape_response(body, get_profile("oracle"), CMS)
    kept = [link["url"] for c in external["cards"] for link in c.get("links", [])]
    assert kept and all(url.startswith("https://www.cms.gov/") for url in kept)
