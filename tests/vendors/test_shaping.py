"""The profiles' shaping rules one by one, on hand-made cards, and the limit checker failing
on each kind of breach (so the fixture tests above could fail)."""

from __future__ import annotations

import copy

import pytest

from cds_service.vendors import PROFILE_NAMES, get_profile, shape_response, violations
from cds_service.vendors.shaping import SHORTENED_NOTE, shorten_detail, stable_topic_code

CARD_UUID = "3f1d2c4b-5a69-4e7f-8a1b-2c3d4e5f6a7b"


def suggestion(n: int, recommended: bool = False, actions: int = 1) -> dict:
    return {"label": f"Code {n}", "uuid": f"00000000-0000-4000-8000-00000000000{n}", "isRecommended": recommended,
            "actions": [{"type": "update", "description": f"set {n}.{a}", "resource": {"resourceType": "ServiceRequest",
                                                                                       "id": "sr-1"}}
                        for a in range(actions)]}


def card(**extra) -> dict:
    base = {"uuid": CARD_UUID, "summary": "Bill this order as CPT 77750", "indicator": "info", "detail": "short",
            "source": {"label": "Radioelement coding",
                       "topic": {"system": "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp",
                                 "code": "therapy-alternatives-opt", "display": "Therapy alternatives (optional)"}},
            "extension": {"cds-service.card-type": "code", "cds-service.recommended-code": "77750"}}
    base.update(extra)
    return base


def body(*cards: dict) -> dict:
    return {"cards": list(cards), "extension": {"cds-service.decisions": [{"order": "ServiceRequest/sr-1"}]}}


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_single_suggestion_at_most_one_becomes_any_in_every_profile(name):
    shaped = shape_response(body(card(suggestions=[suggestion(1, True)], selectionBehavior="at-most-one")),
                            get_profile(name))
    assert shaped["cards"][0]["selectionBehavior"] == "any"


@pytest.mark.parametrize("name", ["generic", "sandbox"])
def test_generic_and_sandbox_change_nothing_else(name):
    original = body(card(suggestions=[suggestion(1, True), suggestion(2)], selectionBehavior="at-most-one",
                         links=[{"label": "x", "url": "https://apps.example.org/launch", "type": "smart",
                                 "appContext": "a"}], detail="d" * 5000))
    assert shape_response(original, get_profile(name)) == original


def test_unknown_profile_name_is_a_key_error_and_none_is_generic():
    assert get_profile(None).name == "generic"
    with pytest.raises(KeyError):
        get_profile("meditech")


def test_epic_keeps_the_recommended_suggestion_of_an_at_most_one_card():
    original = body(card(suggestions=[suggestion(1), suggestion(2, True)], selectionBehavior="at-most-one"))
    shaped = shape_response(original, get_profile("epic"))
    assert shaped["cards"][0]["suggestions"] == [original["cards"][0]["suggestions"][1]]
    assert shaped["cards"][0]["selectionBehavior"] == "any"
    assert shaped["extension"] == original["extension"]


def test_epic_splits_a_suggestion_into_one_action_each():
    shaped = shape_response(body(card(suggestions=[suggestion(1, True, actions=2)], selectionBehavior="any")),
                            get_profile("epic"))
    parts = shaped["cards"][0]["suggestions"]
    assert [len(p["actions"]) for p in parts] == [1, 1]
    assert [p["label"] for p in parts] == ["Code 1 (1/2)", "Code 1 (2/2)"]
    assert len({p["uuid"] for p in parts}) == 2
    assert violations(shaped, get_profile("epic")) == []


def test_epic_topic_code_is_alphanumeric_stable_and_bounded():
    assert stable_topic_code(card(), 100) == "TherapyAlternativesOptCode77750"
    warning = card(extension={"cds-service.card-type": "edit", "cds-service.recommended-code": "77778",
                              "cds-service.warning": "mue-units-exceeded"})
    assert stable_topic_code(warning, 100) == "TherapyAlternativesOptEdit77778MueUnitsExceeded"
    assert len(stable_topic_code(card(extension={"cds-service.warning": "x-" * 200}), 100)) == 100
    assert stable_topic_code({"summary": "s"}, 100) == "RadioelementCoding"


