"""Every recorded fixture answers exactly as it did before the decision rules became data.

The golden file holds, for each fixture and patient Bundle under ``fhir_fixtures/``, the HTTP
status, the ``cds-service.decisions`` and every card (summary, indicator, detail, suggestions,
extensions) with the fresh uuids and the calendar dates taken out. It was written from the
Python rules before they moved into the knowledge files; moving a rule must not change a single
word a clinician or an analytics job sees. Regenerate only for an intended change:
``CDS_WRITE_GOLDEN=1 .venv/bin/python -m pytest tests/engine/test_golden.py``.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from cds_service.replay.fixtures import discover
from cds_service.replay.runner import InProcessTransport, Runner

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "fixtures.json"
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_VOLATILE = {"uuid", "hookInstance"}
_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b")


def _normalise(value: Any, today: date) -> Any:
    """Drop fresh ids; write dates relative to today so the file does not go stale."""
    if isinstance(value, dict):
        return {key: _normalise(item, today) for key, item in value.items() if key not in _VOLATILE}
    if isinstance(value, list):
        return [_normalise(item, today) for item in value]
    if isinstance(value, str):
        def relative(match: re.Match[str]) -> str:
            try:
                offset = (date(int(match[1]), int(match[2]), int(match[3])) - today).days
            except ValueError:
                return match[0]
            return f"today{offset:+d}" if offset else "today"
        if _UUID.fullmatch(value):
            return "<uuid>"  # a fresh id (the CRD coverage assertion id), not a decision
        return _ISO_DATE.sub(relative, value)
    return value


def _answers() -> dict[str, Any]:
    today = datetime.now(timezone.utc).date()  # the day the service itself takes as today
    discovery = discover([ROOT / "fhir_fixtures"], today=today)
    assert not discovery.problems
    runner = Runner(InProcessTransport())
    try:
        answers = {}
        for fixture in discovery.fixtures:
            result = runner.run(fixture)
            body = result.body if isinstance(result.body, dict) else {}
            answers[fixture.name] = _normalise({
                "status": result.http_status,
                "decisions": result.decisions,
                "cards": body.get("cards", []),
                "systemActions": body.get("systemActions", []),
            }, today)
        return answers
    finally:
        runner.close()


def test_every_fixture_answers_as_recorded() -> None:
    answers = _answers()
    if os.environ.get("CDS_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(answers, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    recorded = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert sorted(answers) == sorted(recorded), "fixtures were added or removed"
    changed = [name for name in recorded if answers[name] != recorded[name]]
    assert not changed, f"{len(changed)} fixtures answer differently, first: {changed[0]}: " + json.dumps(
        answers[changed[0]], indent=1)[:3000]
