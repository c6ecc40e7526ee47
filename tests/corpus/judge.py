"""Replay every corpus session through the detector's own replay path and compare with the
manifest's verdict. Shared by `bench/detection.py` (which prints the figures) and
`tests/unit/test_corpus.py` (which asserts them), so both judge the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yokeflow_agent.contract import Intervention

from yokeflow_intervention.services.detector.rules import DetectionConfig
from yokeflow_intervention.services.detector.sessions import replay
from yokeflow_intervention.services.detector.transcripts import read_transcript
from yokeflow_intervention.shared.settings import Settings

CORPUS = Path(__file__).resolve().parent

# agree: the verdict matches (a stuck session stopped inside its stuck part);
# false_stop: a healthy session stopped; miss: a stuck session never stopped;
# early: a stuck session stopped before it was stuck (the right verdict for the wrong reason).
Outcome = Literal["agree", "false_stop", "miss", "early"]


@dataclass(frozen=True)
class Judgement:
    entry: dict[str, Any]
    outcome: Outcome
    stop: Intervention | None

    @property
    def id(self) -> str:
        return str(self.entry["id"])

    def describe(self) -> str:
        """One line for a disagreement: what was expected, what the detector did and why."""
        entry = self.entry
        head = f"{self.outcome:<10} {self.id} [{entry['class']}, {entry['kind']}]"
        if self.stop is None:
            return f"{head}: never stopped; stuck from seq {entry['stuck_from_seq']}"
        where = f"stopped at seq {self.stop.event_seq} by {self.stop.trigger}"
        if self.outcome == "early":
            where += f", before the stuck part began at seq {entry['stuck_from_seq']}"
        return f"{head}: {where}: {self.stop.reason}"


def load_manifest(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    entries = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
    assert isinstance(entries, list)
    return entries


def first_stop(path: Path, config: DetectionConfig) -> Intervention | None:
    """The first intervention `yokeflow-intervention detect` would print for this file."""
    return next(iter(replay(read_transcript(path), config)), None)


def judge(entry: dict[str, Any], stop: Intervention | None) -> Judgement:
    if entry["verdict"] == "healthy":
        return Judgement(entry, "agree" if stop is None else "false_stop", stop)
    if stop is None:
        return Judgement(entry, "miss", None)
    stuck_from = entry.get("stuck_from_seq") or 0
    early = stop.event_seq is not None and stop.event_seq < stuck_from
    return Judgement(entry, "early" if early else "agree", stop)


def judge_corpus(config: DetectionConfig | None = None, corpus: Path = CORPUS) -> list[Judgement]:
    config = config or DetectionConfig.from_settings(Settings())
    return [
        judge(entry, first_stop(corpus / entry["file"], config)) for entry in load_manifest(corpus)
    ]


def tally(judgements: Iterable[Judgement], key: str) -> dict[str, dict[str, int]]:
    """Counts of each outcome, by the manifest field `key` (class, kind, agent, verdict)."""
    table: dict[str, dict[str, int]] = {}
    for judgement in judgements:
        row = table.setdefault(
            str(judgement.entry[key]),
            {"sessions": 0, "agree": 0, "false_stop": 0, "miss": 0, "early": 0},
        )
        row["sessions"] += 1
        row[judgement.outcome] += 1
    return dict(sorted(table.items()))
