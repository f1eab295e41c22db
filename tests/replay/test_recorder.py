"""--record / CDS_RECORD_DIR: live requests saved as token-free fixtures that replay can run."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cds_service.cli import build_parser, main
from cds_service.config import Settings
from cds_service.hooks.catalog import ORDER_SIGN_PREFETCH
from cds_service.replay.recorder import record_request, strip_secrets
from tests.conftest import full_prefetch, therapy_request

TOKEN = "eyJhbGciOiJSUzI1NiJ9.secret-access-token-4711"


def hook_call_with_credentials() -> dict:
    body = therapy_request(prefetch=full_prefetch(list(ORDER_SIGN_PREFETCH)))
    body["fhirServer"] = "https://ehr.example.org/fhir"
    body["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                 "scope": "patient/*.read", "subject": "cds-service"}
    body["prefetch"]["patient"]["extension"] = [{"url": "x", "valueString": "kept"}, {"access_token": TOKEN}]
    return body


def test_strip_secrets_removes_credentials_at_any_depth():
    stripped = strip_secrets({"a": {"refresh_token": "r", "b": [{"id_token": "i", "keep": 1}]}, "fhirAuthorization": {}})
    assert stripped == {"a": {"b": [{"keep": 1}]}}


def test_recording_app_writes_a_token_free_fixture_per_call(make_app, tmp_path):
    record_dir = tmp_path / "recorded"
    client = make_app(record_dir=str(record_dir)).test_client()
    body = hook_call_with_credentials()
    response = client.post("/cds-services/radioelement-order-sign", json=body)
    assert response.status_code == 200

    [path] = list((record_dir / "radioelement-order-sign").glob("*.json"))
    assert body["hookInstance"] in path.name
    text = path.read_text()
    assert TOKEN not in text and "fhirAuthorization" not in text and "access_token" not in text
    document = json.loads(text)
    assert "expect" not in document
    assert document["service"] == "radioelement-order-sign"
    assert document["recorded_fhir_server"] == "https://ehr.example.org/fhir"
    assert "fhirServer" not in document["request"]
    assert document["request"]["context"] == body["context"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_recording_unless_asked(make_app, tmp_path):
    client = make_app().test_client()
    assert client.post("/cds-services/radioelement-order-sign", json=hook_call_with_credentials()).status_code == 200
    assert list(tmp_path.rglob("*.json")) == []


def test_recorder_never_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert record_request(blocker, "radioelement-order-sign", {"hook": "order-sign"}) is None


def test_serve_record_flag_and_environment_reach_the_settings(monkeypatch):
    args = build_parser().parse_args(["serve", "--record", "/tmp/recorded"])
    assert args.record == "/tmp/recorded"
    assert Settings.from_env({"CDS_RECORD_DIR": "/tmp/rec"}).record_dir == "/tmp/rec"


def test_recorded_fixture_replays_then_gets_its_expectation_written(make_app, tmp_path, capsys):
    record_dir = tmp_path / "recorded"
    make_app(record_dir=str(record_dir)).test_client().post(
        "/cds-services/radioelement-order-sign", json=hook_call_with_credentials())
    [path] = list(record_dir.rglob("*.json"))

    assert main(["replay", str(record_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "RAN " in out and "unchecked" in out
    assert main(["replay", str(record_dir), "--no-progress", "--strict"]) == 1
    capsys.readouterr()

    assert main(["replay", str(record_dir), "--no-progress", "--write-expected"]) == 0
    document = json.loads(path.read_text())
    assert document["expect"]["status"] == 200 and isinstance(document["expect"]["decisions"], list)
    capsys.readouterr()
    assert main(["replay", str(record_dir), "--no-progress", "--strict"]) == 0
    assert "passed" in capsys.readouterr().out
