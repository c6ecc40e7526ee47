"""The corpus: every session, where it comes from, and the verdict decided before any replay.

Three kinds of source, none written here:
- `transcript`: a real agent session file published in a public repository, kept as a small
  excerpt in its own format under `raw/` and converted by `transcripts.py`, like a user's own;
- `peer-test`: a case of another project's stuck-detector test suite; its assertion is the
  verdict (the events are those the test builds);
- `issue`: a session reported in a public issue, rebuilt from what the report shows (commands,
  outputs, counts and cadence as reported; anything the report leaves out is named in `why`).

Two sets: the tuning set, the sessions the rules were developed against (their agreement is not
evidence the rules generalise), and the held-out set (`heldout=` the date), collected afterwards
and written here, verdict and reason, before the detector ever saw them; the rules were not
changed to fit any of them. `bench/detection.py` prints the two apart.

`stuck_from` is the first event of the stuck part: a stop before it stops a session that was not
yet stuck, the right verdict for the wrong reason. `build.py` writes `events/` and
`manifest.json` from this file; `tests/unit/test_corpus.py` checks they are current.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .script import Script

Verdict = Literal["stuck", "healthy"]
Kind = Literal["transcript", "peer-test", "issue"]

OPENHANDS_STUCK_TESTS = (
    "github.com/OpenHands/OpenHands tests/unit/controller/test_is_stuck.py"
    " @331a1a43145f185f7596431e2a19668a0e0a6daa (MIT)"
)
GEMINI_LOOP_TESTS = (
    "github.com/google-gemini/gemini-cli packages/core/src/services/loopDetectionService.test.ts"
    " @0472a8dfec641400a97d114354b12b88422aa5c9 (Apache-2.0)"
)


@dataclass(frozen=True)
class Session:
    id: str
    kind: Kind
    agent: str
    source: str
    licence: str
    cls: str
    verdict: Verdict
    why: str
    script: Callable[[str], Script] | None = None
    raw: str | None = None  # file under raw/, for transcripts
    raw_format: str | None = None
    stuck_from_call: int | None = None  # for transcripts: the n-th tool call starts the loop
    # The date a held-out session's verdict was written, before it was ever replayed; None for
    # the tuning set the rules were developed against.
    heldout: str | None = None
    # For a transcript cut into windows: the seqs after which the excerpt leaves events out.
    # The events after a cut are moved to follow it by one second (their spacing kept), so
    # the time the omitted events took does not read as a silent session.
    cuts: tuple[int, ...] = ()


def _s(session_id: str) -> Script:
    return Script(session_id).begin()


# --- OpenHands StuckDetector tests (headless mode) ----------------------------------------


def _oh_repeating_action_observation(sid: str) -> Script:
    s = _s(sid).stuck_here()
    for _ in range(4):
        s.call("run", {"command": "ls"}, "")
    return s


def _oh_repeating_action_error(sid: str) -> Script:
    s = _s(sid)
    errors = (
        "Command not found",
        "Command still not found or another error",
        "Different error",
        "Command not found",
    )
    for i, error in enumerate(errors):
        if i == 1:
            s.stuck_here()
        s.call("run", {"command": "invalid_command"}, ok=False, err=error)
    return s


_SNIPPET = 'edit_file_by_replace(\'book_store.py\', to_replace="""def total(basket):'


def _oh_syntax(sid: str, *, moving: bool, incidents: int = 4) -> Script:
    s = _s(sid)
    for i in range(incidents):
        if i == 1 and not moving:
            s.stuck_here()
        line = (i + 1) * 10 if moving else 42
        err = f'  Cell In[1], line {line}\nto_replace="""def largest(min_factor, max_factor):\n'
        err += "            ^\nSyntaxError: invalid syntax. Perhaps you forgot a comma?"
        s.call(
            "run_ipython", {"code": _SNIPPET}, ok=False, err=err + "\n" * (i + 1 if moving else 0)
        )
    return s


def _oh_unterminated_not_at_end(sid: str) -> Script:
    s = _s(sid)
    tails = (
        "This is some additional output",
        "Too much output here on and on",
        "Enough",
        "Last line of output",
    )
    for line, tail in zip((1, 1, 3, 2), tails, strict=True):
        err = (
            f'print("hello\n       ^\n'
            f"SyntaxError: unterminated string literal (detected at line {line})\n{tail}"
        )
        s.call("run_ipython", {"code": 'print("hello'}, ok=False, err=err)
    return s


def _oh_alternating(sid: str) -> Script:
    s = _s(sid)
    for i in range(3):
        if i == 1:
            s.stuck_here()
        s.call("run", {"command": "ls"}, "file1.txt\nfile2.txt")
        s.call("read", {"path": "file1.txt"}, "File content")
    return s


def _oh_not_stuck(sid: str) -> Script:
    s = _s(sid)
    s.call("run", {"command": "ls"}, "file1.txt\nfile2.txt")
    s.call("read", {"path": "file1.txt"}, "File content")
    s.call("run", {"command": "pwd"}, "/home/user")
    s.call("read", {"path": "file2.txt"}, "Another file content")
    s.call("run", {"command": "pwd"}, "/home/user")
    s.call("read", {"path": "file2.txt"}, "Another file content")
    return s


def _oh_monologue(sid: str) -> Script:
    s = _s(sid).say("Hi there!").call("run", {"command": "echo 42"}, "42")
    s.stuck_here()
    for _ in range(3):
        s.say("I'm doing well, thanks for asking.")
    return s


def _oh_monologue_broken(sid: str) -> Script:
    s = _s(sid).say("I'm doing well, thanks for asking.")
    s.call("storybook", {"command": "storybook"}, "OK, I was stuck, but no more.")
    s.say("I'm doing well, thanks for asking.").say("I'm doing well, thanks for asking.")
    return s


def _oh_empty_commands(sid: str) -> Script:
    s = _s(sid).call(
        "run", {"command": "npm run build:all", "blocking": False}, "> build:all\n[1/9] compiling"
    )
    for step in range(2, 11):
        s.call("run", {"command": ""}, f"[{step}/9] compiling" if step < 10 else "done", gap=30)
    return s


# --- gemini-cli LoopDetectionService tests -------------------------------------------------


def _gem_tool_calls(sid: str, count: int) -> Script:
    s = _s(sid).stuck_here()
    for _ in range(count):
        s.call("read_file", {"absolute_path": "/work/project/src/index.ts"}, "export {}\n")
    return s


def _gem_different_args(sid: str) -> Script:
    s = _s(sid)
    for i in range(8):
        s.call(
            "read_file",
            {"absolute_path": f"/work/project/src/file{i}.ts"},
            f"export const v{i} = {i};",
        )
    return s


def _gem_chant(sid: str) -> Script:
    s = _s(sid).call("read_file", {"absolute_path": "/work/project/README.md"}, "# Project")
    s.stuck_here()
    return s.say("This is a unique sentence, id=1. " * 15)


def _gem_varied_reply(sid: str) -> Script:
    s = _s(sid).call("read_file", {"absolute_path": "/work/project/README.md"}, "# Project")
    sentences = [
        f"Step {i}: I checked module {chr(97 + i)} and it exports {i * 3} symbols."
        for i in range(12)
    ]
    return s.say(" ".join(sentences))


# --- issue reports ----------------------------------------------------------------------


def _cc_19699(sid: str) -> Script:
    s = _s(sid)
    err = "Error: Exit code 2\nmake: *** No rule to make target 'run-runner'.  Stop."
    for i in range(7):
        if i == 1:
            s.stuck_here()
        s.call(
            "Bash",
            {"command": 'ssh [remote-server] "make run-runner" 2>&1'},
            ok=False,
            err=err,
            exit_code=2,
        )
    return s


def _cindy_2721(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "Bash", {"command": "cd /repo && git log --oneline -5"}, "fa418f900 remove shell guard\n..."
    )
    s.call(
        "Bash",
        {"command": "cd /repo && ls apps/desktop/src/main/maker-host"},
        "base-agent.ts\nhost.ts",
    )
    note = "\nShell cwd was reset to /repo"
    hit = (
        "apps/desktop/src/main/maker-host/base-agent.ts:731:  "
        "getShellCommandPolicy(): ShellCommandPolicy" + note
    )
    for i in range(24):
        if i == 2:
            s.stuck_here()
        s.call(
            "Bash",
            {"command": 'cd /repo && grep -rn "getShellCommandPolicy" apps/desktop/src'},
            hit,
            gap=17,
        )
        s.call(
            "Bash",
            {"command": 'cd /repo && grep -rn "shell-command-policy" apps/desktop/src'},
            hit,
            gap=17,
        )
    return s


def _pi_6158(sid: str) -> Script:
    s = _s(sid)
    listing = "custom.css\ncustom.js"
    for i in range(6):
        if i == 1:
            s.stuck_here()
        s.call("bash", {"command": "ls /home/dev/.jupyter/custom/"}, listing)
    for _ in range(5):
        s.call(
            "bash",
            {"command": "ls -la /home/dev/.jupyter/custom/"},
            "total 8\n-rw-r--r-- 1 dev dev 0 custom.css",
        )
    return s


def _pi_9637(sid: str) -> Script:
    s = _s(sid)
    for i in range(30):
        if i == 1:
            s.stuck_here()
        s.call(
            "fabric_exec",
            {"command": "bash echo noop", "description": f"noop{i + 1}"},
            "noop",
            gap=8,
        )
    return s


def _vibe_83(sid: str) -> Script:
    s = _s(sid)
    for i in range(10):
        if i == 1:
            s.stuck_here()
        s.say("Most nézzük meg a kód minőséget:")
        s.call("bash", {"command": "flake8 . | wc -l"}, "Flake8 hibák száma: 1", gap=4)
    return s


def _nanobot_3073(sid: str) -> Script:
    s = _s(sid)
    args = {"path": "~/.nanobot/workspace/memory/history.jsonl", "limit": 50, "offset": 1}
    for i in range(15):
        if i == 1:
            s.stuck_here()
        s.call("read_file", args, '{"role": "user", "content": "what happened recently?"}')
    return s


def _gigachat_69(sid: str) -> Script:
    s = _s(sid)
    for i in range(12):
        if i == 1:
            s.stuck_here()
        s.call("write_todos", {"todos": []}, "Updated todo list to []")
    return s


def _superplane_4123(sid: str) -> Script:
    s = _s(sid)
    for i in range(6):
        if i == 1:
            s.stuck_here()
        s.call("list_integration_resources", {"integration": "github"}, "[]")
        s.call("describe_trigger", {"trigger": "on_push"}, "[]")
        s.call("list_components", {}, "[]")
    return s


def _chant(sid: str, sentence: str, times: int) -> Script:
    s = _s(sid).call(
        "Read", {"file_path": "/work/project/plan.md"}, "# Plan\n1. implement the parser"
    )
    s.stuck_here()
    return s.say(sentence * times)


