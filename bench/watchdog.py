"""What the watchdog costs per open session (not a test): memory and the sweep's CPU.

1. Memory: the bytes one open session's deadline holds (its watch tuple, its strings, its
   dictionary slot, and the service's note of the deadline it last wrote), measured with
   tracemalloc over N sessions: half idle after a tool result (waiting on silence), half with a
   call open. In-run baseline: the bytes of the session's
   state in the detector (SessionState after the same events), which an evicted session gives
   up while its deadline stays.
2. CPU: one sweep of a partition's deadlines when nothing is due (what every clock tick costs)
   over N sessions, against an in-run baseline of iterating a dict of the same size. Also
   what one event costs the watchdog (observe) next to the rules (evaluate).
3. Stored form: bytes of a deadline entry in the checkpoint bucket.

Usage: python bench/watchdog.py [--sessions 100000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from yokeflow_agent.contract import AgentEvent, parse_agent_event  # noqa: E402

from yokeflow_intervention.services.detector.rules import (  # noqa: E402
    DetectionConfig,
    SessionState,
    evaluate,
)
from yokeflow_intervention.services.detector.watchdog import (  # noqa: E402
    Watches,
    observe,
    watch_json,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def events_of(session: str, open_call: bool) -> list[AgentEvent]:
    def event(seq: int, kind: str, **fields: Any) -> AgentEvent:
        ts = (T0 + timedelta(seconds=seq)).isoformat()
        ids = {"event_id": f"{session}-{seq}", "project_id": "bench", "session_id": session}
        return parse_agent_event({"v": 1, "type": kind, "seq": seq, "ts": ts, **ids, **fields})

    found = [
        event(1, "session_started", workspace="/w"),
        event(2, "tool_call", tool="Bash", input={"command": "npm test"}, call_id="c1"),
        event(3, "tool_result", tool="Bash", call_id="c1", result={"ok": True, "output": "ok"}),
    ]
    if open_call:
        build = {"command": "npm run build"}
        found.append(event(4, "tool_call", tool="Bash", input=build, call_id="c2"))
    return found


def best_of(runs: int, work: Any) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100_000)
    n = parser.parse_args().sessions
    config = DetectionConfig()
    sessions = [(f"s{i:06d}", events_of(f"s{i:06d}", i % 2 == 1)) for i in range(n)]
    now = T0.timestamp()

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    watches = Watches()
    stored: dict[tuple[str, str], float] = {}  # the service's note of each written deadline
    for session, events in sessions:
        watch = None
        for seq, event in enumerate(events, start=1):
            watch = observe(watch, event, now + seq, seq, config.watchdog)
        watches.set(("bench", session), watch)
        if watch is not None:
            stored[("bench", session)] = watch[0]
    watch_bytes = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    states = []
    for session, events in sessions[:10_000]:
        state = SessionState.new("bench", session, config)
        for event in events:
            evaluate(state, event, config)
        states.append(state)
    state_bytes = (tracemalloc.get_traced_memory()[0] - before) / len(states)
    tracemalloc.stop()

    plain = {key: 0.0 for key in watches}
    sweep = best_of(5, lambda: watches.due(now))
    baseline = best_of(5, lambda: [k for k, v in plain.items() if v > now + 1e9])
    tracked = sum(gc.is_tracked(watches.get(key)) for key in list(watches)[:1000])

    sample = [e for _, events in sessions[:2000] for e in events]
    watchdog = config.watchdog
    observing = best_of(3, lambda: [observe(None, e, now, 1, watchdog) for e in sample])
    per_observe = observing / len(sample)
    fresh = [SessionState.new("bench", s, config) for s, _ in sessions[:2000]]
    pairs = [(fresh[i // 4 if i // 4 < len(fresh) else 0], e) for i, e in enumerate(sample)]
    start = time.perf_counter()
    for state, event in pairs:
        evaluate(state, event, config)
    per_evaluate = (time.perf_counter() - start) / len(pairs)
    stored = statistics.mean(len(watch_json(watches.get(k) or ())) for k in list(watches)[:1000])

    print(f"open sessions: {n:,} (half waiting on silence, half with a call open)")
    print(
        f"memory per deadline entry: {watch_bytes:,.0f} B "
        f"(the session's rule state, baseline: {state_bytes:,.0f} B)"
    )
    print(f"deadline entries tracked by the garbage collector: {tracked} of 1000")
    print(
        f"sweep of {n:,} deadlines, nothing due: {sweep * 1e3:.2f} ms "
        f"(iterating a dict of that size: {baseline * 1e3:.2f} ms); at one tick per 5 s, "
        f"{sweep / 5 * 100:.2f} % of a core"
    )
    print(f"per event: watchdog {per_observe * 1e6:.2f} us, rules {per_evaluate * 1e6:.2f} us")
    print(f"stored deadline entry: {stored:.0f} B of JSON (+ key)")


if __name__ == "__main__":
    main()
