"""What makes two calls the same call and two outcomes the same outcome.

Every rule compares calls by signature and outcomes by fingerprint, so what these mask decides
what counts as progress: a volatile token left unmasked (a message id, a pid, a clock) makes a
stuck session look busy; a meaningful one masked ("5 failed" against "3 failed", a line number)
makes a converging one look stuck.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

EXCERPT_LIMIT = 500
FAILURE_TEXT_LIMIT = 4000

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T _]\d{2}(?::\d{2}:\d{2}|_\d{2}_\d{2})(?:[.,_]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Message, run and request ids in base62 (Anthropic's msg_/toolu_, OpenAI's call_ and chatcmpl-,
# nanoids): 16 or more letters and digits with at least one of each; words and identifiers with
# underscores are not taken for them.
_BASE62_ID = re.compile(
    r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}(?![A-Za-z0-9])"
)
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")
_CLOCK = re.compile(r"(?<![\d:])\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?![\d:])")
_PID = re.compile(r"\b(pid|process|job)([ =:#]+)\d+", re.IGNORECASE)
_JOB = re.compile(r"^\[\d+\]\s+\d+$", re.MULTILINE)  # a shell's "[1] 12345" for a background job
# Epoch seconds or milliseconds and other decimal ids; shorter numbers (counts of failures, line
# numbers, exit codes) are what progress is read from and stay.
_DECIMAL_ID = re.compile(r"(?<![\d.])\d{6,}(?:\.\d+)?(?!\d)")
_DURATION = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|s)\b")
# A timing reported as a field ("elapsed_ms: 3", "duration=12", "took 0.5"): a clock reading.
_TIMING_FIELD = re.compile(
    r"\b(\w*(?:elapsed|duration|took|latency)\w*\"?)(\s*[:=]?\s*)\d+(?:\.\d+)?", re.IGNORECASE
)


def failure_fingerprint(text: str) -> str:
    """The text with volatile parts (dates and times, ids, pids, durations) masked."""
    text = _TIMESTAMP.sub("<ts>", text)
    text = _UUID.sub("<uuid>", text)
    text = _BASE62_ID.sub("<id>", text)
    text = _HEX_RUN.sub("<hex>", text)
    text = _CLOCK.sub("<time>", text)
    text = _PID.sub(r"\1\2<pid>", text)
    text = _JOB.sub("[<job>] <pid>", text)
    text = _DECIMAL_ID.sub("<num>", text)
    text = _DURATION.sub("<dur>", text)
    text = _TIMING_FIELD.sub(r"\1\2<dur>", text)
    return " ".join(text.split())


def outcome_fingerprint(output: str) -> str:
    """What a successful call produced, volatile parts masked: the same successful call is a
    loop only when its outcome is the same too (polling a build whose output changes is not).
    The head and the tail count, so a growing log tail changes it."""
    head, tail = output[:2000], output[-2000:] if len(output) > 2000 else ""
    masked = failure_fingerprint(head + "\n" + tail)
    return hashlib.sha256(masked.encode()).hexdigest()[:16]


_STILL_RUNNING = re.compile(
    r"\b(?:running|in progress|pending|queued|starting|not (?:yet )?(?:finished|done|complete|ready))\b",
    re.IGNORECASE,
)


def still_running(output: str) -> bool:
    """Whether a successful call's output says a job is still under way (a poll's answer)."""
    return _STILL_RUNNING.search(output[-2000:]) is not None


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def call_signature(
    tool: str | None, tool_input: dict[str, Any] | None, ignore: frozenset[str] = frozenset()
) -> str:
    """Same tool, same input (whitespace-insensitive, top-level `ignore` keys left out): same
    signature."""
    kept = {k: v for k, v in (tool_input or {}).items() if k not in ignore}
    canonical = json.dumps({"tool": tool, "input": _normalise(kept)}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def label(tool: str | None, tool_input: dict[str, Any] | None) -> str:
    """A call as an intervention names it: a shell command as typed, else the tool and input."""
    tool_input = tool_input or {}
    command = tool_input.get("command")
    if isinstance(command, str):
        return " ".join(command.split())
    compact = json.dumps(tool_input, sort_keys=True, default=str)
    text = f"{tool or 'tool'} {compact}"
    return text if len(text) <= 120 else text[:117] + "..."


def excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 3] + "..."


def first_line(text: str) -> str:
    """An excerpt's first line, for a reason (which is one line)."""
    found = excerpt(text)
    return found.splitlines()[0] if found else "(empty)"
