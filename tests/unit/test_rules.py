"""Every detection rule and its edges, on the pure functions (no servers)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from yokeflow_agent.contract import Intervention, parse_agent_event

from yokeflow_intervention.services.detector.rules import (
    DetectionConfig,
    SessionState,
    call_signature,
    classify_critical,
    failure_fingerprint,
    summarise,
)
from yokeflow_intervention.services.detector.sessions import SessionBook
from yokeflow_intervention.shared.settings import Settings

T0 = datetime(2026, 10, 5, 14, 0, tzinfo=UTC)


def config(**overrides: Any) -> DetectionConfig:
    return DetectionConfig.from_settings(Settings(**overrides))


class Agent:
    """Builds one session's events the way an agent publishes them."""

    def __init__(self, session: str = "s1", project: str = "p1") -> None:
        self.session, self.project = session, project
        self.seq = itertools.count(1)
        self.calls = itertools.count()
        self.clock = T0

    def event(self, type_: str, advance: float = 1.0, **fields: Any):
        self.clock += timedelta(seconds=advance)
        seq = next(self.seq)
        payload = {
            "v": 1,
            "event_id": f"{self.session}-{seq}",
            "type": type_,
            "project_id": self.project,
            "session_id": self.session,
            "seq": seq,
            "ts": self.clock.isoformat(),
            **fields,
        }
        return parse_agent_event(payload)

    def start(self):
        return self.event("session_started", workspace="/w", task={"id": "7", "description": "x"})

    def run(
        self,
        command: str,
        ok: bool,
        error: str = "",
        output: str = "",
        exit_code: int | None = None,
        took: float = 1.0,
    ):
        call_id = f"c{next(self.calls)}"
        call = self.event("tool_call", tool="Bash", input={"command": command}, call_id=call_id)
        result = self.event(
            "tool_result",
            advance=took,
            call_id=call_id,
            tool="Bash",
            result={
                "ok": ok,
                "exit_code": (0 if ok else 1) if exit_code is None else exit_code,
                "output": output,
                "error": error,
            },
        )
        return [call, result]


def feed(book: SessionBook, events) -> list[Intervention]:
    return [i for e in events if (i := book.feed(e).intervention) is not None]


def test_fourth_attempt_of_the_same_failure_is_stopped_before_it_runs():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("npm start", ok=False, error="Error: boom")
    assert feed(book, events) == []
    call = agent.event("tool_call", tool="Bash", input={"command": "npm   start "}, call_id="x")
    intervention = book.feed(call).intervention
    assert intervention is not None
    assert intervention.trigger == "retry_limit"
    assert intervention.event_seq == call.seq
    assert intervention.reason == "Command attempted 4 times: npm start"
    assert intervention.retry_stats.total_retries == 3
    assert intervention.retry_stats.max_retries_on_single_command == 3
    assert intervention.retry_stats.unique_errors == 1
    assert intervention.task is not None and intervention.task.id == "7"


def test_max_retries_is_configurable_and_equality_triggers():
    agent, book = Agent(), SessionBook(config(max_retries=2))
    events = [agent.start(), *agent.run("make", False, "e"), *agent.run("make", False, "e")]
    assert feed(book, events) == []
    found = book.feed(agent.event("tool_call", tool="Bash", input={"command": "make"})).intervention
    assert found is not None and found.trigger == "retry_limit"


def test_a_different_error_is_progress_and_a_success_resets():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    events += agent.run("pytest", False, "5 failed")
    events += agent.run("pytest", False, "5 failed")
    events += agent.run("pytest", False, "3 failed")  # different: count restarts at 1
    events += agent.run("pytest", False, "3 failed")
    events += agent.run("pytest", True)  # success: count 0
    events += agent.run("pytest", False, "1 failed")
    events += agent.run("pytest", False, "1 failed")
    events += [agent.event("tool_call", tool="Bash", input={"command": "pytest"})]
    assert feed(book, events) == []


def test_calls_of_other_signatures_in_between_change_nothing():
    agent, book = Agent(), SessionBook(config(loop_repeat_threshold=10))
    events = [agent.start()]
    for i in range(3):
        events += agent.run("npm test", False, "Error: x")
        events += agent.run(f"cat file{i}", True)
    assert feed(book, events) == []
    found = book.feed(
        agent.event("tool_call", tool="Bash", input={"command": "npm test"})
    ).intervention
    assert found is not None and found.trigger == "retry_limit"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("failed at 2026-10-05T14:00:01.123Z", "failed at 2026-10-06 09:12:13"),
        ("log 2026-10-05_14_00_01_55 x", "log 2026-11-01_01_02_03_99 x"),
        ("req 9f1c2e4a-0b1d-4c9e-8f00-1234567890ab", "req 0a1b2c3d-0b1d-4c9e-8f00-ffffffffffff"),
        ("object at 0xdeadbeef01", "object at 0x0123abcd99"),
        ("timed out after 300ms", "timed out after 1.5 s"),
        ("a   b\n c", "a b c"),
    ],
)
def test_fingerprint_masks_volatile_parts(first, second):
    assert failure_fingerprint(first) == failure_fingerprint(second)


def test_fingerprint_keeps_other_numbers():
    assert failure_fingerprint("5 failed") != failure_fingerprint("3 failed")
    assert failure_fingerprint("exit code 2") != failure_fingerprint("exit code 3")


def test_signature_ignores_whitespace_in_strings_only():
    assert call_signature("Bash", {"command": " npm  start"}) == call_signature(
        "Bash", {"command": "npm start "}
    )
    assert call_signature("Bash", {"command": "npm start"}) != call_signature(
        "Bash", {"command": "npm test"}
    )
    assert call_signature("Read", {"path": "a"}) != call_signature("Write", {"path": "a"})


