"""The README tells the truth: its "Try it" request shows cards (and the summaries it prints are
the ones the service gives), the statin request it names gets none, and its example log line has
exactly the keys and value vocabularies that real calls write."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from cds_service.hooks.catalog import SERVICES_BY_ID
from cds_service.ops.logs import CALL_LOGGER
from cds_service.replay.fixtures import discover
from cds_service.replay.runner import Reply, Runner

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


def posted_files(text: str) -> list[Path]:
    return [ROOT / name for name in re.findall(r"--data @(tests/\S+\.json)", text)]


class CallLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))


@pytest.fixture
def call_lines():
    handler = CallLines()
    logger = logging.getLogger(CALL_LOGGER)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_try_it_posts_files_that_exist():
    files = posted_files(section("Try it"))
    assert len(files) >= 2 and all(path.is_file() for path in files), files


def test_the_try_it_example_shows_cards_and_the_statin_none(client):
    text = section("Try it")
    ra223, statin = (ROOT / "tests/data/ra223-order-sign-request.json", ROOT / "tests/data/sandbox-order-sign-request.json")
    assert {ra223, statin} <= set(posted_files(text))
    answer = client.post("/cds-services/radioelement-order-sign", json=json.loads(ra223.read_text()))
    assert answer.status_code == 200
    cards = answer.get_json()["cards"]
    assert len(cards) >= 2
    shown = re.findall(r'"summary": "([^"]+)"', text)
    assert shown and set(shown) <= {card["summary"] for card in cards}
    decisions = answer.get_json()["extension"]["cds-service.decisions"]
    assert decisions[0]["recommendedCode"] == "79101" and '"recommendedCode": "79101"' in text
    assert any(card.get("suggestions") for card in cards)
    # the statin order: no card, and the README says so
    request = json.loads(statin.read_text())
    request.pop("fhirServer", None)  # nothing listens there in a test; the answer is the same
    answer = client.post("/cds-services/radioelement-order-sign", json=request)
    assert answer.status_code == 200 and answer.get_json()["cards"] == []
    assert '{"cards":[]}' in text and "no card" in text


class AppTransport:
    """Replays fixtures through the test app, so every call writes its real log line."""

    label = "test client"

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, service: str, method: str, body: bytes, content_type: str) -> Reply:
        response = self.client.open(f"/cds-services/{service}", method=method, data=body, content_type=content_type)
        return Reply(response.status_code, response.get_json(silent=True), response.get_data(as_text=True), 0.0)

    def close(self) -> None:
        pass


def test_the_readme_log_line_has_the_keys_and_vocabularies_of_real_calls(make_app, call_lines):
    (example,) = re.findall(r'^\{"ts":.*"event":"cds\.call".*\}$', section("Operations"), re.M)
    example = json.loads(example)
    app = make_app()
    runner = Runner(AppTransport(app.test_client()))
    try:
        for fixture in discover([ROOT / "fhir_fixtures"]).fixtures:
            if fixture.kind == "fixture" and fixture.raw_body is None:
                runner.run(fixture)
    finally:
        runner.close()
    real = [line for line in call_lines if line["status"] == 200]
    assert len(real) > 100
    # the same keys, in the same order, as every real line
    assert all(list(line) == list(example) for line in call_lines)
    vocab: dict[str, set[Any]] = {key: set() for key in
                                  ("card_types", "missing_documentation", "warnings", "recommended_codes",
                                   "fetched_keys", "unavailable_keys")}
    for line in real:
        for key in vocab:
            vocab[key].update(line[key])
    for key, seen in vocab.items():
        assert set(example[key]) <= seen, f"README log line: {key} {example[key]} not among the values calls write {sorted(seen)}"
    assert example["service"] in SERVICES_BY_ID and example["hook"] in {line["hook"] for line in real}
    assert example["event"] == "cds.call" and example["cards"] >= len(example["card_types"])
    # the README's tables name the same vocabularies
    decides = section("What it decides")
    for key in vocab["missing_documentation"] | vocab["warnings"]:
        assert f"`{key}`" in decides, f"{key} is written by calls but missing from the README tables"
