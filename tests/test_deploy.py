"""The shipped image and deployment examples agree with what the app serves, and stay safe by default.

container-check (in .ci/run) builds and runs the image for real; these tests catch drift in the text: a probe
on a path the app does not serve, a port the image does not expose, a sidecar that runs as root.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest
import yaml

from slack_pii.config import Settings
from tests.conftest import TEST_KEY
from tests.slack_double import start_proxy

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "deploy" / "kubernetes" / "slack-pii-sidecar.yaml"
COMPOSE = ROOT / "deploy" / "compose.yaml"
PROXY = "slack-pii-proxy"


# --- Dockerfile ----------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            rows.append((keyword.upper(), rest.strip()))
    return rows


def final_stage() -> list[tuple[str, str]]:
    rows = dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(rows) if keyword == "FROM")
    return rows[last_from:]


def image_env() -> dict[str, str]:
    env = {}
    for keyword, rest in final_stage():
        if keyword == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env


def image_port() -> int:
    (port,) = [int(rest) for keyword, rest in final_stage() if keyword == "EXPOSE"]
    return port


def test_dockerfile_builds_on_any_python_slim_base():
    """container-check swaps the base with --build-arg BASE_IMAGE; every stage must come from it."""
    rows = dockerfile_instructions()
    assert rows[0][0] == "ARG" and rows[0][1].startswith("BASE_IMAGE=python:3.12-slim")
    froms = [rest for keyword, rest in rows if keyword == "FROM"]
    assert len(froms) == 2 and all(rest.split()[0] == "${BASE_IMAGE}" for rest in froms)
    commands = " ".join(rest for _, rest in rows)
    assert not re.search(r"python3\.\d+\b", commands), "no versioned python binary paths"
    assert "python3 -m venv" in commands


def test_image_runs_serve_as_a_non_root_user_on_all_interfaces():
    (cmd,) = [rest for keyword, rest in final_stage() if keyword == "CMD"]
    assert json.loads(cmd) == ["slack-pii", "serve"]  # JSON form: signals reach the app, no shell
    (user,) = [rest for keyword, rest in final_stage() if keyword == "USER"]
    uid = user.split(":")[0]
    assert uid in ("${UID}", "$UID") or uid.isdigit()
    uid = dict(re.findall(r"(\w+)=(\S+)", " ".join(r for k, r in final_stage() if k == "ARG"))).get("UID", uid)
    assert uid.isdigit() and int(uid) >= 1000
    env = image_env()
    assert env["SLACK_PII_HOST"] == "0.0.0.0" and int(env["SLACK_PII_PORT"]) == image_port() == 8080
    assert Settings().host == "127.0.0.1"  # outside the container the default stays loopback
    assert env["SLACK_PII_DATA_DIR"] == "/data"
    assert ("VOLUME", '["/data"]') in final_stage()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # read-only root: never try to write .pyc


def test_healthcheck_needs_no_curl_and_probes_healthz():
    (check,) = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    command = json.loads(check.split("CMD", 1)[1])
    assert command[0] == "python3" and "/healthz" in command[-1] and "curl" not in check


def test_build_context_leaves_local_state_out():
    """data/ holds secret.key and the SQLite store; .venv and .git are large. Only the sources go in."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {line[1:].rstrip("/") for line in rules if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "slack_pii", "recognizers", "models"}


# --- Kubernetes ----------------------------------------------------------------------------------------------


def k8s_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all(K8S.read_text()) if doc]


