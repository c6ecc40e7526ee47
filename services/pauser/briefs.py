"""The resume brief: what the agent's next session reads before it continues."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["resume_brief"]


def resume_brief(row: dict[str, Any], resolved_by: str, notes: str) -> str:
    """Markdown: what blocked the session, the retry statistics, the task, the human's notes."""
    intervention = row.get("intervention") or {}
    stats = row.get("retry_stats") or {}
    blocker = row.get("blocker_type") or "none"
    excerpt = (intervention.get("error_excerpt") or "").strip()
    lines = [
        f"# Resuming after intervention {row['id']}",
        "",
        f"The previous session `{row['session_id']}` of project `{row['project_id']}` was paused "
        f"at {row['paused_at']:%Y-%m-%d %H:%M:%S %Z} ({row['pause_type']}, blocker: {blocker}).",
        "",
        "## What blocked it",
        "",
        row["pause_reason"],
    ]
    if excerpt:
        lines += ["", "```text", excerpt, "```"]
    lines += [
        "",
        "## Retry statistics",
        "",
        "```json",
        json.dumps(stats, indent=2, sort_keys=True),
        "```",
    ]
    if row.get("current_task_id") or row.get("current_task_description"):
        lines += [
            "",
            "## Task",
            "",
            f"{row.get('current_task_id') or ''} - {row.get('current_task_description') or ''}".strip(
                " -"
            ),
        ]
    lines += ["", f"## Resolution notes from {resolved_by}", "", notes.strip() or "(no notes)"]
    suggestion = intervention.get("suggested_recovery")
    lines += [
        "",
        "## Before you continue",
        "",
        "- Check that the blocker above is really gone before running the same command again.",
        "- Do not retry a failing command unchanged more than twice; look for the root cause.",
    ]
    if suggestion:
        lines.append(f"- Suggested: {suggestion}")
    return "\n".join(lines) + "\n"
