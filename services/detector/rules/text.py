"""Agent text turns: a monologue with no work, empty replies, the same reply again, and a reply
that repeats one sentence over and over."""

from __future__ import annotations

import re
from collections import Counter

from yokeflow_agent.contract import AgentMessage

from .config import DetectionConfig
from .fingerprints import FAILURE_TEXT_LIMIT, excerpt, failure_fingerprint, first_line
from .state import SessionState, Verdict, Warning

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_CHANT_TEXT_LIMIT = 20_000  # a reply's first characters are enough to see it chant
# A sentence counts when it is at least this long and of at least three words: a repeated
# list marker, table rule or "OK." is layout, not a chant.
_SENTENCE_CHARS = 15


def _chant(text: str, config: DetectionConfig) -> tuple[str, int] | None:
    """The sentence a reply repeats `reply_repeat_limit` times or more, making up at least half
    of it, and how often."""
    sentences = [
        " ".join(part.lower().split()) for part in _SENTENCE_END.split(text[:_CHANT_TEXT_LIMIT])
    ]
    sentences = [s for s in sentences if s]
    counted = Counter(
        s for s in sentences if len(s) >= _SENTENCE_CHARS and len(s.split()) >= 3
    ).most_common(1)
    if not counted:
        return None
    sentence, count = counted[0]
    if count >= config.reply_repeat_limit and 2 * count >= len(sentences):
        return sentence, count
    return None


def on_message(state: SessionState, event: AgentMessage, config: DetectionConfig) -> Verdict | None:
    """Turns of text with no work: a monologue, empty replies, the same text again (tool calls
    end a monologue; only work that brings progress ends the other streaks)."""
    text = event.text.strip()
    state.messages_since_call += 1
    state.empty_replies = state.empty_replies + 1 if not text else 0
    fingerprint = failure_fingerprint(text[:FAILURE_TEXT_LIMIT]) if text else ""
    last, count = state.message_streak
    count = count + 1 if text and fingerprint == last else (1 if text else 0)
    state.message_streak = (fingerprint, count)
    chant = _chant(text, config)
    reason = None
    if chant is not None:
        reason = f"One reply repeats the same sentence {chant[1]} times: {chant[0][:200]}"
    elif state.empty_replies >= config.empty_reply_limit:
        reason = f"{state.empty_replies} empty replies in a row"
    elif count >= config.repeated_message_limit:
        reason = f"The same reply {count} times in a row: {first_line(text)}"
    elif state.messages_since_call >= config.monologue_limit:
        reason = f"{state.messages_since_call} replies in a row without a tool call"
    return Verdict("loop_pattern", reason, excerpt(text)) if reason else None


def warning(state: SessionState, config: DetectionConfig) -> Warning | None:
    if state.empty_replies == config.empty_reply_limit - 1:
        return (
            "empty",
            "loop_pattern",
            f"{state.empty_replies} empty replies in a row",
            "Say what you are doing, or use a tool; another empty reply pauses this session "
            "for a human.",
        )
    fingerprint, count = state.message_streak
    if count == config.repeated_message_limit - 1:
        return (
            f"message:{fingerprint}",
            "loop_pattern",
            f"The same reply {count} times in a row",
            "Do something different; the same reply once more pauses this session for a human.",
        )
    if state.messages_since_call == config.monologue_limit - 1:
        return (
            "monologue",
            "loop_pattern",
            f"{state.messages_since_call} replies in a row without a tool call",
            "Act (use a tool) or finish; another reply without one pauses this session for a "
            "human.",
        )
    return None