def _gemini_5873(sid: str) -> Script:
    s = _s(sid)
    components = ("Button", "Card", "Modal", "Navbar", "Footer", "Sidebar")
    for name in components:
        s.call(
            "search_file_content",
            {"pattern": f"components/{name}"},
            f"src/pages/Home.tsx:3: import {name} from '../components/{name}'",
        )
        s.call(
            "run_shell_command",
            {"command": f"git mv src/components/{name}.tsx src/components/ui/{name}.tsx"},
            "",
        )
        s.call(
            "search_file_content",
            {"pattern": f"from '../components/{name}'"},
            "src/pages/Home.tsx:3",
        )
        s.call(
            "replace",
            {
                "file_path": "src/pages/Home.tsx",
                "old_string": f"../components/{name}",
                "new_string": f"../components/ui/{name}",
            },
            "Successfully modified file",
        )
    return s


def _gemini_7950(sid: str) -> Script:
    s = _s(sid)
    s.call("run_shell_command", {"command": "wc -l data/sales.csv"}, "240001 data/sales.csv")
    for block in range(12):
        s.call(
            "read_file",
            {
                "absolute_path": "/work/project/data/sales.csv",
                "offset": block * 20000,
                "limit": 20000,
            },
            f"rows {block * 20000}..{block * 20000 + 19999}: region,total\nnorth,{1000 + block}",
            secs=4,
            gap=20,
        )
    return s


def _bash_output_polling(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "Bash",
        {"command": "npm test", "run_in_background": True},
        "Command running in background with ID: bash_1",
    )
    for tick in range(3):
        s.call(
            "BashOutput",
            {"bash_id": "bash_1"},
            f"<status>running</status>\n<stdout>PASS src/suite{tick}.test.ts</stdout>",
            gap=10,
        )
    s.call(
        "BashOutput",
        {"bash_id": "bash_1"},
        "<status>completed</status>\n<exit_code>0</exit_code>\nTests: 120 passed",
        gap=10,
    )
    s.call(
        "Edit",
        {"file_path": "src/api.ts", "old_string": "TODO", "new_string": "done"},
        "The file src/api.ts has been updated.",
    )
    return s


def _xum_1046(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "bash",
        {"command": "npm run dev", "run_in_background": True},
        "started process pid 48211 (id: proc_7f3a)",
    )
    for i in range(12):
        if i == 1:
            s.stuck_here()
        out = (
            "process proc_7f3a (pid 48211) exited with code 0\nno new output\n"
            f"elapsed_ms: {2 + i % 5}"
        )
        s.call("bash_output", {"process_id": "proc_7f3a"}, out, secs=0.01, gap=1)
    return s


def _repo_agent_680(sid: str) -> Script:
    s = _s(sid)
    failure = (
        "generate.sh: line 41: pkg/clients/generated/zz_types.go: "
        "conflicting definition of ComputeAddress\nexit status 1"
    )
    s.call(
        "run_shell_command",
        {"command": "./scripts/generate.sh"},
        ok=False,
        err=failure,
        exit_code=1,
    )
    for i in range(4):
        if i == 1:
            s.stuck_here()
        s.call("run_shell_command", {"command": "rm pkg/clients/generated/zz_types.go"}, "")
        s.call(
            "run_shell_command",
            {"command": "./scripts/generate.sh"},
            ok=False,
            err=failure,
            exit_code=1,
        )
    return s


def _nanobot_5344(sid: str) -> Script:
    s = _s(sid)
    steps = (
        ("exec", {"command": "echo $OPENAI_BASE_URL"}, ""),
        ("exec", {"command": "env | grep OPENAI"}, "OPENAI_API_KEY=[redacted]"),
        ("grep", {"pattern": "OPENAI_BASE_URL", "path": "~/.nanobot"}, "no matches"),
        ("read_file", {"path": "~/.nanobot/config.json"}, '{"provider": "openai"}'),
        (
            "read_file",
            {"path": "~/.nanobot/workspace/session.log", "limit": 40},
            "checking env var OPENAI_BASE_URL",
        ),
        (
            "exec",
            {"command": "cat /proc/self/environ | tr '\\0' '\\n' | grep OPENAI"},
            "OPENAI_API_KEY=[redacted]",
        ),
    )
    for i in range(4):
        if i == 1:
            s.stuck_here()
        for tool, args, out in steps:
            s.call(tool, args, out, gap=6)
    return s


def _crustly_ls(sid: str) -> Script:
    s = _s(sid)
    for path in ("./src", "./src/cli", "./src/tui"):
        s.call("ls", {"path": path}, f"{path}: mod.rs lib.rs")
    s.call("read", {"path": "./src/llm/agent/service.rs"}, "pub struct AgentService {")
    return s


def _traceroost_215(sid: str) -> Script:
    s = _s(sid).call(
        "Bash",
        {"command": "pytest tests/test_parser.py -q"},
        ok=False,
        err="5 failed, 12 passed in 3.10s",
        exit_code=1,
        secs=3,
    )
    for fixed, left in ((1, 3), (2, 1), (3, 0)):
        s.call(
            "Edit",
            {
                "file_path": "src/parser.py",
                "old_string": f"# step {fixed}",
                "new_string": f"handle_case_{fixed}()",
            },
            "The file src/parser.py has been updated.",
        )
        s.say("Let me run the tests again.")
        if left:
            s.call(
                "Bash",
                {"command": "pytest tests/test_parser.py -q"},
                ok=False,
                err=f"{left} failed, {17 - left} passed in 3.0{fixed}s",
                exit_code=1,
                secs=3,
            )
        else:
            s.call(
                "Bash", {"command": "pytest tests/test_parser.py -q"}, "17 passed in 2.98s", secs=3
            )
    return s


def _fusion_2404(sid: str) -> Script:
    s = _s(sid)
    for round_ in range(12):
        spec = f"e2e/checkout-{round_ % 4}.spec.ts"
        s.call(
            "Read",
            {"file_path": f"src/checkout/step{round_}.ts"},
            f"export function step{round_}() {{",
            gap=20,
        )
        s.call(
            "Edit",
            {
                "file_path": f"src/checkout/step{round_}.ts",
                "old_string": "await page.click",
                "new_string": f"await page.locator('#pay-{round_}').click",
            },
            "updated",
            gap=15,
        )
        passed = round_ >= 10
        s.call(
            "Bash",
            {"command": f"npx playwright test {spec} --reporter=line"},
            f"1 passed ({20 + round_}s)" if passed else "",
            ok=passed,
            err=""
            if passed
            else f"1 failed: {spec}:{12 + round_} timeout waiting for #pay-{round_}",
            exit_code=0 if passed else 1,
            secs=20 + round_,
            gap=10,
        )
    return s


def _cc_60894(sid: str) -> Script:
    s = _s(sid)
    files = (
        "src/Controller/Order.php",
        "src/app.js",
        "config/routes.json",
        "src/Model/Cart.php",
        "src/api/client.ts",
        "src/Service/Mailer.php",
        "src/index.ts",
        "composer.json",
    )
    for i, path in enumerate(files):
        edit = {"file_path": path, "old_string": f"// TODO {i}", "new_string": f"applyFix{i}();"}
        s.call("Read", {"file_path": path}, f"1\t<?php // {path}\n2\t// TODO {i}")
        if i % 2 == 0:
            s.call(
                "Edit",
                edit,
                ok=False,
                err="Error editing file: String to replace was not found in the file.",
            )
            s.call("Read", {"file_path": path, "offset": 1}, f"1\t<?php // {path}\n2\t// TODO {i}")
        s.call("Edit", edit, f"The file {path} has been updated.")
    s.call("Bash", {"command": "composer test"}, "OK (42 tests, 97 assertions)", secs=12)
    return s


def _anon_kode_94(sid: str) -> Script:
    s = _s(sid).call("View", {"file_path": "src/main.py"}, "def main():\n    run()")
    for variant in ("    run()", "\trun()", "run()"):
        s.call(
            "Update",
            {
                "file_path": "src/main.py",
                "old_string": variant,
                "new_string": "    run(debug=True)",
            },
            ok=False,
            err="String to replace not found in file.",
        )
    s.say(
        "It seems I'm repeatedly failing to match the text. "
        "I'll use the Replace tool instead to overwrite "
        "the file with the intended changes."
    )
    s.call(
        "Replace",
        {"file_path": "src/main.py", "content": "def main():\n    run(debug=True)\n"},
        "File written",
    )
    s.call("Bash", {"command": "python -m pytest -q"}, "3 passed in 0.41s")
    return s


def _open_design_3375(sid: str) -> Script:
    s = _s(sid).call(
        "Read", {"file_path": "src/components/Titlebar.tsx"}, '<div className="tb-left">'
    )
    for i in range(8):
        if i == 1:
            s.stuck_here()
        s.call(
            "Edit",
            {
                "file_path": "src/components/Sidebar.tsx",
                "old_string": "<SidebarToggle />",
                "new_string": "{/* moved to .titlebar-left */}",
            },
            "The file has been updated.",
        )
        s.call(
            "Bash",
            {
                "command": (
                    "grep -q 'titlebar-left .*SidebarToggle' src/components/Titlebar.tsx && echo OK"
                )
            },
            ok=False,
            err="Error: Exit code 1",
            exit_code=1,
        )
        s.call("Read", {"file_path": "src/components/Titlebar.tsx"}, '<div className="tb-left">')
    return s


def _gemini_18370(sid: str) -> Script:
    s = _s(sid).call(
        "read_file",
        {"absolute_path": "AnaloggerTests/NotesListViewModelTests.swift"},
        "import XCTest",
    )
    edit = {
        "file_path": "AnaloggerTests/NotesListViewModelTests.swift",
        "old_string": "import XCTest\n@testable import Analogger",
        "new_string": "import XCTest\nimport SwiftData\n@testable import Analogger",
    }
    err = (
        "Failed to edit, 0 occurrences found for old_string in "
        "AnaloggerTests/NotesListViewModelTests.swift. "
        "Ensure you're not escaping content incorrectly and check whitespace, "
        "indentation, and context. "
        "Use read_file tool to verify."
    )
    for i in range(6):
        if i == 1:
            s.stuck_here()
        s.call("replace", edit, ok=False, err=err)
    return s


def _background_agents_120(sid: str) -> Script:
    s = _s(sid).call(
        "Bash",
        {"command": "git clone --depth 1 https://github.com/acme/shop.git ."},
        "Cloning into '.'...",
        secs=8,
    )
    s.call("Bash", {"command": "npm ci"}, "added 1423 packages in 2m31s", secs=151)
    s.call(
        "Bash",
        {"command": "npm run build"},
        "webpack 5.90.0 compiled successfully in 243817 ms",
        secs=244,
    )
    s.call(
        "Bash",
        {"command": "npm test"},
        "Test Suites: 212 passed, 212 total\nTests: 3114 passed",
        secs=672,
    )
    s.call(
        "Edit",
        {
            "file_path": "src/cart/total.ts",
            "old_string": "Math.round(",
            "new_string": "roundCents(",
        },
        "updated",
    )
    s.call("Bash", {"command": "npx jest src/cart"}, "Tests: 48 passed", secs=21)
    s.call(
        "Bash",
        {"command": "git commit -am 'Round cart totals to cents'"},
        "[main 1a2b3c4] Round cart totals to cents",
    )
    return s


