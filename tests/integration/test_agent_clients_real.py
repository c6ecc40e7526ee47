"""The real Gemini CLI, Codex CLI, Copilot CLI and OpenCode, offline: each client, pinned in
tests/clients/package-lock.json (`make test` installs them with `npm ci`), runs headless in a
temporary HOME against a local stand-in of its model API (Gemini: its own
`--fake-responses-non-strict` file; Codex: the Responses API of tests/model_api.py; Copilot and
OpenCode: its Chat Completions), with its hooks written only by `yokeflow-intervention agents
connect`, on an embedded NATS with roles (the agent holds only its project's credentials).
Every assertion is on what the real client did: which commands really ran (a marker file each
run appends to), whether the session halted, what it sent the model, what the operator sees.

A hook on this loaded 2-core machine may hear a verdict later than the default waits (0.5 s for
a call): the clients' environment gives the hooks longer waits, so the tests check what is said
and when, not how fast (bench/hook.py does that).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..model_api import ModelApi, Turn, gemini_responses, model_api
from .test_bus_roles import bus, cli

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("npm") is None,
        reason="npm is absent: the agent CLIs are npm packages (tests/clients)",
    ),
]
__all__ = ["bus"]

CLIENTS = Path(__file__).resolve().parents[1] / "clients"
BIN = CLIENTS / "node_modules" / ".bin"
PATIENT = {"YOKEFLOW_VERDICT_TIMEOUT": "5", "YOKEFLOW_HOOK_BUDGET": "6"}


@pytest.fixture(scope="module")
def installed() -> Path:
    """The pinned clients, installed as `make test` installs them when a run skipped it."""
    lock = CLIENTS / "node_modules" / ".package-lock.json"
    if not lock.exists() or lock.stat().st_mtime < (CLIENTS / "package-lock.json").stat().st_mtime:
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=CLIENTS,
            check=True,
            timeout=600,
        )
    return BIN


def client_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env.update(HOME=str(home), NO_COLOR="1", **PATIENT, **extra)
    return env


def run_client(
    command: list[str], root: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """A client CLI run headless in the project, as each test drives it: no terminal on stdin
    (`codex exec` waits on one), its output kept, at most 4 minutes."""
    return subprocess.run(
        command,
        cwd=root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )


def failing(marker: Path) -> Turn:
    """A shell call that really runs (it appends to `marker`) and fails the same way each time,
    after `cd web`: the project root stays where it is."""
    command = f"cd web && echo ran >> {marker} && echo 'Error: listen failed' >&2 && exit 3"
    return Turn(tool="Bash", input={"command": command})


def connect(folder: Path, project: str, client: str, root: Path, home: Path) -> str:
    done = subprocess.run(
        [*_product_cli(), "agents", "connect", project, client, "--dir", str(root)],
        env={
            **_cli_env(folder),
            "HOME": str(home),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _product_cli() -> list[str]:
    from yokeflow_intervention.shared.runtime import product_command

    return product_command("cli")


def _cli_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOKEFLOW_", "NATS_"))}
    env["YOKEFLOW_DATA_DIR"] = str(folder)
    return env


def interventions(folder: Path, project: str) -> list[dict[str, Any]]:
    listing = cli(folder, "interventions", "list", "--project", project, "--json")
    assert listing.returncode == 0, listing.stderr
    result: list[dict[str, Any]] = json.loads(listing.stdout)
    return result


def new_project(tmp_path: Path, name: str) -> tuple[Path, Path]:
    root, home = tmp_path / name, tmp_path / f"home-{name}"
    (root / "web").mkdir(parents=True)
    home.mkdir()
    return root, home


def assert_paused_once(folder: Path, project: str, root: Path, marker: Path, client: str) -> str:
    """The 4th identical failing command never ran; the blocker entry is at the root, once; the
    intervention is listed under the project, with the command's stderr. Its id."""
    assert marker.read_text().splitlines() == ["ran"] * 3
    assert (root / "claude-progress.md").read_text().count("## BLOCKER - Session") == 1
    assert not (root / "web" / "claude-progress.md").exists()
    listing = interventions(folder, project)
    assert [i["pause_type"] for i in listing] == ["retry_limit"], listing
    assert "listen failed" in listing[0]["blocker_info"]["error_excerpt"]
    assert listing[0]["blocker_info"]["client"] == client  # which agent the session ran
    return str(listing[0]["id"])


