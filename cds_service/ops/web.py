"""GET /healthz, /readyz and /metrics, plus the per-request counter.

These endpoints are deliberately not authenticated (load balancers, container health checks and
Prometheus call them without credentials) and reveal nothing about patients or configuration
secrets. Do not publish them to the internet: the compose file's proxy refuses /metrics, and
Prometheus scrapes each replica on the internal network.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import text

from cds_service.ops.metrics import Metrics

blueprint = Blueprint("ops", __name__)
log = logging.getLogger(__name__)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/healthz")
def healthz() -> Response:
    """The process is up and answering (liveness). Touches nothing else."""
    return _no_store(jsonify({"status": "ok"}))


def knowledge_freshness(code_set_year: int, today: date | None = None) -> dict[str, Any]:
    """How old the knowledge's code set is. Stale knowledge still answers (codes rarely vanish
    overnight and refusing every call would be worse), so it is a warning, never "not ready"."""
    current = (today or date.today()).year
    age = max(0, current - int(code_set_year))
    freshness: dict[str, Any] = {"age_years": age, "stale": age > 0}
    if age > 0:
        freshness["warning"] = (f"the coding knowledge is for code set {code_set_year}, {age} year(s) behind "
                                f"{current}: review it against the {current} CPT/HCPCS update")
    return freshness


def readiness() -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    database = current_app.extensions.get("cds_db")
    try:
        if database is None:
            raise RuntimeError("no database configured")
        with database.connect() as connection:
            connection.execute(text("SELECT 1")).scalar_one()
        checks["database"] = {"ok": True, "backend": database.dialect.name}
    except Exception as error:  # any failure means not ready; say which kind, not the details
        log.warning("readiness: database check failed: %s", type(error).__name__)
        checks["database"] = {"ok": False, "error": type(error).__name__}
    knowledge = current_app.extensions.get("cds_knowledge")
    if knowledge is None:
        checks["knowledge"] = {"ok": False, "error": "not loaded"}
    else:
        checks["knowledge"] = {"ok": True, "version": knowledge.version, "code_set_year": knowledge.code_set_year,
                               "effective_date": knowledge.effective_date.isoformat(),
                               **knowledge_freshness(knowledge.code_set_year)}
    return all(check["ok"] for check in checks.values()), checks


@blueprint.get("/readyz")
def readyz() -> Response:
    """Ready to serve calls: the database answers ``SELECT 1`` and the knowledge is loaded."""
    ready, checks = readiness()
    response = jsonify({"status": "ready" if ready else "unavailable", "checks": checks})
    response.status_code = 200 if ready else 503
    return _no_store(response)


@blueprint.get("/metrics")
def metrics() -> Response:
    payload, content_type = current_app.extensions["cds_metrics"].exposition()
    return _no_store(Response(payload, status=200, content_type=content_type))


def _count_request(response: Response) -> Response:
    metrics_: Metrics | None = current_app.extensions.get("cds_metrics")
    if metrics_ is not None:
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics_.observe_request(endpoint, request.method if request.method.isalpha() else "other",
                                 response.status_code)
    return response


def init_app(app: Flask) -> None:
    """Metrics, the ops blueprint and the request counter for one app (logging is set up by the
    app factory)."""
    app.extensions["cds_metrics"] = metrics_ = Metrics()
    knowledge = app.extensions.get("cds_knowledge")
    if knowledge is not None:
        freshness = knowledge_freshness(knowledge.code_set_year)
        metrics_.set_knowledge_age(freshness["age_years"])
        if freshness["stale"]:
            log.warning("knowledge freshness: %s", freshness["warning"])
    app.register_blueprint(blueprint)
    app.after_request(_count_request)