def _openclaw_89090(sid: str) -> Script:
    s = _s(sid)
    s.call("read", {"path": "reports/daily.md"}, "# Daily report\n3 tickets closed, 1 opened")
    text = "Daily report: 3 tickets closed, 1 opened."
    for i in range(30):
        if i == 1:
            s.stuck_here()
        receipt = (
            f'{{"ok": true, "deliveryStatus": "sent", "messageId": "om_{0x5A3F1 + 7919 * i:x}", '
            f'"runId": "run-{1717200000 + 11 * i}"}}'
        )
        s.call(
            "message",
            {"action": "send", "channel": "feishu", "text": text},
            receipt,
            secs=0.4,
            gap=2,
        )
    return s


def _openclaw_67744(sid: str) -> Script:
    s = _s(sid)
    reply = "<final>Sure! Switching to voice now.</final>"
    failure = 'TTS conversion failed: no provider registered for "openai"'
    for i in range(40):
        if i == 1:
            s.stuck_here()
        s.say(reply, gap=0.5)
        s.call("tts", {"text": "Sure! Switching to voice now."}, failure, secs=0.3, gap=0.5)
    return s


def _deerflow_2511(sid: str) -> Script:
    s = _s(sid)
    s.call("bash", {"command": "ls data/raw/*.fastq.gz | wc -l"}, "8")
    for n in range(1, 9):
        s.call(
            "bash",
            {"command": f"fastqc data/raw/sample_{n:02d}.fastq.gz -o qc/"},
            f"Analysis complete for sample_{n:02d}.fastq.gz\nqc/sample_{n:02d}_fastqc.zip",
            secs=40,
        )
    for n in range(1, 9):
        s.call(
            "bash",
            {
                "command": f"hisat2 -x ref/grch38 -U data/raw/sample_{n:02d}.fastq.gz "
                f"| samtools sort -o aligned/sample_{n:02d}.aligned.bam"
            },
            f"{92.1 + n / 10:.2f}% overall alignment rate\naligned/sample_{n:02d}.aligned.bam",
            secs=150,
        )
    s.call(
        "bash",
        {"command": "featureCounts -a ref/genes.gtf -o counts.txt aligned/*.bam"},
        "Successfully assigned alignments : 31204455 (78.4%)",
        secs=90,
    )
    s.say("All 8 samples are QC'd, aligned and counted; next, differential expression.")
    return s


def _deerflow_2116(sid: str) -> Script:
    s = _s(sid)
    for part in range(3):
        # After each summarisation the agent re-reads the two files it works against.
        s.call(
            "read_file", {"path": "package.json"}, '{"name": "shop", "scripts": {"test": "vitest"}}'
        )
        s.call(
            "read_file", {"path": "src/routes/index.ts"}, f"export const routes = [{part} routes]"
        )
        for name in ("cart", "checkout", "orders", "users")[part : part + 2]:
            s.call(
                "write_file",
                {"path": f"src/routes/{name}.ts", "content": f"export const {name} = ..."},
                "ok",
            )
            s.call(
                "str_replace",
                {"path": "src/routes/index.ts", "old": "]", "new": f", {name}]"},
                "1 replacement",
            )
        s.call("bash", {"command": "npx tsc --noEmit"}, "", secs=8)
        s.say(f"Routes part {part + 1} of 3 done; context was summarised, re-reading the config.")
    return s


def _toloka_1494(sid: str) -> Script:
    s = _s(sid)
    s.call("read_file", {"path": "triage/supply_chain.py"}, "def triage(items): ...")
    for left in (6, 4, 3, 1):
        s.call(
            "bash",
            {"command": "pytest -x tests/test_triage.py"},
            ok=False,
            err=f"FAILED tests/test_triage.py::test_case_{7 - left} - AssertionError\n"
            f"{left} failed, {9 - left} passed",
            exit_code=1,
            secs=4,
        )
        s.call(
            "edit_file",
            {
                "path": "triage/supply_chain.py",
                "old": f"# case {7 - left}",
                "new": f"fix_{7 - left}()",
            },
            "edited",
        )
    s.call("bash", {"command": "pytest -x tests/test_triage.py"}, "9 passed", secs=4)
    return s


def _toloka_1141(sid: str) -> Script:
    s = _s(sid)
    for i in range(40):
        if i == 1:
            s.stuck_here()
        # the scripted user simulator answers between turns (not an agent event)
        s.say("I am still working on completing the task right now please wait", gap=6)
    return s


def _llmkube_569(sid: str) -> Script:
    s = _s(sid)
    s.call("bash", {"command": "git status --short"}, " M pkg/foreman/loop.go")
    s.call("bash", {"command": "git branch --list 'foreman/*'"}, "  foreman/issue-449")
    command = 'git log foreman/issue-449 --oneline | grep -i "449" | head -10'
    for i in range(58):
        if i == 1:
            s.stuck_here()
        s.call("bash", {"command": command}, "", secs=0.2, gap=1.1)
    return s


def _deerflow_1533(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "bash",
        {"description": "Install dependencies", "command": "pip install -r requirements.txt"},
        "Successfully installed 14 packages",
        secs=20,
    )
    reasons = (
        "Run the data export",
        "Retry the export",
        "Try running the export again",
        "Run export script once more",
        "Re-run export to check",
        "Attempt the export again",
        "Run export one more time",
        "Retry running export",
    )
    failure = (
        "Traceback (most recent call last):\n  File \"export.py\", line 12\nKeyError: 'S3_BUCKET'"
    )
    for i, reason in enumerate(reasons):
        if i == 1:
            s.stuck_here()
        s.call(
            "bash",
            {"description": reason, "command": "python scripts/export.py --out out/"},
            ok=False,
            err=failure,
            exit_code=1,
        )
    return s


def _stella_6480(sid: str) -> Script:
    s = _s(sid)
    # about four minutes of work on the COBOL port before the loop (assumed)
    work = (
        ("ls /app/src", "INPUT.DAT\nbook.cbl\nprogram.cbl"),
        ("sed -n 1,80p /app/src/program.cbl", "IDENTIFICATION DIVISION.\nPROGRAM-ID. BOOKS."),
        ("cat /app/src/book.cbl", "01 BOOK-RECORD.\n   05 BOOK-ID PIC 9(6)."),
        ("cobc -x -o /tmp/prog /app/src/program.cbl", ""),
        ("cd /app/src && /tmp/prog && cat OUTPUT.DAT | head", "000001 THE HOBBIT      0012"),
        ("python3 /app/port/books.py && head /app/port/out.dat", "000001 THE HOBBIT 12"),
        ("diff <(cd /app/src && /tmp/prog; cat OUTPUT.DAT) /app/port/out.dat", "1c1"),
    )
    for command, out in work:
        s.call("bash", {"command": command}, out, secs=2, gap=30)
    reader = {"command": "python3 -c \"print(open('/app/src/INPUT.DAT','rb').read()[:120])\""}
    record = "b'000001THE HOBBIT          0012\\r\\n000002DUNE                0007\\r\\n'"
    s.call("bash", reader, record, secs=0.4, gap=3)
    s.stuck_here()
    s.call("bash", reader, record, secs=0.4, gap=3)
    s.call("bash", reader, record, secs=0.4, gap=3)  # +258.6 s: flagged, the agent steered
    detour = (
        ("od -c /app/src/INPUT.DAT | head", "0000000   0   0   0   0   0   1   T   H   E"),
        None,  # the flagged reader, once
        ("git diff /app/src/INPUT.DAT", "-000001THE HOBBIT 0012\r\n+000001THE HOBBIT 0012\n"),
        ("git checkout /app/src/INPUT.DAT", "Updated 1 path from the index"),
        ("file /app/src/INPUT.DAT", "ASCII text, with CRLF line terminators"),
        ("grep -n 'LINE SEQUENTIAL' /app/src/program.cbl", "12:  ORGANIZATION IS LINE SEQUENTIAL."),
        ("sed -n 40,60p /app/port/books.py", "with open(path, newline='') as f:"),
        ("python3 /app/port/books.py && head -2 /app/port/out.dat", "000001 THE HOBBIT 12"),
        (
            "wc -c /app/src/INPUT.DAT /app/port/out.dat",
            " 3120 /app/src/INPUT.DAT\n 2980 /app/port/out.dat",
        ),
    )
    for step in detour:
        if step is None:
            s.call("bash", reader, record, secs=0.4, gap=3)
        else:
            s.call("bash", {"command": step[0]}, step[1], secs=0.5, gap=3)
    for _ in range(3):  # back to the quoted command: aborted
        s.call("bash", reader, record, secs=0.4, gap=3)
    return s


def _openhands_10350(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "str_replace_editor",
        {"command": "view", "path": "/workspace/repo"},
        "/workspace/repo/\nsetup.py\ntests/",
    )
    s.call(
        "run",
        {"command": "pip install -e . && python -m pytest tests -x -q"},
        "Obtaining file:///workspace/repo\nInstalling collected packages: repo\n"
        "[The command has no new output after 30 seconds. You may wait longer to see additional "
        "output by sending empty command '', send other commands to interact with the current "
        "process, or send keys to interrupt/kill the command.]",
        exit_code=-1,
        secs=30,
    )
    progress = (
        "Successfully installed repo-0.1.0\n....................",
        "........................................ [ 61%]",
        "......................................   [ 94%]",
    )
    for out in progress:
        s.call("run", {"command": "", "is_input": False}, out, exit_code=-1, secs=30, gap=2)
    s.call("run", {"command": ""}, "....  [100%]\n212 passed in 118.40s", secs=8, gap=2)
    s.say("All 212 tests pass after the install.")
    return s


def _openhands_sdk_762(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "terminal",
        {"command": "curl -s -X POST https://api.example.test/v1/train -d @job.json"},
        '{"job_id": "job-42", "status": "queued"}',
        secs=1,
    )
    poll = {"command": "sleep 300 && curl -s https://api.example.test/v1/jobs/job-42"}
    for _ in range(4):
        s.call("terminal", poll, '{"job_id": "job-42", "status": "running"}', secs=301, gap=2)
    s.call("terminal", poll, '{"job_id": "job-42", "status": "completed"}', secs=301, gap=2)
    s.say("Training job-42 completed after about 25 minutes of polling every 5 minutes.")
    return s


# --- held-out sessions rebuilt from issue reports (verdicts written 2026-12-06, before replay) ---


