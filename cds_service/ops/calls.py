"""What the web layer reports after each service call and each feedback post."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from cds_service.ops.logs import call_entry, log_call
from cds_service.ops.metrics import Metrics

log = logging.getLogger(__name__)


def observe_call(service_id: str, body: Any, issuer: str | None, status: int, duration_ms: float, outcome: Any) -> None:
    """Count the call in the metrics and write its JSON log line. Never raises."""
    try:
        body = body if isinstance(body, dict) else {}
        cards = outcome.body.get("cards", []) if outcome is not None else []
        decisions = outcome.decisions if outcome is not None else []
        fetched = list(outcome.fetched_keys) if outcome is not None else []
        unavailable = list(outcome.unavailable) if outcome is not None else []
        fetch_ms = outcome.fetch_ms if outcome is not None else None
        engine_ms = outcome.engine_ms if outcome is not None else None
        metrics: Metrics | None = current_app.extensions.get("cds_metrics")
        if metrics is not None:
            metrics.observe_call(service_id, status, duration_ms / 1000, fetch_ms, engine_ms, cards, decisions,
                                 fetched, unavailable)
        log_call(call_entry(
            service=service_id, hook=body.get("hook"), hook_instance=body.get("hookInstance"), issuer=issuer,
            status=status, duration_ms=duration_ms, fetch_ms=fetch_ms, engine_ms=engine_ms, cards=cards,
            decisions=decisions, fetched_keys=fetched, unavailable_keys=unavailable,
        ))
    except Exception:  # observing must never break an answer
        log.exception("could not record metrics or the call log line")


def observe_feedback(service_id: str, items: Any) -> None:
    try:
        metrics: Metrics | None = current_app.extensions.get("cds_metrics")
        if metrics is not None and isinstance(items, list):
            metrics.observe_feedback(service_id, [item for item in items if isinstance(item, dict)])
    except Exception:
        log.exception("could not count feedback in the metrics")
