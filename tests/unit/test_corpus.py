"""The detector against the corpus of real and reported agent sessions (tests/corpus/).

Healthy sessions must never be stopped; stuck ones must be stopped, and not before their stuck
part began. Sessions the current rules still get wrong are listed in KNOWN, each marked
xfail(strict=False) with its class, so the suite stays green while `bench/detection.py` and this
file's report show which ones remain; an entry is removed once the rules get it right.
"""

from __future__ import annotations

from typing import Any

import pytest

from yokeflow_intervention.services.detector.rules import DetectionConfig
from yokeflow_intervention.services.detector.sessions import ReplayProblem, read_event_file
from yokeflow_intervention.shared.settings import Settings

from ..corpus.build import render
from ..corpus.judge import CORPUS, first_stop, judge, load_manifest

MANIFEST = load_manifest()
CONFIG = DetectionConfig.from_settings(Settings())

# Disagreements with the rules as they stand, by session id: what goes wrong and why. Empty:
# every session, tuning and held-out, agrees today (bench/detection.py prints the figures).
KNOWN: dict[str, str] = {}


def _cases(verdict: str) -> list[Any]:
    cases = []
    for entry in MANIFEST:
        if entry["verdict"] != verdict:
            continue
        marks = []
        if entry["id"] in KNOWN:
            marks.append(pytest.mark.xfail(strict=False, reason=KNOWN[entry["id"]]))
        cases.append(pytest.param(entry, id=entry["id"], marks=marks))
    return cases


def test_the_corpus_files_are_built_from_the_catalogue():
    """events/ and manifest.json are what `python -m tests.corpus.build` writes today."""
    for name, text in render().items():
        assert (CORPUS / name).read_text(encoding="utf-8") == text, (
            f"tests/corpus/{name} is stale: run python -m tests.corpus.build"
        )


def test_every_session_says_where_it_comes_from_and_why_it_is_judged_so():
    assert len(MANIFEST) >= 30
    assert len({entry["id"] for entry in MANIFEST}) == len(MANIFEST)
    for entry in MANIFEST:
        assert entry["source"] and entry["why"] and entry["licence"], entry["id"]
        assert entry["verdict"] in ("stuck", "healthy"), entry["id"]
        assert entry["kind"] in ("transcript", "peer-test", "issue"), entry["id"]
        assert entry["set"] == ("heldout" if entry["heldout"] else "tuning"), entry["id"]
        if entry["verdict"] == "stuck":
            assert entry["stuck_from_seq"], f"{entry['id']}: where does the stuck part begin?"
        if entry["kind"] == "transcript":
            assert (CORPUS / entry["raw"]).is_file(), entry["id"]
        problems = [
            p for p in read_event_file(CORPUS / entry["file"]) if isinstance(p, ReplayProblem)
        ]
        assert not problems, f"{entry['id']}: not contract v1: {problems}"
    assert set(KNOWN) <= {entry["id"] for entry in MANIFEST}


def test_the_held_out_set_is_large_enough_to_say_something():
    """At least 25 sessions collected after the rules were tuned, healthy and stuck, with real
    transcripts among them; their verdicts were committed before their first replay."""
    heldout = [entry for entry in MANIFEST if entry["set"] == "heldout"]
    assert len(heldout) >= 25
    assert {entry["verdict"] for entry in heldout} == {"healthy", "stuck"}
    assert any(entry["kind"] == "transcript" for entry in heldout)


@pytest.mark.parametrize("entry", _cases("healthy"))
def test_healthy_sessions_are_not_stopped(entry: dict[str, Any]):
    stop = first_stop(CORPUS / entry["file"], CONFIG)
    assert stop is None, (
        f"{entry['id']} ({entry['class']}) stopped at seq {stop.event_seq} by {stop.trigger}: "
        f"{stop.reason}"
    )


@pytest.mark.parametrize("entry", _cases("stuck"))
def test_stuck_sessions_are_stopped_once_stuck(entry: dict[str, Any]):
    judgement = judge(entry, first_stop(CORPUS / entry["file"], CONFIG))
    assert judgement.outcome == "agree", judgement.describe()
