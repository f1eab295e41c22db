"""The integrator's first hour, on a real `cds-service serve` (gunicorn) with authentication on:
development issuer -> token -> HTTP call (200, then 401 for the same token), replay of every
fixture with a fresh token per request, the README's "Try it" example showing cards, JSON logs on
every line, one-line settings errors, the 401 service label and the jti of every auth failure."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from cds_service.ops import metrics as ops_metrics
from cds_service.security.dev_issuer import DEV_ISSUER_PREFIX, load_dev_issuer
from tests.ops.live import free_port, get, metric_samples, running

ROOT = Path(__file__).resolve().parents[2]
SIGN = "/cds-services/radioelement-order-sign"
CLI = [sys.executable, "-m", "cds_service.cli"]


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env or dict(os.environ),
                          cwd=cwd or ROOT, timeout=timeout)


def post(url: str, body: bytes, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", "Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One served instance, authentication on, trusting a development issuer, JSON logs and the
    access log on (so every gunicorn line can be checked)."""
    tmp = tmp_path_factory.mktemp("served")
    made = cli("dev-issuer", str(tmp / "issuer"))
    assert made.returncode == 0, made.stderr
    port = free_port()
    env = {**os.environ, "CDS_AUTH": "on", "CDS_PROFILE": "dev", "CDS_SQLITE_PATH": str(tmp / "cds.sqlite3"),
           "CDS_TRUSTED_ISSUERS": str(tmp / "issuer" / "trusted-issuers.json"), "CDS_LOG_FORMAT": "json",
           "CDS_ACCESS_LOG": "on", "CDS_LOG_LEVEL": "INFO", "TMPDIR": str(tmp)}
    for name in ("DATABASE_URL", "CDS_PUBLIC_BASE_URL", ops_metrics.MULTIPROC_ENV):
        env.pop(name, None)
    base = f"http://127.0.0.1:{port}"
    log = tmp / "server.log"
    command = [*CLI, "serve", "--port", str(port), "--workers", "2"]
    with running(command, env, base, log):
        yield base, tmp / "issuer", log


def test_dev_issuer_files_are_private_and_never_overwritten(tmp_path):
    first = cli("dev-issuer", str(tmp_path / "dev"))
    assert first.returncode == 0, first.stderr
    for name in ("trusted-issuers.json", "dev-issuer-key.pem"):
        assert stat.S_IMODE((tmp_path / "dev" / name).stat().st_mode) == 0o600
    entries = json.loads((tmp_path / "dev" / "trusted-issuers.json").read_text())
    assert entries[0]["iss"].startswith(DEV_ISSUER_PREFIX) and "development" in entries[0]["iss"]
    assert "d" not in entries[0]["jwks"]["keys"][0]  # the trust file holds the public key only
    before = (tmp_path / "dev" / "dev-issuer-key.pem").read_bytes()
    again = cli("dev-issuer", str(tmp_path / "dev"))
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert (tmp_path / "dev" / "dev-issuer-key.pem").read_bytes() == before


def test_token_then_http_call_gets_200_and_the_same_token_again_401(served):
    base, issuer_dir, log = served
    minted = cli("token", "--issuer-dir", str(issuer_dir), "--aud", base + SIGN, "--ttl", "120")
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    body = (ROOT / "tests" / "data" / "ra223-order-sign-request.json").read_bytes()
    status, answer = post(base + SIGN, body, token)
    assert status == 200, answer
    assert json.loads(answer)["cards"]
    status, answer = post(base + SIGN, body, token)
    assert status == 401
    assert json.loads(answer)["error"] == "authentication required"
    # the refused call is counted under the service it named, not "unknown"
    metrics = metric_samples(get(base + "/metrics")[1].decode())
    assert metrics[("cds_hook_calls_total", (("service", "radioelement-order-sign"), ("status", "401")))] >= 1
    assert ("cds_hook_calls_total", (("service", "unknown"), ("status", "401"))) not in metrics


def test_every_auth_failure_line_names_the_jti(served):
    base, issuer_dir, log = served
    issuer = load_dev_issuer(issuer_dir)
    wrong_aud = issuer.token(base + "/cds-services/radioelement-order-select")  # aud of another URL
    jti = json.loads(base64.urlsafe_b64decode(wrong_aud.split(".")[1] + "==="))["jti"]
    status, _ = post(base + SIGN, b"{}", wrong_aud)
    assert status == 401
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    failures = [line for line in lines if "authentication failed" in line.get("message", "")]
    aud_lines = [line for line in failures if "aud does not match" in line["message"]]
    assert aud_lines and f"jti={jti}" in aud_lines[-1]["message"]
    assert all("jti=" in line["message"] for line in failures)


