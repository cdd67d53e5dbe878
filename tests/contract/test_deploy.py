"""The deployment files parse and keep the settings that protect acknowledged events and patient data.

There is no Docker engine or Kubernetes cluster on the build machines, so these files are checked by
reading them: YAML that parses, references that exist, and the durability settings that matter
(``sync_interval: always`` on every NATS server, ``REQUIRE_NATS_SYNC_ALWAYS`` on every service), and the
uvicorn command line of ``make run`` and the tests (``uvicorn_command``) in every service's command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from uvicorn.importer import import_from_string

from shared.devservers import nats_server_binary
from shared.http.protocol import HTTP_PROTOCOL, ProblemHttpToolsProtocol, uvicorn_command

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLUSTER_NODES = ["nats-1", "nats-2", "nats-3"]
NATS = DEPLOY / "nats"
NATS_CONFIGS = [NATS / "nats-server.conf", *(NATS / "cluster" / f"{node}.conf" for node in CLUSTER_NODES)]
APP_SERVICES = {"questionnaire": 8001, "alerting": 8002, "devices": 8004}
KUBERNETES = DEPLOY / "kubernetes"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def active_lines(path: Path) -> list[str]:
    """A NATS config's lines without comments."""
    return [line.split("#", 1)[0].rstrip() for line in path.read_text(encoding="utf-8").splitlines()]


# --- NATS --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", NATS_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_nats_config_fsyncs_before_acking(path: Path) -> None:
    lines = active_lines(path)
    assert any(re.fullmatch(r"\s*sync_interval\s*[:=]\s*always", line) for line in lines), (
        f"{path.name} must set jetstream {{ sync_interval: always }}: without it JetStream acknowledges "
        "writes it has not fsynced, and a power cut loses them (Jepsen, NATS 2.12.1)"
    )
    start = next(i for i, line in enumerate(lines) if re.match(r"\s*jetstream\s*[:=]?\s*\{", line))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "}")
    assert any("sync_interval" in line for line in lines[start:end]), "sync_interval belongs in the jetstream block"


@pytest.mark.parametrize("node", CLUSTER_NODES)
def test_cluster_node_config(node: str) -> None:
    path = NATS / "cluster" / f"{node}.conf"
    lines = active_lines(path)
    assert f"server_name: {node}" in lines
    assert any(re.fullmatch(r"\s*http:\s*0\.0\.0\.0:8222", line) for line in lines), "monitoring port 8222"
    routes = next(line for line in lines if re.match(r"\s*routes\s*:", line))
    listed = re.findall(r"nats-route://([\w.-]+):6222", routes)
    assert listed == CLUSTER_NODES, f"{node} must route to every node, got {listed}"
    # On one line the routes must be comma-separated, otherwise the server refuses the file.
    assert routes.count(",") == len(CLUSTER_NODES) - 1, f"{node}: separate the routes with commas"


def test_cluster_nodes_differ_only_in_name() -> None:
    settings = {
        tuple(line for line in active_lines(NATS / "cluster" / f"{node}.conf") if line != f"server_name: {node}")
        for node in CLUSTER_NODES
    }
    assert len(settings) == 1, "the three cluster configs should differ only in server_name"