def pod_spec() -> dict:
    (deployment,) = [doc for doc in k8s_documents() if doc["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]


def all_containers() -> list[dict]:
    spec = pod_spec()
    return spec.get("initContainers", []) + spec["containers"]


def proxy_container() -> dict:
    (container,) = [c for c in all_containers() if c["name"] == PROXY]
    return container


def probe_port(container: dict, probe: dict) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def test_proxy_is_a_native_sidecar_that_starts_before_the_bot():
    spec = pod_spec()
    assert proxy_container() in spec["initContainers"] and proxy_container()["restartPolicy"] == "Always"
    assert proxy_container()["startupProbe"]["httpGet"]["path"] == "/healthz"


def test_probes_use_the_paths_and_port_the_image_serves():
    container = proxy_container()
    probes = {name: container[name] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {probe_port(container, probe) for probe in probes.values()} == {image_port()}


def test_bot_reaches_slack_through_the_sidecar_on_loopback():
    (bot,) = [c for c in pod_spec()["containers"] if c["name"] != PROXY]
    env = {item["name"]: item for item in bot["env"]}
    assert env["SLACK_API_URL"]["value"] == f"http://127.0.0.1:{image_port()}/api/"
    assert env["SLACK_BOT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "slack-bot"
    proxy_env = {item["name"]: item.get("value") for item in proxy_container()["env"]}
    assert proxy_env["SLACK_PII_UPSTREAM_URL"] == "https://slack.com/api/"  # never the local sink in a cluster
    assert proxy_container()["envFrom"] == [{"secretRef": {"name": "slack-bot"}}]


def test_no_secret_value_is_written_into_a_container_spec():
    for container in all_containers():
        for item in container.get("env", []):
            assert "value" not in item or not re.search(r"xox[abpe]-|TOKEN|SECRET", item["name"] + item["value"])


def test_containers_are_non_root_read_only_and_without_capabilities():
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] >= 1000
    assert spec["automountServiceAccountToken"] is False
    for container in all_containers():
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]


def test_proxy_has_writable_data_and_tmp_and_a_memory_limit():
    container = proxy_container()
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.keys() == {"/data", "/tmp"} and set(mounts.values()) <= volumes.keys()
    assert image_env()["SLACK_PII_DATA_DIR"] == "/data"
    resources = container["resources"]
    assert resources["requests"]["memory"] and resources["requests"]["cpu"] and resources["limits"]["memory"]


def test_network_policy_allows_only_dns_and_https_out():
    (policy,) = [doc for doc in k8s_documents() if doc["kind"] == "NetworkPolicy"]
    assert policy["spec"]["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}


# --- compose -------------------------------------------------------------------------------------------------


def compose_healthcheck() -> str:
    """The proxy's healthcheck command (a string: podman-compose 1.0 mangles the CMD list form)."""
    test = yaml.safe_load(COMPOSE.read_text())["services"][PROXY]["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_compose_runs_the_proxy_read_only_on_loopback_with_a_data_volume():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    proxy = services[PROXY]
    assert proxy["build"]["context"] == ".." and (COMPOSE.parent / proxy["build"]["context"] / "Dockerfile").exists()
    assert proxy["read_only"] is True and proxy["cap_drop"] == ["ALL"] and "/tmp" in proxy["tmpfs"]
    assert any(v.endswith(":/data") for v in proxy["volumes"])
    assert proxy["ports"] == [f"127.0.0.1:{image_port()}:{image_port()}"]
    assert f"127.0.0.1:{image_port()}/readyz" in compose_healthcheck()
    bot = services["demo-bot"]
    assert bot["environment"]["SLACK_API_URL"] == f"http://{PROXY}:{image_port()}/api/"
    assert bot["depends_on"][PROXY]["condition"] == "service_healthy"


# --- the probe paths against the real app ---------------------------------------------------------------------


def probe_paths() -> set[str]:
    container = proxy_container()
    paths = {container[name]["httpGet"]["path"] for name in ("startupProbe", "livenessProbe", "readinessProbe")}
    compose = compose_healthcheck()
    (healthcheck,) = [rest for keyword, rest in final_stage() if keyword == "HEALTHCHECK"]
    for command in (compose, healthcheck):
        paths.update(re.findall(r"127\.0\.0\.1:[^/']+(/\w+)", command))
    return paths


async def test_every_probe_path_answers_200_on_the_running_app(tmp_path, scanner):
    """Start the real app (local sink, loopback port 0) and hit each path the deployment files probe."""
    assert probe_paths() == {"/healthz", "/readyz"}
    server = await start_proxy(Settings(data_dir=tmp_path, secret_key=TEST_KEY), scanner)
    try:
        async with aiohttp.ClientSession() as session:
            for path in sorted(probe_paths()):
                async with session.get(server.make_url(path)) as response:
                    assert response.status == 200, path
                    assert (await response.json())["ok"] is True
            # The bot's base URL ends in /api/: the app serves Web API methods below it.
            async with session.post(server.make_url("/api/auth.test"),
                                    headers={"Authorization": "Bearer xoxb-deploy-test"}) as response:
                assert response.status == 200 and (await response.json())["ok"] is True
    finally:
        await server.close()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_app_routes_include_the_operational_endpoints(path, tmp_path):
    from slack_pii.app import build_app

    app = build_app(Settings(data_dir=tmp_path, secret_key=TEST_KEY))
    served = {(route.method, route.resource.canonical) for route in app.router.routes()}
    assert ("GET", path) in served