def _appdevforall_100(sid: str) -> Script:
    s = _s(sid)
    s.call("search_project", {"query": "foo"}, "src/a.kt:12: fun foo()\nsrc/b.kt:30: foo()")
    s.call("read_file", {"path": "src/a.kt"}, "fun foo() {\n    legacy()\n}")
    s.call(
        "edit_file", {"path": "src/a.kt", "old": "legacy()", "new": "modern()"}, "edited src/a.kt"
    )
    s.call("read_file", {"path": "src/b.kt"}, "val x = foo()")
    s.call(
        "edit_file",
        {"path": "src/b.kt", "old": "foo()", "new": "foo().also { log(it) }"},
        "edited src/b.kt",
    )
    s.call("read_file", {"path": "src/a.kt"}, "fun foo() {\n    modern()\n}")
    s.call("read_file", {"path": "src/b.kt"}, "val x = foo().also { log(it) }")
    s.call(
        "search_project",
        {"query": "foo"},
        "src/a.kt:12: fun foo()\nsrc/b.kt:30: foo().also { log(it) }",
    )
    s.say("Both call sites are updated and verified; done.")
    return s


def _qwen_3236(sid: str) -> Script:
    s = _s(sid)
    files = {
        "README.md": "# toy\nA tiny CLI.",
        "package.json": '{"name": "toy", "main": "src/index.ts"}',
        "src/config.ts": "export const config = { verbose: false };",
        "src/index.ts": "import { config } from './config';\nmain(config);",
        "src/utils.ts": "export function pad(s: string) { return s.padStart(4); }",
    }
    for path, text in files.items():
        s.call("read_file", {"absolute_path": f"/work/toy/{path}"}, text, secs=0.05, gap=0.1)
    s.say(
        "The project is a small TypeScript CLI: index.ts runs main with config.ts's settings; "
        "utils.ts holds helpers."
    )
    return s


def _zeroclaw_10503(sid: str) -> Script:
    s = _s(sid)
    names = (
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "Edsger Dijkstra",
        "Barbara Liskov",
        "Donald Knuth",
        "Frances Allen",
    )
    for name in names:
        s.call("directory_lookup", {"name": name}, "[]", gap=2)
    s.say("None of the seven names is in the directory.")
    return s


def _openmono_47(sid: str) -> Script:
    s = _s(sid)
    s.call("StartJob", {"job": "nightly-export"}, '{"job_id": "exp-118", "status": "queued"}')
    for _ in range(5):
        s.call(
            "CheckStatus",
            {"job_id": "exp-118"},
            '{"job_id": "exp-118", "status": "running"}',
            gap=20,
        )
    s.call(
        "CheckStatus",
        {"job_id": "exp-118"},
        '{"job_id": "exp-118", "status": "done", "rows": 48211}',
        gap=20,
    )
    s.say("The export finished: 48211 rows.")
    return s


def _qwen_9733(sid: str) -> Script:
    s = _s(sid)
    for stage, name in enumerate(("blender_bake", "nuke_comp", "comfy_upscale"), start=1):
        script = f"C:/pipeline/stage{stage}_{name}.py"
        s.call(
            "write_file", {"file_path": script, "content": f"# stage {stage}: {name}\n..."}, "ok"
        )
        if stage == 2:
            s.call(
                "run_shell_command",
                {"command": f"python {script}"},
                ok=False,
                err="FileNotFoundError: C:/pipeline/out/stage1/beauty.exr not found",
                secs=40,
            )
            s.call(
                "edit",
                {
                    "file_path": script,
                    "old_string": "out/stage1/beauty.exr",
                    "new_string": "out/stage1/beauty_0001.exr",
                },
                "ok",
            )
        s.call(
            "run_shell_command",
            {"command": f"python {script}"},
            f"stage {stage} wrote 24 frames",
            secs=90,
        )
        s.call(
            "run_shell_command",
            {"command": f"dir C:/pipeline/out/stage{stage}"},
            f"24 File(s) stage{stage}_0001.exr ... stage{stage}_0024.exr",
        )
    s.say("All three stages ran and their outputs are on disk.")
    return s


def _classla_239(sid: str) -> Script:
    s = _s(sid)
    block = {"block_id": "intro-paragraph"}
    versions = (
        "Photosynthesis converts light to chemical energy.",
        "Photosynthesis converts light energy into chemical energy stored in glucose.",
        "Photosynthesis, in the chloroplast, converts light energy into chemical energy "
        "stored in glucose.",
        "Photosynthesis, in the chloroplast, converts light energy into chemical energy "
        "stored in glucose; oxygen is released.",
    )
    for text in versions:
        s.call(
            "edit_block",
            {**block, "content": text},
            f"updated intro-paragraph ({len(text)} chars)",
            gap=6,
        )
    s.say(
        "I tightened the introduction in four passes; "
        "it now names the organelle and the by-product."
    )
    return s


def _octos_284(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "shell",
        {"command": "find ~ -name 'q3-report*' 2>/dev/null"},
        "/home/u/Documents/q3-report.docx",
    )
    s.call(
        "shell",
        {"command": "ls -la /home/u/Documents/q3-report.docx"},
        "-rw-r--r-- 1 u u 81234 q3-report.docx",
    )
    s.say("Found it. I'll convert it to PDF before sending.")
    attempts = (
        "soffice --headless --convert-to pdf /home/u/Documents/q3-report.docx",
        "libreoffice --headless --convert-to pdf /home/u/Documents/q3-report.docx",
        "pandoc /home/u/Documents/q3-report.docx -o /tmp/q3-report.pdf",
    )
    for i in range(15):
        if i == 0:
            s.stuck_here()
        s.call(
            "shell",
            {"command": attempts[i % 3]},
            ok=False,
            err="[synthesizing missing tool result]",
            exit_code=127,
        )
    return s


def _opencode_28596(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "read",
        {"filePath": "/repo/src/server.ts"},
        "import express from 'express';\nconst app = express();",
    )
    s.call(
        "edit",
        {
            "filePath": "/repo/src/server.ts",
            "oldString": "express()",
            "newString": "express().use(cors())",
        },
        "ok",
    )
    for i in range(10):
        if i == 1:
            s.stuck_here()
        s.call(
            "bash",
            {"command": "npx tsc --noEmit -p ."},
            ok=False,
            err="src/server.ts(2,31): error TS2304: Cannot find name 'cors'.",
            exit_code=2,
        )
    return s


def _bdfinst_708(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "Edit",
        {"file_path": "src/rates.py", "old_string": "round(x, 2)", "new_string": "round(x, 4)"},
        "ok",
    )
    failing = (
        "FAILED tests/test_rates.py::test_compound - assert 1.1025 == 1.1\n"
        "1 failed, 41 passed in 3.21s"
    )
    for i in range(6):
        if i == 1:
            s.stuck_here()
        s.call("Bash", {"command": "pytest -q"}, ok=False, err=failing, exit_code=1, secs=4)
    return s


def _open_science_121(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "bash",
        {"command": "python analysis/fit.py --data data/run7.csv"},
        ok=False,
        err="ValueError: could not convert string to float: 'NA'",
        exit_code=1,
    )
    grep = {"command": 'grep -n "NA" data/run7.csv | head -20'}
    hits = "118:0.41,NA,0.93\n245:0.38,NA,0.90\n377:0.44,NA,0.95"
    for i in range(12):
        if i == 1:
            s.stuck_here()
        s.say(
            "I should run the grep again to check where the NA values are "
            "before changing the parser."
        )
        s.call("bash", grep, hits, gap=5)
    return s


def _qwen_610(sid: str) -> Script:
    s = _s(sid)
    for name in (
        "users",
        "orders",
        "invoices",
        "products",
        "payments",
        "refunds",
        "reports",
        "audit",
    ):
        s.call(
            "run_shell_command",
            {"command": f"npx prettier --write src/api/{name}.ts"},
            f"src/api/{name}.ts 41ms",
            gap=4,
        )
    s.say("All eight API modules are formatted consistently now.")
    return s


def _zeroclaw_probes(sid: str) -> Script:
    s = _s(sid)
    for service in ("auth", "billing", "catalog", "search", "notifications"):
        s.call(
            "http_get", {"url": f"http://{service}.internal:8080/health"}, '{"status":"ok"}', gap=3
        )
    s.say("All five services report healthy; the outage is upstream of them.")
    return s


def _cheasee_171(sid: str) -> Script:
    s = _s(sid)
    commands = (
        "ls",
        "cat package.json",
        "ls src",
        "grep -rn createHouse src",
        "cat src/house.ts",
        "cat src/templates/house.md",
        "npm ls --depth=0",
        "npx tsc --noEmit",
        "npm test -- house",
        "git status",
        "git diff --stat",
        "sed -n 1,40p src/render.ts",
        "grep -n TODO src/render.ts",
        "node scripts/render.js --dry-run",
        "ls out",
        "head -20 out/house-1.md",
        "wc -l out/*.md",
        "npm run lint",
        "git log --oneline -5",
        "cat .env.example",
        "ls scripts",
        "cat scripts/render.js",
        "grep -rn slug src",
        "node -e \"console.log(require('./src/slug').slug('Casa Bonita'))\"",
        "npm test -- slug",
        "npx tsc --noEmit -p tsconfig.build.json",
        "npm run build",
        "ls dist",
        "node dist/cli.js --help",
        "node dist/cli.js house 12 --out /tmp/h12.md",
        "cat /tmp/h12.md",
        "git add -A && git commit -m 'house descriptions render from templates'",
    )
    for i, command in enumerate(commands):
        s.call("bash", {"command": command}, f"[output of {command.split()[0]} #{i}]", gap=5)
    s.say("The house descriptions now render from templates; tests, lint and build pass.")
    return s


def _cc_15909(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "Write",
        {
            "file_path": "vitest.config.ts",
            "content": "export default { test: { coverage: { provider: 'v8' } } }",
        },
        "ok",
    )
    install = {
        "command": "npm install -D @vitest/coverage-v8",
        "description": "Install vitest coverage dependency",
        "timeout": 180000,
    }
    for i in range(20):
        if i == 1:
            s.stuck_here()
        s.call("Bash", install, ok=False, err="Command timed out after 3m 0.0s", secs=180, gap=3)
    return s


def _nixmac_518(sid: str) -> Script:
    s = _s(sid)
    s.call(
        "read_config", {"path": "~/.config/nix-darwin/flake.nix"}, "{ inputs.nixpkgs.url = ...; }"
    )
    for i in range(15):
        if i == 1:
            s.stuck_here()
        s.call(
            "search_docs",
            {"query": "services.aerospace enable nix-darwin option"},
            "No results found.",
            gap=4,
        )
    return s