def recorded(stack: Any, project: str) -> list[dict[str, Any]]:
    """The project's agent events as the stream stored them, in order."""

    async def read() -> list[dict[str, Any]]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(stack.nats_url.split(","))
        try:
            sub = await nc.jetstream().pull_subscribe(
                f"agent.events.{project}.>",
                stream="AGENT_EVENTS",
                config=ConsumerConfig(ack_policy=AckPolicy.NONE),
            )
            pending = (await sub.consumer_info()).num_pending or 0
            messages = await sub.fetch(pending, timeout=5) if pending else []
            return [json.loads(m.data) for m in messages]
        finally:
            await nc.close()

    return asyncio.run(read())


def last_session(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events of the session the last stored event belongs to."""
    return [e for e in events if e["session_id"] == events[-1]["session_id"]]


def assert_turn_ended(events: list[dict[str, Any]], text: str | None) -> None:
    """The client said its turn ended (the contract's agent_message, with `text` where the
    client gives its reply in time), then the session ended.
    Replayed through the detector's own rules and watchdog, and left open after its turn
    (without its session_ended), the session is never stopped for its quiet, however long: it
    is its user's turn."""
    from datetime import timedelta

    from yokeflow_agent.contract import parse_agent_event

    from yokeflow_intervention.services.detector.rules import DetectionConfig
    from yokeflow_intervention.services.detector.sessions import replay
    from yokeflow_intervention.shared.settings import Settings

    types = [e["type"] for e in events]
    assert types[0] == "session_started" and types[-1] == "session_ended", types
    [said] = [e["text"] for e in events if e["type"] == "agent_message"]
    assert text is None or said == text, events
    opened = [parse_agent_event(e) for e in events if e["type"] != "session_ended"]
    later = opened[-1].ts + timedelta(hours=3)
    config = DetectionConfig.from_settings(Settings())
    assert list(replay(opened, config, now=later)) == []


def resume(folder: Path, intervention: str, notes: str) -> None:
    done = cli(folder, "interventions", "resume", intervention, "--by", "ana", "--notes", notes)
    assert done.returncode == 0, done.stderr


# -- Gemini CLI --------------------------------------------------------------------------------


def run_gemini(root: Path, home: Path, script: list[Turn]) -> subprocess.CompletedProcess[str]:
    responses = home / f"responses-{len(list(home.glob('responses-*')))}.jsonl"
    responses.write_text(gemini_responses(script))
    return run_client(
        [
            str(BIN / "gemini"),
            "-p",
            "Start the app.",
            "--yolo",
            "-m",
            "gemini-2.5-flash",
            "--fake-responses-non-strict",
            str(responses),
            "-o",
            "json",
        ],
        root,
        client_env(home, GEMINI_API_KEY="stand-in"),
    )


def gemini_chats(home: Path) -> str:
    """Everything Gemini recorded of its sessions (what the model was given)."""
    return "\n".join(p.read_text() for p in sorted((home / ".gemini" / "tmp").rglob("*.json*")))


def test_real_gemini_cli_never_runs_the_fourth_identical_failing_call(
    bus, installed, unique, tmp_path
):
    _, folder = bus
    project = unique("gshop")
    root, home = new_project(tmp_path, project)
    printed = connect(folder, project, "gemini", root, home)
    assert "trustedFolders.json" in printed  # the folder trust gate, handled and said
    marker = tmp_path / "ran"
    done = run_gemini(root, home, [failing(marker)] * 6 + [Turn(text="Giving up.")])
    assert done.returncode == 0, done.stderr  # a halted Gemini exits 0
    intervention = assert_paused_once(folder, project, root, marker, "gemini")
    result = json.loads(done.stdout)
    assert "Giving up." not in result.get("response", "")  # halted: no further turn
    assert "failed 3 times with the same error" in gemini_chats(home)  # warned before the stop

    resume(folder, intervention, "Port 3000 is taken on this machine: use PORT=4000.")
    again = run_gemini(root, home, [Turn(text="Starting on port 4000.")])
    assert again.returncode == 0, again.stderr
    assert "use PORT=4000" in gemini_chats(home)  # the brief reached the next session
    assert interventions(folder, project) == []
    assert_turn_ended(last_session(recorded(bus[0], project)), "Starting on port 4000.")


def test_a_broken_gemini_configuration_never_blocks_a_call(bus, installed, unique, tmp_path):
    _, folder = bus
    project = unique("gbroken")
    root, home = new_project(tmp_path, project)
    connect(folder, project, "gemini", root, home)
    settings_path = root / ".gemini" / "settings.json"
    settings = json.loads(settings_path.read_text())
    for groups in settings["hooks"].values():
        groups[-1]["hooks"][0]["env"]["NATS_URL"] = "nats://127.0.0.1:1"  # NATS is down
    settings_path.write_text(json.dumps(settings))
    marker = tmp_path / "ran"
    call = Turn(tool="Bash", input={"command": f"echo ran >> {marker}"})
    done = run_gemini(root, home, [call, call, Turn(text="Done.")])
    assert done.returncode == 0, done.stderr
    assert marker.read_text().splitlines() == ["ran"] * 2  # nothing was blocked


# -- Codex CLI ---------------------------------------------------------------------------------


def codex_home(home: Path, api: ModelApi) -> None:
    """The model provider (the stand-in, on this run's port): the only Codex setting that is
    not the hooks'; what `agents connect` added after it is kept."""
    config = home / ".codex" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    kept = config.read_text().partition(_PROVIDED)[2] if config.exists() else ""
    config.write_text(
        'model = "gpt-5-codex"\nmodel_provider = "standin"\n\n[model_providers.standin]\n'
        f'name = "stand-in"\nbase_url = "{api.url}/v1"\nwire_api = "responses"\n'
        f'env_key = "STANDIN_API_KEY"\n{_PROVIDED}{kept}'
    )


_PROVIDED = "# (the stand-in's provider ends here)\n"


def run_codex(root: Path, home: Path) -> subprocess.CompletedProcess[str]:
    # Codex runs a hook only once it is trusted: `agents connect` trusted them (the agent
    # user's PATH has `codex`, as here).
    return run_client(
        [
            str(BIN / "codex"),
            "exec",
            "--skip-git-repo-check",
            "--dangerously-bypass-approvals-and-sandbox",
            "Start the app.",
        ],
        root,
        client_env(home, STANDIN_API_KEY="stand-in"),
    )


def test_real_codex_cli_refuses_every_call_after_the_third_identical_failure(
    bus, installed, unique, tmp_path
):
    _, folder = bus
    project = unique("cshop")
    root, home = new_project(tmp_path, project)
    marker = tmp_path / "ran"
    with model_api([failing(marker)] * 6 + [Turn(text="Giving up.")]) as api:
        codex_home(home, api)
        printed = connect(folder, project, "codex", root, home)
        assert "hooks trusted, by the hash Codex computes" in printed  # the hook trust gate
        done = run_codex(root, home)
        asked = api.tool_requests
    assert done.returncode == 0, done.stderr
    intervention = assert_paused_once(folder, project, root, marker, "codex")
    # Codex cannot be halted from a hook: it asked the model again, and every further call
    # was refused, with the reason and what else stops it.
    assert len(asked) == 7
    # Before the stop, the agent was told what pattern it was in, in its own context.
    assert "failed 3 times with the same error" in json.dumps(asked[3]["input"])
    refused = json.dumps(asked[-1]["input"])
    assert refused.count("session paused by intervention") >= 3
    assert "end the codex process" in refused

    resume(folder, intervention, "Port 3000 is taken on this machine: use PORT=4000.")
    with model_api([Turn(text="Starting on port 4000.")]) as api:
        codex_home(home, api)
        second = run_codex(root, home)
        assert second.returncode == 0
        first = api.tool_requests[0]
    assert "use PORT=4000" in json.dumps(first["input"]), second.stderr[
        -3000:
    ]  # the brief reached the next session
    assert interventions(folder, project) == []
    assert_turn_ended(last_session(recorded(bus[0], project)), "Starting on port 4000.")


def test_a_broken_codex_configuration_never_blocks_a_call(bus, installed, unique, tmp_path):
    _, folder = bus
    project = unique("cbroken")
    root, home = new_project(tmp_path, project)
    marker = tmp_path / "ran"
    call = Turn(tool="Bash", input={"command": f"echo ran >> {marker}"})
    with model_api([call, call, Turn(text="Done.")]) as api:
        codex_home(home, api)
        connect(folder, project, "codex", root, home)
        settings = home / ".config" / "yokeflow-intervention" / f"agent-{project}.json"
        settings.write_text(
            json.dumps({**json.loads(settings.read_text()), "YOKEFLOW_HOOK_BUDGET": "soon"})
        )
        done = run_codex(root, home)
    assert done.returncode == 0, done.stderr
    assert marker.read_text().splitlines() == ["ran"] * 2  # nothing was blocked


# -- Copilot CLI -------------------------------------------------------------------------------


def run_copilot(
    root: Path, home: Path, api: ModelApi, allowed: bool = True
) -> subprocess.CompletedProcess[str]:
    """`copilot -p` offline: the stand-in serves Chat Completions as its model provider; with
    `allowed`, every tool may run without asking."""
    env = client_env(
        home,
        COPILOT_OFFLINE="true",
        COPILOT_PROVIDER_BASE_URL=f"{api.url}/v1",
        COPILOT_PROVIDER_API_KEY="stand-in",
        COPILOT_MODEL="gpt-4o",
    )
    return run_client(
        [str(BIN / "copilot"), "-p", "Start the app.", *(["--allow-all-tools"] * allowed)],
        root,
        env,
    )


def test_real_copilot_cli_never_runs_the_fourth_identical_failing_call(
    bus, installed, unique, tmp_path
):
    _, folder = bus
    project = unique("pshop")
    root, home = new_project(tmp_path, project)
    printed = connect(folder, project, "copilot", root, home)
    assert "config.json" in printed  # the folder trust gate, handled and said
    marker = tmp_path / "ran"
    with model_api([failing(marker)] * 6 + [Turn(text="Giving up.")]) as api:
        done = run_copilot(root, home, api)
        asked = api.tool_requests
    assert done.returncode == 0, done.stderr  # a halted Copilot exits 0
    intervention = assert_paused_once(folder, project, root, marker, "copilot")
    assert len(asked) == 4  # halted: the model was not asked again after the 4th call
    assert "failed 3 times with the same error" in json.dumps(asked[3]["messages"])  # warned
    assert "Giving up." not in done.stdout

    # The next session may not run tools unasked: headless, Copilot says it asks for the
    # permission (its notification), then denies the call itself, and the turn goes on.
    resume(folder, intervention, "Port 3000 is taken on this machine: use PORT=4000.")
    asked = Turn(tool="Bash", input={"command": f"echo asked >> {marker}"})
    with model_api([asked, Turn(text="Starting on port 4000.")]) as api:
        assert run_copilot(root, home, api, allowed=False).returncode == 0
        first = api.tool_requests[0]
    assert "use PORT=4000" in json.dumps(first["messages"])  # the brief reached the next session
    assert interventions(folder, project) == []
    assert "asked" not in marker.read_text()  # denied: no one to approve
    events = last_session(recorded(bus[0], project))
    [waiting] = [e for e in events if e["type"] == "waiting"]
    assert (waiting["kind"], waiting["tool"]) == ("permission", "bash")  # the call it asks for
    assert waiting["prompt"] == f"Run command: echo asked >> {marker}"
    # The denied call is not left open. Copilot's reply is read from its events.jsonl, which
    # it often has not written yet when agentStop runs: the text is not asserted.
    assert_turn_ended(events, None)


def test_a_broken_copilot_configuration_never_blocks_a_call(bus, installed, unique, tmp_path):
    _, folder = bus
    project = unique("pbroken")
    root, home = new_project(tmp_path, project)
    connect(folder, project, "copilot", root, home)
    hooks_path = root / ".github" / "hooks" / "yokeflow-intervention.json"
    hooks = json.loads(hooks_path.read_text())
    for entries in hooks["hooks"].values():
        entries[0]["env"]["YOKEFLOW_VERDICT_TIMEOUT"] = "later"  # a bad setting
    hooks_path.write_text(json.dumps(hooks))
    marker = tmp_path / "ran"
    call = Turn(tool="Bash", input={"command": f"echo ran >> {marker}"})
    with model_api([call, call, Turn(text="Done.")]) as api:
        done = run_copilot(root, home, api)
    assert done.returncode == 0, done.stderr
    assert marker.read_text().splitlines() == ["ran"] * 2  # nothing was blocked


# -- OpenCode ----------------------------------------------------------------------------------

OPENCODE = CLIENTS / "node_modules" / "opencode-linux-x64" / "bin" / "opencode"
_PLUGIN_PACKAGE = "@opencode-ai/plugin"


def opencode_home(root: Path, home: Path, api: ModelApi) -> None:
    """The model provider (the stand-in, on this run's port): the only OpenCode setting that is
    not the plugin's. OpenCode installs its plugin package into each config folder it reads
    (the user's and the project's `.opencode/`) unless it is there: both are seeded with the
    one pinned in the lockfile, so that it starts offline in seconds."""
    config = home / ".config" / "opencode"
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "stand-in",
        "options": {"baseURL": f"{api.url}/v1", "apiKey": "stand-in"},
        "models": {"stand-in": {"name": "stand-in", "tool_call": True}},
    }
    settings = {"model": "standin/stand-in", "autoupdate": False, "provider": {"standin": provider}}
    config.mkdir(parents=True, exist_ok=True)
    (config / "opencode.json").write_text(json.dumps(settings))
    version = json.loads((CLIENTS / "package.json").read_text())["dependencies"][_PLUGIN_PACKAGE]
    for folder in (config, root / ".opencode"):
        package = folder / "node_modules" / _PLUGIN_PACKAGE
        if package.exists():
            continue
        package.parent.mkdir(parents=True, exist_ok=True)
        package.symlink_to(CLIENTS / "node_modules" / _PLUGIN_PACKAGE)
        dependencies = {"dependencies": {_PLUGIN_PACKAGE: version}}
        (folder / "package.json").write_text(json.dumps(dependencies))
        lock = {"lockfileVersion": 3, "requires": True, "packages": {"": dependencies}}
        (folder / "package-lock.json").write_text(json.dumps(lock))


