"""What makes two calls the same call and two outcomes the same outcome.

Every rule compares calls by signature and outcomes by fingerprint, so what these mask decides
what counts as progress: a volatile token left unmasked (a message id, a pid, a clock) makes a
stuck session look busy; a meaningful one masked ("5 failed" against "3 failed", a line number)
makes a converging one look stuck.
"""

from __future__ import annotations

import hashlib
import re
from _json import encode_basestring_ascii, make_encoder
from typing import Any

EXCERPT_LIMIT = 500
FAILURE_TEXT_LIMIT = 4000

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T _]\d{2}(?::\d{2}:\d{2}|_\d{2}_\d{2})(?:[.,_]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Message, run and request ids in base62 (Anthropic's msg_/toolu_, OpenAI's call_ and chatcmpl-,
# nanoids): a run of 16 or more letters and digits with at least one of each (`_base62`); words
# and identifiers with underscores are not taken for them.
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{16,}")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{8,}")
_CLOCK = re.compile(r"\d{1,2}:\d\d:\d\d(?:[.,]\d+)?")
_PID = re.compile(r"\b(pid|process|job)([ =:#]+)\d+", re.IGNORECASE)
_JOB = re.compile(r"^\[\d+\]\s+\d+$", re.MULTILINE)  # a shell's "[1] 12345" for a background job
# Epoch seconds or milliseconds and other decimal ids; shorter numbers (counts of failures, line
# numbers, exit codes) are what progress is read from and stay.
_DECIMAL_ID = re.compile(r"\d{6,}(?:\.\d+)?")
_DURATION = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|s)\b")
# The value of a field named as an id ("messageId": "om_5a3f1", run_id=r-12, "id": 42); a word
# that merely ends in "id" ("valid", "paid") is not one.
_ID_FIELD = re.compile(r"(\b(?:\w*[_-])?id|[a-z]Id|ID)(\"?\s*[:=]\s*\"?)[\w.:-]+")
# What every match of _ID_FIELD holds: "id", "Id" or "ID" before its ":" or "=". Searched first,
# it spares most texts _ID_FIELD's scan, which tries a word's every prefix at each word start
# (a 4,000-character output: about 20 µs against 300).
_ID_FIELD_HINT = re.compile(r"(?:id|Id|ID)\"?\s*[:=]")
# A timing reported as a field ("elapsed_ms: 3", "duration=12", "took 0.5"): a clock reading.
_TIMING_FIELD = re.compile(
    r"(elapsed|duration|took|latency)(\w*\"?\s*[:=]?\s*)\d+(?:\.\d+)?", re.IGNORECASE
)
# `json.dumps(value, sort_keys=True, default=str)` as chunks: the C encoder `json.dumps` builds
# for each call, built once (without its circular reference check: what it encodes is parsed
# JSON). Every tool call is encoded, and `json.dumps` costs twice the encoding itself.
_CANONICAL = make_encoder(None, str, encode_basestring_ascii, None, ": ", ", ", True, False, True)


def _canonical(value: Any) -> str:
    return "".join(_CANONICAL(value, 0))


# What a poll's answer says while a job is under way.
_STILL_RUNNING = (
    "running",
    "in progress",
    "pending",
    "queued",
    "starting",
    "not finished",
    "not yet finished",
    "not done",
    "not complete",
    "not ready",
)


def _base62(match: re.Match[str]) -> str:
    run = match.group()
    if any(c.isdigit() for c in run) and any(c.isalpha() for c in run):
        return "<id>"
    return run


def failure_fingerprint(text: str) -> str:
    """The text with volatile parts (dates and times, ids, pids, durations) masked. The passes
    that need a character or a word the text lacks are skipped (each is a scan of up to 4,000
    characters, on every result)."""
    lowered = text.lower()
    if "-" in text:
        text = _TIMESTAMP.sub("<ts>", text)
        text = _UUID.sub("<uuid>", text)
    text = _ALNUM_RUN.sub(_base62, text)
    text = _HEX_RUN.sub("<hex>", text)
    if ":" in text:
        text = _CLOCK.sub("<time>", text)
    if "pid" in lowered or "process" in lowered or "job" in lowered:
        text = _PID.sub(r"\1\2<pid>", text)
    if "[" in text:
        text = _JOB.sub("[<job>] <pid>", text)
    if "id" in lowered and _ID_FIELD_HINT.search(text):
        text = _ID_FIELD.sub(r"\1\2<id>", text)
    text = _DECIMAL_ID.sub("<num>", text)
    text = _DURATION.sub("<dur>", text)
    if "elapsed" in lowered or "duration" in lowered or "took" in lowered or "latency" in lowered:
        text = _TIMING_FIELD.sub(r"\1\2<dur>", text)
    return " ".join(text.split())


def outcome_fingerprint(output: str) -> str:
    """What a successful call produced, volatile parts masked: the same successful call is a
    loop only when its outcome is the same too (polling a build whose output changes is not).
    The head and the tail count, so a growing log tail changes it."""
    head, tail = output[:2000], output[-2000:] if len(output) > 2000 else ""
    masked = failure_fingerprint(head + "\n" + tail)
    return hashlib.sha256(masked.encode()).hexdigest()[:16]


def still_running(output: str) -> bool:
    """Whether a successful call's output says a job is still under way (a poll's answer)."""
    tail = output[-2000:].lower()
    for words in _STILL_RUNNING:  # a loop, not any() of a generator: half the cost
        if words in tail:
            return True
    return False


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
    kept = {
        k: " ".join(v.split()) if type(v) is str else _normalise(v)
        for k, v in (tool_input or {}).items()
        if k not in ignore
    }
    canonical = _canonical({"tool": tool, "input": kept})
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def label(tool: str | None, tool_input: dict[str, Any] | None) -> str:
    """A call as an intervention names it: a shell command as typed, else the tool and input."""
    tool_input = tool_input or {}
    command = tool_input.get("command")
    if isinstance(command, str):
        return " ".join(command.split())
    compact = _canonical(tool_input)
    text = f"{tool or 'tool'} {compact}"
    return text if len(text) <= 120 else text[:117] + "..."


def excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT_LIMIT else text[: EXCERPT_LIMIT - 3] + "..."


def first_line(text: str) -> str:
    """An excerpt's first line, for a reason (which is one line)."""
    found = excerpt(text)
    return found.splitlines()[0] if found else "(empty)"
