"""What the detector's hot path does cheaply must mean exactly what the slow way meant."""

from __future__ import annotations

import asyncio
import gc
import weakref

from yokeflow_agent.contract import Verdict

from yokeflow_intervention.services.detector.service import _CONTINUE
from yokeflow_intervention.shared.collector import freeze_survivors


def test_the_continue_verdict_is_the_models_own_json() -> None:
    for seq in (1, 42, 10**9):
        dumped = Verdict(seq=seq, decision="continue").model_dump_json(exclude_none=True)
        assert _CONTINUE % seq == dumped.encode()
        assert Verdict.model_validate_json(_CONTINUE % seq).decision == "continue"


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freezing_collects_garbage_first_and_keeps_survivors_out_of_the_walk() -> None:
    cycle_a, cycle_b = _Node(), _Node()
    cycle_a.other, cycle_b.other = cycle_b, cycle_a
    gone = weakref.ref(cycle_a)
    del cycle_a, cycle_b  # garbage only a collection finds: it must not be frozen with the rest
    kept = [_Node() for _ in range(1000)]
    try:
        asyncio.run(freeze_survivors())
        assert gone() is None
        assert gc.get_freeze_count() >= len(kept)
        assert not any(obj is kept[0] for obj in gc.get_objects())  # no collection walks it
    finally:
        gc.unfreeze()
    assert any(obj is kept[0] for obj in gc.get_objects())
