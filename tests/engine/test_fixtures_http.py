"""Post every engine fixture through the Flask app: the published decisions (pruned of empty
values, as the response is) must equal the fixture's expectations, and every response must pass
the CDS Hooks response schema (the shared CheckedClient asserts that)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service.hooks.pipeline import prune
from test_fixtures import FIXTURES, PROVENANCE


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_through_the_app(client, path: Path):
    fixture = json.loads(path.read_text())
    body = fixture["request"]
    service = "radioelement-order-sign" if body["hook"] == "order-sign" else "radioelement-order-select"
    response = client.post(f"/cds-services/{service}", json=body)
    assert response.status_code == fixture["expect"]["status"], response.get_data(as_text=True)
    payload = response.get_json()
    published = (payload.get("extension") or {}).get("cds-service.decisions", [])
    assert [{k: v for k, v in d.items() if k not in PROVENANCE} for d in published] \
        == prune(fixture["expect"]["decisions"])
    assert all(d["rule"] and d["sources"] and d["knowledgeVersion"] for d in published)
    if body["hook"] == "order-sign" and fixture["expect"]["decisions"] and any(
            (body["prefetch"].get("coverage") or {}).get("entry", [])):
        assert payload["systemActions"], "a covered patient gets the CRD coverage-information systemAction"
