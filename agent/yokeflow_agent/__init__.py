"""yokeflow-agent: what an agent process installs to be watched by YokeFlow Intervention.

`AgentSession` streams a session's events to NATS and refuses a tool call once the session is
paused; `yokeflow_agent.contract` is the public contract (events, subjects, buckets) that the
server and every downstream consumer read too. It depends on nats-py and pydantic only.
"""

from .client import (
    CONTEXT_ENV,
    PROGRESS_FILE,
    AgentSession,
    SessionPaused,
    blocker_entry,
    connect,
    event_id_for,
)

__all__ = [
    "CONTEXT_ENV",
    "PROGRESS_FILE",
    "AgentSession",
    "SessionPaused",
    "blocker_entry",
    "connect",
    "event_id_for",
]
