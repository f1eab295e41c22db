"""Shared test fixtures: a fresh app on a temporary SQLite file, a client whose every service
response is checked against the CDS Hooks response schema, and request builders."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask.testing import FlaskClient

from cds_service.app import create_app
from cds_service.config import Settings
from cds_service.schemas import first_error
from cds_service.testing.fhir_standin import FhirStandIn

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SANDBOX_REQUEST = Path(__file__).resolve().parent / "data" / "sandbox-order-sign-request.json"


class CheckedClient(FlaskClient):
    """A test client that fails the test when a 200 service answer breaks the response schema."""

    def open(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        response = super().open(*args, **kwargs)
        path = args[0] if args and isinstance(args[0], str) else kwargs.get("path", "")
        if (
            response.status_code == 200
            and kwargs.get("method", "GET") == "POST"
            and path.startswith("/cds-services/")
            and not path.endswith("/feedback")
        ):
            problem = first_error("response", response.get_json())
            assert problem is None, f"response breaks the CDS Hooks response schema: {problem}"
        return response


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'cds.sqlite3'}", auth_enabled=False)


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        app = create_app(settings.with_overrides(**overrides) if overrides else settings)
        app.test_client_class = CheckedClient
        return app

    return build


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app()


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sandbox_request() -> dict[str, Any]:
    return json.loads(SANDBOX_REQUEST.read_text())


@pytest.fixture
def fhir_server() -> Iterator[FhirStandIn]:
    with FhirStandIn() as server:
        yield server


def therapy_request(hook: str = "order-sign", prefetch: dict[str, Any] | None = None, **context: Any) -> dict[str, Any]:
    """A realistic order-sign request: Ra-223 for bone metastases of prostate cancer."""
    order = {
        "resourceType": "ServiceRequest",
        "id": "sr-ra223",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/pat-1"},
        "authoredOn": "2026-11-20",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77750"}],
                 "text": "Radium-223 dichloride infusion"},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C79.51"}]}],
    }
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/dr-1",
            "patientId": "pat-1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]},
            **context,
        },
    }
    if hook == "order-select":
        body["context"].setdefault("selections", ["ServiceRequest/sr-ra223"])
    if prefetch is not None:
        body["prefetch"] = prefetch
    return copy.deepcopy(body)


def empty_bundle() -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": 0}


def full_prefetch(service_prefetch_keys: list[str]) -> dict[str, Any]:
    """Every prefetch key answered (patient resource, empty searches), so nothing is fetched."""
    prefetch: dict[str, Any] = {}
    for key in service_prefetch_keys:
        if key == "patient":
            prefetch[key] = {"resourceType": "Patient", "id": "pat-1", "gender": "male", "birthDate": "1950-01-01"}
        elif key != "encounter":
            prefetch[key] = empty_bundle()
    return prefetch