@pytest.mark.parametrize(
    ("text", "blocker"),
    [
        ("Error: Prisma schema validation - (get-config wasm)", "prisma_schema_error"),
        ("error: Error validating datasource `db`", "prisma_schema_error"),
        ("Error code: P1012", "prisma_schema_error"),
        ('sh: Command "prisma" not found', "prisma_schema_error"),
        ("Error: listen EADDRINUSE: address already in use :::3000", "port_conflict"),
        ("Port 5173 is already in use", "port_conflict"),
        ("Bind for 0.0.0.0:80 failed: port is already allocated", "port_conflict"),
        ("Error: connect ECONNREFUSED 127.0.0.1:6379", "redis_unavailable"),
        ("Could not connect to Redis at 127.0.0.1:6379", "redis_unavailable"),
        ("redis connection refused", "redis_unavailable"),
        ("Error: connect ECONNREFUSED 127.0.0.1:5432", "db_connection"),
        ("Error: P1001: Can't reach database server at `localhost`:`5432`", "db_connection"),
        ('connection to server at "localhost" (127.0.0.1), port 5432 failed', "db_connection"),
        ("ModuleNotFoundError: No module named 'requests'", "module_not_found"),
        ("Error: Cannot find module 'express'", "module_not_found"),
        ("bash: rg: command not found", "missing_dependency"),
        ("TypeError: x is undefined", None),
    ],
)
def test_critical_patterns(text, blocker):
    assert classify_critical(text, config()) == blocker


def test_critical_error_triggers_immediately_on_failed_result_and_error_event():
    agent, book = Agent(), SessionBook(config())
    found = feed(book, [agent.start(), *agent.run("npm run dev", False, "EADDRINUSE :::3000")])
    assert [(i.trigger, i.blocker_type, i.event_seq) for i in found] == [
        ("critical_error", "port_conflict", 3)
    ]
    assert found[0].can_auto_resume and found[0].suggested_recovery
    agent2, book2 = Agent("s2"), SessionBook(config())
    found = feed(book2, [agent2.start(), agent2.event("error", message="No module named 'yaml'")])
    assert found[0].blocker_type == "module_not_found"


@pytest.mark.parametrize(
    "text",
    [
        "src/server.ts(3,22): error TS2307: Cannot find module './auth' "
        "or its corresponding type declarations.",
        "Error: Cannot find module '../lib/config'",
        "Module not found: Error: Can't resolve './components/Header' in '/app/src'",
        "Error: Cannot find module '/work/app/dist/cli.js'",
    ],
)
def test_a_missing_file_of_the_project_is_not_an_infrastructure_blocker(text):
    """A relative or absolute module path is the project's own file: no install provides it."""
    assert classify_critical(text, config()) is None


def test_a_missing_package_is_still_a_blocker_even_next_to_a_missing_file():
    text = "Error: Cannot find module 'express'\nRequire stack:\n- ./server.js"
    assert classify_critical(text, config()) == "module_not_found"
    both = "Cannot find module './auth'\nCannot find module 'jsonwebtoken'"
    assert classify_critical(both, config()) == "module_not_found"


def test_an_import_written_before_its_file_is_work_and_the_same_error_over_edits_is_not():
    """Writing the import first, failing the type check once, then creating the file: not
    stopped. The same failing check after edit after edit that do not fix it is stopped, by the
    retry rule rather than as an infrastructure blocker."""
    missing = "src/http.ts(3,22): error TS2307: Cannot find module './auth'."
    agent, book = Agent(), SessionBook(config())
    events = [agent.start(), *agent.run("npx tsc --noEmit", False, missing, exit_code=2)]
    events += agent.run("cat > src/auth.ts <<'EOF'\nexport const auth = {};\nEOF", True)
    events += agent.run("npx tsc --noEmit", True)
    assert feed(book, events) == []

    agent, book = Agent("s2"), SessionBook(config())
    events = [agent.start()]
    for n in range(5):
        events += agent.run(f"sed -i 's#./auth#./auth{n}#' src/http.ts", True)
        events += agent.run("npx tsc --noEmit", False, missing, exit_code=2)
    found = feed(book, events)
    assert [i.trigger for i in found] == ["retry_limit"]
    assert found[0].blocker_type is None


def test_a_successful_result_mentioning_an_error_is_not_a_failure():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start(), *agent.run("grep -r EADDRINUSE docs", True, output="EADDRINUSE")]
    assert feed(book, events) == []


def test_critical_detection_can_be_turned_off_and_extended():
    agent, book = Agent(), SessionBook(config(detect_infrastructure_errors=False))
    assert feed(book, [agent.start(), *agent.run("x", False, "EADDRINUSE")]) == []
    custom = config(critical_patterns={"disk_full": [r"no space left on device"]})
    agent, book = Agent(), SessionBook(custom)
    found = feed(book, [agent.start(), *agent.run("x", False, "write: No space left on device")])
    assert found[0].blocker_type == "disk_full" and not found[0].can_auto_resume


def test_critical_wins_over_other_rules_on_the_same_event():
    agent = Agent()
    book = SessionBook(config(error_rate_min_results=1, error_rate_threshold=0.0))
    found = feed(book, [agent.start(), *agent.run("x", False, "EADDRINUSE")])
    assert found[0].trigger == "critical_error"


def test_loop_of_identical_successful_calls():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("cat README.md", True, output="same", took=30)
    assert feed(book, events) == []
    found = feed(book, agent.run("cat README.md", True, output="same", took=30))
    assert found[0].trigger == "loop_pattern"


def test_loop_of_alternating_calls():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(2):
        events += agent.run("git stash", True, took=20) + agent.run("git stash pop", True, took=20)
    events += agent.run("git stash", True, took=20)
    assert feed(book, events) == []
    found = feed(book, agent.run("git stash pop", True, took=20))
    assert found[0].trigger == "loop_pattern" and "Alternating" in found[0].reason


