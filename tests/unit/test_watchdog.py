"""The watchdog's timing rules on the pure functions, both sides of every limit, and `detect`
replaying silences from files (clock lines and --now)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

from yokeflow_agent.contract import SessionControl

from yokeflow_intervention.services.detector.sessions import (
    Clock,
    SessionBook,
    read_event_file,
    replay,
)
from yokeflow_intervention.services.detector.watchdog import (
    WatchdogConfig,
    observe,
    watch_from_json,
    watch_json,
)

from .test_rules import T0, Agent, config

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "contract" / "examples"


def limits(**overrides: Any):
    values: dict[str, Any] = {"tool_call_timeout": 60.0, "silence_timeout": 30.0}
    return config(**(values | overrides))


def at(seconds: float) -> float:
    return (T0 + timedelta(seconds=seconds)).timestamp()


def test_a_tool_call_open_past_its_limit_is_stopped_and_named_not_a_second_before():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "npm start"}, call_id="c1"))
    opened = agent.clock.timestamp()
    assert book.tick(0, opened + 59.9) == []  # below the limit: nothing
    [stop] = book.tick(0, opened + 60.0)
    assert stop.trigger == "tool_call_timeout"
    assert stop.reason == "Tool call open for 60 s with no result (limit 60 s): Bash npm start"
    assert stop.event_seq == 2 and stop.task is not None and stop.task.id == "7"
    assert book.tick(0, opened + 600) == []  # stopped once
    # The stopped session's next events are not judged again.
    late = agent.event("tool_result", advance=700, call_id="c1", tool="Bash", result={"ok": True})
    assert book.feed(late).intervention is None


def test_an_open_session_with_no_event_is_stopped_for_silence_naming_its_last_event():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "npm test"}, call_id="c1"))
    book.feed(agent.event("tool_result", call_id="c1", tool="Bash", result={"ok": True}))
    last = agent.clock.timestamp()
    assert book.tick(0, last + 29.5) == []
    [stop] = book.tick(0, last + 30)
    assert stop.trigger == "silence"
    assert stop.reason == (
        "No event for 30 s (limit 30 s) since its last event, seq 3: tool_result (ok) of Bash"
    )


def test_the_stop_id_is_the_same_for_the_same_silence():
    def stop_of() -> str:
        book, agent = SessionBook(limits()), Agent()
        book.feed(agent.start())
        [stop] = book.tick(0, agent.clock.timestamp() + 100)
        return stop.intervention_id

    assert stop_of() == stop_of()


def test_while_a_call_is_open_silence_does_not_count_and_an_override_gives_a_long_call_time():
    cfg = limits(tool_call_timeouts={r"^Bash npm run e2e": 600.0})
    book, agent = SessionBook(cfg), Agent()
    book.feed(agent.start())
    e2e = {"command": "npm run e2e"}
    book.feed(agent.event("tool_call", tool="Bash", input=e2e, call_id="c1"))
    opened = agent.clock.timestamp()
    assert book.tick(0, opened + 599) == []  # past silence and the default call limit
    result = agent.event("tool_result", advance=598, call_id="c1", result={"ok": True})
    assert book.feed(result).intervention is None
    # An ordinary call next still gets the default limit.
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "make"}, call_id="c2"))
    [stop] = book.tick(0, agent.clock.timestamp() + 60)
    assert stop.trigger == "tool_call_timeout" and stop.reason.endswith("Bash make")


def test_heartbeats_keep_no_session_alive_and_an_ended_session_is_never_silent():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    started = agent.clock.timestamp()
    for _ in range(5):
        book.feed(agent.event("heartbeat", advance=5))
    [stop] = book.tick(0, started + 30)
    assert stop.trigger == "silence" and "session_started" in stop.reason

    book, agent = SessionBook(limits()), Agent("s2")
    book.feed(agent.start())
    book.feed(agent.event("session_ended"))
    assert book.tick(0, agent.clock.timestamp() + 10_000) == []
    assert len(book.watches_of(0)) == 0


def test_parallel_calls_and_calls_without_ids_close_the_right_call():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Read", input={"file_path": "a"}, call_id="r1"))
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "sleep 999"}))
    book.feed(agent.event("tool_result", tool="Read", call_id="r1", result={"ok": True}))
    [stop] = book.tick(0, agent.clock.timestamp() + 60)
    assert stop.reason.endswith("Bash sleep 999")
    book, agent = SessionBook(limits()), Agent("s2")
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "ls"}))
    book.feed(agent.event("tool_result", tool="Bash", result={"ok": True}))
    [stop] = book.tick(0, agent.clock.timestamp() + 30)
    assert stop.trigger == "silence"  # the call without an id was closed by its result


def test_a_limit_of_zero_turns_it_off():
    book, agent = SessionBook(limits(silence_timeout=0, tool_call_timeout=0)), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "x"}, call_id="c"))
    assert book.tick(0, math.inf) == []


def test_a_stop_by_the_rules_clears_the_deadline():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    stops = []
    for _ in range(4):
        for event in agent.run("npm test", ok=False, error="FAIL"):
            stops.append(book.feed(event).intervention)
    assert [s.trigger for s in stops if s] == ["retry_limit"]
    assert len(book.watches_of(0)) == 0
    assert book.tick(0, math.inf) == []


def test_an_event_that_comes_after_its_deadline_is_the_silence_it_ended():
    """Live, a clock tick between would have stopped it: the replay judges the same."""
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    late = agent.event("tool_call", advance=31, tool="Bash", input={"command": "ls"})
    stop = book.feed(late).intervention
    assert stop is not None and stop.trigger == "silence"


def test_a_watch_is_small_and_survives_its_stored_form():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "npm start"}, call_id="c1"))
    watch = book.watches_of(0).get(("p1", "s1"))
    assert watch is not None and type(watch) is tuple
    assert watch_from_json(watch_json(watch)) == watch
    assert len(watch_json(watch)) < 300
    ended = observe(watch, agent.event("session_ended"), 0.0, 9, WatchdogConfig())
    assert ended is None


def test_a_pause_with_a_later_trigger_reads_as_a_pause_in_every_client():
    """`trigger` keeps to the first release's triggers (its clients read them as a closed set);
    `cause` names the new one; an unknown trigger still parses."""
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    [stop] = book.tick(0, agent.clock.timestamp() + 30)
    control = SessionControl.paused_by(stop, stop.detected_at)
    assert control.trigger is None and control.cause == "silence"
    future = SessionControl.model_validate({"state": "paused", "trigger": "a_later_trigger"})
    assert future.state == "paused" and future.trigger == "a_later_trigger"


def test_detect_replays_the_silent_cases_from_files():
    expected = json.loads((EXAMPLES / "expected.json").read_text())
    for name in ("hung_tool_call.jsonl", "silent_session.jsonl"):
        stops = list(replay(read_event_file(EXAMPLES / name), config()))
        got = [
            {"session_id": s.session_id, "trigger": s.trigger, "event_seq": s.event_seq}
            for s in stops
        ]
        assert got == expected[name], name


def test_detect_judges_the_end_of_a_file_at_now(tmp_path: Path):
    agent = Agent()
    path = tmp_path / "quiet.jsonl"
    events = [
        agent.start(),
        agent.event("tool_call", tool="Read", input={"file_path": "a.py"}, call_id="c"),
        agent.event("tool_result", call_id="c", tool="Read", result={"ok": True, "output": "x"}),
    ]
    path.write_text("".join(e.model_dump_json() + "\n" for e in events))
    items = list(read_event_file(path))
    assert list(replay(items, limits())) == []  # the file alone says no time passed
    last = agent.clock
    assert list(replay(items, limits(), now=last + timedelta(seconds=29))) == []
    [stop] = replay(items, limits(), now=last + timedelta(seconds=30))
    assert stop.trigger == "silence" and stop.event_seq == 3  # the next model turn never came
    clock = {"type": "clock", "ts": (last + timedelta(seconds=31)).isoformat()}
    path.write_text(path.read_text() + json.dumps(clock) + "\n")
    items = list(read_event_file(path))
    assert isinstance(items[-1], Clock)
    assert [s.trigger for s in replay(items, limits())] == ["silence"]


def test_a_session_waiting_for_a_person_is_not_stalled_and_a_human_is_told_once():
    book, agent = SessionBook(limits(waiting_notification_after=120.0)), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "rm -rf dist"}, call_id="c"))
    asked = agent.event(
        "waiting", kind="permission", prompt="Allow Bash: rm -rf dist?", tool="Bash"
    )
    book.feed(asked)
    since = agent.clock.timestamp()
    assert book.tick(0, since + 119) == []  # past the call's limit and silence: no stop
    [notice] = book.tick(0, since + 120)
    assert notice.trigger == "waiting" and notice.event_seq == 3
    assert notice.reason == "Waiting 120 s for a person: permission: Allow Bash: rm -rf dist?"
    assert book.tick(0, since + 400) == []  # told once; still not stopped
    assert book.get("p1", "s1") is not None and book.get("p1", "s1").intervened is None
    # Answered: the call runs from now, with its own limit again.
    answered = agent.event("tool_result", advance=300, call_id="c", result={"ok": True})
    book.feed(answered)
    [stop] = book.tick(0, agent.clock.timestamp() + 30)
    assert stop.trigger == "silence"


def test_an_answered_wait_gives_the_waiting_call_its_whole_limit_again():
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "make"}, call_id="c"))
    book.feed(agent.event("waiting", advance=2, kind="permission", prompt="Allow make?"))
    book.feed(agent.event("heartbeat", advance=400))  # still waiting: a heartbeat answers nothing
    assert [n.trigger for n in book.tick(0, agent.clock.timestamp())] == ["waiting"]  # no stop
    book.feed(agent.event("agent_message", advance=1, text="Approved, running make"))
    resumed = agent.clock.timestamp()
    assert book.tick(0, resumed + 59) == []
    [stop] = book.tick(0, resumed + 60)
    assert stop.trigger == "tool_call_timeout"


def test_a_replay_reports_no_waiting_notice_as_a_verdict():
    agent = Agent()
    events = [agent.start(), agent.event("waiting", kind="idle", prompt="Claude is waiting")]
    assert list(replay(events, limits(), now=agent.clock + timedelta(hours=3))) == []


def test_a_denied_permission_leaves_no_call_open():
    """Claude Code reports no result for a call whose permission was denied: when the turn
    ends without it, the call asked about is no longer open, and with the agent's reply the
    turn is its user's: a quiet user is not a stuck session (neither limit applies)."""
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "rm -rf /"}, call_id="c"))
    book.feed(agent.event("waiting", kind="permission", prompt="Allow Bash: rm -rf /", tool="Bash"))
    book.feed(agent.event("agent_message", advance=5, text="I was not allowed to run it."))
    assert book.watches_of(0).get(("p1", "s1"))[7] == ()  # type: ignore[index]
    assert book.tick(0, agent.clock.timestamp() + 3600) == []


