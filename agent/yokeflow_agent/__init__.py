"""yokeflow-agent: what an agent process installs to be watched by YokeFlow Intervention.

`AgentSession` streams a session's events to NATS and refuses a tool call once the session is
paused; `yokeflow_agent.contract` is the public contract (events, subjects, buckets) that the
server and every downstream consumer read too; `yokeflow-hook` (`yokeflow_agent.adapters`) is
the hooks adapter of the agent CLIs (Claude Code, Gemini CLI, Codex CLI, Copilot CLI: one
module each, one engine in `yokeflow_agent.hooks`) and `yokeflow_agent.claude_sdk` the
in-process hooks for the Claude Agent SDK. It depends on nats-py and pydantic only (the SDK
hooks: `[claude-sdk]`).

The names below load on first use, so the hooks adapter, which imports only plain Python,
starts in milliseconds.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is not imported: it costs the hook milliseconds
if TYPE_CHECKING:
    from typing import Any

    from .client import AgentSession, SessionPaused, connect
    from .events import PROGRESS_FILE, blocker_entry
    from .names import CONTEXT_ENV, event_id_for

__all__ = [
    "CONTEXT_ENV",
    "PROGRESS_FILE",
    "AgentSession",
    "SessionPaused",
    "blocker_entry",
    "connect",
    "event_id_for",
]

_HOME = {
    "CONTEXT_ENV": "names",
    "AgentSession": "client",
    "SessionPaused": "client",
    "connect": "client",
    "PROGRESS_FILE": "events",
    "blocker_entry": "events",
    "event_id_for": "names",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'yokeflow_agent' has no attribute {name!r}")
    from importlib import import_module  # here, not at the top: the hook never needs it

    return getattr(import_module(f".{_HOME[name]}", __name__), name)
