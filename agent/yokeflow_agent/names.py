"""The names an agent uses on the bus, in plain Python.

The Claude Code hook starts a fresh process for every tool call, so what it needs is kept free
of pydantic and nats-py (each costs a few hundred milliseconds to import). The contract module
builds its `Subjects` and `ControlKeys` from these same functions: one definition of each name.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hashlib import sha1
else:
    try:  # the builtin module: hashlib loads OpenSSL, and uuid enum and more, for one digest
        from _sha1 import sha1
    except ImportError:  # an interpreter built without it
        from hashlib import sha1

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
    return _uuid5_url(f"yokeflow:{project_id}/{session_id}/{seq}")


# uuid.NAMESPACE_URL (RFC 4122, appendix C)
_NAMESPACE_URL = bytes.fromhex("6ba7b8119dad11d180b400c04fd430c8")


def _uuid5_url(name: str) -> str:
    """`str(uuid.uuid5(uuid.NAMESPACE_URL, name))`, without importing uuid."""
    digest = bytearray(sha1(_NAMESPACE_URL + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
