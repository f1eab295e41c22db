"""GET /openapi.json against the live app: a valid OpenAPI 3.1 document, every route of the app
described, and the bodies the app really takes and gives valid against the described schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from cds_service.web.openapi import openapi_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return response.get_json()


def schema_validator(document, name: str) -> Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` resolving refs inside the document."""
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openapi", resource)
    return Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)


def test_is_a_valid_openapi_3_1_document(document):
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema


def test_every_route_of_the_live_app_is_described(app, document):
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        methods = {m.lower() for m in rule.methods if m not in ("HEAD", "OPTIONS")}
        routes.setdefault(openapi_path(rule.rule), set()).update(methods)
    described = {path: set(item) for path, item in document["paths"].items()}
    assert routes == described
    assert {"/cds-services", "/cds-services/{service_id}", "/cds-services/{service_id}/feedback", "/healthz",
            "/readyz", "/metrics", "/openapi.json"} <= set(described)


def test_no_dangling_references(document):
    text = json.dumps(document)
    assert "#/$defs/" not in text
    for ref in set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)):
        assert ref in document["components"]["schemas"], ref


def test_the_apps_real_request_and_answer_fit_the_described_schemas(client, document):
    request = json.loads((ROOT / "tests" / "data" / "ra223-order-sign-request.json").read_text())
    assert list(schema_validator(document, "HookRequest").iter_errors(request)) == []
    answer = client.post("/cds-services/radioelement-order-sign", json=request)
    assert answer.status_code == 200 and answer.get_json()["cards"]
    assert list(schema_validator(document, "HookResponse").iter_errors(answer.get_json())) == []
    # and the described schema refuses what the service refuses
    assert list(schema_validator(document, "HookRequest").iter_errors({"hook": "order-sign"}))
    discovery = client.get("/cds-services").get_json()
    assert list(schema_validator(document, "Discovery").iter_errors(discovery)) == []
    refused = client.post("/cds-services/nope", json=request)
    assert list(schema_validator(document, "Error").iter_errors(refused.get_json())) == []


def test_service_ids_are_the_catalogue(document):
    operation = document["paths"]["/cds-services/{service_id}"]["post"]
    assert operation["parameters"][0]["schema"]["enum"] == ["radioelement-order-select", "radioelement-order-sign"]
    assert operation["security"] == [{"cdsHooksJwt": []}]
