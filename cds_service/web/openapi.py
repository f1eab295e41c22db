"""GET /openapi.json: an OpenAPI 3.1 description of every endpoint of the running app.

The request, response and feedback bodies are the JSON Schemas the service validates with
(``cds_service/schemas/``), so the description cannot drift from what is enforced: their
``$defs`` become ``components/schemas`` entries and their references are rewritten to point there.
Paths come from the app's own URL map; a route this module does not describe (an HTML page added
by another blueprint) is still listed, as a page, so "every endpoint" stays true.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

from cds_service import __version__
from cds_service.hooks.catalog import SERVICES_BY_ID
from cds_service.schemas import SCHEMA_FILES

blueprint = Blueprint("openapi", __name__)

_COMPONENT_NAMES = {"request": "HookRequest", "response": "HookResponse", "feedback": "Feedback"}


def _schema_file(name: str) -> dict[str, Any]:
    text = resources.files("cds_service.schemas").joinpath(SCHEMA_FILES[name]).read_text(encoding="utf-8")
    return json.loads(text)


def _rewrite_refs(value: Any, prefix: str) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str) and item.startswith("#/$defs/"):
                out[key] = f"#/components/schemas/{prefix}_{item[len('#/$defs/'):]}"
            else:
                out[key] = _rewrite_refs(item, prefix)
        return out
    if isinstance(value, list):
        return [_rewrite_refs(item, prefix) for item in value]
    return value


def component_schemas() -> dict[str, Any]:
    """The validation schemas as OpenAPI components (2020-12 dialect, as OpenAPI 3.1 uses)."""
    components: dict[str, Any] = {}
    for name, component in _COMPONENT_NAMES.items():
        schema = copy.deepcopy(_schema_file(name))
        definitions = schema.pop("$defs", {})
        schema.pop("$schema", None)
        schema.pop("$id", None)
        components[component] = _rewrite_refs(schema, component)
        for def_name, definition in definitions.items():
            components[f"{component}_{def_name}"] = _rewrite_refs(definition, component)
    components["Error"] = {
        "type": "object",
        "description": "A FHIR OperationOutcome that also carries a plain `error` message; never a stack trace.",
        "required": ["resourceType", "error", "status", "issue"],
        "properties": {
            "resourceType": {"const": "OperationOutcome"},
            "error": {"type": "string"},
            "status": {"type": "integer"},
            "issue": {"type": "array", "items": {"type": "object"}},
        },
    }
    components["Discovery"] = {
        "type": "object",
        "required": ["services"],
        "properties": {"services": {"type": "array", "items": {
            "type": "object",
            "required": ["hook", "id", "description"],
            "properties": {"hook": {"type": "string"}, "id": {"type": "string"}, "title": {"type": "string"},
                           "description": {"type": "string"}, "prefetch": {"type": "object",
                           "additionalProperties": {"type": "string"}}, "usageRequirements": {"type": "string"},
                           "extension": {"type": "object"}},
        }}},
    }
    components["Status"] = {"type": "object", "required": ["status"], "properties": {
        "status": {"type": "string"}, "checks": {"type": "object"}}}
    return components


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*statuses: int) -> dict[str, Any]:
    meaning = {400: "malformed JSON or a CDS Hooks rule broken (the message names the field)",
               401: "missing or bad JWT", 404: "unknown service", 405: "wrong method",
               412: "no patient data could be obtained", 413: "body over CDS_MAX_BODY_BYTES",
               415: "not JSON", 422: "draft orders that are not valid FHIR R4"}
    return {str(status): _json("Error", meaning[status]) for status in statuses}


def _service_id_parameter() -> dict[str, Any]:
    return {"name": "service_id", "in": "path", "required": True,
            "schema": {"type": "string", "enum": sorted(SERVICES_BY_ID)}}


def _described_operations() -> dict[str, dict[str, Any]]:
    """(OpenAPI path) -> operations for the JSON API and the operations endpoints."""
    jwt: list[dict[str, list[str]]] = [{"cdsHooksJwt": []}]
    return {
        "/cds-services": {"get": {
            "summary": "CDS Hooks discovery", "operationId": "discovery",
            "security": [{}, {"cdsHooksJwt": []}],
            "responses": {"200": _json("Discovery", "the services and their prefetch templates"), **_errors(401)},
        }},
        "/cds-services/{service_id}": {"post": {
            "summary": "a hook call (order-sign or order-select)", "operationId": "callService",
            "security": jwt, "parameters": [_service_id_parameter()],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/HookRequest"}}}},
            "responses": {"200": _json("HookResponse", "cards, systemActions and the coding decisions"),
                          **_errors(400, 401, 404, 412, 413, 415, 422)},
        }},
        "/cds-services/{service_id}/feedback": {"post": {
            "summary": "CDS Hooks 2.0 feedback on cards", "operationId": "postFeedback",
            "security": jwt, "parameters": [_service_id_parameter()],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Feedback"}}}},
            "responses": {"200": {"description": "stored", "content": {"application/json": {"schema": {
                "type": "object", "required": ["stored"], "properties": {"stored": {"type": "integer"}}}}}},
                **_errors(400, 401, 404, 413, 415)},
        }},
        "/healthz": {"get": {"summary": "liveness", "operationId": "healthz", "security": [{}],
                             "responses": {"200": _json("Status", "the process serves")}}},
        "/readyz": {"get": {"summary": "readiness (database, knowledge and its freshness)", "operationId": "readyz",
                            "security": [{}],
                            "responses": {"200": _json("Status", "ready"), "503": _json("Status", "not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "security": [{}],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "this description", "operationId": "openapi", "security": [{}],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": {"application/json": {"schema": {
                                                            "type": "object"}}}}}}},
    }


def openapi_path(rule: str) -> str:
    """Flask's ``/cds-services/<service_id>`` → OpenAPI's ``/cds-services/{service_id}``."""
    out: list[str] = []
    name: list[str] = []
    depth = 0
    for char in rule:
        if char == "<":
            depth, name = 1, []
        elif char == ">" and depth:
            depth = 0
            out.append("{" + "".join(name).split(":")[-1] + "}")
        elif depth:
            name.append(char)
        else:
            out.append(char)
    return "".join(out)


def build_document(app: Flask) -> dict[str, Any]:
    described = _described_operations()
    paths: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue  # files of the pages (style sheets), not endpoints
        path = openapi_path(rule.rule)
        if path in described:
            paths[path] = described[path]
            continue
        methods = sorted(m for m in (rule.methods or ()) if m not in ("HEAD", "OPTIONS"))
        paths.setdefault(path, {})
        for method in methods:  # a page (HTML) added by another blueprint
            paths[path][method.lower()] = {
                "summary": f"page ({rule.endpoint})", "security": [{}],
                "responses": {"200": {"description": "an HTML page",
                                      "content": {"text/html": {"schema": {"type": "string"}}}}},
            }
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "cds-service: CDS Hooks coding advice for radioelement therapy", "version": __version__,
                 "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}},
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {"cdsHooksJwt": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "CDS Hooks 2.0 client JWT (ES384/RS384) from a trusted issuer; aud is the URL called; "
                               "each jti is accepted once"}},
        },
    }


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """Built once per app from its URL map (after every blueprint is registered)."""
    document = current_app.extensions.get("cds_openapi")
    if document is None:
        document = current_app.extensions["cds_openapi"] = build_document(current_app)
    response = jsonify(document)
    response.headers["Cache-Control"] = "no-store"
    return response