def test_error_rate_is_strictly_above_threshold():
    # A budget the operator sets (off by default): exactly as documented when set.
    cfg = config(error_rate_threshold=0.15, loop_repeat_threshold=50, max_retries=50)
    agent, book = Agent(), SessionBook(cfg)
    events = [agent.start()]
    for i in range(17):
        events += agent.run(f"ok {i}", True)
    for i in range(3):
        events += agent.run(f"bad {i}", False, f"error {i}")
    assert feed(book, events) == []  # 3 of 20 = 0.15 does not trigger
    found = feed(book, agent.run("bad 4", False, "error 4"))  # 4 of 21
    assert found[0].trigger == "error_rate"


def test_error_rate_needs_min_results():
    agent = Agent()
    book = SessionBook(
        config(
            error_rate_threshold=0.15,
            error_rate_min_results=10,
            loop_repeat_threshold=50,
            max_retries=50,
        )
    )
    events = [agent.start()]
    for i in range(5):
        events += agent.run(f"bad {i}", False, f"e{i}")
    for i in range(4):
        events += agent.run(f"ok {i}", True)
    assert feed(book, events) == []  # 5 of 9 failed, but fewer than 10 results
    found = feed(book, agent.run("ok 4", True))
    assert found[0].trigger == "error_rate" and "50.0%" in found[0].reason


def test_error_rate_counts_only_the_window():
    agent = Agent()
    quiet = {"loop_repeat_threshold": 50, "max_retries": 50, "error_rate_min_results": 10}
    book = SessionBook(config(error_rate_window=10, error_rate_threshold=0.25, **quiet))
    events = [agent.start()]
    events += agent.run("bad 0", False, "e0") + agent.run("bad 1", False, "e1")
    for i in range(8):
        events += agent.run(f"ok {i}", True)
    events += agent.run("bad 2", False, "e2") + agent.run("bad 3", False, "e3")
    # 4 of 12 overall (33 %) but never more than 2 of the last 10 (20 %).
    assert feed(book, events) == []


def test_session_duration_uses_event_time():
    agent, book = Agent(), SessionBook(config(session_duration_limit=60))
    assert feed(book, [agent.start(), agent.event("heartbeat", advance=60)]) == []
    found = feed(book, [agent.event("heartbeat", advance=1)])
    assert found[0].trigger == "session_duration"


def test_one_intervention_per_session_and_duplicates_ignored():
    agent, book = Agent(), SessionBook(config())
    events = [
        agent.start(),
        *agent.run("a", False, "EADDRINUSE"),
        *agent.run("b", False, "EADDRINUSE"),
    ]
    assert len(feed(book, events)) == 1
    agent2, book2 = Agent("s9"), SessionBook(config())
    start = agent2.start()
    failure = agent2.run("npm start", False, "boom")
    # The same failure re-published three times counts once.
    assert feed(book2, [start, *failure, *failure, *failure]) == []
    state = book2.get("p1", "s9")
    assert state is not None
    assert [repeats for _, repeats, _ in state.streaks.values()] == [1]  # one failure in a row


def test_interleaved_sessions_are_independent():
    a, b, book = Agent("a"), Agent("b"), SessionBook(config())
    events = [a.start(), b.start()]
    for _ in range(3):
        events += a.run("npm start", False, "boom") + b.run("npm start", True)
    assert feed(book, events) == []
    assert (
        book.feed(b.event("tool_call", tool="Bash", input={"command": "npm start"})).intervention
        is None
    )
    assert (
        book.feed(a.event("tool_call", tool="Bash", input={"command": "npm start"})).intervention
        is not None
    )


def test_intervention_id_is_deterministic():
    ids = []
    for _ in range(2):
        agent, book = Agent(), SessionBook(config())
        ids += [
            i.intervention_id
            for i in feed(book, [agent.start(), *agent.run("x", False, "EADDRINUSE")])
        ]
    assert ids[0] == ids[1]


def test_disabled_detection_emits_nothing():
    agent, book = Agent(), SessionBook(config(enabled=False))
    assert feed(book, [agent.start(), *agent.run("x", False, "EADDRINUSE")]) == []


# Classes from other projects' stuck detectors and real sessions (#17), each from both sides.


def test_polling_a_build_whose_output_changes_is_progress_the_same_output_is_a_loop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for step in range(8):  # a build polled for progress, its log tail growing
        events += agent.run("tail -n 5 build.log", True, output=f"compiled {step * 10}/80 modules")
    assert feed(book, events) == []
    stuck, book2 = Agent("s2"), SessionBook(config())
    events = [stuck.start()]
    for _ in range(4):  # the same poll, the same answer: nothing moves
        events += stuck.run(
            "tail -n 5 build.log", True, output="waiting for lock at 12:00:01", took=30
        )
    assert [i.trigger for i in feed(book2, events)] == ["loop_pattern"]


def test_one_typo_is_not_a_missing_dependency_the_same_missing_command_again_is():
    agent, book = Agent(), SessionBook(config())
    events = [
        agent.start(),
        *agent.run("pnpx vite", False, error="bash: pnpx: command not found"),
        *agent.run("npx vite", True, output="ready"),
    ]
    assert feed(book, events) == []
    stuck, book2 = Agent("s2"), SessionBook(config())
    events = [
        stuck.start(),
        *stuck.run("pnpm i", False, error="bash: pnpm: command not found"),
        *stuck.run("pnpm install", False, error="bash: pnpm: command not found"),
    ]
    found = feed(book2, events)
    assert found[0].blocker_type == "missing_dependency"
    once, typo = SessionBook(config(missing_dependency_repeats=1)), Agent("s3")  # at once again
    assert feed(once, [typo.start(), *typo.run("x", False, error="bash: x: command not found")])


