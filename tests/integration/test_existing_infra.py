"""Pointing at an existing NATS that wants credentials: they work, and never show; one that
wants none is said to be open."""

from __future__ import annotations

import json
import os
import subprocess

import httpx
import psutil
import pytest

from yokeflow_intervention.shared.embedded import EmbeddedNats

from ..helpers import cli, service_env, start_api

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-not-to-print"


@pytest.fixture(scope="module")
def guarded_nats(tmp_path_factory):
    server = EmbeddedNats(
        tmp_path_factory.mktemp("guarded") / "nats", options=("--user", "yoke", "--pass", PASSWORD)
    ).start(reuse=False)
    yield server
    server.stop()


def cli_against(infra, nats_url: str, command: str) -> subprocess.CompletedProcess[str]:
    return cli(command, env=service_env(infra, NATS_URL=nats_url), timeout=60)


def test_credentials_in_the_url_work_and_are_never_printed(infra, guarded_nats):
    url = f"nats://yoke:{PASSWORD}@127.0.0.1:{guarded_nats.port}"
    provisioned = cli_against(infra, url, "provision")
    assert provisioned.returncode == 0, provisioned.stderr
    status = cli_against(infra, url, "status")
    assert status.returncode == 0, status.stderr
    assert f"nats://***@127.0.0.1:{guarded_nats.port}" in status.stdout
    for result in (provisioned, status):
        assert PASSWORD not in result.stdout + result.stderr


def test_wrong_credentials_fail_at_once_with_the_reason(infra, guarded_nats):
    url = f"nats://yoke:wrong-{PASSWORD}@127.0.0.1:{guarded_nats.port}"
    for command in ("status", "provision"):
        result = cli_against(infra, url, command)
        assert result.returncode == 1
        assert result.stderr.startswith(f"{command}: NATS at nats://***@127.0.0.1:"), result.stderr
        assert "refused us: Authorization Violation" in result.stderr
        assert "Traceback" not in result.stderr and PASSWORD not in result.stderr


def test_an_unreachable_server_is_named_without_a_traceback(infra, guarded_nats):
    result = cli_against(infra, "nats://yoke:pw@127.0.0.1:1", "status")
    assert result.returncode == 1
    assert result.stderr == "status: NATS at nats://***@127.0.0.1:1 is not reachable\n"


async def test_a_nats_that_asks_for_no_credentials_is_said_at_start_in_status_and_readyz(
    infra, guarded_nats, services
):
    """The suite's own NATS has no authorization: any agent could do anything there. `provision`
    (what `up` runs first) and `status` say so, and `/readyz` carries it as a warning while
    still answering 200; a NATS that wants credentials gets no such word."""
    open_url = infra.nats_url
    for command, said in (("provision", "stderr"), ("status", "stdout")):
        result = cli_against(infra, open_url, command)
        assert result.returncode == 0, result.stderr
        assert "NATS asks for no credentials: any agent" in getattr(result, said), command
    guarded = f"nats://yoke:{PASSWORD}@127.0.0.1:{guarded_nats.port}"
    for command in ("provision", "status"):
        result = cli_against(infra, guarded, command)
        assert "no credentials" not in result.stdout + result.stderr, command

    base, _ = await start_api(services)
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert "NATS asks for no credentials" in ready.json()["warnings"][0]


def test_agents_and_consumers_add_print_an_account_of_their_own_for_an_existing_nats(
    infra, guarded_nats
):
    """What an operator of an existing NATS adds: an account per project or consumer, whose
    imports are its own subjects only (docs/security.md), and the URL to connect with."""
    url = f"nats://yoke:{PASSWORD}@127.0.0.1:{guarded_nats.port}"
    for kind, name, account in (
        ("agents", "shop", "AGENT_shop"),
        ("consumers", "bot", "CONSUMER_bot"),
    ):
        result = cli(kind, "add", name, env=service_env(infra, NATS_URL=url), timeout=60)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        entry = json.loads("\n".join(line for line in lines if not line.startswith("#")))
        assert list(entry) == [account] and "jetstream" not in entry[account]
        assert {
            i.get("service", i.get("stream"))["account"] for i in entry[account]["imports"]
        } == {"YOKEFLOW"}
        assert f"nats://{kind[:-1]}-{name}:" in lines[-1]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="the cores a process may use")
def test_the_embedded_server_leaves_the_services_a_core_unless_told_otherwise(
    monkeypatch, tmp_path
):
    cores = len(os.sched_getaffinity(0))
    for chosen, expected in ((None, str(max(cores - 1, 1))), ("3", "3")):  # an operator's kept
        if chosen is None:
            monkeypatch.delenv("GOMAXPROCS", raising=False)
        else:
            monkeypatch.setenv("GOMAXPROCS", chosen)
        server = EmbeddedNats(tmp_path / f"nats-{chosen}").start(reuse=False)
        try:
            assert server.pid is not None
            assert psutil.Process(server.pid).environ()["GOMAXPROCS"] == expected
        finally:
            server.stop()
