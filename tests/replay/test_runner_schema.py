"""Replay refuses a 200 answer that an EHR would reject: it must pass the response schema."""

from __future__ import annotations

from pathlib import Path

from cds_service.replay.fixtures import Fixture
from cds_service.replay.runner import Reply, Runner


class CannedTransport:
    def __init__(self, body):
        self.body = body

    def send(self, service, method, body, content_type):
        return Reply(200, self.body, "", 1.0)

    def close(self):
        return None


def fixture() -> Fixture:
    return Fixture(path=Path("inline.json"), name="inline.json", kind="fixture", description="inline", request={
        "hook": "order-sign", "hookInstance": "d7f4b7a0-1b1c-4f5e-9a8b-1234567890ab",
        "context": {"userId": "Practitioner/1", "patientId": "p", "draftOrders": {"resourceType": "Bundle"}}},
        expect={"status": 200, "decisions": []})


def test_schema_breaking_answer_is_an_error_even_with_matching_decisions():
    broken = {"cards": [{"summary": "x" * 200, "indicator": "info", "source": {"label": "s"}}]}
    result = Runner(CannedTransport(broken)).run(fixture())
    assert result.outcome == "error"
    assert "response schema" in result.error


def test_valid_answer_passes():
    result = Runner(CannedTransport({"cards": []})).run(fixture())
    assert result.outcome == "passed"
