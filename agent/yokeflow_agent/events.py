"""Agent events and the blocker entry, built in plain Python (no pydantic, no nats-py), so the
Claude Code hook, which is a new process for every tool call, and `AgentSession` build exactly
the same messages.
"""

from __future__ import annotations

import time

from . import jsonlite as json
from .names import event_id_for

TYPE_CHECKING = False  # typing is not imported: it costs the hook milliseconds
if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from typing import Any

__all__ = [
    "MAX_INPUT_BYTES",
    "PROGRESS_FILE",
    "agent_event",
    "blocker_entry",
    "clip_input",
    "hash_text",
]

PROGRESS_FILE = "claude-progress.md"
# A tool input is clipped to this much JSON before it is published: the detector compares calls
# by their input, and a 1 MB Write must not exceed the server's max_payload (the publish would
# never be acknowledged).
MAX_INPUT_BYTES = 16 * 1024
_STRING_LIMIT = 2000
_ITEMS_LIMIT = 100
_DEPTH_LIMIT = 16


def _clip(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= _STRING_LIMIT:
            return value
        # The clipped text keeps a fingerprint of what was cut, so two different long inputs
        # stay different calls.
        return (
            f"{value[:_STRING_LIMIT]} … [{len(value) - _STRING_LIMIT} characters clipped, "
            f"{hash_text(value)}]"
        )
    if depth >= _DEPTH_LIMIT and isinstance(value, dict | list):
        return (
            f"[nested deeper than {_DEPTH_LIMIT} levels, "
            f"{hash_text(json.dumps(value, default=str))}]"
        )
    if isinstance(value, dict):
        return {str(k)[:200]: _clip(v, depth + 1) for k, v in list(value.items())[:_ITEMS_LIMIT]}
    if isinstance(value, list):
        return [_clip(v, depth + 1) for v in value[:_ITEMS_LIMIT]]
    return value


def hash_text(text: str) -> str:
    import hashlib  # only for clipped input

    return "sha256:" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]


def clip_input(tool_input: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's input as it is published: long strings, long lists and deep nesting clipped,
    and at most MAX_INPUT_BYTES of JSON in all."""
    clipped = _clip(dict(tool_input), 0)
    text = json.dumps(clipped, default=str)
    if len(text) <= MAX_INPUT_BYTES:
        return clipped  # type: ignore[no-any-return]
    return {"clipped_input": text[: MAX_INPUT_BYTES // 2], "input_digest": hash_text(text)}


def utc_now_iso() -> str:
    """Now, as the contract's timestamps are written (ISO 8601, microseconds, `Z`), without
    importing datetime."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"


def agent_event(
    project_id: str,
    session_id: str,
    seq: int,
    type_: str,
    task: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One agent event of contract v1 (fields that are None are left out)."""
    return {
        "v": 1,
        "event_id": event_id_for(project_id, session_id, seq),
        "type": type_,
        "project_id": project_id,
        "session_id": session_id,
        "seq": seq,
        "ts": utc_now_iso(),
        **({"task": dict(task)} if task else {}),
        **{k: v for k, v in fields.items() if v is not None},
    }


def blocker_entry(session_id: str, control: Mapping[str, Any], when: datetime) -> str:
    """The blocker entry for claude-progress.md, in YokeFlow's original format, from a session's
    control state (a SessionControl as JSON)."""
    task = control.get("task") or None
    task_line = (
        f"{task.get('id')} - {task.get('description', '')}" if task else "(no task recorded)"
    )
    root_cause = str(
        control.get("blocker_type") or control.get("cause") or control.get("trigger") or "unknown"
    )
    excerpt = str(control.get("error_excerpt") or "").strip()
    if excerpt:
        root_cause += f": {excerpt.splitlines()[0][:300]}"
    intervention = control.get("intervention_id")
    requires = ["Human review of the blocker above"]
    if control.get("suggested_recovery"):
        requires.append(str(control["suggested_recovery"]))
    requires.append(
        "Resume with notes: `yokeflow-intervention interventions resume "
        f"{intervention} --by NAME --notes TEXT` (or from the dashboard)"
    )
    stats = control.get("retry_stats") or {}
    retry_stats = {
        key: stats.get(key, 0)
        for key in ("total_retries", "max_retries_on_single_command", "unique_errors")
    }
    return "\n".join(
        [
            f"## BLOCKER - Session {session_id} - {when:%Y-%m-%d %H:%M:%S} UTC",
            "",
            f"**Task**: {task_line}",
            f"**Issue**: {control.get('reason', '')}",
            f"**Root Cause**: {root_cause}",
            f"**Intervention**: {intervention}",
            "**Retry Statistics**:",
            "```json",
            json.dumps(retry_stats, indent=2),
            "```",
            "**Requires**:",
            *[f"- [ ] {item}" for item in requires],
            "**Impact**: The session is paused; no further tool calls run until it is resumed.",
            "",
        ]
    )
