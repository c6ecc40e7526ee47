"""The names an agent uses on the bus, in plain Python.

The Claude Code hook starts a fresh process for every tool call, so what it needs is kept free
of pydantic and nats-py (each costs a few hundred milliseconds to import). The contract module
builds its `Subjects` and `ControlKeys` from these same functions: one definition of each name.
"""

from __future__ import annotations

import uuid

__all__ = [
    "CONTEXT_ENV",
    "CONTROL_BUCKET",
    "RESUMED_FROM_ENV",
    "agent_events_subject",
    "agent_inbox_prefix",
    "brief_key",
    "event_id_for",
    "session_key",
    "verdicts_subject",
]

CONTROL_BUCKET = "session_control"
# Set for an agent session started after a resume: the file holding the resume brief.
CONTEXT_ENV = "YOKEFLOW_RESUME_CONTEXT_FILE"
# ...and the intervention it continues after.
RESUMED_FROM_ENV = "YOKEFLOW_RESUMED_FROM"


def agent_events_subject(project_id: str, session_id: str) -> str:
    return f"agent.events.{project_id}.{session_id}"


def verdicts_subject(project_id: str, session_id: str) -> str:
    """Where the detector answers a session's events (core NATS, not stored)."""
    return f"agent.verdicts.{project_id}.{session_id}"


def session_key(project_id: str, session_id: str) -> str:
    """A session's control state in the session_control bucket, watched by its agent."""
    return f"session.{project_id}.{session_id}"


def brief_key(project_id: str) -> str:
    """The latest resume brief of a project, for its next session."""
    return f"brief.{project_id}"


def agent_inbox_prefix(project_id: str) -> str:
    """The inbox prefix an agent of `project_id` connects with: its credentials let it receive
    replies there and nowhere else (see the server's roles)."""
    return f"_INBOX.agent-{project_id}"


def event_id_for(project_id: str, session_id: str, seq: int) -> str:
    """An event's id from its place in the session: a publish retried after a reconnect (or by
    a second hook process) carries the same id, and the stream keeps one copy."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"yokeflow:{project_id}/{session_id}/{seq}"))
