"""Starts the agent's next session after a resume, with the resume brief as its context."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path

from yokeflow_agent.client import CONTEXT_ENV
from yokeflow_agent.contract import InterventionResumed

from yokeflow_intervention.shared.commands import PauserClient

__all__ = ["NextSessionLauncher"]

log = logging.getLogger(__name__)


class NextSessionLauncher:
    """At most once per intervention: the new session id is recorded before the agent starts,
    so a redelivered resume never starts a second agent in the same workspace."""

    def __init__(self, command: list[str], context_dir: Path, pauser: PauserClient) -> None:
        self.command = command
        self.context_dir = context_dir
        self.pauser = pauser
        self.children: set[asyncio.subprocess.Process] = set()

    async def on_resumed(self, resumed: InterventionResumed) -> str | None:
        if not self.command:
            log.info(
                "no agent_command configured: the next session gets the brief from its "
                "SessionStart hook",
                extra={"intervention_id": resumed.intervention_id},
            )
            return None
        session_id = str(uuid.uuid4())
        if not await self.pauser.record_next_session(resumed.intervention_id, session_id):
            log.info(
                "next session already started", extra={"intervention_id": resumed.intervention_id}
            )
            return None
        self.context_dir.mkdir(parents=True, exist_ok=True)
        context_file = self.context_dir / f"{resumed.intervention_id}.md"
        context_file.write_text(resumed.resume_context, encoding="utf-8")
        workspace = (
            resumed.workspace if resumed.workspace and Path(resumed.workspace).is_dir() else None
        )
        env = {
            **os.environ,
            CONTEXT_ENV: str(context_file),
            "YOKEFLOW_RESUMED_FROM": resumed.intervention_id,
            "YOKEFLOW_PROJECT_ID": resumed.project_id,
            "YOKEFLOW_SESSION_ID": session_id,
        }
        if workspace:
            env["YOKEFLOW_WORKSPACE"] = workspace
        # An argument list, never a shell: nothing from the event is interpreted.
        child = await asyncio.create_subprocess_exec(*self.command, env=env, cwd=workspace)
        self.children.add(child)
        asyncio.get_running_loop().create_task(self._reap(child))
        log.info(
            "started next session %s (pid %s)",
            session_id,
            child.pid,
            extra={"intervention_id": resumed.intervention_id, "session_id": session_id},
        )
        return session_id

    async def _reap(self, child: asyncio.subprocess.Process) -> None:
        await child.wait()
        self.children.discard(child)
