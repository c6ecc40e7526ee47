"""The published contract: the AsyncAPI document is current and the sample consumer works."""

from __future__ import annotations

import asyncio
import runpy
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.contract import Intervention, Subjects

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_committed_asyncapi_document_is_current(tmp_path):
    out = tmp_path / "asyncapi.yaml"
    subprocess.run(
        [sys.executable, "-m", "faststream", "docs", "gen", "shared.asyncapi:app", "--yaml", "--out", str(out)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    assert out.read_text() == (ROOT / "docs" / "asyncapi.yaml").read_text(), (
        "docs/asyncapi.yaml is stale: run `make asyncapi` and commit it"
    )


async def test_the_sample_downstream_subscriber_reads_the_stream(infra, nc, services, unique):
    follow = runpy.run_path(str(ROOT / "docs" / "examples" / "downstream_subscriber.py"))["follow"]
    services.start("pauser")
    project, session = unique("bot"), unique("s")
    reader = asyncio.create_task(
        follow(infra.nats_url, durable=unique("bot"), subject=f"intervention.*.{project}", limit=2)
    )
    await asyncio.sleep(1.0)
    item = Intervention(intervention_id=f"{session}-i", project_id=project, session_id=session,
                        trigger="manual", reason="sample", detected_at=datetime.now(UTC))  # fmt: skip
    await nc.jetstream().publish(Subjects.detected(project), item.model_dump_json().encode(),
                                 headers={"Nats-Msg-Id": item.intervention_id})  # fmt: skip
    seen = await asyncio.wait_for(reader, 30)
    assert [(e["kind"], e["intervention_id"]) for e in seen] == [
        ("detected", item.intervention_id),
        ("paused", item.intervention_id),
    ]
