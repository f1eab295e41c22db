"""`replay --print-request FIXTURE`: a plain request, dates resolved, that the service takes as
it stands (where posting the fixture's own request gets a 422 for its date tokens)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from cds_service.cli import main

ROOT = Path(__file__).resolve().parents[2]
WITH_DATES = ROOT / "fhir_fixtures" / "activity" / "ra223-kbq-per-kg-without-weight.json"


def test_print_request_resolves_date_tokens_and_the_service_takes_it(capsys, client):
    raw = json.loads(WITH_DATES.read_text())["request"]
    assert "${today" in json.dumps(raw)
    assert client.post("/cds-services/radioelement-order-sign", json=raw).status_code == 422
    capsys.readouterr()  # the call's own log line goes to stdout
    assert main(["replay", "--print-request", str(WITH_DATES), "--today", "2026-06-01"]) == 0
    out, err = capsys.readouterr()
    request = json.loads(out)
    text = json.dumps(request)
    assert "${today" not in text and "2026-0" in text
    assert request["hookInstance"] != raw["hookInstance"]
    assert "POST to /cds-services/radioelement-order-sign" in err
    answer = client.post("/cds-services/radioelement-order-sign", json=json.loads(
        main_output(WITH_DATES, capsys)))
    assert answer.status_code == 200 and answer.get_json()["cards"]


def main_output(path: Path, capsys) -> str:
    assert main(["replay", "--print-request", str(path), "--today", date.today().isoformat()]) == 0
    return capsys.readouterr().out


def test_print_request_of_a_fallback_fixture_says_the_fhir_server_is_left_out(capsys):
    fixture = ROOT / "fhir_fixtures" / "fallback" / "ra223-no-prefetch.json"
    assert main(["replay", "--print-request", str(fixture)]) == 0
    out, err = capsys.readouterr()
    assert "fhirServer" not in json.loads(out) and "stand-in FHIR server" in err


def test_print_request_needs_one_fixture(capsys, tmp_path):
    assert main(["replay", "--print-request", str(ROOT / "fhir_fixtures" / "activity")]) == 2
    assert "needs one fixture file" in capsys.readouterr().err


def test_issuer_dir_needs_url_and_an_issuer(capsys, tmp_path):
    assert main(["replay", str(WITH_DATES), "--issuer-dir", str(tmp_path)]) == 2
    assert "--issuer-dir signs tokens for --url" in capsys.readouterr().err
    assert main(["replay", str(WITH_DATES), "--url", "http://127.0.0.1:9", "--issuer-dir", str(tmp_path / "x"),
                 "--no-progress"]) == 2
    assert "dev-issuer" in capsys.readouterr().err