def test_the_same_error_event_again_and_again_is_a_loop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(3):  # different errors are not a loop
        events.append(agent.event("error", message=f"API error {n}: overloaded"))
    events.append(agent.event("error", message="prompt is too long: 210000 tokens > 200000"))
    assert feed(book, events) == []
    repeated = [
        agent.event("error", message="prompt is too long: 210000 tokens > 200000") for _ in range(3)
    ]
    found = feed(book, repeated)
    assert found[0].trigger == "loop_pattern" and "same error 4 times" in found[0].reason


def test_commentary_fields_do_not_make_identical_calls_distinct():
    def run(agent: Agent, description: str):
        call_id = f"c{next(agent.calls)}"
        return [
            agent.event(
                "tool_call",
                tool="Bash",
                call_id=call_id,
                input={"command": "npm start", "description": description},
            ),
            agent.event(
                "tool_result",
                call_id=call_id,
                tool="Bash",
                result={"ok": False, "exit_code": 1, "error": "Error: boom"},
            ),
        ]

    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(3):
        events += run(agent, f"Try starting the server, attempt {n}")
    found = feed(book, [*events, *run(agent, "One more time")[:1]])
    assert found[0].trigger == "retry_limit"
    kept = SessionBook(config(signature_ignore_keys=[]))  # configurable: every key counts
    other = Agent("s2")
    events = [other.start()]
    for n in range(4):
        events += run(other, f"attempt {n}")
    assert [i.trigger for i in feed(kept, events)] != ["retry_limit"]


def test_a_loop_that_comes_back_after_a_detour_is_caught_an_edit_test_cycle_is_not():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("npm run lint", True, output="12 problems", took=30)
    events += agent.run("git status", True, output="clean")
    for _ in range(2):
        events += agent.run("npm run lint", True, output="12 problems", took=30)
    assert feed(book, events) == []
    found = feed(book, agent.run("npm run lint", True, output="12 problems", took=30))
    assert found[0].trigger == "loop_pattern" and "among the last" in found[0].reason
    cycle, book2 = Agent("s2"), SessionBook(config())
    events = [cycle.start()]
    for n in range(10):  # edit, test, edit, test...: progress
        events += cycle.run(f"sed -i s/a{n}/b{n}/ app.py", True) + cycle.run(
            "pytest -q", True, output="1 passed"
        )
    assert feed(book2, events) == []


def test_a_failing_call_whose_error_text_rotates_is_still_stopped():
    errors = ["Error: ETIMEDOUT", "Error: ECONNRESET", "Error: socket hang up"]
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(5):
        events += agent.run("npm install", False, error=errors[n % 3])
    assert feed(book, events) == []  # every change of text counts as progress for max_retries
    found = feed(book, agent.run("npm install", False, error=errors[2])[:1])
    assert found[0].trigger == "retry_limit" and "3 different errors" in found[0].reason
    fixing, book2 = Agent("s2"), SessionBook(config())
    events = [fixing.start()]
    for n in range(8):  # fixing one compile error after another: every text new
        events += fixing.run("npm run build", False, error=f"src/a.ts({n},1): error TS2304")
    assert [i.trigger for i in feed(book2, events)] == []


def test_the_same_parallel_round_again_and_again_is_a_loop_new_rounds_are_not():
    def round_of(agent: Agent, paths: list[str]):
        calls = [(f"c{next(agent.calls)}", p) for p in paths]
        events = [
            agent.event("tool_call", tool="Read", call_id=c, input={"file_path": p})
            for c, p in calls
        ]
        # Parallel results come back in any order (so no cycle of results shows).
        turn = next(agent.calls) % len(calls)
        events += [
            agent.event(
                "tool_result",
                call_id=c,
                tool="Read",
                result={"ok": True, "output": f"contents of {p}"},
            )
            for c, p in calls[turn:] + calls[:turn]
        ]
        return events

    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(6):  # reading new files each round: progress
        events += round_of(agent, [f"src/{n}/a.ts", f"src/{n}/b.ts", f"src/{n}/c.ts"])
    assert feed(book, events) == []
    stuck, book2 = Agent("s2"), SessionBook(config())
    events = [stuck.start()]
    for _ in range(4):  # the same three files, round after round
        events += round_of(stuck, ["src/a.ts", "src/b.ts", "src/c.ts"])
    found = feed(book2, events)
    assert found and found[0].trigger == "loop_pattern" and "parallel" in found[0].reason


def test_agent_text_turns_a_monologue_empty_replies_and_the_same_reply():
    def says(agent: Agent, *texts: str):
        return [agent.event("agent_message", text=t) for t in texts]

    # Replies between tool calls, each different: progress.
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(6):
        events += says(agent, f"Step {n}: reading the config.", f"Now editing file {n}.")
        events += agent.run(f"cat f{n}", True, output=str(n))
    assert feed(book, events) == []
    cases = {
        "monologue": [f"Let me think about it, part {n}." for n in range(8)],
        "empty": ["", " ", ""],
        "same": ["I will now run the tests."] * 3,
    }
    reasons = {}
    for name, texts in cases.items():
        stuck, book = Agent(name), SessionBook(config())
        found = feed(book, [stuck.start(), *says(stuck, *texts)])
        assert len(found) == 1 and found[0].trigger == "loop_pattern", name
        assert found[0].event_seq == len(texts) + 1, name  # on the last reply, not before
        reasons[name] = found[0].reason
    assert "without a tool call" in reasons["monologue"]
    assert "empty replies" in reasons["empty"] and "same reply 3 times" in reasons["same"]


# -- Warnings: one chance to change course, one step before the stop ---------------------------


def warnings(book: SessionBook, events) -> list[tuple[int, str, str]]:
    """(seq, trigger, reason) of every warning the events earned."""
    return [(e.seq, w.trigger, w.reason) for e in events if (w := book.feed(e).warning) is not None]