def _assemblyzero_1842(sid: str) -> Script:
    s = _s(sid)
    broken = (
        "def test_default_config_path_posix():\n"
        "    assert str(default_config_path()) == '/home/u/.boostgauge/config.toml'\n"
    )
    failure = (
        "FAILED tests/unit/test_config.py::test_default_config_path_posix - "
        "AssertionError: assert 'WindowsPath(...)' == '/home/u/.boostgauge/config.toml'\n"
        "1 failed, 52 passed"
    )
    for i in range(3):
        if i == 1:
            s.stuck_here()
        s.call("write_file", {"path": "tests/unit/test_config.py", "content": broken}, "ok")
        s.call(
            "run_tests",
            {"command": "pytest -q tests/unit"},
            ok=False,
            err=failure,
            exit_code=1,
            secs=6,
        )
    return s


def _chef_476(sid: str) -> Script:
    s = _s(sid)
    error = (
        "convex/http.ts:3:22 - error TS2307: Cannot find module './auth' "
        "or its corresponding type declarations."
    )
    edits = (
        (
            "convex/http.ts",
            "import { auth } from './auth';",
            "import { auth } from './auth/index';",
        ),
        ("convex/http.ts", "auth.addHttpRoutes(http);", "// auth.addHttpRoutes(http);"),
        ("convex/schema.ts", "...authTables,", ""),
        (
            "convex/http.ts",
            "import { auth } from './auth/index';",
            "import { auth } from '../auth';",
        ),
        ("convex/convex.config.ts", "app.use(auth);", ""),
        ("convex/http.ts", "import { auth } from '../auth';", "import { auth } from './auth.js';"),
    )
    for i, (path, old, new) in enumerate(edits):
        if i == 1:
            s.stuck_here()
        s.call("edit", {"path": path, "old": old, "new": new}, "ok")
        s.call("deploy", {}, ok=False, err=error, exit_code=1, secs=8)
    return s


HELDOUT = "2026-12-06"


def _issue(number: str) -> str:
    return f"https://github.com/{number}"


