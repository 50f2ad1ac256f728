"""The multi-replica examples: every replica reads the database URL from a Secret, shares one key, and is
taken out of service by /readyz when it cannot reach the database."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.test_deploy import COMPOSE, image_port

K8S_REPLICAS = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "slack-pii-app-replicas.yaml"


def documents() -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(K8S_REPLICAS.read_text()) if doc}


def test_kubernetes_runs_several_replicas_reading_the_database_url_from_a_secret():
    docs = documents()
    deployment, secret = docs["Deployment"], docs["Secret"]
    assert deployment["spec"]["replicas"] >= 2 and docs["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert env["SLACK_PII_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"],
                                                                          "key": "SLACK_PII_DATABASE_URL"}
    assert secret["stringData"]["SLACK_PII_DATABASE_URL"].startswith("postgresql://")
    assert "SLACK_PII_SECRET_KEY" in secret["stringData"]  # one key for all replicas
    assert not {"SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"} & (set(env) | set(secret["stringData"]))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert docs["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    assert [p["containerPort"] for p in container["ports"]] == [image_port()]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"]["drop"] == ["ALL"]


def test_compose_postgres_variant_shares_one_database_and_key():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    postgres, shared = services["postgres"], services["slack-pii-proxy-shared"]
    assert postgres["profiles"] == shared["profiles"] == ["postgres"]
    assert shared["environment"]["SLACK_PII_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in shared["environment"]["SLACK_PII_DATABASE_URL"]
    assert shared["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert shared["deploy"]["replicas"] >= 2 and shared["environment"]["SLACK_PII_SECRET_KEY"]
    assert all(port.startswith("127.0.0.1:") for port in shared["ports"])