def test_the_third_identical_failure_warns_and_the_fourth_call_still_stops():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("npm start", ok=False, error="Error: boom")
    found = warnings(book, events)
    assert len(found) == 1 and found[0][0] == events[-1].seq  # after the third result
    assert found[0][1] == "retry_limit" and "failed 3 times with the same error" in found[0][2]
    stop = book.feed(agent.event("tool_call", tool="Bash", input={"command": "npm start"}))
    assert stop.intervention is not None and stop.intervention.trigger == "retry_limit"


def test_an_agent_that_heeds_the_warning_is_not_stopped():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("npm start", ok=False, error="Error: boom")
    events += agent.run("npm install", ok=True, output="added 3 packages")
    events += agent.run("npm start", ok=True, output="listening on :3000")
    assert len(warnings(book, events)) == 1
    assert feed(book, [agent.event("session_ended", reason="completed")]) == []


def test_a_warning_is_given_once_per_pattern():
    agent, book = Agent(), SessionBook(config(max_retries=10, max_retries_rotating=20))
    events = [agent.start()]
    for _ in range(6):
        events += agent.run("npm start", ok=False, error="Error: boom")
    assert len([w for w in warnings(book, events) if w[1] == "loop_pattern"]) == 1


def test_the_same_successful_result_warns_one_step_before_the_loop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("git status", ok=True, output="nothing to commit", took=30)
    found = warnings(book, events)
    assert [w[1] for w in found] == ["loop_pattern"] and "3 times" in found[0][2]
    assert feed(book, agent.run("git status", ok=True, output="nothing to commit", took=30))


def test_polling_with_changing_output_earns_no_warning():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(6):
        events += agent.run("tail build.log", ok=True, output=f"step {n} of 9")
    assert warnings(book, events) == [] and feed(book, events) == []


def test_the_error_rate_warns_when_one_more_failure_is_over_the_limit():
    cfg = config(error_rate_threshold=0.15, max_retries=50, loop_repeat_threshold=50)
    agent, book = Agent(), SessionBook(cfg)
    events = [agent.start()]
    for n in range(19):
        events += agent.run(f"step {n}", ok=n not in (2, 9), error="failed")
    events += agent.run("step last", ok=False, error="failed")  # 3 of 20: exactly 15 %
    found = [w for w in warnings(book, events) if w[1] == "error_rate"]
    assert len(found) == 1 and "one more failure" in found[0][2]
    assert feed(book, events) == []  # 15 % is not over the threshold yet


def test_the_session_budget_warns_at_eighty_percent_and_not_before():
    agent, book = Agent(), SessionBook(config(session_duration_limit=100))
    assert warnings(book, [agent.start(), agent.event("heartbeat", advance=70)]) == []
    found = warnings(book, [agent.event("heartbeat", advance=15)])
    assert [w[1] for w in found] == ["session_duration"] and "85 s" in found[0][2]


def test_text_turns_warn_one_reply_before_the_stop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()] + [
        agent.event("agent_message", text="Working on it.") for _ in range(2)
    ]
    found = warnings(book, events)
    assert [w[1] for w in found] == ["loop_pattern"] and "same reply 2 times" in found[0][2]


def test_warnings_can_be_switched_off():
    agent, book = Agent(), SessionBook(config(warn_before_stop=False))
    events = [agent.start()]
    for _ in range(3):
        events += agent.run("npm start", ok=False, error="Error: boom")
    assert warnings(book, events) == []
    assert feed(book, [agent.event("tool_call", tool="Bash", input={"command": "npm start"})])


def test_warnings_are_deterministic_for_a_replay():
    def run() -> list[tuple[int, str, str]]:
        agent, book = Agent(), SessionBook(config())
        events = [agent.start()]
        for _ in range(3):
            events += agent.run("npm start", ok=False, error="Error: boom")
        return warnings(book, events)

    assert run() == run()


# The fleet view's summary: each share is 1.0 when the next step of its kind stops the session.


def test_a_session_summary_says_how_close_each_limit_is_and_which_is_nearest():
    cfg = config(session_duration_limit=100, error_rate_threshold=0.15)
    agent, book = Agent(), SessionBook(cfg)
    feed(book, [agent.start(), *agent.run("npm test", ok=True, output="ok")])
    state = book.get("p1", "s1")
    assert state is not None
    calm = summarise(state, cfg)
    assert (calm.state, calm.retry_streak, calm.error_rate, calm.events) == ("running", 0, 0.0, 3)
    assert calm.nearest == "session_duration" and calm.risk == pytest.approx(0.02)  # 2 s of 100

    feed(book, agent.run("npm start", ok=False, error="Error: boom"))
    feed(book, agent.run("npm start", ok=False, error="Error: boom"))
    near = summarise(state, cfg)
    assert near.retry_streak == 2 and near.max_retries == 3
    assert near.nearest == "retry_limit" and near.risk == pytest.approx(2 / 3, abs=1e-3)
    assert near.shares == pytest.approx(
        {
            "retry_limit": 2 / 3,
            "error_rate": 2 / 3,
            "session_duration": 0.06,
            "no_progress": 1 / 14,
        },
        abs=1e-3,
    )
    assert near.error_rate == pytest.approx(2 / 3, abs=1e-3) and near.results == 3
    # 2 failures of the 3 the window may hold (15 % of 20) before the rate is over: a tie,
    # which names the retry limit.
    assert near.risk < 1.0

    feed(book, agent.run("npm start", ok=False, error="Error: boom"))
    warned = summarise(state, cfg)
    assert warned.retry_streak == 3 and warned.risk == pytest.approx(1.0)
    assert "retry" in warned.warnings

    stop = book.feed(agent.event("tool_call", tool="Bash", input={"command": "npm start"}))
    assert stop.intervention is not None
    stopped = summarise(state, cfg)
    assert (
        stopped.state == "stopped" and stopped.intervention_id == stop.intervention.intervention_id
    )
    assert summarise(state, cfg, ended=True).state == "ended"


