"""Write the corpus's event files and manifest from `catalogue.py`
(run: python -m tests.corpus.build).

Transcripts go through exactly the converter `yokeflow-intervention detect` uses on a user's own
files; scripted sessions are written as they are built. The output is committed, so a reader
sees the events the detector was judged on, and `test_corpus.py` checks it is current.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from yokeflow_intervention.services.detector.sessions import ReplayProblem
from yokeflow_intervention.services.detector.transcripts import read_transcript

from .catalogue import SESSIONS, Session

HERE = Path(__file__).resolve().parent
RAW = HERE / "raw"
EVENTS = HERE / "events"
MANIFEST = HERE / "manifest.json"


def session_events(session: Session) -> tuple[list[dict[str, Any]], int | None]:
    """The session's events as JSON objects, and the seq where its stuck part starts."""
    if session.script is not None:
        script = session.script(session.id)
        return script.events, script.stuck_from
    assert session.raw is not None, session.id
    events: list[dict[str, Any]] = []
    for item in read_transcript(RAW / session.raw, None, "corpus"):
        if isinstance(item, ReplayProblem):
            raise ValueError(f"{session.id}: {item.reason}")
        events.append(item.model_dump(mode="json", exclude_none=True))
    for cut in session.cuts:
        _close_the_cut(events, cut)
    stuck_from = None
    if session.stuck_from_call is not None:
        calls = [e["seq"] for e in events if e["type"] == "tool_call"]
        stuck_from = calls[session.stuck_from_call - 1]
    return events, stuck_from


def _close_the_cut(events: list[dict[str, Any]], cut: int) -> None:
    """Move the events after seq `cut` to follow it by one second, keeping their spacing."""
    before = next(e for e in events if e["seq"] == cut)
    after = [e for e in events if e["seq"] > cut]
    if not after:
        return
    shift = datetime.fromisoformat(after[0]["ts"]) - datetime.fromisoformat(before["ts"])
    shift -= timedelta(seconds=1)
    for event in after:
        moved = datetime.fromisoformat(event["ts"]) - shift
        event["ts"] = moved.isoformat().replace("+00:00", "Z")


def render() -> dict[str, str]:
    """Every file the corpus consists of, by path relative to this folder, as text."""
    files: dict[str, str] = {}
    manifest = []
    for session in SESSIONS:
        events, stuck_from = session_events(session)
        name = f"events/{session.id}.jsonl"
        files[name] = "".join(
            json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in events
        )
        manifest.append(
            {
                "id": session.id,
                "file": name,
                "kind": session.kind,
                "agent": session.agent,
                "source": session.source,
                "licence": session.licence,
                "raw": f"raw/{session.raw}" if session.raw else None,
                "set": "heldout" if session.heldout else "tuning",
                "heldout": session.heldout,
                "class": session.cls,
                "verdict": session.verdict,
                "stuck_from_seq": stuck_from,
                "events": len(events),
                "why": session.why,
            }
        )
    files["manifest.json"] = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    return files


def main() -> int:
    for name, text in render().items():
        path = HERE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    print(f"wrote {len(SESSIONS)} sessions to {EVENTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
