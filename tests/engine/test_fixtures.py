"""Replay every fixture under fhir_fixtures/engine/ straight through the engine (no Flask).

The HookCall is built from the fixture's request the way the plumbing would: prefetch Bundles
flattened, draft orders validated. ``today`` is the real date, to prove the decisions depend on
the orders' own dates and not on the calendar.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cds_service.engine import advise
from cds_service.fhir.parsing import validate_resource
from cds_service.hooks.model import HookCall
from engine_builders import knowledge

PROVENANCE = ("rule", "sources", "knowledgeVersion")
RULE_IDS = {rule.id for rule in knowledge().code_rules}
FIXTURES = sorted((Path(__file__).resolve().parents[2] / "fhir_fixtures" / "engine").glob("*.json"))


def flatten(value: Any) -> tuple[dict, ...]:
    if isinstance(value, dict) and value.get("resourceType") == "Bundle":
        return tuple(entry["resource"] for entry in value.get("entry", []) if "resource" in entry)
    return (value,) if isinstance(value, dict) else ()


def call_from(body: dict[str, Any]) -> HookCall:
    context = body["context"]
    drafts = tuple(validate_resource(resource, f"draftOrders entry {index}")
                   for index, resource in enumerate(flatten(context["draftOrders"])))
    return HookCall(
        service_id="radioelement-" + body["hook"], hook=body["hook"], hook_instance=body["hookInstance"],
        patient_id=context["patientId"], user_id=context["userId"], encounter_id=context.get("encounterId"),
        draft_orders=drafts, selections=tuple(context.get("selections", ())), today=date.today(),
        prefetch={key: flatten(value) for key, value in (body.get("prefetch") or {}).items()},
    )


def test_there_is_a_fixture_for_every_decision_table_code():
    names = {path.name.split("-")[0] for path in FIXTURES}
    assert {"77750", "79200", "79101", "79403", "79445", "79005", "79440", "79300", "0394T", "0395T",
            "57155", "58346", "57156", "77771", "77778", "77761", "77767", "77789"} <= names


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_decisions(path: Path):
    fixture = json.loads(path.read_text())
    guidance = advise(call_from(fixture["request"]), knowledge())
    # Provenance (rule, sources, knowledgeVersion) changes with each knowledge release; the
    # golden test pins it, the fixtures pin the decision itself.
    assert [{k: v for k, v in d.items() if k not in PROVENANCE} for d in guidance.decisions] \
        == fixture["expect"]["decisions"]
    for decision in guidance.decisions:
        assert decision["rule"] in RULE_IDS
        assert decision["sources"] and set(decision["sources"]) <= set(knowledge().sources)
        assert decision["knowledgeVersion"] == knowledge().version
    assert len(guidance.cards) >= len(guidance.decisions)