def test_a_success_ends_the_retry_streak_in_the_summary():
    cfg = config()
    agent, book = Agent(), SessionBook(cfg)
    feed(
        book,
        [
            agent.start(),
            *agent.run("make", ok=False, error="E1"),
            *agent.run("make", ok=False, error="E1"),
        ],
    )
    state = book.get("p1", "s1")
    assert state is not None and summarise(state, cfg).retry_streak == 2
    feed(book, agent.run("make", ok=True, output="built"))
    assert summarise(state, cfg).retry_streak == 0


def test_a_snapshot_restores_a_session_exactly():
    """An idle session leaves the detector's memory as a snapshot; restored, it goes on exactly
    as if it had never left (the same warnings, the same stop at the same event)."""
    import json

    cfg = config()
    agent, book = Agent(), SessionBook(cfg)
    events = [agent.start(), *agent.run("npm test", ok=True, output="3 passed")]
    events += [
        agent.event("agent_message", text="Now the build."),
        *agent.run("ls", ok=True, output="a"),
    ]
    for _ in range(2):
        events += agent.run("npm start", ok=False, error="Error: boom")
    feed(book, events)
    kept = book.get("p1", "s1")
    assert kept is not None
    restored = SessionState.from_snapshot(json.loads(json.dumps(kept.snapshot())))
    assert restored.snapshot() == kept.snapshot()
    other = SessionBook(cfg)
    other.adopt(restored)
    rest = [
        *agent.run("npm start", ok=False, error="Error: boom"),
        agent.event("tool_call", tool="Bash", input={"command": "npm start"}),
    ]
    outcomes = [book.feed(e) for e in rest]
    again = [other.feed(e) for e in rest]
    assert [o.warning is not None for o in outcomes] == [o.warning is not None for o in again]
    assert outcomes[-1].intervention is not None
    assert outcomes[-1].intervention == again[-1].intervention


def test_a_long_session_remembers_a_bounded_number_of_event_ids():
    cfg = config(loop_repeat_threshold=10_000, max_retries=10_000)
    agent, book = Agent(), SessionBook(cfg)
    feed(book, [agent.start()])
    for n in range(600):
        feed(book, agent.run(f"step {n}", ok=True, output=str(n)))
    state = book.get("p1", "s1")
    assert state is not None and len(list(state.seen_event_ids)) == 64
    assert len(state.outcomes) == 256  # the progress memory is bounded too


def test_the_book_finds_idle_sessions_least_recently_fed_first():
    now = [0.0]
    book = SessionBook(config(), clock=lambda: now[0])
    a, b = Agent("a"), Agent("b")
    book.feed(a.start())
    now[0] = 5
    book.feed(b.start())
    now[0] = 10
    book.feed(a.event("heartbeat"))
    assert [s.session_id for s in book.idle(6)] == ["b"]
    assert [s.session_id for s in book.idle(11)] == ["b", "a"]


# -- Progress is the judge (#26): each class from both sides -----------------------------------


def says(agent: Agent, *texts: str):
    return [agent.event("agent_message", text=t) for t in texts]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("server started, pid 41235", "server started, pid 41877"),
        ("[1] 52311", "[1] 52399"),
        ("run 1733412345 finished", "run 1733498765 finished"),
        ("at 1733412345123 ms epoch", "at 1733412399999 ms epoch"),
        ("job 884213 queued", "job 884299 queued"),
        ("message msg_01XFDUDYJgAACzvnptvVoYEL sent", "message msg_01ABCDEFGhijkLmnopQRstUV2 sent"),
        ("call_abc123def456ghi789jk done", "call_zz9y8x7w6v5u4t3s2r1q done"),
        ("12:00:01 waiting", "17:45:59.123 waiting"),
        ("exited with code 0, elapsed_ms: 2", "exited with code 0, elapsed_ms: 6"),
        ('{"duration": 12.5, "ok": true}', '{"duration": 3, "ok": true}'),
        ('{"messageId": "om_5a3f1", "runId": "r-7"}', '{"messageId": "om_600be", "runId": "r-9"}'),
        ("message_id=abc12 status=sent", "message_id=zz981 status=sent"),
    ],
)
def test_fingerprint_masks_pids_decimal_and_base62_ids_and_clock_times(first, second):
    assert failure_fingerprint(first) == failure_fingerprint(second)


def test_fingerprint_keeps_what_progress_is_read_from():
    assert failure_fingerprint("valid: 3") != failure_fingerprint("valid: 4")
    assert failure_fingerprint("app.py:12:5: E501") != failure_fingerprint("app.py:14:5: E501")
    assert failure_fingerprint("5 failed, 20 passed") != failure_fingerprint("3 failed, 22 passed")
    assert failure_fingerprint("FAILED test_parse_v2_header") != failure_fingerprint(
        "FAILED test_parse_v3_header"
    )


def test_an_identical_call_whose_output_differs_only_by_volatile_ids_is_a_loop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(4):
        output = f"sent run 17334{n}2345 as msg_01XFDUDYJgAACzvnptvV{n}oYEL, pid 4{n}123"
        events += agent.run("./deploy.sh --dry-run", True, output=output, took=30)
    found = feed(book, events)
    assert [i.trigger for i in found] == ["loop_pattern"]