def test_replay_with_issuer_dir_passes_every_fixture_against_serve_with_auth_on(served, tmp_path):
    base, issuer_dir, log = served
    report = tmp_path / "replay.json"
    result = cli("replay", "fhir_fixtures/", "--url", base, "--issuer-dir", str(issuer_dir), "--no-progress",
                 "--json", str(report))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    summary = json.loads(report.read_text())
    outcomes = [item["outcome"] for item in summary["fixtures"]]
    assert len(outcomes) > 100 and set(outcomes) <= {"passed", "known-issue", "unchecked"}
    assert outcomes.count("passed") > 100


def test_every_log_line_of_a_served_instance_is_json(served):
    base, issuer_dir, log = served
    get(base + "/healthz")
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the server wrote nothing"
    not_json = []
    for line in lines:
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            not_json.append(line)
    assert not_json == []
    entries = [json.loads(line) for line in lines]
    loggers = {entry.get("logger") for entry in entries}
    assert {"gunicorn.error", "gunicorn.access", "cds_service.security"} <= loggers
    assert json.loads(lines[0])["level"] in ("WARNING", "INFO")  # the very first line is JSON too
    access = [e for e in entries if e.get("logger") == "gunicorn.access"]
    assert all(set(e) >= {"method", "path", "status", "duration_ms"} and "?" not in e["path"] for e in access)


def test_knowledge_freshness_on_a_served_instance(served):
    base, issuer_dir, log = served
    status, body = get(base + "/readyz")
    assert status == 200
    knowledge = json.loads(body)["checks"]["knowledge"]
    age = max(0, date.today().year - knowledge["code_set_year"])
    assert knowledge["ok"] is True and knowledge["age_years"] == age and knowledge["stale"] is (age > 0)
    metrics = metric_samples(get(base + "/metrics")[1].decode())
    assert metrics[("cds_knowledge_age_years", ())] == age
    if age:
        messages = [json.loads(line).get("message", "") for line in log.read_text().splitlines() if line.startswith("{")]
        assert any("knowledge freshness" in m and str(knowledge["code_set_year"]) in m for m in messages)


def test_openapi_over_http_lists_the_served_endpoints(served):
    base, issuer_dir, log = served
    status, body = get(base + "/openapi.json")
    assert status == 200
    document = json.loads(body)
    assert document["openapi"].startswith("3.1") and "/cds-services/{service_id}" in document["paths"]


@pytest.mark.parametrize("name, value, expected", [
    ("CDS_WORKERS", "abc", "a whole number"),
    ("CDS_PORT", "80x", "a whole number"),
    ("CDS_THREADS", "0", "at least 1"),
    ("CDS_FHIR_READ_TIMEOUT", "soon", "a number of seconds"),
    ("CDS_LOG_FORMAT", "yaml", "one of text, json"),
])
def test_a_bad_setting_stops_serve_with_one_line_and_exit_2(name, value, expected, tmp_path):
    result = cli("serve", env={**os.environ, name: value, "CDS_SQLITE_PATH": str(tmp_path / "x.sqlite3")},
                 timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0] and repr(value) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_version_and_help_read_no_settings():
    env = {**os.environ, "CDS_WORKERS": "abc", "CDS_PORT": "x", "CDS_THREADS": "y", "CDS_PROFILE": "nope"}
    version = cli("--version", env=env)
    assert version.returncode == 0 and re.match(r"cds-service \d+\.\d+", version.stdout)
    for args in (["--help"], ["serve", "--help"], ["replay", "--help"], ["token", "--help"]):
        result = cli(*args, env=env)
        assert result.returncode == 0 and "usage:" in result.stdout and result.stderr == "", args


def test_with_json_logs_the_settings_error_line_is_json_too(tmp_path):
    result = cli("serve", env={**os.environ, "CDS_LOG_FORMAT": "json", "CDS_WORKERS": "abc",
                               "CDS_SQLITE_PATH": str(tmp_path / "x.sqlite3")}, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and "CDS_WORKERS='abc'" in entry["message"]
