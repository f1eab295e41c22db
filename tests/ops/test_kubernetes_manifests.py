"""deploy/kubernetes/: every manifest validates offline against the Kubernetes API schemas
(kubernetes-validate, strict: unknown fields are errors), and the pieces fit together and with the
image (ports, probes, user, issuer file, database Secret)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from cds_service.security.issuers import load_trusted_issuers
from tests.ops.dockerfile import parse

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
# The oldest minor version still common on managed clusters, and a recent one.
KUBERNETES_VERSIONS = ["1.30", "1.34"]


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def applied() -> dict[tuple[str, str], dict]:
    """The resources `kubectl apply -k deploy/kubernetes/` creates, by (kind, name)."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for doc in documents(MANIFESTS / name):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


@pytest.fixture
def offline(monkeypatch):
    """No network: the validation must work from the schemas installed with the package."""
    def refuse(*_args, **_kwargs):
        raise OSError("network access during offline validation")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert kustomization["namespace"] == "cds-service"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_manifests_validate_offline(version, offline):
    checked = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue  # a kustomize file, not an API object
        for doc in documents(path):
            kubernetes_validate.validate(doc, version, strict=True)
            checked.append(f"{path.name}:{doc['kind']}")
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "ConfigMap", "Secret", "Ingress", "Namespace"} <= {c.split(":")[1] for c in checked}


def test_validation_does_catch_a_misspelt_field(offline):
    (deployment,) = documents(MANIFESTS / "deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_deployment_matches_the_image(applied):
    pod = applied[("Deployment", "cds-service")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    final = parse(ROOT / "docker" / "Dockerfile")[-1]
    uid, gid = final.last("USER").split(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == uid and str(pod["securityContext"]["runAsGroup"]) == gid
    assert container["args"] == final.exec_form("CMD")
    (port,) = container["ports"]
    assert port["containerPort"] == int(final.env()["CDS_PORT"]) and port["name"] == "http"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # metric files and gunicorn's heartbeat on a read-only root


def test_database_url_comes_from_a_secret(applied):
    (container,) = applied[("Deployment", "cds-service")]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    (example,) = documents(MANIFESTS / "secret.example.yaml")
    assert ref == {"name": example["metadata"]["name"], "key": "DATABASE_URL"}
    assert "DATABASE_URL" in example["stringData"]
    config = applied[("ConfigMap", "cds-service-config")]["data"]
    assert not any("password" in value.lower() or "postgresql://" in value for value in config.values())
    assert ("Secret", "cds-service-database") not in applied  # never applied from the repository


def test_issuer_file_comes_from_a_config_map_and_is_valid(applied, tmp_path):
    pod = applied[("Deployment", "cds-service")]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = applied[("ConfigMap", "cds-service-config")]["data"]
    assert config["CDS_PROFILE"] == "production" and config["CDS_AUTH"] == "on"
    path = Path(config["CDS_TRUSTED_ISSUERS"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    issuers = applied[("ConfigMap", volume["configMap"]["name"])]["data"]
    (item,) = volume["configMap"]["items"]
    assert item["path"] == path.name
    file = tmp_path / path.name
    file.write_text(issuers[item["key"]])
    assert [issuer.iss for issuer in load_trusted_issuers(file)] == ["https://ehr.example.org"]
    assert config["CDS_PUBLIC_BASE_URL"].startswith("https://")


def test_service_autoscaler_and_budget_select_the_pods(applied):
    labels = applied[("Deployment", "cds-service")]["spec"]["template"]["metadata"]["labels"]
    service = applied[("Service", "cds-service")]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"
    pdb = applied[("PodDisruptionBudget", "cds-service")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = applied[("HorizontalPodAutoscaler", "cds-service")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cds-service"}
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    assert pdb["minAvailable"] < hpa["minReplicas"]  # a drain can always proceed


def test_only_the_cds_hooks_paths_are_routed_in(applied):
    rules = applied[("Ingress", "cds-service")]["spec"]["rules"]
    paths = [p["path"] for rule in rules for p in rule["http"]["paths"]]
    assert paths == ["/cds-services"]
    assert applied[("Ingress", "cds-service")]["spec"]["tls"]


def test_network_policy_lets_in_the_ehr_path_and_monitoring_only(applied):
    policy = applied[("NetworkPolicy", "cds-service-ingress")]["spec"]
    labels = applied[("Deployment", "cds-service")]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    sources = [json.dumps(peer, sort_keys=True) for rule in policy["ingress"] for peer in rule["from"]]
    assert any("ingress-nginx" in s for s in sources) and any("monitoring" in s for s in sources)
    assert all("ipBlock" not in s for s in sources)  # nothing from arbitrary addresses
    for rule in policy["ingress"]:
        assert [p["port"] for p in rule["ports"]] == ["http"]
    egress = applied[("NetworkPolicy", "cds-service-egress")]["spec"]["egress"]
    blocks = [peer["ipBlock"] for rule in egress for peer in rule.get("to", []) if "ipBlock" in peer]
    assert all("169.254.0.0/16" in block.get("except", []) for block in blocks)  # cloud metadata stays closed