def run_opencode(root: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`opencode run` offline: no update check, no models.dev; XDG folders are HOME's. OpenCode
    runs its session in `$PWD`, as a shell would have set it."""
    env = {
        k: v
        for k, v in client_env(
            home,
            OPENCODE_DISABLE_AUTOUPDATE="1",
            OPENCODE_DISABLE_MODELS_FETCH="1",
            PWD=str(root),
        ).items()
        if not k.startswith("XDG_")
    }
    return run_client(
        [str(OPENCODE), "run", "Start the app."],
        root,
        env,
    )


@pytest.fixture
def opencode(installed) -> Path:
    if not OPENCODE.exists():
        pytest.skip("OpenCode's binary package is for Linux x64 only (tests/clients)")
    return OPENCODE


def test_real_opencode_never_runs_the_fourth_identical_failing_call(
    bus, opencode, unique, tmp_path
):
    _, folder = bus
    project = unique("oshop")
    root, home = new_project(tmp_path, project)
    marker = tmp_path / "ran"
    with model_api([failing(marker)] * 6 + [Turn(text="Giving up.")]) as api:
        opencode_home(root, home, api)
        printed = connect(folder, project, "opencode", root, home)
        assert "plugins/yokeflow-intervention.js: a plugin" in printed
        done = run_opencode(root, home)
        asked = api.tool_requests
    assert done.returncode == 1 and "Aborted" in done.stdout + done.stderr, done.stderr
    intervention = assert_paused_once(folder, project, root, marker, "opencode")
    assert len(asked) == 4  # halted: the model was not asked again after the 4th call
    assert "failed 3 times with the same error" in json.dumps(asked[3]["messages"])  # warned
    assert "Giving up." not in done.stdout
    state = home / ".local" / "state" / "yokeflow-intervention" / "hooks"
    assert not list(state.glob(f"{project}.*.json"))  # the session's end was told as it exited

    resume(folder, intervention, "Port 3000 is taken on this machine: use PORT=4000.")
    with model_api([Turn(text="Starting on port 4000.")]) as api:
        opencode_home(root, home, api)
        again = run_opencode(root, home)
        first = api.tool_requests[0]
    assert again.returncode == 0, again.stderr
    assert "use PORT=4000" in json.dumps(first["messages"])  # the brief reached the next session
    assert interventions(folder, project) == []


def test_a_broken_opencode_configuration_never_blocks_a_call(bus, opencode, unique, tmp_path):
    _, folder = bus
    project = unique("obroken")
    root, home = new_project(tmp_path, project)
    marker = tmp_path / "ran"
    call = Turn(tool="Bash", input={"command": f"echo ran >> {marker}"})
    with model_api([call, call, Turn(text="Done.")]) as api:
        opencode_home(root, home, api)
        connect(folder, project, "opencode", root, home)
        settings = home / ".config" / "yokeflow-intervention" / f"agent-{project}.json"
        settings.write_text(
            json.dumps({**json.loads(settings.read_text()), "NATS_URL": "nats://127.0.0.1:1"})
        )  # NATS is down
        done = run_opencode(root, home)
    assert done.returncode == 0, done.stderr
    assert marker.read_text().splitlines() == ["ran"] * 2  # nothing was blocked


@pytest.mark.parametrize("client", ["claude", "gemini", "codex", "copilot", "opencode"])
def test_hook_check_reads_what_agents_connect_wrote(bus, unique, tmp_path, client):
    """`yokeflow-hook --check --client NAME` in the project, as the agent's user: the settings
    come from the client's configuration, and one synthetic event reaches the stream."""
    _, folder = bus
    project = unique("checked")
    root, home = new_project(tmp_path, project)
    for _ in range(2):  # idempotent: the second run leaves the same one entry
        printed = connect(folder, project, client, root, home)
    assert f"connected {client} to project {project}" in printed
    if client == "codex":  # the hooks trusted once each, by Codex's own hash
        config = (home / ".codex" / "config.toml").read_text()
        assert config.count("[hooks.state.") == 6 == config.count("trusted_hash = ")
    hook = str(Path(sys.executable).parent / "yokeflow-hook")
    done = subprocess.run(
        [hook, "--check", "--client", client],
        cwd=root,
        env=client_env(home),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout
    assert f"may publish on agent.events.{project}.* (a synthetic event reached the stream)" in (
        done.stdout
    )
    assert "(missing)" not in done.stdout
    url = cli(folder, "agents", "add", project).stdout.strip()  # the same credentials again
    assert url.split("@")[0].rsplit(":", 1)[1] not in done.stdout + printed  # never printed