@pytest.mark.parametrize("period", [3, 4, 5])
def test_a_cycle_of_three_to_five_calls_with_the_same_results_is_a_loop(period):
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    steps = [f"step{k}.sh" for k in range(period)]
    for _ in range(2):
        for step in steps:
            events += agent.run(step, True, output=f"{step} ok")
    for step in steps[:-1]:
        events += agent.run(step, True, output=f"{step} ok")
    found_warnings = warnings(book, events)
    assert [w[1] for w in found_warnings] == ["loop_pattern"]  # one step before the stop
    assert found_warnings[0][0] == events[-1].seq and "went round" in found_warnings[0][2]
    found = feed(book, agent.run(steps[-1], True, output=f"{steps[-1]} ok"))
    assert found[0].trigger == "loop_pattern"
    assert f"cycle of {period} calls repeated 3 times" in found[0].reason


def test_a_cycle_whose_results_move_is_progress():
    """Edit, lint, test round after round, the failures going 5 -> 3 -> 1 -> 0: not a loop."""
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for failed in (5, 4, 3, 2, 1, 0):
        events += agent.run("ruff check .", True, output="All checks passed!")
        events += agent.run("git diff --stat", True, output="1 file changed")
        events += agent.run("pytest -q", failed == 0, error=f"{failed} failed, {9 - failed} passed")
    assert feed(book, events) == []


def test_a_loop_that_comes_back_after_a_detour_longer_than_the_window_is_no_progress():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    detour = [
        f"cat src/module_{k}.py" for k in range(8)
    ]  # longer than any cycle the loop rule sees
    for _ in range(4):
        for command in detour:
            events += agent.run(command, True, output=f"contents of {command}")
    found = feed(book, events)
    assert [i.trigger for i in found] == ["no_progress"]
    assert found[0].event_seq == events[2 * (8 + 15)].seq  # the 15th result with nothing new
    assert "No progress in the last 15 tool results" in found[0].reason


def test_a_long_detour_with_something_new_each_time_is_progress():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    detour = [f"cat src/module_{k}.py" for k in range(8)]
    for turn in range(6):
        for command in detour:
            events += agent.run(command, True, output=f"contents of {command}")
        events += agent.run("pytest -q", False, error=f"{6 - turn} failed")  # moves every turn
    assert feed(book, events) == []


def test_no_progress_warns_one_result_before_it_stops():
    agent, book = Agent(), SessionBook(config(no_progress_window=6))
    events = [agent.start()]
    for _ in range(2):
        for command in ("a", "b", "c", "d"):  # a cycle of 4 is caught at 3 turns: stop at 2
            events += agent.run(command, True, output=command)
    events += agent.run("a", True, output="a")
    found = warnings(book, events)
    assert [w[1] for w in found] == ["no_progress"] and "last 5 tool results" in found[0][2]
    assert [i.trigger for i in feed(book, agent.run("b", True, output="b"))] == ["no_progress"]


def test_failing_while_exploring_and_converging_is_not_stopped_by_default():
    """Searches that find nothing, a missing toolchain, edits rejected at moving lines, a quota
    reported at once: far more than 15 % of results fail, and every one brings something new."""
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(15):
        events += agent.run(f"grep -rn 'def handler_{n}' src", False, error="", exit_code=1)
    events += agent.run("cargo build", False, error="bash: cargo: command not found")
    for line in range(12, 40, 2):
        events += agent.run(f"apply patch {line}", False, error=f"lint: app.py:{line}: E999")
    events.append(agent.event("error", message="429: rate limit reached, retry after 60 s"))
    events += agent.run("ls src", True, output="a.py b.py")
    assert feed(book, events) == []
    state = book.get("p1", "s1")
    assert state is not None and summarise(state, config()).shares.get("error_rate") is None


def test_the_error_budget_stops_when_an_operator_sets_it_and_says_it_is_a_budget():
    agent, book = Agent(), SessionBook(config(error_rate_threshold=0.15))
    events = [agent.start()]
    for n in range(21):
        events += agent.run(f"grep -rn 'def handler_{n}' src", n % 2 == 0, error="no match")
    found = feed(book, events)
    assert found[0].trigger == "error_rate" and found[0].reason.startswith("Error budget")


def test_the_clock_is_no_verdict_by_default_and_a_budget_when_set():
    long_run = Agent()
    book = SessionBook(config())
    events = [long_run.start()]
    for n in range(6):  # a test suite of several minutes, a 30-minute session in all
        events += long_run.run(f"pytest tests/part{n}", True, output=f"{n} ok", took=300)
    assert feed(book, events) == []
    budget = SessionBook(config(session_duration_limit=600))
    timed = Agent("t")
    found = feed(budget, [timed.start(), *timed.run("pytest", True, output="ok", took=700)])
    assert found[0].trigger == "session_duration"
    assert "Time budget" in found[0].reason and "not a sign of a loop" in found[0].reason


def test_the_same_reply_between_productive_runs_is_no_streak():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for failed in (5, 3, 1):
        events += says(agent, "Let me run the tests again.")
        events += agent.run("pytest -q", False, error=f"{failed} failed")
    events += says(agent, "Let me run the tests again.")
    events += agent.run("pytest -q", True, output="12 passed")
    assert feed(book, events) == []
    stuck, book2 = Agent("s2"), SessionBook(config())
    events = [stuck.start()]
    for _ in range(3):  # the same reply, and the same result in between: nothing new
        events += says(stuck, "Let me run the tests again.")
        events += stuck.run("pytest -q", False, error="5 failed")
    found = feed(book2, [*events, *says(stuck, "Let me run the tests again.")])
    assert [i.trigger for i in found] == ["loop_pattern"] and "same reply 3" in found[0].reason


def test_the_same_transient_error_between_productive_calls_is_no_streak():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(6):
        events.append(agent.event("error", message="API Error: 529 overloaded"))
        events += agent.run(f"cat src/f{n}.py", True, output=f"file {n}")
    assert feed(book, events) == []
    stuck, book2 = Agent("s2"), SessionBook(config())
    events = [stuck.start()]
    for _ in range(4):  # with only a repeated read in between, it is still a streak
        events.append(stuck.event("error", message="API Error: 529 overloaded"))
        events += stuck.run("cat src/f0.py", True, output="file 0", took=30)
    found = feed(book2, events)
    assert found and found[0].trigger == "loop_pattern"


