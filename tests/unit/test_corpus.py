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

# Disagreements with the rules as they stand, by session id: what goes wrong and why.
KNOWN: dict[str, str] = {
    "oh-monologue-broken-by-work": "work_between_replies: work between equal replies is no streak",
    "gemini-content-chanting": "repetition_in_reply: replies are only compared whole",
    "gemini-15593-chanting-reply": "repetition_in_reply: replies are only compared whole",
    "omp-8701-ill-do-it": "repetition_in_reply: replies are only compared whole",
    "cc-82803-court": "repetition_in_reply: replies are only compared whole",
    "superplane-4123-three-call-cycle": "cycle_period_3: only periods 1 and 2 are recognised",
    "nanobot-5344-env-var-spiral": "cycle_period_6: only periods 1 and 2 are recognised",
    "xum-1046-polling-exited-process": "volatile_ids: elapsed_ms and pids are not masked",
    "traceroost-215-tests-after-each-fix": "work_between_replies: edits between equal replies",
    "fusion-2404-long-iterative-debugging": "long_run: failing tests while converging, error rate",
    "cc-60894-edit-misses-then-succeeds": "error_rate_phase: rejected edits that then succeed",
    "background-agents-120-long-commands": "long_run: the 600 s session_duration default",
    "cc-bookminder-coordinator-first-hour": "long_run: the 600 s session_duration default",
    "openclaw-89090-send-loop-volatile-id": "volatile_ids: message ids and epoch run ids unmasked",
    "deerflow-2511-rnaseq-batch": "distinct_work: a batch past the 600 s session_duration default",
    "stella-6480-back-to-the-same-command": "loop_after_detour: runs of 3 under the threshold of 4",
    "openhands-sdk-762-poll-every-5-minutes": "background_polling: the 600 s session_duration",
}


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
        if entry["verdict"] == "stuck":
            assert entry["stuck_from_seq"], f"{entry['id']}: where does the stuck part begin?"
        if entry["kind"] == "transcript":
            assert (CORPUS / entry["raw"]).is_file(), entry["id"]
        problems = [
            p for p in read_event_file(CORPUS / entry["file"]) if isinstance(p, ReplayProblem)
        ]
        assert not problems, f"{entry['id']}: not contract v1: {problems}"
    assert set(KNOWN) <= {entry["id"] for entry in MANIFEST}


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
