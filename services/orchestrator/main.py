"""Orchestrator service: intervention.resumed in, the agent's next session started."""

from __future__ import annotations

from collections.abc import Sequence

from yokeflow_agent.contract import CONSUMERS, InterventionResumed

from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.service import Binding, Consume, Resources, run_service

from .launcher import NextSessionLauncher

__all__ = ["build", "main"]


async def build(resources: Resources) -> Sequence[Binding]:
    settings = resources.settings
    launcher = NextSessionLauncher(
        settings,
        resources.context.nats_url,
        settings.data_dir.resolve() / "resume",
        PauserClient(resources.nc),
    )
    return [
        Consume(
            CONSUMERS.orchestrator_resumes,
            InterventionResumed,
            launcher.on_resumed,
            "Starts the agent's next session with the resume brief.",
        )
    ]


def main() -> None:
    run_service("orchestrator", build)