def test_a_denied_permission_followed_by_another_call_leaves_no_call_open():
    """Denied, the agent tries something else at once: the call asked about gets no result
    ever, and must not stop the session as hung a quarter of an hour later while it works."""
    book, agent = SessionBook(limits()), Agent()
    book.feed(agent.start())
    book.feed(agent.event("tool_call", tool="Bash", input={"command": "rm -rf /"}, call_id="c"))
    book.feed(agent.event("waiting", kind="permission", prompt="Allow Bash: rm -rf /", tool="Bash"))
    book.feed(
        agent.event("tool_call", advance=5, tool="Bash", input={"command": "ls"}, call_id="d")
    )
    open_calls = book.watches_of(0).get(("p1", "s1"))[7]  # type: ignore[index]
    assert [call[0] for call in open_calls] == ["d"]
    answered = "d"
    for minute in range(1, 60):  # it keeps working, a call a minute, each answered
        ok = {"ok": True}
        book.feed(agent.event("tool_result", advance=1, tool="Bash", call_id=answered, result=ok))
        answered = f"e{minute}"
        command = {"command": f"make {minute}"}
        book.feed(
            agent.event("tool_call", advance=59, tool="Bash", input=command, call_id=answered)
        )
        assert book.tick(0, agent.clock.timestamp()) == []
