"""The rules' shortcuts against what they stand for: every per-event cost cut must leave each
verdict, reason and warning as the plain computation gives it."""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import pytest

from yokeflow_intervention.services.detector.rules import (
    DetectionConfig,
    SessionState,
    call_signature,
    failure_fingerprint,
    fingerprints,
    loops,
)
from yokeflow_intervention.services.detector.rules.fingerprints import _normalise
from yokeflow_intervention.services.detector.rules.state import Call, Completed


def _plain_signature(tool: str | None, tool_input: dict[str, Any] | None) -> str:
    """A signature as the rules have always made it, with a JSON encoder per call (signatures
    are stored in snapshots): the whitespace normalisation is the rules' own."""
    ignore = DetectionConfig().signature_ignore_keys
    kept = {k: v for k, v in (tool_input or {}).items() if k not in ignore}
    canonical = json.dumps({"tool": tool, "input": _normalise(kept)}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@pytest.mark.parametrize(
    ("tool", "tool_input"),
    [
        ("Bash", {"command": "npm  test\n"}),
        ("Bash", {"command": "ls", "description": "list", "timeout": 12000}),
        ("Edit", {"file_path": "/a/b.py", "old_string": "x\t= 1", "new_string": "x = 2"}),
        ("Write", {"z": [1, 2.5, None, True, {"b": " c ", "a": ["d  e"]}], "a": {}}),
        ("Read", {"path": "café ünïcode ✓ \u2028", "offset": -3, "big": 10**30}),
        ("Task", {"nested": {"deep": {"deeper": [[], [{}], "x  y"]}}, "f": 1e-9}),
        (None, None),
        ("mcp__x", {}),
    ],
)
def test_a_call_signature_is_the_canonical_json_it_always_was(
    tool: str | None, tool_input: dict[str, Any] | None
) -> None:
    assert call_signature(tool, tool_input, DetectionConfig().signature_ignore_keys) == (
        _plain_signature(tool, tool_input)
    )


def _calls(rng: random.Random, count: int) -> list[Call]:
    """Finished calls from a few signatures and outcomes, at random or going round a cycle with
    detours, so runs, repeats and cycles of every length occur."""
    cycle = [rng.choice("abcdefgh") for _ in range(rng.randint(1, 6))]
    at, calls = 0.0, []
    for i in range(count):
        at += rng.choice([1.0, 30.0, 90.0])
        signature = cycle[i % len(cycle)] if rng.random() < 0.95 else rng.choice("abcdefgh")
        ok = signature < "e" or rng.random() < 0.1
        calls.append((signature, ok, 0 if ok else 1, "f", rng.random() < 0.1, at))
    return calls


def test_the_loop_rules_skip_only_what_a_full_scan_finds_nothing_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_recurs` lets most results skip the scans of the last calls; over random sequences
    (and every loop threshold) the rules say exactly what they say with the scans always run."""
    rng = random.Random(3)
    for _ in range(5000):
        n = rng.randint(1, 9)
        config = DetectionConfig(loop_repeat_threshold=n)
        state = SessionState.new("p", "s", config)
        longest = loops.remembered(config)
        state.completed = _calls(rng, rng.choice([longest, rng.randint(1, longest)]))
        state.outcomes = {state.last_outcome: rng.randint(0, n)}
        last = Completed._make(state.completed[-1])
        found = (loops.repeated_calls(state, config), loops.result_warning(state, last, config))
        with monkeypatch.context() as patched:
            patched.setattr(loops, "_recurs", lambda calls, n: True)
            full = (loops.repeated_calls(state, config), loops.result_warning(state, last, config))
        assert found == full


def _texts(rng: random.Random) -> list[str]:
    """Outputs with and without id fields, in JSON, logs and prose, and random ones."""
    crafted = [
        '{"id": 42, "messageId": "om_5a3f1", "valid": true}',
        "run_id=r-12 paid=3 user-id: abc",
        'ID : "X-1"  Id=7 aId=9 said: hi',
        "msg_01ABCDEFGHijklmnop42 request id 2026-11-01T00:00:00Z pid 4242",
        "valid provide inside width: 3; id\n= 5; ID\t:x",
        "nothing to see",
        "",
    ]
    alphabet = 'idID:=" _-xyz09\n'
    made = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(3000)]
    return crafted + made


def test_the_id_field_hint_skips_only_texts_without_an_id_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`_ID_FIELD_HINT` spares most texts the id field scan; every fingerprint is the one the
    scan always run gives."""
    texts = _texts(random.Random(5))
    found = [failure_fingerprint(text) for text in texts]
    monkeypatch.setattr(fingerprints, "_ID_FIELD_HINT", re.compile(""))
    assert found == [failure_fingerprint(text) for text in texts]
