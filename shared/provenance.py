"""Where a piece of shown text came from, and how text an agent could influence is shown.

Three kinds of text reach a human or the next agent session:

- **human**: the notes an authenticated person wrote when resuming (the API's token holder, an
  operator at the CLI). Only these are shown as notes.
- **automatic**: what a service says about its own work (automatic recovery's resume notes).
  Written by the product, but it repeats facts an agent can shape (a listener's command line
  read from the OS, a module name from the agent's error), so it is shown quoted, like agent
  text, under a heading of its own.
- **agent**: anything an agent published or chose (errors, reasons built around its commands,
  task descriptions, its processes' command lines).

Everywhere it is shown (the resume brief, the dashboard, every notification channel, the live
terminal) agent text is marked as such and quoted, and its control and bidirectional-formatting
characters are replaced by a visible `<U+XXXX>`, so it cannot start a line of its own, restyle a
terminal or reverse the text around it. The dashboard repeats `neutralise` in
`web/src/format.ts` (the same characters, the same replacement).
"""

from __future__ import annotations

import re
from typing import Literal

from yokeflow_agent.contract import AUTO_RECOVERY_RESOLVER

__all__ = [
    "AGENT_MARK",
    "NotesSource",
    "neutralise",
    "notes_source",
    "one_line",
    "quoted_line",
]

NotesSource = Literal["human", "automatic"]

# How a label says that what follows came from an agent (channels, the live terminal).
AGENT_MARK = "agent text"

# C0 and C1 controls (tab and newline are handled by the callers), DEL, and every character that
# changes the direction or the lines of the text around it: the bidi embeddings, overrides and
# isolates, the implicit marks, the Arabic letter mark, line and paragraph separators.
_HIDDEN = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _visible(match: re.Match[str]) -> str:
    return f"<U+{ord(match.group()):04X}>"


def neutralise(text: str) -> str:
    """`text` with every control and bidi character shown as `<U+XXXX>` (newlines and tabs kept:
    quoted blocks keep their lines)."""
    return _HIDDEN.sub(_visible, text)


def one_line(text: str) -> str:
    """`neutralise`d and on one line: a line break becomes ` ⏎ `, so agent text inside a line
    can never begin a line of its own (an `Action Required:` in a plain-text email)."""
    return " ⏎ ".join(part.strip() for part in neutralise(text).replace("\t", " ").splitlines())


def quoted_line(text: str) -> str:
    """Agent text inside a line of ours: `one_line`, in quotation marks, so where it begins and
    ends is plain (channels, the live terminal, the CLI)."""
    return f"“{one_line(text)}”"


def notes_source(resolved_by: str | None) -> NotesSource:
    """The resolver says whose notes they are: automatic recovery resumes under a name no human
    may use (the API refuses it), so every other resolver's notes are a human's."""
    return "automatic" if resolved_by == AUTO_RECOVERY_RESOLVER else "human"
