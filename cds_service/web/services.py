"""POST /cds-services/<id>: run a hook call and record it in the audit trail."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from cds_service.hooks.catalog import SERVICES_BY_ID, ServiceDefinition
from cds_service.hooks.pipeline import CallOutcome, HookHandler
from cds_service.ops.audit_columns import audit_columns
from cds_service.ops.calls import observe_call
from cds_service.replay.recorder import record_request
from cds_service.storage.records import Store
from cds_service.vendors import get_profile, shape_response
from cds_service.web.auth import Caller, authenticate
from cds_service.web.body import json_body
from cds_service.web.errors import ApiError

blueprint = Blueprint("services", __name__)
log = logging.getLogger(__name__)


def find_service(service_id: str) -> ServiceDefinition:
    service = SERVICES_BY_ID.get(service_id)
    if service is None:
        known = ", ".join(sorted(SERVICES_BY_ID))
        raise ApiError(404, f"unknown service {service_id!r}; this server offers: {known}")
    return service


def decision_summary(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The coded parts of each decision (no free text), for the audit trail and logs."""
    keys = ("order", "orderedCode", "recommendedCode", "modifiers", "missingDocumentation", "warnings")
    return [{key: decision[key] for key in keys if key in decision} for decision in decisions]


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    """Every call, answered or refused, gets its metrics and JSON log line; a call whose body
    was read also gets its audit row (a caller without a valid token never writes to the database)."""
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    caller: Caller | None = None
    service: ServiceDefinition | None = None
    body: Any = None
    outcome: CallOutcome | None = None
    status, error = 200, None
    try:
        caller = authenticate()  # first: an unauthenticated caller learns nothing, not even 404
        service = find_service(service_id)
        body = json_body()
        record_dir = current_app.config["CDS_SETTINGS"].record_dir
        if record_dir:  # opt-in traffic recording for replay (credentials stripped, never raises)
            record_request(record_dir, service.id, body)
        handler: HookHandler = current_app.extensions["cds_handler"]
        url_guard = current_app.extensions["cds_url_guard_for"](caller)
        outcome = handler.handle(service, body, url_guard=url_guard, request_base_url=request.url_root)
        # the calling EHR's vendor profile (issuer file "profile"); the audit row keeps what was sent
        outcome.body = shape_response(outcome.body, get_profile(caller.profile if caller else None),
                                      caller.link_hosts if caller else (), in_place=True)  # a fresh body
        return jsonify(outcome.body)
    except ApiError as exc:
        status, error = exc.status, exc.message[:500]
        raise
    except Exception:
        status, error = 500, "internal error"
        raise
    finally:
        duration_ms = (time.perf_counter() - started) * 1000
        if service is not None and body is not None:
            _audit(service, body, caller, status, error, started_at, duration_ms, outcome)
        # metrics and the one JSON log line per call (no PHI, no tokens): cds_service/ops
        # a refused call (401 before the service lookup) still counts under the service it named
        label = service.id if service else (service_id if service_id in SERVICES_BY_ID else "unknown")
        observe_call(label, body, caller.iss if caller else None, status,
                     duration_ms, outcome)


def _audit(service: ServiceDefinition, body: Any, caller: Caller | None, status: int, error: str | None,
           started_at: datetime, duration_ms: float, outcome: CallOutcome | None) -> None:
    hook_instance = body.get("hookInstance") if isinstance(body, dict) else None
    if not isinstance(hook_instance, str) or len(hook_instance) > 64:
        return  # nothing to key the row on; the log line still records the call
    row = {
        "hook_instance": hook_instance,
        "service_id": service.id,
        "hook": str(body.get("hook"))[:32],
        "status": status,
        "started_at": started_at,
        "duration_ms": duration_ms,
        "fetch_ms": outcome.fetch_ms if outcome else None,
        "engine_ms": outcome.engine_ms if outcome else None,
        "issuer": caller.iss if caller else None,
        "fetched_keys": list(outcome.fetched_keys) if outcome else None,
        "unavailable_keys": sorted(outcome.unavailable) if outcome else None,
        "decisions": decision_summary(outcome.decisions) if outcome else None,
        "error": error,
        **audit_columns(outcome, current_app.extensions["cds_knowledge"].version),  # for /dashboard
    }
    store: Store = current_app.extensions["cds_store"]
    try:
        store.add_audit(row, outcome.body.get("cards", []) if outcome else ())
    except Exception:  # the answer matters more to the EHR than our audit row
        log.exception("could not write the audit row for hook instance %s", hook_instance)
