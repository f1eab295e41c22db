"""Helpers for the smoke tests of the built image: podman with the settings docker/build-local.sh
writes, CDS Hooks JWTs minted here with PyJWT, and a realistic order-sign request."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from cds_service.testing.required import must_run

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "docker" / "build-local.sh"
# One tag per checkout, so test runs of two worktrees on one machine never swap images under
# each other; docker/build-local.sh run by hand passes its own tag in CDS_IMAGE.
SERVICE_IMAGE = os.environ.get("CDS_IMAGE") or f"localhost/cds-service:test-{hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]}"
POSTGRES_IMAGE = "localhost/cds-standin-postgres:15"
NGINX_IMAGE = "localhost/cds-standin-nginx:1.22"
ISSUER = "https://ehr.example.org"
KID = "smoke-key-1"
SIGN_SERVICE = "radioelement-order-sign"
TOOLS = ("podman", "podman-compose", "debootstrap")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def required(env: Mapping[str, str] | None = None) -> bool:
    """The container tests must run (fail, never skip) in CI, as .ci/run sets up the tools."""
    return must_run("CDS_TEST_REQUIRE_CONTAINERS", env=env)


def podman_env() -> dict[str, str]:
    conf = subprocess.run([str(BUILD_SCRIPT), "--print-conf"], capture_output=True, text=True, check=True)
    return {**os.environ, "CONTAINERS_CONF": conf.stdout.strip()}


def podman(*args: str, check: bool = True, timeout: float = 120, env: Mapping[str, str] | None = None,
           input: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                            env=dict(env or podman_env()), input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


# -- HTTP --------------------------------------------------------------------------------------

def http(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 30) -> tuple[int, Any]:
    """One request from the host; answers (status, parsed JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Connection": "close"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# Runs inside a container of the image (python is there, curl is not): one request to the
# replica itself, printed as {"status": ..., "body": ...}.
IN_CONTAINER_REQUEST = """
import json, sys, urllib.error, urllib.request
method, url, token, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.stdin.read()
headers = {"Content-Type": "application/json"}
if token:
    headers["Authorization"] = "Bearer " + token
request = urllib.request.Request(url, data=body.encode() if body else None, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        status, raw = response.status, response.read()
except urllib.error.HTTPError as error:
    status, raw = error.code, error.read()
print(json.dumps({"status": status, "body": raw.decode()}))
"""


def http_inside(container: str, method: str, path: str, body: Any = None, token: str = "",
                env: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """One request from inside ``container`` to its own service (replicas are not published)."""
    result = podman("exec", "-i", container, "python", "-c", IN_CONTAINER_REQUEST, method,
                    f"http://127.0.0.1:8080{path}", token, input="" if body is None else json.dumps(body), env=env)
    answer = json.loads(result.stdout)
    try:
        return answer["status"], json.loads(answer["body"])
    except ValueError:
        return answer["status"], answer["body"]


def wait_until(check, timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # noqa: BLE001 - the service is still starting
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


# -- a development issuer: key pair, trusted-issuer file, tokens --------------------------------

class DevIssuer:
    """An EHR's signing key and the trusted-issuer entry the service needs to accept its tokens."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP384R1())

    def write_trusted_issuers(self, path: Path) -> Path:
        jwk = ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        jwk.update({"kid": KID, "alg": "ES384", "use": "sig"})
        # No fhir_servers: the calls carry their data as prefetch; production lets no FHIR server in.
        path.write_text(json.dumps([{"iss": ISSUER, "jwks": {"keys": [jwk]}, "fhir_servers": []}]))
        path.chmod(0o644)  # read by uid 10001 inside the container
        return path

    def token(self, audience: str, lifetime: int = 300) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self.key, algorithm="ES384", headers={"kid": KID, "typ": "JWT"})


# -- a realistic order-sign call ------------------------------------------------------------------

def order_sign_request(prefetch_keys: Sequence[str]) -> dict[str, Any]:
    """Radium-223 ordered as 77750 for bone metastases of prostate cancer, no follow-up plan on file:
    the service advises 79101 instead. Every prefetch key is answered, so nothing is fetched."""
    order = {
        "resourceType": "ServiceRequest", "id": "sr-ra223", "status": "draft", "intent": "order",
        "subject": {"reference": "Patient/pat-1"}, "authoredOn": "2026-11-20",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77750"}],
                 "text": "Radium-223 dichloride infusion"},
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C79.51"}]}],
    }
    prefetch: dict[str, Any] = {}
    for key in prefetch_keys:
        if key == "patient":
            prefetch[key] = {"resourceType": "Patient", "id": "pat-1", "gender": "male", "birthDate": "1950-01-01"}
        elif key != "encounter":
            prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    return {
        "hook": "order-sign", "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": "pat-1",
                    "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}},
        "prefetch": prefetch,
    }


def prefetch_keys(discovery: dict[str, Any]) -> list[str]:
    (service,) = [s for s in discovery["services"] if s["id"] == SIGN_SERVICE]
    return list(service.get("prefetch", {}))


def recommended_codes(answer: dict[str, Any]) -> list[str]:
    return [decision.get("recommendedCode") for decision in answer.get("extension", {}).get("cds-service.decisions", [])]
