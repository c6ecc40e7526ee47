"""A scripted agent that gets stuck, for `make run` and `demo`: it runs no real commands.

First session: a retry loop on `npm start`, stopped by the detector; with --loop a second
session then hits a port conflict on a port a stale dev server really holds (so recovery really
frees it and resumes the session). Started by the orchestrator after a resume (the resume brief
in $YOKEFLOW_RESUME_CONTEXT_FILE), it announces what it continues and finishes its task.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from yokeflow_agent.client import AgentSession, SessionPaused, connect
from yokeflow_agent.contract import Task
from yokeflow_agent.names import CONTEXT_ENV, RESUMED_FROM_ENV

from yokeflow_intervention.shared.runtime import ServiceContext
from yokeflow_intervention.shared.settings import DEMO_PROJECT, load_settings

__all__ = ["retry_loop_session", "run_resumed_session"]

CRASH = (
    "Error: Command failed: npm start\n"
    "TypeError: Cannot read properties of undefined (reading 'port')"
)


async def retry_loop_session(session: AgentSession, attempts: int = 8) -> SessionPaused | None:
    """The motivating failure: the same failing command again and again."""
    await session.start()
    try:
        for _ in range(attempts):
            call = await session.tool_call("Bash", {"command": "npm start"})
            await session.tool_result(call, "Bash", ok=False, error=CRASH, exit_code=1)
    except SessionPaused as paused:
        return paused
    await session.end("completed")
    return None


def _stale_dev_server(workspace: Path, port: int) -> subprocess.Popen[bytes] | None:
    """A forgotten dev server holding the port, in the demo project's registered workspace:
    what recovery may stop (its process, its user, its workspace, a registered port). None when
    something else already holds the port: recovery then refuses to touch it, as it should."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return None
    hold = (
        f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); "
        "s.listen(); time.sleep(600)"
    )
    server = subprocess.Popen([sys.executable, "-c", hold], cwd=workspace, start_new_session=True)
    for _ in range(100):  # until it listens: the conflict the agent reports is real
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return server


async def port_conflict_session(session: AgentSession, port: int = 5173) -> SessionPaused | None:
    await session.start()
    try:
        call = await session.tool_call("Bash", {"command": "npm run dev"})
        await session.tool_result(
            call,
            "Bash",
            ok=False,
            error=f"Error: listen EADDRINUSE: address already in use :::{port}",
        )
        await session.tool_call("Bash", {"command": "npm run dev"})
    except SessionPaused as paused:
        return paused
    await session.end("completed")
    return None


async def run_resumed_session(session: AgentSession, context_file: Path, resumed_from: str) -> None:
    brief = context_file.read_text(encoding="utf-8")
    # Only a session that really received its brief says what it continues.
    await session.start(resumed_from=resumed_from if resumed_from in brief else None)
    call = await session.tool_call("Bash", {"command": "PORT=4000 npm start"})
    await session.tool_result(call, "Bash", ok=True, output="listening on :4000", exit_code=0)
    await session.end("completed")


async def main_async(loop: bool) -> None:
    settings = load_settings()
    context = ServiceContext("demo-agent", settings)
    project = os.environ.get("YOKEFLOW_PROJECT_ID", DEMO_PROJECT)
    nc = await connect(context.nats_url, project)  # as an agent of the project
    workspace = Path(os.environ.get("YOKEFLOW_WORKSPACE") or settings.data_dir / "demo-workspace")
    task = Task(id="42", description="Add checkout API")
    try:
        context_file = os.environ.get(CONTEXT_ENV)
        if context_file:
            session = AgentSession(
                nc,
                project,
                os.environ.get("YOKEFLOW_SESSION_ID") or str(uuid.uuid4()),
                workspace=workspace.resolve(),
                task=task,
            )
            await run_resumed_session(
                session, Path(context_file), os.environ.get(RESUMED_FROM_ENV, "")
            )
            print(f"demo agent: session {session.session_id} continued after the resume")
            return
        scenarios = [retry_loop_session, port_conflict_session] if loop else [retry_loop_session]
        for scenario in scenarios:
            session = AgentSession(nc, project, workspace=workspace.resolve(), task=task)
            stale = None
            if scenario is port_conflict_session:
                workspace.mkdir(parents=True, exist_ok=True)
                stale = _stale_dev_server(workspace, 5173)
            try:
                paused = await scenario(session)
                if paused is not None:
                    path = await session.stop_for_pause(paused)
                    print(
                        f"demo agent: session {session.session_id} paused: {paused.control.reason}"
                    )
                    print(f"demo agent: blocker entry written to {path}")
                if stale is None:
                    await asyncio.sleep(2)
                else:  # recovery stops the stale server (within 15 s), then the next session
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        await asyncio.to_thread(stale.wait, 15)
            finally:
                if stale is not None and stale.poll() is None:
                    stale.kill()
    finally:
        await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop", action="store_true", help="also run the port-conflict session")
    asyncio.run(main_async(parser.parse_args().loop))


if __name__ == "__main__":
    main()
