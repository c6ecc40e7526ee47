"""The compose file holds together without a Docker engine: roles, dependencies, provisioning."""

from __future__ import annotations

from pathlib import Path

import yaml

from cli.main import SERVICE_ROLES

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_every_role_after_provisioning():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"nats-1", "nats-2", "nats-3", "postgres", "provision"} <= set(services)
    roles = {s["command"][1] for s in services.values() if s.get("command", [None])[0] == "service"}
    assert roles == set(SERVICE_ROLES)  # every role the CLI knows is deployed, and nothing else
    assert services["provision"]["command"] == ["provision"]
    for name in roles:
        assert (
            services[name]["depends_on"]["provision"]["condition"]
            == "service_completed_successfully"
        )
        assert "healthcheck" in services[name]
    assert services["notifier"]["deploy"]["replicas"] == 3
    env = services["detector"]["environment"]
    assert env["YOKEFLOW_STREAM_REPLICAS"] == "3" and env["NATS_URL"].count("nats://") == 3
    for node in ("nats-1", "nats-2", "nats-3"):
        command = services[node]["command"]
        assert "--jetstream" in command and "--cluster_name" in command


def test_kubernetes_manifests_deploy_every_role_with_probes():
    documents = []
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    kinds = [d["kind"] for d in documents]
    assert {
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    } <= set(kinds)
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {f"yokeflow-{role}" for role in SERVICE_ROLES}
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        assert container["args"] == ["service", name.removeprefix("yokeflow-")]
        assert "livenessProbe" in container and "readinessProbe" in container
        assert {e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e} == {
            "yokeflow-config"
        }
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    api = deployments["yokeflow-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    hpa = next(d for d in documents if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "yokeflow-notifier"
    job = next(d for d in documents if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["provision"]