def test_epic_adds_missing_uuids_and_drops_unregistered_smart_links_only():
    links = [{"label": "app", "url": "https://apps.example.org/launch", "type": "smart"},
             {"label": "ref", "url": "https://www.cms.gov/page", "type": "absolute"}]
    raw = body(card(uuid=None, links=links, suggestions=[dict(suggestion(1, True), uuid=None)],
                    selectionBehavior="any"))
    raw["cards"][0].pop("uuid")
    raw["cards"][0]["suggestions"][0].pop("uuid")
    shaped = shape_response(raw, get_profile("epic"))
    out = shaped["cards"][0]
    assert out["uuid"] and out["suggestions"][0]["uuid"]
    assert [link["type"] for link in out["links"]] == ["absolute"]
    kept = shape_response(raw, get_profile("epic"), ["apps.example.org"])["cards"][0]["links"]
    assert [link["type"] for link in kept] == ["smart", "absolute"]


def test_oracle_links_registered_hosts_only_and_no_app_context():
    links = [{"label": "app", "url": "https://apps.example.org/launch", "type": "smart", "appContext": "ctx"},
             {"label": "ref", "url": "https://www.cms.gov/page", "type": "absolute"},
             {"label": "other", "url": "https://elsewhere.example.net/", "type": "absolute"}]
    shaped = shape_response(body(card(links=links)), get_profile("oracle"),
                            ["https://apps.example.org", "WWW.CMS.GOV"])
    out = shaped["cards"][0]["links"]
    assert [link["label"] for link in out] == ["app", "ref"]
    assert "appContext" not in out[0]
    none_left = shape_response(body(card(links=links)), get_profile("oracle"))
    assert "links" not in none_left["cards"][0]  # an empty list is not allowed in CDS Hooks


def test_oracle_detail_is_cut_at_a_line_and_says_so():
    lines = "\n".join(f"- item {i}: " + "x" * 60 for i in range(30))
    shaped = shape_response(body(card(detail=lines)), get_profile("oracle"))
    detail = shaped["cards"][0]["detail"]
    assert len(detail) <= 800 and detail.endswith(SHORTENED_NOTE)
    assert lines.startswith(detail[: -len(SHORTENED_NOTE)].rstrip())
    assert shorten_detail("word " * 400, 100).endswith(SHORTENED_NOTE)
    assert len(shorten_detail("word " * 400, 100)) <= 100
    assert shorten_detail("short", 100) == "short"


def test_long_summary_is_cut_to_the_spec_limit():
    shaped = shape_response(body(card(summary="s" * 300)), get_profile("epic"))
    assert len(shaped["cards"][0]["summary"]) == 139


@pytest.mark.parametrize("profile, change, expected", [
    ("epic", {"selectionBehavior": "at-most-one", "suggestions": [suggestion(1), suggestion(2)]}, "accepts any only"),
    ("epic", {"selectionBehavior": "any", "suggestions": [suggestion(1, actions=2)]}, "2 actions"),
    ("epic", {"selectionBehavior": "any", "suggestions": [dict(suggestion(1), uuid="nope")]}, "no uuid"),
    ("epic", {"source": {"label": "x", "topic": {"code": "therapy-alternatives-opt"}}}, "not alphanumeric"),
    ("epic", {"uuid": "not-a-uuid"}, "no uuid"),
    ("epic", {"links": [{"label": "a", "url": "https://apps.example.org/", "type": "smart"}]}, "not registered"),
    ("oracle", {"links": [{"label": "a", "url": "https://www.cms.gov/", "type": "absolute"}]}, "not registered"),
    ("oracle", {"detail": "x" * 801}, "detail is 801"),
    ("oracle", {"summary": "Coding advice: see below"}, "does not stand on its own"),
    ("generic", {"summary": "s" * 140}, "summary is 140"),
    ("generic", {"selectionBehavior": "at-most-one", "suggestions": [suggestion(1)]}, "use any"),
    ("generic", {"suggestions": [suggestion(1)]}, "without a valid selectionBehavior"),
])
def test_violations_name_each_breach(profile, change, expected):
    broken = card(**change)
    if profile == "epic" and "source" not in change:
        broken["source"]["topic"]["code"] = "TherapyAlternativesOptCode77750"
    problems = violations(body(broken), get_profile(profile))
    assert any(expected in problem for problem in problems), problems


def test_violations_catch_a_reused_uuid():
    twin = card(selectionBehavior="any", suggestions=[dict(suggestion(1), uuid=CARD_UUID)])
    twin["source"]["topic"]["code"] = "Code"
    assert any("reused" in p for p in violations(body(twin), get_profile("epic")))


def test_shaping_never_mutates_its_input():
    original = body(card(suggestions=[suggestion(1), suggestion(2, True)], selectionBehavior="at-most-one",
                         detail="x" * 2000, links=[{"label": "a", "url": "https://a.example/", "type": "smart",
                                                     "appContext": "c"}]))
    frozen = copy.deepcopy(original)
    for name in PROFILE_NAMES:
        shape_response(original, get_profile(name))
    assert original == frozen
