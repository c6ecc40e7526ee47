"""Starts the agent's next session after a resume, with the resume brief as its context."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

from yokeflow_agent.contract import InterventionResumed
from yokeflow_agent.names import CONTEXT_ENV, RESUMED_FROM_ENV

from yokeflow_intervention.shared.commands import PauserClient
from yokeflow_intervention.shared.confine import (
    ConfinementError,
    run_as,
    scrubbed_environment,
    workspace_within,
)
from yokeflow_intervention.shared.settings import ProjectRegistration, Settings

__all__ = ["NextSessionLauncher"]

log = logging.getLogger(__name__)


class NextSessionLauncher:
    """At most once per intervention: the new session id is recorded before the agent starts,
    so a redelivered resume never starts a second agent in the same workspace."""

    def __init__(
        self,
        settings: Settings,
        nats_url: str,
        context_dir: Path,
        pauser: PauserClient,
    ) -> None:
        self.settings = settings
        self.nats_url = nats_url
        self.command = settings.agent_command
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
        # The id is an Identifier (contract), so this path stays inside the context folder.
        context_file = self.context_dir / f"{resumed.intervention_id}.md"
        project = self.settings.registration(resumed.project_id)
        extra = {
            CONTEXT_ENV: str(context_file),
            RESUMED_FROM_ENV: resumed.intervention_id,
            "YOKEFLOW_PROJECT_ID": resumed.project_id,
            "YOKEFLOW_SESSION_ID": session_id,
        }
        nats_url = self._agent_nats_url(project)
        if nats_url:
            extra["NATS_URL"] = nats_url
        cwd: str | None = None
        try:
            if project is not None:
                # Where the agent works is what the operator registered; the workspace the
                # event names counts only inside that root.
                cwd = workspace_within(resumed.workspace, project)
                if not Path(cwd).is_dir():
                    raise ConfinementError(f"the workspace {cwd} does not exist")
                extra["YOKEFLOW_WORKSPACE"] = cwd
            env = scrubbed_environment(project.user if project else None, **extra)
            confined = run_as(project.user if project else None)
        except ConfinementError as exc:
            log.warning(
                "next session not started: %s",
                exc,
                extra={"intervention_id": resumed.intervention_id},
            )
            return None
        if not await self.pauser.record_next_session(resumed.intervention_id, session_id):
            log.info(
                "next session already started", extra={"intervention_id": resumed.intervention_id}
            )
            return None
        self.context_dir.mkdir(parents=True, exist_ok=True)
        context_file.write_text(resumed.resume_context, encoding="utf-8")
        # An argument list, never a shell; an allow-listed environment, never the services'
        # secrets; the registered workspace and user, never what the event claims.
        child = await asyncio.create_subprocess_exec(
            *self.command, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, **confined
        )
        self.children.add(child)
        asyncio.get_running_loop().create_task(self._reap(child))
        log.info(
            "started next session %s (pid %s)",
            session_id,
            child.pid,
            extra={"intervention_id": resumed.intervention_id, "session_id": session_id},
        )
        return session_id

    def _agent_nats_url(self, project: ProjectRegistration | None) -> str | None:
        """The project's agent credentials; the services' own URL only when it carries none."""
        if project is not None and project.agent_nats_url is not None:
            return project.agent_nats_url.get_secret_value()
        if "@" in self.nats_url:
            log.warning("no agent_nats_url registered: the next session gets no NATS URL")
            return None
        return self.nats_url

    async def _reap(self, child: asyncio.subprocess.Process) -> None:
        await child.wait()
        self.children.discard(child)
