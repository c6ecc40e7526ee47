"""Fuzz the real API process against its committed OpenAPI document: no input gives a 5xx."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from yokeflow_intervention.shared.embedded import free_port

from ..helpers import ServiceProcesses

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_path(
    Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
)
# The event stream never ends by design; every other operation is fuzzed.
schema = schema.exclude(path="/api/events")


@pytest.fixture(scope="module")
def base_url(infra, tmp_path_factory):
    processes = ServiceProcesses(infra, tmp_path_factory.mktemp("fuzz"))
    port = free_port()
    processes.start("pauser")
    processes.start("api", YOKEFLOW_API_PORT=str(port), API_TOKEN="fuzz-token")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    processes.stop_all()


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case, base_url):
    for headers in ({}, {"Authorization": "Bearer fuzz-token"}):
        response = case.call(base_url=base_url, headers=headers, timeout=10)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path}: {response.text[:300]}"
        )
