"""The fhir_core speed-ups change the cost of validation, never its verdict or its message.

Every resource in the fixtures and the benchmark's charts, and mutations of them that break
exactly what the two replaced checks look at (a null inside a list, a missing required
primitive, two values for one choice element), must be accepted or refused alike with the
library's own code and with the speed-ups, with the same error text.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import scenarios  # noqa: E402

from cds_service.fhir import speedups  # noqa: E402
from cds_service.fhir.parsing import InvalidFhir, preload_models, validate_resource  # noqa: E402


def _resources(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if isinstance(value.get("resourceType"), str) and value["resourceType"] != "Bundle":
            yield value
        for item in value.values():
            yield from _resources(item)
    elif isinstance(value, list):
        for item in value:
            yield from _resources(item)


def _corpus() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted((ROOT / "fhir_fixtures").rglob("*.json")):
        try:
            found.extend(_resources(json.loads(path.read_text(encoding="utf-8"))))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
    found.extend(_resources(scenarios.big_chart_request(200)))
    found.extend(_resources(scenarios.distinct_order_sign_requests(2)))
    return found


CORPUS = _corpus()


def verdict(resource: Any) -> str:
    try:
        return "valid " + json.dumps(validate_resource(resource), sort_keys=True, default=str)
    except InvalidFhir as error:
        return f"invalid {error}"


def both(resource: Any) -> tuple[str, str]:
    speedups.uninstall()
    try:
        assert not speedups.installed()
        stock = verdict(copy.deepcopy(resource))
        assert not speedups.installed(), "validating must not put the speed-ups back by itself"
    finally:
        assert speedups.install()
    return stock, verdict(copy.deepcopy(resource))


def test_the_speedups_are_installed_on_the_locked_fhir_core() -> None:
    preload_models()
    assert speedups.install() and speedups.installed(), \
        "fhir_core changed: re-check the three functions and update speedups.CHECKED"


def test_cds_fhir_speedups_off_keeps_the_library_code(tmp_path: Any) -> None:
    from cds_service.app import create_app
    from cds_service.config import Settings

    settings = Settings.from_env({"CDS_FHIR_SPEEDUPS": "off", "CDS_SQLITE_PATH": str(tmp_path / "db.sqlite3"),
                                  "CDS_AUTH": "off"})
    assert settings.fhir_speedups is False and Settings.from_env({}).fhir_speedups is True
    try:
        create_app(settings)
        assert not speedups.installed()
        validate_resource(CORPUS[0]) if verdict(CORPUS[0]).startswith("valid") else None
        assert not speedups.installed(), "a validation must not put them back"
    finally:
        assert speedups.install()


def test_every_corpus_resource_gets_the_same_verdict() -> None:
    assert len(CORPUS) > 300
    for resource in CORPUS:
        stock, fast = both(resource)
        assert stock == fast, resource.get("id")


def _mutations(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key, value in resource.items():
        if isinstance(value, list):
            yield {**resource, key: [*value, None]}  # a null inside a list
            yield {**resource, key: [None]}
        if isinstance(value, dict):
            for inner, item in value.items():
                if isinstance(item, list):
                    yield {**resource, key: {**value, inner: [None, *item]}}  # one level down
        if key not in ("resourceType", "id"):
            yield {k: v for k, v in resource.items() if k != key}  # a required element gone, maybe
    choice = [key for key in resource if key.startswith(("value", "effective", "onset", "occurrence", "performed"))]
    for key in choice:
        prefix = next(p for p in ("value", "effective", "onset", "occurrence", "performed") if key.startswith(p))
        yield {**resource, f"{prefix}String": "x", f"{prefix}Boolean": True}  # two values for one choice


@pytest.mark.slow
def test_mutated_resources_get_the_same_verdict_and_message() -> None:
    checked = refused = 0
    for resource in CORPUS[::3]:
        for mutated in _mutations(resource):
            stock, fast = both(mutated)
            assert stock == fast, (resource.get("id"), stock[:300], fast[:300])
            checked += 1
            refused += stock.startswith("invalid")
    assert checked > 1000 and refused > 300  # the mutations did reach the replaced checks


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "x", "final", "2024-01-01"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["coding", "system", "code", "text", "reference", "extension", "url", "valueString"]),
        children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(CORPUS), st.sampled_from(["code", "category", "subject", "extension", "note", "valueString",
                                                   "identifier", "status", "focus"]), json_values)
def test_random_element_values_get_the_same_verdict(resource: dict[str, Any], key: str, value: Any) -> None:
    stock, fast = both({**resource, key: value})
    assert stock == fast


def test_the_second_after_check_is_skipped_only_for_the_same_instance() -> None:
    """Two different resources validated in a row are each checked: a choice element with two
    values is refused even right after a valid resource of the same type was accepted."""
    observation = next(r for r in CORPUS if r["resourceType"] == "Observation" and "valueQuantity" in r
                       and verdict(r).startswith("valid"))
    doubled = {**observation, "valueString": "also this"}
    assert "valueQuantity" in verdict(doubled) and verdict(doubled).startswith("invalid")
    assert verdict(observation).startswith("valid")


def test_a_remembered_flat_element_never_answers_for_another_type_or_value() -> None:
    """The memo of flat elements is keyed by the element's type and its members with their
    Python types: 1 and True (equal in Python) are told apart, and a failure is never kept."""
    weight = next(r for r in CORPUS if r["resourceType"] == "Observation" and "valueQuantity" in r
                  and verdict(r).startswith("valid"))
    quantity = dict(weight["valueQuantity"])
    assert verdict({**weight, "valueQuantity": {**quantity, "value": 1}}).startswith("valid")
    verdicts = set()
    for odd in (True, "1", 1.0, [1]):
        stock, fast = both({**weight, "valueQuantity": {**quantity, "value": odd}})
        assert stock == fast, odd
        verdicts.add(fast.split(" ")[0])
    assert verdicts == {"valid", "invalid"}
    bad_coding = {"system": "http://loinc.org", "code": 7}  # a code must be a string
    for _ in range(2):  # the second time too: failures are not remembered
        stock, fast = both({**weight, "code": {"coding": [bad_coding]}})
        assert stock == fast and fast.startswith("invalid")
    # the same members as a Coding elsewhere, in an element of another type, get that type's verdict
    period_like = {"start": "2026-01-01", "end": "2026-02-01"}
    stock, fast = both({**weight, "code": {"coding": [period_like]}})
    assert stock == fast and fast.startswith("invalid")