def test_a_few_polls_of_a_background_job_just_started_are_not_a_loop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start(), *agent.run("npm run build &", True, output="[1] 51234")]
    for _ in range(5):  # seconds apart: the job has not moved yet
        events += agent.run("jobs", True, output="[1]+ Running npm run build &", took=3)
    events += agent.run("jobs", True, output="[1]+ Done npm run build")
    assert feed(book, events) == []
    stuck, book2 = Agent("s2"), SessionBook(config())
    events = [stuck.start(), *stuck.run("npm run build &", True, output="[1] 51234")]
    for _ in range(8):  # polled on and on: a loop, even when fast
        events += stuck.run("jobs", True, output="[1]+ Running npm run build &", took=3)
    assert [i.trigger for i in feed(book2, events)] == ["loop_pattern"]
    exited, book3 = Agent("s3"), SessionBook(config())
    events = [exited.start()]
    for n in range(4):  # a process that has exited is not a job under way: no grace
        output = f"process proc_7f3a (pid 48211) exited with code 0, elapsed_ms: {n + 2}"
        events += exited.run("bash_output proc_7f3a", True, output=output, took=1)
    found = feed(book3, events)
    assert [i.trigger for i in found] == ["loop_pattern"] and found[0].event_seq == events[-1].seq


def test_one_reply_chanting_the_same_sentence_is_a_loop():
    agent, book = Agent(), SessionBook(config())
    chant = " ".join(["I will now fix the failing test."] * 30)
    found = feed(book, [agent.start(), *says(agent, f"Let me look. {chant}")])
    assert found[0].trigger == "loop_pattern" and "says the same thing 21 times" in found[0].reason
    for word in (["court"] * 400, ["Generating.", "Go.", "Done."] * 40):
        chanting, book3 = Agent("s3"), SessionBook(config())
        assert feed(book3, [chanting.start(), *says(chanting, " ".join(word))])
    fine, book2 = Agent("s2"), SessionBook(config())
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")[:20_000]
    assert feed(book2, [fine.start(), *says(fine, readme)]) == []  # prose, code and tables
    fine, book2 = Agent("s4"), SessionBook(config())
    plan = "\n".join(f"- Step {n}: update module {n} and its tests." for n in range(30))
    repeated_a_little = "Done. " + " ".join(["The tests pass now."] * 3) + " " + plan
    assert feed(book2, [fine.start(), *says(fine, plan, repeated_a_little)]) == []


def test_an_old_snapshot_without_the_progress_memory_still_loads():
    cfg = config()
    agent, book = Agent(), SessionBook(cfg)
    feed(book, [agent.start(), *agent.run("npm test", ok=False, error="boom")])
    kept = book.get("p1", "s1")
    assert kept is not None
    old = kept.snapshot()
    for key in ("v", "outcomes", "last_outcome", "stale"):
        del old[key]
    old["completed"] = [c[:4] for c in old["completed"]]
    restored = SessionState.from_snapshot(old)
    assert restored.stale == 0 and restored.outcomes == {}
    assert restored.completed[0][:4] == tuple(kept.completed[0][:4])


def test_coming_back_to_the_same_call_for_the_same_answer_after_detours_is_a_loop():
    """Re-running a call right after itself for the same answer, then going off and coming back
    to do it again: the detour makes something new, the call never does."""
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    read = 'python3 -c \'print(open("INPUT.DAT", "rb").read()[:120])\''
    answer = "b'000001THE HOBBIT  0012\\r\\n'"
    for turn in range(3):  # read it, read it again, look elsewhere
        events += agent.run(read, True, output=answer, took=3)
        events += agent.run(read, True, output=answer, took=3)
        for k in range(8):
            events += agent.run(f"od -c part{turn}{k}", True, output=f"dump {turn} {k}")
    events += agent.run(read, True, output=answer, took=3)
    found_warnings = warnings(book, events)
    assert [w[0] for w in found_warnings] == [events[2 * 22].seq]  # at the 3rd return, once
    assert "right after itself 3 times" in found_warnings[0][2]
    found = feed(book, agent.run(read, True, output=answer, took=3))
    assert found[0].trigger == "loop_pattern"
    assert "right after itself 4 times in this session" in found[0].reason


def test_re_reading_between_edits_is_not_coming_back_for_the_same_answer():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start()]
    for n in range(10):  # a file read again after each edit elsewhere, and once more: no repeat
        events += agent.run("cat app/config.py", True, output="DEBUG = False")
        events += agent.run(f"sed -i s/x{n}/y{n}/ app/main.py", True)
        events += agent.run("git status --short", True, output=" M app/main.py")
    assert feed(book, events) == []


def test_polls_paced_minutes_apart_are_patience_not_a_loop():
    agent, book = Agent(), SessionBook(config())
    events = [agent.start(), *agent.run("curl -X POST /train", True, output='{"status": "queued"}')]
    for _ in range(6):  # told to check every 5 minutes
        events += agent.run(
            "sleep 300 && curl /jobs/42", True, output='{"status": "running"}', took=301
        )
    events += agent.run(
        "sleep 300 && curl /jobs/42", True, output='{"status": "completed"}', took=301
    )
    assert feed(book, events) == []
    fast, book2 = Agent("s2"), SessionBook(config())
    events = [fast.start()]
    for _ in range(8):  # the same answer seconds apart, on and on
        events += fast.run("curl /jobs/42", True, output='{"status": "running"}', took=2)
    assert [i.trigger for i in feed(book2, events)] == ["loop_pattern"]