SESSIONS: tuple[Session, ...] = (
    # --- real transcripts ---
    Session(
        "cc-bookminder-residue-sweep",
        "transcript",
        "claude-code",
        "github.com/palimondo/BookMinder claude-dev-log-diary/jsonl/cloud-2026/"
        "a42b9c92-c0e6-588e-bc6f-3d5e4f37b895/subagents/agent-a05d358b0666d872d.jsonl"
        " @df2279b2e96c699ec886716492d736a31539a3fe (the whole session, 26 tool calls; "
        "bookkeeping records dropped, outputs trimmed)",
        "MIT",
        "real_run",
        "healthy",
        "A worker verifying five findings: reads a ledger, runs greps, sqlite queries and ruff, "
        "every call different, every result new; it commits and reports back, brief done.",
        raw="claude-code-bookminder-residue-sweep.jsonl",
        raw_format="claude-code",
    ),
    Session(
        "cc-bookminder-transcript-extractor",
        "transcript",
        "claude-code",
        "github.com/palimondo/BookMinder claude-dev-log-diary/jsonl/cloud-2026/"
        "a42b9c92-c0e6-588e-bc6f-3d5e4f37b895/subagents/workflows/wf_9618fe71-5e4/"
        "agent-a7adab2ec6a53d195.jsonl @aee3ca73e92642c6d19e613a54e65205c5402652"
        " (first 7 tool calls; outputs trimmed)",
        "MIT",
        "real_run",
        "healthy",
        "A worker filtering a 4.5 MB transcript: writes a script, runs it, slices the output; "
        "each call new, each result different. The excerpt ends mid-run, still working.",
        raw="claude-code-bookminder-transcript-extractor.jsonl",
        raw_format="claude-code",
    ),
    Session(
        "cc-bookminder-pilot-picker",
        "transcript",
        "claude-code",
        "github.com/palimondo/BookMinder claude-dev-log-diary/jsonl/cloud-2026/"
        "a42b9c92-c0e6-588e-bc6f-3d5e4f37b895/subagents/workflows/wf_36edac4d-2ff/"
        "agent-ad19cee1b13dc46ed.jsonl @aee3ca73e92642c6d19e613a54e65205c5402652"
        " (the whole session, 12 tool calls, parallel pairs kept; bookkeeping records "
        "dropped, brief and outputs trimmed)",
        "MIT",
        "real_run",
        "healthy",
        "A read-only scout choosing two files: it counts prompt markers with grep, one grep "
        "exits 1 (a pattern that matches nothing), it looks at the raw format, fixes the "
        "pattern and counts again over the same files, then samples windows and reports. "
        "The same files grepped with a corrected pattern is convergence, not a loop.",
        raw="claude-code-bookminder-pilot-picker.jsonl",
        raw_format="claude-code",
    ),
    Session(
        "cc-bookminder-coordinator-first-hour",
        "transcript",
        "claude-code",
        "github.com/palimondo/BookMinder claude-dev-log-diary/jsonl/cloud-2026/"
        "a42b9c92-c0e6-588e-bc6f-3d5e4f37b895.jsonl @2f35a31a3643bdb39ee9f428f34819c9b8d06205"
        " (its first 49 minutes, 05:57 to 06:46; bookkeeping records dropped, outputs trimmed)",
        "MIT",
        "long_run",
        "healthy",
        "A coordinator working with its author: the first call fails (a skill's `tree` is not "
        "installed) and it works around it, answers questions, launches three background "
        "workers and reports on them as they finish. The gaps are the human's; nothing repeats.",
        raw="claude-code-bookminder-coordinator-first-hour.jsonl",
        raw_format="claude-code",
    ),
    Session(
        "cc-pyrycode-code-review-161",
        "transcript",
        "claude-code",
        "github.com/pyrycode/pyrycode internal/agentrun/jsonl/testdata/no_end_turn.jsonl"
        " @6730708652b3040280a6fc05f4ad0b25092df5b0 (the whole session, 13 tool calls; "
        "bookkeeping records dropped, outputs trimmed, the home folder shortened)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "A code review: the diff, the files, the blocking issue, the PR text, then go vet and "
        "the e2e test run twice (the second time -v, to see the skip reported) until the user "
        "interrupts. Running the same test twice with a different flag is checking, not a loop.",
        raw="claude-code-pyrycode-code-review-161.jsonl",
        raw_format="claude-code",
    ),
    Session(
        "cc-pyrycode-architect-83",
        "transcript",
        "claude-code",
        "github.com/pyrycode/pyrycode internal/agentrun/jsonl/testdata/double_end_turn.jsonl"
        " @8315322cc394df7a9944f00b88076722fcc2e8eb (bookkeeping records dropped, outputs "
        "trimmed, the home folder in cwd shortened)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "An architect run that finds its ticket already done: two git calls and a closing reply.",
        raw="claude-code-pyrycode-architect-83.jsonl",
        raw_format="claude-code",
    ),
    Session(
        "oh-trajectory-rename-file",
        "transcript",
        "openhands",
        "github.com/All-Hands-AI/OpenHands tests/runtime/trajs/wrong_initial_state.json"
        " @95a15760523f0ada116cd759a3d6bb2f1a63a044 (a recorded CodeActAgent run, "
        "the whole trajectory; model responses dropped)",
        "MIT",
        "real_run",
        "healthy",
        "Asked to rename a file: it lists /workspace, runs mv, lists /workspace again to check "
        "and finishes. The same listing twice, with a different answer, is verification.",
        raw="openhands-rename-file.json",
        raw_format="openhands",
    ),
    Session(
        "oh-trajectory-create-2048",
        "transcript",
        "openhands",
        "github.com/All-Hands-AI/OpenHands tests/runtime/trajs/basic.json"
        " @dad59de570b5c1b5973c3b22265736b308e4c27f (a recorded CodeActAgent run, "
        "the whole trajectory; model responses dropped, the file text trimmed)",
        "MIT",
        "real_run",
        "healthy",
        "Asked for a 2048 game without running it: one file created, then finish.",
        raw="openhands-create-2048.json",
        raw_format="openhands",
    ),
    Session(
        "oh-trajectory-basic-interactions",
        "transcript",
        "openhands",
        "github.com/All-Hands-AI/OpenHands tests/runtime/trajs/basic_interactions.json"
        " @8e6943db0a8af6351fd4a8ac9d14006a7a388ed7 (a recorded CodeActAgent run, "
        "the whole trajectory; model response dropped)",
        "MIT",
        "real_run",
        "healthy",
        "A chat with no tools: two answers to two questions minutes apart (the user's time), "
        "then finish when asked. Replies without work between them are a conversation here.",
        raw="openhands-basic-interactions.json",
        raw_format="openhands",
    ),
    # --- OpenHands StuckDetector tests ---
    Session(
        "oh-repeating-action-observation",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "loop_period_1",
        "stuck",
        "test_is_stuck_repeating_action_observation: the same `ls` with the same (empty) output "
        "four times is stuck.",
        _oh_repeating_action_observation,
    ),
    Session(
        "oh-repeating-action-error",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "retry_same_failure",
        "stuck",
        "test_is_stuck_repeating_action_error: the same failing command four times is stuck even "
        "though the error text varies.",
        _oh_repeating_action_error,
    ),
    Session(
        "oh-syntax-error-same-line",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "retry_same_failure",
        "stuck",
        "test_is_stuck_invalid_syntax_error: the same cell failing with the same SyntaxError at "
        "the same line four times is stuck.",
        lambda sid: _oh_syntax(sid, moving=False),
    ),
    Session(
        "oh-syntax-error-moving-lines",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "converging_errors",
        "healthy",
        "test_is_not_stuck_invalid_syntax_error_random_lines: the error's location moves "
        "(line 10, 20, 30, 40), so the agent is not stuck.",
        lambda sid: _oh_syntax(sid, moving=True),
    ),
    Session(
        "oh-syntax-error-three-incidents",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "converging_errors",
        "healthy",
        "test_is_not_stuck_invalid_syntax_error_only_three_incidents: three failures with moving "
        "error lines are not stuck.",
        lambda sid: _oh_syntax(sid, moving=True, incidents=3),
    ),
    Session(
        "oh-unterminated-string-not-at-end",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "converging_errors",
        "healthy",
        "test_is_not_stuck_ipython_syntax_error_not_at_end: the reported line and the output "
        "after the error change between attempts; the test guards against this false positive.",
        _oh_unterminated_not_at_end,
    ),
    Session(
        "oh-alternating-pattern",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "cycle_period_2",
        "stuck",
        "test_is_stuck_repeating_action_observation_pattern: ls / read file1 three times over "
        "with identical results is stuck.",
        _oh_alternating,
    ),
    Session(
        "oh-not-stuck",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "distinct_work",
        "healthy",
        "test_is_stuck_not_stuck: ls, read, pwd, read, pwd, read is not stuck.",
        _oh_not_stuck,
    ),
    Session(
        "oh-monologue",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "same_reply",
        "stuck",
        "test_is_stuck_monologue: the agent says the same sentence three times in a row with no "
        "work in between.",
        _oh_monologue,
    ),
    Session(
        "oh-monologue-broken-by-work",
        "peer-test",
        "openhands",
        OPENHANDS_STUCK_TESTS,
        "MIT",
        "work_between_replies",
        "healthy",
        "test_is_stuck_monologue (second half): a command's output between the repeated replies "
        "means the agent is not in a monologue.",
        _oh_monologue_broken,
    ),
    Session(
        "oh-empty-commands-waiting",
        "issue",
        "openhands",
        _issue("OpenHands/OpenHands/pull/10750"),
        "MIT",
        "background_polling",
        "healthy",
        "Agents send empty commands to see more output of a long-running process; nine in a row "
        "is legitimate waiting (the PR's own numbers). The build's output lines are assumed.",
        _oh_empty_commands,
    ),
    # --- gemini-cli loop detection tests ---
    Session(
        "gemini-five-identical-calls",
        "peer-test",
        "gemini-cli",
        GEMINI_LOOP_TESTS,
        "Apache-2.0",
        "loop_period_1",
        "stuck",
        "TOOL_CALL_LOOP_THRESHOLD = 5: five identical tool calls are a loop.",
        lambda sid: _gem_tool_calls(sid, 5),
    ),
    Session(
        "gemini-different-args",
        "peer-test",
        "gemini-cli",
        GEMINI_LOOP_TESTS,
        "Apache-2.0",
        "distinct_work",
        "healthy",
        "Calls to the same tool with different arguments are not a loop.",
        _gem_different_args,
    ),
    Session(
        "gemini-content-chanting",
        "peer-test",
        "gemini-cli",
        GEMINI_LOOP_TESTS,
        "Apache-2.0",
        "repetition_in_reply",
        "stuck",
        "CONTENT_LOOP_THRESHOLD = 10: a reply repeating the same sentence ten or more times is a "
        "content loop (the test's own sentence, 'This is a unique sentence, id=1.').",
        _gem_chant,
    ),
    Session(
        "gemini-content-varied",
        "peer-test",
        "gemini-cli",
        GEMINI_LOOP_TESTS,
        "Apache-2.0",
        "distinct_work",
        "healthy",
        "A long reply of distinct sentences is not a content loop.",
        _gem_varied_reply,
    ),
    # --- issue reports: stuck ---
    Session(
        "cc-19699-same-failing-ssh",
        "issue",
        "claude-code",
        _issue("anthropics/claude-code/issues/19699"),
        "n/a (issue text)",
        "retry_same_failure",
        "stuck",
        "Claude ran the exact same failing ssh/make command 7+ times in a row until interrupted; "
        "the first attempt is legitimate, the loop starts with the first repeat.",
        _cc_19699,
    ),
    Session(
        "cindy-2721-alternating-greps",
        "issue",
        "claude-code",
        _issue("makecindy/cindy/issues/2721"),
        "n/a (issue text)",
        "cycle_period_2",
        "stuck",
        "~50 minutes, 141 of 153 Bash calls alternating two near-identical greps every 15-20 s "
        "with identical results (each carrying 'Shell cwd was reset'); rebuilt as two "
        "exploratory calls then 24 alternations. The greps' exact text is not in the report.",
        _cindy_2721,
    ),
    Session(
        "pi-6158-repeated-ls",
        "issue",
        "pi",
        _issue("earendil-works/pi/issues/6158"),
        "n/a (issue text)",
        "loop_period_1",
        "stuck",
        "`ls` of the same directory 6 times then `ls -la` 5 times, output identical each time, "
        "instead of writing the file. The listing itself is not in the report.",
        _pi_6158,
    ),
    Session(
        "pi-9637-noop-counter",
        "issue",
        "pi",
        _issue("earendil-works/pi/issues/9637"),
        "n/a (issue text)",
        "volatile_ids",
        "stuck",
        "220+ identical `bash echo noop` calls ~8 s apart, only a display name counting up "
        "(noop1, noop2, ...); rebuilt as the first 30.",
        _pi_9637,
    ),
    Session(
        "vibe-83-same-reply-same-check",
        "issue",
        "mistral-vibe",
        _issue("mistralai/mistral-vibe/issues/83"),
        "n/a (issue text)",
        "same_reply_and_call",
        "stuck",
        "The same sentence then the same flake8 command with the same result, 10+ times over "
        "~19 minutes; rebuilt as 10 rounds. The command line is paraphrased from the report.",
        _vibe_83,
    ),
    Session(
        "nanobot-3073-same-read",
        "issue",
        "nanobot",
        _issue("HKUDS/nanobot/pull/3077"),
        "n/a (issue text)",
        "loop_period_1",
        "stuck",
        "15+ identical read_file calls on history.jsonl with the same offset and limit.",
        _nanobot_3073,
    ),
    Session(
        "gigachat-69-empty-todos",
        "issue",
        "gigachat",
        _issue("ai-forever/langchain-gigachat/pull/69"),
        "n/a (issue text)",
        "loop_period_1",
        "stuck",
        "write_todos(0 items) -> 'Updated todo list to []' repeated indefinitely.",
        _gigachat_69,
    ),
    Session(
        "superplane-4123-three-call-cycle",
        "issue",
        "superplane",
        _issue("superplanehq/superplane/issues/4123"),
        "n/a (issue text)",
        "cycle_period_3",
        "stuck",
        "list_integration_resources, describe_trigger, list_components over and over, responses "
        "empty ([]). The arguments are not in the report.",
        _superplane_4123,
    ),
    Session(
        "gemini-15593-chanting-reply",
        "issue",
        "gemini-cli",
        _issue("google-gemini/gemini-cli/issues/15593"),
        "n/a (issue text)",
        "repetition_in_reply",
        "stuck",
        "One reply repeating 'Generating. Go. I will write the response. Done.' until the CLI's "
        "own content-loop check halted it.",
        lambda sid: _chant(sid, "Generating.\nGo.\nI will write the response.\nDone.\n", 20),
    ),
    Session(
        "omp-8701-ill-do-it",
        "issue",
        "oh-my-pi",
        _issue("can1357/oh-my-pi/issues/8701"),
        "n/a (issue text)",
        "repetition_in_reply",
        "stuck",
        "After reading files, the reply degenerated into 'I'll do it. I'll implement it. I'll "
        "start. I'll begin coding. I'll write the code...' for hundreds of words.",
        lambda sid: _chant(
            sid,
            "I'll do it. I'll implement it. I'll start. I'll begin coding. I'll write the code. ",
            25,
        ),
    ),
    Session(
        "cc-82803-court",
        "issue",
        "claude-code",
        _issue("anthropics/claude-code/issues/82803"),
        "n/a (issue text)",
        "repetition_in_reply",
        "stuck",
        "A single token ('court') repeated ~32,000 times in one reply until max_tokens; rebuilt "
        "with 400 repeats.",
        lambda sid: _chant(sid, "court ", 400),
    ),
    Session(
        "xum-1046-polling-exited-process",
        "issue",
        "mux",
        _issue("coder/xum/pull/1046"),
        "n/a (issue text)",
        "volatile_ids",
        "stuck",
        "Agents stuck in tight loops calling bash_output on a process that already exited; each "
        "answer the same but for elapsed_ms (the field that PR added). Process id and pid assumed.",
        _xum_1046,
    ),
    Session(
        "repo-agent-680-delete-regenerate",
        "issue",
        "gemini-cli",
        _issue("gke-labs/gemini-for-kubernetes-development/issues/680"),
        "n/a (issue text)",
        "cycle_period_2",
        "stuck",
        "generate.sh fails; the agent deletes a generated file and reruns it, same failure, "
        "'in the same state as it was in Turn 2, about to repeat the same error'. Error text "
        "assumed.",
        _repo_agent_680,
    ),
    Session(
        "nanobot-5344-env-var-spiral",
        "issue",
        "nanobot",
        _issue("HKUDS/nanobot/pull/5344"),
        "n/a (issue text)",
        "cycle_period_6",
        "stuck",
        "Several minutes checking the same env var through half a dozen mechanisms (exec, grep, "
        "reading its own session log...), none repeated enough in a row to look stuck; rebuilt "
        "as a six-call cycle gone round four times (the exact calls are not in the report).",
        _nanobot_5344,
    ),
    # --- issue reports: falsely stopped or healthy ---
    Session(
        "gemini-5873-file-moves",
        "issue",
        "gemini-cli",
        _issue("google-gemini/gemini-cli/issues/5873"),
        "n/a (issue text)",
        "repetitive_but_finite",
        "healthy",
        "Moving components and updating imports: search, git mv, search, edit per file; "
        "repetitive but finite, halted by a false loop detection. File names assumed.",
        _gemini_5873,
    ),
    Session(
        "gemini-7950-data-blocks",
        "issue",
        "gemini-cli",
        _issue("google-gemini/gemini-cli/issues/7950"),
        "n/a (issue text)",
        "repetitive_but_finite",
        "healthy",
        "Loading and reading a large data set block after block is repetitive by nature, not a "
        "loop. Block sizes assumed.",
        _gemini_7950,
    ),
    Session(
        "spacedock-122-bashoutput-polling",
        "issue",
        "claude-code",
        _issue("spacedock-dev/spacedock/pull/122"),
        "n/a (PR text)",
        "background_polling",
        "healthy",
        "The documented Bash(run_in_background) -> BashOutput(bash_id) -> status == completed "
        "loop: a few polls of a running job, then the result, then more work.",
        _bash_output_polling,
    ),
    Session(
        "crustly-ls-different-paths",
        "issue",
        "crustly",
        "github.com/jyjeanne/crustly TOOL_LOOP_FIX_2025-11-30.md",
        "n/a",
        "distinct_work",
        "healthy",
        "ls ./src, ./src/cli, ./src/tui was flagged as a loop by name only; different paths are "
        "exploration.",
        _crustly_ls,
    ),
    Session(
        "traceroost-215-tests-after-each-fix",
        "issue",
        "traceroost",
        _issue("traceroost/core/pull/215"),
        "n/a (PR text)",
        "work_between_replies",
        "healthy",
        "Re-running the verification command after each fix is not a stuck agent re-issuing the "
        "same call; rebuilt as 'Let me run the tests again.' before runs failing 5, 3, 1, 0. "
        "File names and counts assumed.",
        _traceroost_215,
    ),
    Session(
        "fusion-2404-long-iterative-debugging",
        "issue",
        "fusion",
        _issue("Runfusion/Fusion/pull/2404"),
        "n/a (PR text)",
        "long_run",
        "healthy",
        "Agents stay productively busy on one step for 10+ minutes of E2E debugging and fix/test "
        "cycles with zero repetition; killing them as loops was the false positive fixed. "
        "Rebuilt as 12 read/edit/test rounds over ~16 minutes, tests failing until round 11.",
        _fusion_2404,
    ),
    Session(
        "cc-60894-edit-misses-then-succeeds",
        "issue",
        "claude-code",
        _issue("anthropics/claude-code/issues/60894"),
        "n/a (issue text)",
        "error_rate_phase",
        "healthy",
        "The first Edit fails 'String to replace was not found' ~30-50% of the time; a Read and "
        "the same Edit then succeed. Work goes on across files. File names assumed.",
        _cc_60894,
    ),
    Session(
        "anon-kode-94-switches-tool",
        "issue",
        "anon-kode",
        _issue("dnakov/anon-kode/issues/94"),
        "n/a (issue text)",
        "converging_errors",
        "healthy",
        "Update fails to match three times with different strings, then the agent says so and "
        "overwrites the file with another tool (the reply is quoted from the report).",
        _anon_kode_94,
    ),
    Session(
        "open-design-3375-invented-class",
        "issue",
        "open-design",
        _issue("nexu-io/open-design/pull/3375"),
        "n/a (PR text)",
        "cycle_period_3",
        "stuck",
        "80+ calls looping on an invented class name: edit, assertion fails, re-read, retry the "
        "same wrong assumption; rebuilt as 8 rounds of the same three calls.",
        _open_design_3375,
    ),
    Session(
        "gemini-18370-failing-replace",
        "issue",
        "gemini-cli",
        _issue("google-gemini/gemini-cli/issues/18370"),
        "n/a (issue text)",
        "retry_same_failure",
        "stuck",
        "'keep going into a bad loop on bad string replacement': the same replace failing with "
        "0 occurrences found, over and over.",
        _gemini_18370,
    ),
    Session(
        "background-agents-120-long-commands",
        "issue",
        "background-agents",
        _issue("jamesmurdza/background-agents/pull/120"),
        "n/a (PR text)",
        "long_run",
        "healthy",
        "Runs were killed after 10 minutes whenever a single command (build, dependency install, "
        "test suite) ran longer, though the agent was working. Rebuilt as install, build and an "
        "11-minute test suite, then a fix and a commit; the commands and durations are assumed.",
        _background_agents_120,
    ),
    Session(
        "openclaw-89090-send-loop-volatile-id",
        "issue",
        "openclaw",
        _issue("openclaw/openclaw/issues/89090"),
        "n/a (issue text)",
        "volatile_ids",
        "stuck",
        "A model calls message.send with identical arguments over and over (30+ duplicates "
        "reported, until 160 retries); every result carries a new messageId, so a result-hash "
        "detector only warns. The channel, text and id shapes are assumed.",
        _openclaw_89090,
    ),
    Session(
        "openclaw-67744-tts-loop",
        "issue",
        "openclaw",
        _issue("openclaw/openclaw/issues/67744"),
        "n/a (issue text)",
        "same_reply_and_call",
        "stuck",
        "Asked for voice with no TTS provider: the same <final> text and tts call 20-30 times a "
        "minute, 275 identical messages in 10 minutes; the tool reports the failure inside a "
        "result flagged successful. Reply wording and error text assumed; 40 rounds kept.",
        _openclaw_67744,
    ),
    Session(
        "deerflow-2511-rnaseq-batch",
        "issue",
        "deer-flow",
        _issue("bytedance/deer-flow/issues/2511") + " and issue 2517 (its progress-key examples)",
        "n/a (issue text)",
        "distinct_work",
        "healthy",
        "RNA-seq processing: the same tools (fastqc, alignment) run once per sample, each making "
        "a new artifact (sample_01.fastqc.zip, sample_02.aligned.bam...); the loop middleware "
        "stopped it. Eight samples, commands and durations assumed.",
        _deerflow_2511,
    ),
    Session(
        "deerflow-2116-rereads-after-summary",
        "issue",
        "deer-flow",
        _issue("bytedance/deer-flow/issues/2116"),
        "n/a (issue text)",
        "repetitive_but_finite",
        "healthy",
        "A long project generation on a small-context model: after each summarisation the agent "
        "re-reads the same files, with new work in between; the same call 3 times warned and 5 "
        "times stopped it. File names and the work between are assumed.",
        _deerflow_2116,
    ),
    Session(
        "toloka-1494-fix-and-verify",
        "issue",
        "tolokaforge",
        _issue("Toloka/tolokaforge/issues/1494"),
        "n/a (issue text)",
        "converging_errors",
        "healthy",
        "A fix-and-verify loop (edit, run the same pytest -x, edit, run it again) stopped as stuck "
        "while the score was still rising: the same call, a different output each time. The "
        "failure counts and file names are assumed.",
        _toloka_1494,
    ),
    Session(
        "toloka-1141-still-working",
        "issue",
        "tolokaforge",
        _issue("Toloka/tolokaforge/issues/1141"),
        "n/a (issue text)",
        "same_reply",
        "stuck",
        "A scripted agent says 'I am still working on completing the task right now please "
        "wait' every turn for 40 turns (a user simulator answering between) and is never "
        "flagged. The gap between turns is assumed.",
        _toloka_1141,
    ),
    Session(
        "llmkube-569-same-git-log",
        "issue",
        "llmkube-foreman",
        _issue("defilantech/LLMKube/pull/569"),
        "n/a (PR text)",
        "loop_period_1",
        "stuck",
        "The same bash call (git log ... | grep 449 | head) 58 times in a row, all with empty "
        "stdout, about 1.3 s a turn, until MaxTurns. The two calls before it are assumed.",
        _llmkube_569,
    ),
    Session(
        "deerflow-1533-description-varies",
        "issue",
        "deer-flow",
        _issue("bytedance/deer-flow/pull/1578") + " (fixes issue 1533)",
        "n/a (PR text)",
        "volatile_ids",
        "stuck",
        "The same action retried with only the free-form `description` argument reworded each "
        "time, so a hash of the raw arguments never repeats. The command and its failure are "
        "assumed (the PR gives neither); the failure is the same every time.",
        _deerflow_1533,
    ),
    Session(
        "stella-6480-back-to-the-same-command",
        "issue",
        "stella",
        _issue("macanderson/stella/issues/6480"),
        "n/a (issue text)",
        "loop_after_detour",
        "stuck",
        "Three identical reads of INPUT.DAT (byte-identical output), a steering warning, nine "
        "calls over thirty seconds, eight distinct (od -c, the reader once, git diff, git "
        "checkout, ...), then back to the quoted command three times and aborted. The four "
        "minutes before, the reader's output and the last five detour calls are assumed.",
        _stella_6480,
    ),
    Session(
        "openhands-10350-continue-long-command",
        "issue",
        "openhands",
        _issue("OpenHands/OpenHands/issues/10350"),
        "n/a (issue text)",
        "background_polling",
        "healthy",
        "The agent continues a long-running command by sending an empty command; three in a row "
        "were flagged as a loop though each showed new output. The command, its output and "
        "timing are assumed.",
        _openhands_10350,
    ),
    Session(
        "openhands-sdk-762-poll-every-5-minutes",
        "issue",
        "openhands",
        _issue("OpenHands/software-agent-sdk/issues/762"),
        "n/a (issue text)",
        "background_polling",
        "healthy",
        "Told to poll a training job every 5 minutes for up to 15: the same command, the same "
        "'running' answer, 4 times, and the stuck detector stops it. The endpoint, the job and "
        "its completing on the fifth poll are assumed.",
        _openhands_sdk_762,
    ),
    # --- held-out set: collected and judged 2026-12-06, after the rules were tuned ---------
    Session(
        "ho-cc-citybus-build",
        "transcript",
        "claude-code",
        "github.com/richh-s/TASK-20260318-393C91 trajectory.json"
        " @30125b87278a6be8ec3364606c5641019877bcd1 (a Claude Code run exported as OpenAI chat "
        "messages, 619 messages, no times; three windows of it, around characters 400k, 600k "
        "and 740k of 771k, joined; file contents and long outputs trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "A long build of a Spring Boot + React app: reads services, writes test suites, checks "
        "the frontend folders, fixes its README. Twice an Edit is refused (`File has not been "
        "read yet`), it reads the file and the same edit then succeeds; docker compose config "
        "warns, it drops the key and validates again: each error answered by a different call "
        "that fixes it.",
        raw="chat-claude-code-citybus.json",
        raw_format="openai-chat",
        heldout=HELDOUT,
    ),
    Session(
        "ho-cc-meridian-build",
        "transcript",
        "claude-code",
        "github.com/Strawhat404/Meridian-Academy trajectory.json"
        " @1ddccbda80ef5c3a2e5731ee760aada7b587f42d (a Claude Code run exported as OpenAI chat "
        "messages with times; its first 6 calls and a window 42 minutes later, around "
        "character 1.1M of 1.29M; file contents and test output trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "long_run",
        "healthy",
        "Building a Rust workspace: the first turn is refused by the API (403, the user sends "
        "the brief again), the first `ls` exits 2 (the folder is empty), it scaffolds the "
        "workspace; later it extends the API tests, updates .env.example and runs the unit "
        "tests, which pass. A 42-minute gap between the windows is the excerpt, not a stall.",
        raw="chat-claude-code-meridian.json",
        raw_format="openai-chat",
        cuts=(13,),
        heldout=HELDOUT,
    ),
    Session(
        "ho-codex-anju-patches",
        "transcript",
        "codex",
        "github.com/Eyob-smax/Anju-Medical-Appointment-System trajectory.json"
        " @1dbe9027c477ca93ef3742ac6ecb305ee52ef6b1 (a Codex run exported as OpenAI chat "
        "messages; the 4 calls around character 200k of 1.25M; patch bodies trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "Adding a domain package file by file with apply_patch: entity, repository, two DTOs, "
        "each a new file, each `Success`.",
        raw="chat-codex-anju.json",
        raw_format="openai-chat",
        heldout=HELDOUT,
    ),
    Session(
        "ho-codex-pharma-seed",
        "transcript",
        "codex",
        "github.com/abmoh4219/pharma-platform-fullstack trajectory.json"
        " @2ba102b4777cfaf3a37fc0bb8f5ae95a6bd47ce0 (a Codex run exported as OpenAI chat "
        "messages; the 3 calls around character 200k of 2.46M; bodies trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "Seeding a database: generates a bcrypt hash with a Go one-off (exit 0), patches "
        "docker-compose, writes init.sql. Three different calls, each succeeding.",
        raw="chat-codex-pharma.json",
        raw_format="openai-chat",
        heldout=HELDOUT,
    ),
    Session(
        "ho-gemini-figma-startup",
        "transcript",
        "gemini-cli",
        "github.com/metaphi-agent/figma-eval-010ac575-1280-41fe-be26-130311bef5ed-gemini_cli"
        " transcript.jsonl @13a921025bf96daeb186b6f41adb6b9ca6631d24 (a Gemini CLI stream-json "
        "run, the whole file, 35 calls; large outputs and file bodies trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "transient_errors",
        "healthy",
        "Figma to React: the skill it asks for does not exist (an error; it reads the file "
        "instead), two Figma calls hit rate limits (429, reported inside a success) and it moves "
        "on to other nodes, it scaffolds, writes a dozen files, installs, and when the preview "
        "sandbox name exists it checks, stops and starts a new one. Every call is different.",
        raw="gemini-cli-figma-startup.jsonl",
        raw_format="gemini-cli",
        heldout=HELDOUT,
    ),
    Session(
        "ho-gemini-figma-dashboard-end",
        "transcript",
        "gemini-cli",
        "github.com/metaphi-agent/figma-eval-49bdd49a-5831-4dca-ad1b-a66b7b9901fa-gemini_cli"
        " transcript.jsonl @b037acb26eeff90f136a869044069ae355625c5b (the last 11 calls of a "
        "505k-character run, from character 470k; bodies trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "error_then_fix",
        "healthy",
        "The end of a long Figma-to-React run: writes the dashboard and App, installs, starts a "
        "preview (60 s), runs its manifest script with a wrong path (five ERROR lines), runs it "
        "again with the right one (SUCCESS), builds, and the repository it tries to create "
        "already exists. A mistake fixed at once, then new work.",
        raw="gemini-cli-figma-dashboard-end.jsonl",
        raw_format="gemini-cli",
        heldout=HELDOUT,
    ),
    Session(
        "ho-gemini-figma-charts",
        "transcript",
        "gemini-cli",
        "github.com/metaphi-agent/figma-eval-65829f23-19f2-4c9a-9dc9-9be934780ffc-gemini_cli"
        " transcript.jsonl @53ba923e75fdce051fd0718eb63a35c449802c14 (two windows of a "
        "98k-character run: 3 calls near its start and its last 14; bodies trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "A chart dashboard: exports visuals, reads the node tree, later writes seven components "
        "and pages one after another, edits index.html, starts a preview, fails to create an "
        "existing repository and pushes to it instead.",
        raw="gemini-cli-figma-charts.jsonl",
        raw_format="gemini-cli",
        heldout=HELDOUT,
    ),
    Session(
        "ho-atif-terminus-invoices",
        "transcript",
        "terminus",
        "github.com/tychenn/agentCM trajectory.json @ddc2874c50bd64180c8379738805a9d8d750eb06 "
        "(a Terminus-2 run in Harbor's ATIF format; steps 1-6 and 11-15 of 15, terminal output "
        "trimmed)",
        "none stated (no licence file indexed; a few lines quoted)",
        "real_run",
        "healthy",
        "Classifying invoices: no OCR tools (import errors), no pip, so apt-get installs "
        "tesseract and poppler (a minute), extracts text, reads it in batches, moves the files, "
        "writes the CSV, cleans up and marks the task complete twice (the harness asks it to "
        "confirm). Everything moves forward.",
        raw="atif-terminus-invoices.json",
        raw_format="atif",
        heldout=HELDOUT,
    ),
    Session(
        "ho-appdevforall-100-verifying-own-edits",
        "issue",
        "androidide-agent",
        _issue("appdevforall/plugin-examples/pull/100")
        + " (review thread on ToolCallProgressGuard.kt)",
        "n/a (review text)",
        "verification",
        "healthy",
        "The reviewer's case: search, read A, edit A, read B, edit B, read A, read B, search "
        "again: a run verifying its own edits, which the guard under review aborted. The file "
        "contents are assumed; the reads after the edits show the edited text.",
        _appdevforall_100,
        heldout=HELDOUT,
    ),
    Session(
        "ho-qwen-3236-parallel-reads",
        "issue",
        "qwen-code",
        _issue("QwenLM/qwen-code/pull/3236") + " (comment reproducing READ_FILE_LOOP)",
        "n/a (PR text)",
        "exploration",
        "healthy",
        "Asked to summarise a 4-file project, the model reads five files in one turn and a "
        "read-file loop detector fires on the fifth. Five different files is exploration. The "
        "file contents are assumed.",
        _qwen_3236,
        heldout=HELDOUT,
    ),
    Session(
        "ho-zeroclaw-10503-membership-checks",
        "issue",
        "zeroclaw",
        _issue("zeroclaw-labs/zeroclaw/pull/10503"),
        "n/a (PR text)",
        "distinct_work",
        "healthy",
        "An agent checking seven names against a directory gets seven empty results and had "
        "its turn torn down. Different arguments with the same empty answer is a batch, not a "
        "loop. The tool and the names are assumed.",
        _zeroclaw_10503,
        heldout=HELDOUT,
    ),
    Session(
        "ho-openmono-47-status-polling",
        "issue",
        "openmono",
        _issue("StartupHakk/OpenMonoAgent.ai/issues/47"),
        "n/a (issue text)",
        "background_polling",
        "healthy",
        "Told to monitor a background job, the agent calls CheckStatus until it is done and "
        "the doom-loop detector aborts it. The job, its two minutes and a poll every 20 s (an "
        "agent turn, no sleep) are assumed; it finishes on the sixth poll.",
        _openmono_47,
        heldout=HELDOUT,
    ),
    Session(
        "ho-qwen-9733-verification-cycles",
        "issue",
        "qwen-code",
        _issue("QwenLM/qwen-code/issues/9733"),
        "n/a (issue text)",
        "verification",
        "healthy",
        "A multi-stage pipeline run unattended: write a stage script, run it, edit, re-run, "
        "verify the output on disk; loop detection killed it four times. Three stages, one "
        "failing once on a wrong path, are assumed from the report's description.",
        _qwen_9733,
        heldout=HELDOUT,
    ),
    Session(
        "ho-classla-239-edits-same-block",
        "issue",
        "classla",
        _issue("Classla/ClasslaV2/issues/239"),
        "n/a (issue text)",
        "converging_edits",
        "healthy",
        "Loop detection cut off legitimate multi-step edits to the same block. Four edits of "
        "one block, each a different text, are assumed.",
        _classla_239,
        heldout=HELDOUT,
    ),
    Session(
        "ho-octos-284-failing-shell-loop",
        "issue",
        "octos",
        _issue("octos-org/octos/issues/284"),
        "n/a (issue text)",
        "failing_retries",
        "stuck",
        "The agent found the file at the third call, then looped on shell 19+ times while each "
        "call failed and a synthesized missing result was fed back. The three conversion "
        "commands it cycles through and their identical failure are assumed.",
        _octos_284,
        heldout=HELDOUT,
    ),
    Session(
        "ho-opencode-28596-same-exec",
        "issue",
        "opencode",
        _issue("anomalyco/opencode/issues/28596"),
        "n/a (issue text and screenshot)",
        "loop_period_1",
        "stuck",
        "The model calls the same exec with exact arguments indefinitely until interrupted. "
        "The command (a type check failing the same way) and the edit before it are assumed.",
        _opencode_28596,
        heldout=HELDOUT,
    ),
    Session(
        "ho-bdfinst-708-repeated-verify",
        "issue",
        "claude-code",
        _issue("bdfinst/agentic-dev-team/issues/708"),
        "n/a (issue text)",
        "loop_period_1",
        "stuck",
        "Sessions re-run the same verification with identical results instead of escalating. "
        "The edit and pytest's failing output, six times, are assumed.",
        _bdfinst_708,
        heldout=HELDOUT,
    ),
    Session(
        "ho-open-science-121-same-grep",
        "issue",
        "opencode",
        _issue("ai4s-research/open-science/issues/121"),
        "n/a (issue text)",
        "work_between_replies",
        "stuck",
        "The agent repeatedly reasons that it should run essentially the same grep again and "
        "does, for many minutes. The failing fit, the grep and its hits are assumed.",
        _open_science_121,
        heldout=HELDOUT,
    ),
    Session(
        "ho-qwen-610-similar-files",
        "issue",
        "qwen-code",
        _issue("QwenLM/qwen-code/pull/610"),
        "n/a (PR text)",
        "distinct_work",
        "healthy",
        "Valid repetitive operations, such as processing multiple similar files, were flagged "
        "as loops. Formatting eight modules one by one, each with the same kind of answer, is "
        "assumed as the instance.",
        _qwen_610,
        heldout=HELDOUT,
    ),
    Session(
        "ho-zeroclaw-10503-stable-probes",
        "issue",
        "zeroclaw",
        _issue("zeroclaw-labs/zeroclaw/pull/10503"),
        "n/a (PR text)",
        "distinct_work",
        "healthy",
        "The PR's other named case: health or status probes with a stable payload. Five "
        "services probed once each, all answering ok, are assumed.",
        _zeroclaw_probes,
        heldout=HELDOUT,
    ),
    Session(
        "ho-cheasee-171-bash-cascade",
        "issue",
        "pi",
        _issue("SchneiderDaniel/cheasee-pi/issues/171"),
        "n/a (issue text)",
        "distinct_work",
        "healthy",
        "A session-advice report lists `bash called 32x consecutively` as a warning. One tool "
        "used for 32 different commands (read, test, build, commit) is work; the commands are "
        "assumed.",
        _cheasee_171,
        heldout=HELDOUT,
    ),
    Session(
        "ho-cc-15909-npm-install-timeout",
        "issue",
        "claude-code",
        _issue("anthropics/claude-code/issues/15909"),
        "n/a (issue text)",
        "loop_period_1",
        "stuck",
        "A sub-agent retried the exact same `npm install -D @vitest/coverage-v8` 300+ times, "
        "each timing out, for 4.6 hours. Twenty of them, 180 s each, and the file written "
        "before are the excerpt.",
        _cc_15909,
        heldout=HELDOUT,
    ),
    Session(
        "ho-nixmac-518-search-docs",
        "issue",
        "nixmac",
        _issue("darkmatter/nixmac/issues/518"),
        "n/a (issue text)",
        "loop_period_1",
        "stuck",
        "The agent runs search_docs over and over (3M tokens). The query, its empty answer and "
        "the config read before are assumed.",
        _nixmac_518,
        heldout=HELDOUT,
    ),
    Session(
        "ho-assemblyzero-1842-identical-regeneration",
        "issue",
        "assemblyzero",
        _issue("martymcenroe/AssemblyZero/issues/1842"),
        "n/a (issue text)",
        "loop_period_2",
        "stuck",
        "The generator re-emitted a byte-identical broken test three times, the same pytest "
        "failure each time, until the harness's stagnation check halted it. The file and the "
        "output are as reported, shortened.",
        _assemblyzero_1842,
        heldout=HELDOUT,
    ),
    Session(
        "ho-chef-476-same-error-varied-edits",
        "issue",
        "chef",
        _issue("get-convex/chef/pull/476"),
        "n/a (PR text)",
        "failing_retries",
        "stuck",
        "With auth.ts deleted the agent keeps trying things it cannot fix, each deploy failing "
        "the same way. Six different edits, each followed by the same failing deploy, are "
        "assumed.",
        _chef_476,
        heldout=HELDOUT,
    ),
)
