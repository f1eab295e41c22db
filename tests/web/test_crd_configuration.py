"""Da Vinci CRD configuration: options advertised at discovery, honoured on the call."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[2] / "fhir_fixtures" / "engine" / "79101-ra223-no-followup.json"
SIGN = "/cds-services/radioelement-order-sign"


def request(configuration=None) -> dict:
    body = copy.deepcopy(json.loads(FIXTURE.read_text())["request"])
    body["hookInstance"] = str(uuid.uuid4())
    if configuration is not None:
        body["extension"] = {"davinci-crd.configuration": configuration}
    return body


def topics(response) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]


def test_discovery_offers_one_boolean_per_card_type_and_max_cards(client):
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    options = services["radioelement-order-sign"]["extension"]["davinci-crd.configuration-options"]
    codes = [option["code"] for option in options]
    assert len(codes) == len(set(codes))
    assert {"therapy-alternatives-opt", "clinical-reminder", "claim", "max-cards"} <= set(codes)
    for option in options:
        assert option["type"] in ("boolean", "integer") and option["name"] and option["description"]
        assert "default" in option


def test_card_type_switched_off_is_not_returned(client):
    full = client.post(SIGN, json=request())
    assert {"therapy-alternatives-opt", "clinical-reminder"} <= set(topics(full))
    filtered = client.post(SIGN, json=request({"clinical-reminder": False}))
    assert "clinical-reminder" not in topics(filtered)
    assert "therapy-alternatives-opt" in topics(filtered)
    # the machine-readable decision is unchanged: configuration shapes the cards only
    assert filtered.get_json()["extension"] == full.get_json()["extension"]


def test_max_cards_keeps_the_most_important_first(client):
    full = client.post(SIGN, json=request())
    one = client.post(SIGN, json=request({"max-cards": 1}))
    assert topics(one) == topics(full)[:1]


def test_unknown_options_and_nonsense_values_are_ignored(client):
    full = client.post(SIGN, json=request())
    odd = client.post(SIGN, json=request({"no-such-option": True, "max-cards": "two", "claim": "no"}))
    assert odd.status_code == 200
    assert topics(odd) == topics(full)
