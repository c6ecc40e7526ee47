"""Agent text turns: a monologue with no work, empty replies, the same reply again, and a reply
that says the same thing over and over."""

from __future__ import annotations

from yokeflow_agent.contract import AgentMessage

from .config import DetectionConfig
from .fingerprints import FAILURE_TEXT_LIMIT, excerpt, failure_fingerprint, first_line
from .state import SessionState, Verdict, Warning

_CHANT_TEXT_LIMIT = 20_000  # a reply's first characters are enough to see it chant
_CHANT_WORDS = 40  # shorter replies are too short to tell


def _chant(text: str, config: DetectionConfig) -> float | None:
    """How many times over a reply says the same thing, when it is `reply_repeat_limit` or
    more: its word trigrams against its distinct ones. Prose, code, tables and JSON measured
    stay under 3 (docs/architecture.md); a sentence, a few sentences or a word chanted dozens
    of times reach dozens."""
    words = text[:_CHANT_TEXT_LIMIT].lower().split()
    if len(words) < _CHANT_WORDS:
        return None
    trigrams = list(zip(words, words[1:], words[2:], strict=False))
    times = len(trigrams) / len(set(trigrams))
    return times if times >= config.reply_repeat_limit else None


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
        reason = f"One reply says the same thing {chant:.0f} times over: {first_line(text)[:200]}"
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
