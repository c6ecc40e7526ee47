"""Recovery service: intervention.paused in, allow-listed fixes, intervention.recovery out."""

from __future__ import annotations

from collections.abc import Sequence

from yokeflow_agent.contract import CONSUMERS, InterventionPaused

from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.service import Binding, Consume, Resources, run_service

from .service import Recovery

__all__ = ["build", "main"]


async def build(resources: Resources) -> Sequence[Binding]:
    settings = resources.settings
    # Each running recovery holds a connection for its locks and briefly takes another.
    pool = await resources.database(max_size=2 * settings.recovery_concurrency + 2)
    recovery = Recovery(settings, pool, resources.js, PauserClient(resources.nc, timeout=15))

    async def on_paused(paused: InterventionPaused) -> None:
        if settings.recovery_enabled:
            await recovery.handle(paused)

    return [
        Consume(
            CONSUMERS.recovery_paused,
            InterventionPaused,
            on_paused,
            "Tries the allow-listed fix for each paused intervention.",
            settings.recovery_concurrency,
            keepalive=True,
        )
    ]


def main() -> None:
    run_service("recovery", build)