@pytest.mark.parametrize("path", NATS_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_nats_server_accepts_config(path: Path, tmp_path: Path) -> None:
    try:
        binary = nats_server_binary()
    except RuntimeError:
        pytest.skip("nats-server is not installed")
    env = {**os.environ, "NATS_STORE_DIR": str(tmp_path)}
    result = subprocess.run([binary, "-t", "-c", str(path)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


# --- Docker Compose ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "compose.yaml")


def test_compose_has_the_platform(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {*CLUSTER_NODES, "postgres", "otel-collector", *APP_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "synchronous_commit=off" not in " ".join(services["postgres"].get("command", []))


@pytest.mark.parametrize("node", CLUSTER_NODES)
def test_compose_nats_node_mounts_its_cluster_config(compose: dict[str, Any], node: str) -> None:
    service = compose["services"][node]
    assert service["image"].startswith("nats:")
    mounts = {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}
    assert mounts.get(f"./nats/cluster/{node}.conf") == "/etc/nats/nats.conf"
    assert "/etc/nats/nats.conf" in service["command"]
    assert service["environment"]["NATS_STORE_DIR"] in mounts.values(), "the store directory must be a volume"


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts {source}, which does not exist"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file(), f"{name}: Dockerfile not found"


@pytest.mark.parametrize(("name", "port"), APP_SERVICES.items())
def test_compose_service_environment(compose: dict[str, Any], name: str, port: int) -> None:
    service = compose["services"][name]
    env = service["environment"]
    assert env["REQUIRE_NATS_SYNC_ALWAYS"] == "true"
    assert env["ENVIRONMENT"] == "production"
    assert env["NATS_URL"] == ",".join(f"nats://{node}:4222" for node in CLUSTER_NODES)
    # Every node is asked whether it fsyncs before acknowledging, not only the first.
    assert env["NATS_MONITOR_URL"] == ",".join(f"http://{node}:8222" for node in CLUSTER_NODES)
    assert env["AUTH_SECRET"].startswith("${AUTH_SECRET:?"), "AUTH_SECRET must be required, never defaulted"
    for variable in ("STAFF_TOKEN_ISSUER", "STAFF_TOKEN_AUDIENCE"):  # production takes staff tokens from it only
        assert env[variable].startswith(f"${{{variable}:?"), f"{variable} must be required, never defaulted"
    assert env["DATABASE_URL"].startswith("postgresql://")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert env["OTEL_SERVICE_NAME"] == name
    assert service["command"] == uvicorn_command(name, "0.0.0.0", port)
    assert any(p.endswith(f":{port}:{port}") for p in service["ports"])


def test_dockerfile_runs_as_non_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0")), "the image must end on a non-root USER"


def test_dockerfile_exposes_every_service_port() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    exposed = {int(port) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.MULTILINE) for port in line.split()}
    assert exposed == set(APP_SERVICES.values())


def test_dockerfile_command_is_the_questionnaire_service() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    (command,) = re.findall(r"^CMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    assert json.loads(command) == uvicorn_command("questionnaire", "0.0.0.0", APP_SERVICES["questionnaire"])


# --- uvicorn -----------------------------------------------------------------------------------------


def test_http_protocol_is_the_problem_answering_class() -> None:
    assert import_from_string(HTTP_PROTOCOL) is ProblemHttpToolsProtocol
    assert ["--http", HTTP_PROTOCOL] == [arg for arg in uvicorn_command("devices", "::", 1) if "http" in arg]


@pytest.mark.parametrize("path", ["scripts/run.py", "shared/testing/services.py"])
def test_services_are_started_with_the_shared_command_line(path: str) -> None:
    assert "uvicorn_command(" in (ROOT / path).read_text(encoding="utf-8")


def test_no_start_names_another_http_protocol() -> None:
    """Without --http, uvicorn answers unreadable HTTP in text/plain; httptools or h11 would too."""
    paths = [ROOT / "README.md", *(p for d in ("bench", "deploy", "scripts", "shared") for p in (ROOT / d).rglob("*"))]
    for path in paths:
        if path.is_file() and path.suffix in (".py", ".md", ".yaml", "") and path.name != "protocol.py":
            text = path.read_text(encoding="utf-8", errors="replace")
            for other in re.findall(r"--http[\"',]*\s+[\"']?(\w[\w.:]*)", text):
                assert other == HTTP_PROTOCOL, f"{path.relative_to(ROOT)} names --http {other}"


# --- OpenTelemetry Collector -------------------------------------------------------------------------


def test_otel_collector_config() -> None:
    config = load(DEPLOY / "otel-collector.yaml")
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in config[kind], f"the traces pipeline uses {kind[:-1]} {component}, not defined"
    assert {"otlp"} <= set(pipeline["receivers"])
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert "batch" in pipeline["processors"]
    assert "debug" in pipeline["exporters"]
    assert "otlp/backend" in config["exporters"]
    redact = next(p for p in pipeline["processors"] if p.startswith("attributes"))
    actions = config["processors"][redact]["actions"]
    deleted_keys = {a["key"] for a in actions if a["action"] == "delete" and "key" in a}
    deleted_patterns = {a["pattern"] for a in actions if a["action"] == "delete" and "pattern" in a}
    assert {"url.query", "http.url"} <= deleted_keys
    assert any(re.fullmatch(p, "http.request.header.authorization") for p in deleted_patterns)


def test_otel_collector_takes_the_pipeline_metrics() -> None:
    config = load(DEPLOY / "otel-collector.yaml")
    pipeline = config["service"]["pipelines"]["metrics"]
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in config[kind], f"the metrics pipeline uses {kind[:-1]} {component}, not defined"
    assert pipeline["receivers"] == ["otlp"]
    assert pipeline["processors"][0] == "memory_limiter"  # first, as in the traces pipeline
    assert "batch" in pipeline["processors"]
    assert "debug" in pipeline["exporters"]


# --- Kubernetes --------------------------------------------------------------------------------------


def kubernetes_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "nats-values.yaml"):
            continue
        objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return objects


def test_kustomization_lists_existing_files() -> None:
    kustomization = load(KUSTOMIZATION := KUBERNETES / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (KUSTOMIZATION.parent / resource).is_file(), f"kustomization.yaml lists {resource}, which is missing"


def test_kubernetes_objects_parse() -> None:
    objects = kubernetes_objects()
    assert all({"apiVersion", "kind", "metadata"} <= set(obj) for obj in objects)
    kinds = {(obj["kind"], obj["metadata"]["name"]) for obj in objects}
    for name in APP_SERVICES:
        assert ("Deployment", name) in kinds
        assert ("Service", name) in kinds


@pytest.mark.parametrize(("name", "port"), APP_SERVICES.items())
def test_kubernetes_deployment(name: str, port: int) -> None:
    deployment = next(o for o in kubernetes_objects() if o["kind"] == "Deployment" and o["metadata"]["name"] == name)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"] == uvicorn_command(name, "0.0.0.0", port)
    assert container["ports"][0]["containerPort"] == port
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"] and container["resources"]["limits"]
    sources = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
    assert sources == {"configMapRef": "oncofollow-config", "secretRef": "oncofollow-secrets"}
    assert {"name": "OTEL_SERVICE_NAME", "value": name} in container["env"]
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_kubernetes_config_requires_sync_always() -> None:
    config = next(o for o in kubernetes_objects() if o["kind"] == "ConfigMap")
    assert config["data"]["REQUIRE_NATS_SYNC_ALWAYS"] == "true"
    assert config["data"]["ENVIRONMENT"] == "production"
    assert "AUTH_SECRET" not in config["data"] and "DATABASE_URL" not in config["data"], "secrets go in the Secret"
    # The hospital's identity provider, to be filled in: left empty, the services refuse to start in production.
    assert config["data"]["STAFF_TOKEN_ISSUER"] == config["data"]["STAFF_TOKEN_AUDIENCE"] == ""
    values = load(KUBERNETES / "nats-values.yaml")
    assert values["config"]["jetstream"]["merge"]["sync_interval"] == "always"
    assert values["config"]["cluster"]["replicas"] == 3
