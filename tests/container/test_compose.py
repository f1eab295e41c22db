"""docker/compose.yaml brought up for real with podman-compose: PostgreSQL, two replicas of the
image, nginx in front. Stand-in PostgreSQL and nginx images built from Debian packages replace the
registry images (docker/build-local.sh --compose); the compose file itself is used unchanged."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Iterator

import pytest

from tests.container.podman import (NGINX_IMAGE, POSTGRES_IMAGE, ROOT, SERVICE_IMAGE, SIGN_SERVICE, DevIssuer, http,
                                    http_inside, order_sign_request, podman, podman_env, prefetch_keys,
                                    recommended_codes, wait_until)
from tests.ops.live import free_port

pytestmark = [pytest.mark.container, pytest.mark.slow]

COMPOSE_DIR = ROOT / "docker"


def compose_command(project: str, *args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["podman-compose", "-p", project, "-f", "compose.yaml", *args], cwd=COMPOSE_DIR,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def stack(built_images, tmp_path_factory) -> Iterator[dict]:
    issuer = DevIssuer()
    issuers = issuer.write_trusted_issuers(tmp_path_factory.mktemp("compose") / "trusted-issuers.json")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    project = f"cdssmoke{os.getpid()}"
    env = {**podman_env(), "CDS_IMAGE": SERVICE_IMAGE, "CDS_POSTGRES_IMAGE": POSTGRES_IMAGE,
           "CDS_NGINX_IMAGE": NGINX_IMAGE, "CDS_HTTP_PORT": str(port), "CDS_PUBLIC_BASE_URL": base,
           "CDS_TRUSTED_ISSUERS_FILE": str(issuers), "POSTGRES_PASSWORD": "smoke-test-only"}
    names = {service: f"{project}_{service}_1" for service in ("db", "cds-1", "cds-2", "proxy")}
    up = compose_command(project, "up", "-d", "--no-build", env=env)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        for replica in ("cds-1", "cds-2"):
            # podman-compose does not wait for depends_on conditions: the replicas may start before
            # PostgreSQL accepts connections, and restart (restart: unless-stopped) until it does.
            wait_until(lambda r=replica: http_inside(names[r], "GET", "/readyz", env=env)[0] == 200, 120,
                       f"{replica} ready")
        wait_until(lambda: http("GET", base + "/readyz")[0] == 200, 60, "the proxy")
        yield {"base": base, "names": names, "env": env, "issuer": issuer}
    finally:
        logs = {name: podman("logs", name, check=False, env=env) for name in names.values()}
        anonymous = []  # the replicas' state volume (the image's VOLUME); down -v leaves it
        for name in (names["cds-1"], names["cds-2"]):
            inspected = podman("inspect", "--format", "{{json .Mounts}}", name, check=False, env=env)
            if inspected.returncode == 0:
                anonymous += [m["Name"] for m in json.loads(inspected.stdout) if m.get("Type") == "volume"
                              and m.get("Destination") == "/var/lib/cds-service"]
        down = compose_command(project, "down", "-v", env=env)
        for volume in anonymous:
            podman("volume", "rm", "-f", volume, check=False, env=env)
        podman("network", "rm", "-f", f"{project}_default", check=False, env=env)
        assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
        for name in (names["cds-1"], names["cds-2"]):
            assert "Traceback" not in logs[name].stdout + logs[name].stderr, logs[name].stdout + logs[name].stderr


def call_log_lines(stack: dict, replica: str) -> list[dict]:
    """The per-call JSON lines (event cds.call) a replica has written."""
    logs = podman("logs", stack["names"][replica], env=stack["env"])
    lines = []
    for line in (logs.stdout + logs.stderr).splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "cds.call":
                lines.append(record)
    return lines


def test_both_replicas_serve_on_postgresql_behind_nginx(stack):
    base = stack["base"]
    status, ready = http("GET", base + "/readyz")
    assert status == 200 and ready["checks"]["database"]["backend"] == "postgresql"
    status, discovery = http("GET", base + "/cds-services")
    assert status == 200
    url = f"{base}/cds-services/{SIGN_SERVICE}"
    for _ in range(6):
        status, answer = http("POST", url, order_sign_request(prefetch_keys(discovery)),
                              token=stack["issuer"].token(audience=url))
        assert status == 200, answer
        assert answer["cards"] and recommended_codes(answer) == ["79101"]
    # nginx balanced the calls: each replica answered some of them.
    calls = {replica: call_log_lines(stack, replica) for replica in ("cds-1", "cds-2")}
    assert calls["cds-1"] and calls["cds-2"], {r: len(c) for r, c in calls.items()}
    assert sum(len(c) for c in calls.values()) >= 6


def test_a_token_used_on_one_replica_is_refused_by_the_other(stack):
    env = stack["env"]
    # CDS_PUBLIC_BASE_URL is the proxy's URL, so the audience is the same whichever replica checks it.
    url = f"{stack['base']}/cds-services/{SIGN_SERVICE}"
    status, discovery = http("GET", stack["base"] + "/cds-services")
    token = stack["issuer"].token(audience=url)
    path = f"/cds-services/{SIGN_SERVICE}"
    status, answer = http_inside(stack["names"]["cds-1"], "POST", path, order_sign_request(prefetch_keys(discovery)),
                                 token=token, env=env)
    assert status == 200, answer
    status, answer = http_inside(stack["names"]["cds-2"], "POST", path, order_sign_request(prefetch_keys(discovery)),
                                 token=token, env=env)
    assert status == 401, answer


def test_metrics_are_hidden_by_nginx_but_served_by_each_replica(stack):
    status, _ = http("GET", stack["base"] + "/metrics")
    assert status == 404
    status, body = http_inside(stack["names"]["cds-1"], "GET", "/metrics", env=stack["env"])
    assert status == 200 and "cds_http_requests_total" in body


def test_hook_call_without_a_token_is_refused_through_the_proxy(stack):
    status, _ = http("POST", f"{stack['base']}/cds-services/{SIGN_SERVICE}", order_sign_request(["patient"]))
    assert status == 401


def test_nginx_configuration_test_passes(stack):
    result = podman("exec", stack["names"]["proxy"], "nginx", "-t", check=False, env=stack["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test is successful" in result.stderr


def test_replicas_run_read_only_without_capabilities(stack):
    for replica in ("cds-1", "cds-2"):
        (inspected,) = json.loads(podman("inspect", stack["names"][replica], env=stack["env"]).stdout)
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert inspected["Config"]["User"] == "10001:10001"


def test_readyz_reports_the_database_down_when_postgresql_stops(stack):
    """Last in the module: stops the database. The replica stays in rotation as ``degraded``
    (200): it keeps answering order-sign and spools what it cannot write to its own volume."""
    env = stack["env"]
    podman("stop", "-t", "10", stack["names"]["db"], env=env)
    status, body = wait_until(lambda: (lambda r: r if r[0] == 200 and r[1].get("status") == "degraded" else None)(
        http_inside(stack["names"]["cds-1"], "GET", "/readyz", env=env)), 60, "readyz degraded")
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["spool"]["writable"] is True
    status, health = http_inside(stack["names"]["cds-1"], "GET", "/healthz", env=env)
    assert status == 200  # alive, only not ready: the orchestrator must not restart it for this
