"""The published contract: the AsyncAPI document is current and the sample consumer works."""

from __future__ import annotations

import asyncio
import os
import runpy
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from yokeflow_agent.contract import Intervention, Subjects

from yokeflow_intervention.shared.runtime import product_command

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _rendered(tmp_path: Path, hash_seed: str) -> str:
    """The document as `make asyncapi` writes it, generated away from the repository."""
    return subprocess.run(
        product_command("shared.asyncapi"),
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
    ).stdout


def test_committed_asyncapi_document_is_current(tmp_path):
    assert _rendered(tmp_path, "0") == (ROOT / "docs" / "asyncapi.yaml").read_text(), (
        "docs/asyncapi.yaml is stale: run `make asyncapi` and commit it"
    )


def test_the_asyncapi_document_does_not_depend_on_hashing_or_the_folder(tmp_path):
    assert _rendered(tmp_path, "1") == _rendered(tmp_path, "4242")


async def test_the_sample_downstream_subscriber_reads_the_stream(infra, nc, services, unique):
    follow = runpy.run_path(str(ROOT / "docs" / "examples" / "downstream_subscriber.py"))["follow"]
    services.start("pauser")
    project, session = unique("bot"), unique("s")
    reader = asyncio.create_task(
        follow(infra.nats_url, durable=unique("bot"), subject=f"intervention.*.{project}", limit=2)
    )
    await asyncio.sleep(1.0)
    item = Intervention(
        intervention_id=f"{session}-i",
        project_id=project,
        session_id=session,
        trigger="manual",
        reason="sample",
        detected_at=datetime.now(UTC),
    )
    await nc.jetstream().publish(
        Subjects.detected(project),
        item.model_dump_json().encode(),
        headers={"Nats-Msg-Id": item.intervention_id},
    )
    seen = await asyncio.wait_for(reader, 30)
    assert [(e["kind"], e["intervention_id"]) for e in seen] == [
        ("detected", item.intervention_id),
        ("paused", item.intervention_id),
    ]
