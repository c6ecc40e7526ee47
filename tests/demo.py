"""`make demo` (`python -m tests.demo --json`): the whole flow once, unattended, against local
stand-ins of Slack, Discord, Twilio and an SMTP server, with a JSON summary.

It lives with the tests because the stand-ins are test tools, not part of the product."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
from yokeflow_agent.client import AgentSession
from yokeflow_agent.contract import Task

from yokeflow_intervention.cli.demo_agent import port_conflict_session, retry_loop_session
from yokeflow_intervention.cli.up import Supervisor, prepare_infrastructure, service_specs
from yokeflow_intervention.shared.bus import connect
from yokeflow_intervention.shared.commands import CommandFailed, PauserClient
from yokeflow_intervention.shared.embedded import free_port
from yokeflow_intervention.shared.preferences import NotificationPreferences, save_preferences
from yokeflow_intervention.shared.settings import DEMO_PROJECT, Settings

from .peers import HttpPeer, SmtpPeer

__all__ = ["run_demo"]


def _progress(line: str) -> None:
    print(f"demo: {line}", file=sys.stderr, flush=True)


def _hold_port(port: int, workspace: Path) -> subprocess.Popen[bytes]:
    """A real process listening on the port, as a forgotten dev server would."""
    code = (
        f"import socket,time; s=socket.socket(); s.bind(('127.0.0.1',{port})); s.listen(); "
        "time.sleep(600)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], cwd=workspace)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return process


async def _until(check: Any, timeout: float) -> Any:
    """Poll `check` (plain or async) until it gives something truthy, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except CommandFailed:
            value = None
        if value:
            return value
        await asyncio.sleep(0.1)
    return None


TWILIO_SID, TWILIO_TOKEN, TWILIO_FROM = "AC" + "d" * 32, "demo-token", "+15550009999"


def _peer_settings(http: HttpPeer, smtp: SmtpPeer) -> dict[str, str]:
    """Point every channel at the local stand-ins the demo runs."""
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
        "YOKEFLOW_SMTP_SECURITY": "none",
        "TWILIO_ACCOUNT_SID": TWILIO_SID,
        "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_FROM_NUMBER": TWILIO_FROM,
        "YOKEFLOW_TWILIO_API_BASE_URL": http.base_url,
        "YOKEFLOW_ALLOW_PRIVATE_WEBHOOKS": "true",
    }


async def _set_preferences(database_url: str, http: HttpPeer) -> dict[str, NotificationPreferences]:
    chosen = {
        DEMO_PROJECT: NotificationPreferences(
            webhook_enabled=True,
            webhook_url=http.slack_url(),
            email_enabled=True,
            email_addresses=["oncall@example.com"],
            sms_enabled=True,
            sms_numbers=["+15551230000"],
        ),
        "demo-discord": NotificationPreferences(
            webhook_enabled=True, webhook_url=http.discord_url()
        ),
        "demo-hooks": NotificationPreferences(webhook_enabled=True, webhook_url=http.webhook_url()),
    }
    conn = await asyncpg.connect(database_url)
    try:
        for project, preferences in chosen.items():
            await save_preferences(conn, project, preferences)
    finally:
        await conn.close()
    return chosen


def _notification_counts(http: HttpPeer, smtp: SmtpPeer) -> dict[str, dict[str, int]]:
    """What the peers received, per channel: deliveries and duplicates among them."""
    # A message is identified by its intervention and its title: a recovery follow-up is not a
    # duplicate of the notice that the session was blocked.
    keys: dict[str, list[str]] = {
        "slack": [
            f"{r.body['text']}|{r.body['attachments'][0]['footer']}" for r in http.accepted("slack")
        ],
        "discord": [
            f"{e['title']}|{e['footer']['text']}"
            for r in http.accepted("discord")
            for e in r.body["embeds"]
        ],
        "webhook": [
            f"{r.body['type']}|{r.body['intervention']['intervention_id']}"
            for r in http.accepted("webhook")
        ],
        "sms": [f"{r.body['To']}|{r.body['Body']}" for r in http.accepted("twilio")],
        "email": [
            f"{m['To']}|{m['Subject']}|{m['X-YokeFlow-Intervention']}" for m in smtp.messages
        ],
    }
    return {c: {"sent": len(k), "duplicates": len(k) - len(set(k))} for c, k in keys.items()}


async def _flow(nats_url: str, workspace: Path, port: int) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "intervention_id": None,
        "trigger": None,
        "paused_row": False,
        "agent_blocked": False,
        "blocker_doc": None,
        "resumed": False,
        "new_session_started_with_context": False,
    }
    nc = await connect(nats_url, "yokeflow-demo")
    try:
        pauser = PauserClient(nc, timeout=5)
        await _until(pauser.ready, 30)
        _progress("services are up; the agent starts a session that retries a failing command")
        session = AgentSession(
            nc,
            DEMO_PROJECT,
            workspace=workspace,
            task=Task(id="42", description="Add checkout API"),
        )
        paused = await retry_loop_session(session)
        if paused is None:
            return summary
        summary["agent_blocked"] = True
        intervention_id = paused.control.intervention_id
        assert intervention_id is not None
        summary["intervention_id"] = intervention_id
        summary["trigger"] = paused.control.trigger
        blocker = await session.stop_for_pause(paused)
        summary["blocker_doc"] = str(blocker) if blocker and blocker.exists() else None
        _progress(f"paused by {summary['trigger']}; blocker entry in {blocker}")
        row = await _until(lambda: pauser.get_intervention(intervention_id), 10)
        summary["paused_row"] = bool(row)
        starts: list[dict[str, Any]] = []

        async def remember_start(msg: Any) -> None:
            event = json.loads(msg.data)
            if event.get("type") == "session_started":
                starts.append(event)

        await nc.subscribe(f"agent.events.{DEMO_PROJECT}.>", cb=remember_start)
        resumed = await pauser.resume_session(
            intervention_id, "demo", "The config now sets PORT; start with PORT=4000 npm start."
        )
        summary["resumed"] = bool(resumed.get("resolved"))
        _progress("resumed with notes; waiting for the next session to start with the brief")

        async def continued() -> bool:
            detail = await pauser.get_intervention(intervention_id)
            next_id = detail.get("next_session_id")
            return any(
                s["session_id"] == next_id and s.get("resumed_from") == intervention_id
                for s in starts
            )

        summary["new_session_started_with_context"] = bool(await _until(continued, 30))

        _progress("two more projects hit a port conflict; one port is held by a real process")
        recoveries: list[dict[str, Any]] = []

        async def remember_recovery(msg: Any) -> None:
            recoveries.append(json.loads(msg.data))

        await nc.subscribe("intervention.recovery.demo-hooks", cb=remember_recovery)
        holder = _hold_port(port, workspace)
        try:
            for project, busy in (("demo-discord", 5173), ("demo-hooks", port)):
                other = AgentSession(nc, project, workspace=workspace)
                stopped = await port_conflict_session(other, busy)
                if stopped is not None:
                    await other.stop_for_pause(stopped)

            def finished() -> dict[str, Any] | None:
                final = ("succeeded", "failed", "refused")
                return next((r for r in recoveries if r["status"] in final), None)

            done = await _until(finished, 30)
        finally:
            holder.kill()
        summary["recovery"] = {
            "action": done.get("action") if done else None,
            "succeeded": bool(done and done["status"] == "succeeded"),
            "auto_resumed": bool(done and done.get("auto_resumed")),
            "detail": done.get("detail") if done else "no outcome",
        }
    finally:
        await nc.close()
    return summary


def run_demo(settings: Settings, as_json: bool) -> int:
    with HttpPeer(TWILIO_SID, TWILIO_TOKEN) as http, SmtpPeer() as smtp:
        return _run_demo(settings, as_json, http, smtp)


def _run_demo(settings: Settings, as_json: bool, http: HttpPeer, smtp: SmtpPeer) -> int:
    """Run on a fresh embedded stack (or the configured servers) and report every step."""
    workspace = settings.data_dir.resolve() / "demo-workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    port = free_port()  # held by a stale "dev server" in the workspace of demo-hooks
    # What an operator registers: recovery may stop that project's dev server, nothing else.
    with tempfile.TemporaryDirectory(prefix="yokeflow-demo-") as temp:
        data_dir = Path(temp)
        if settings.nats_url is None or settings.database_url is None:
            settings = settings.model_copy(update={"data_dir": data_dir})
        _progress("starting infrastructure")
        infra = prepare_infrastructure(settings, report=False, agents=(DEMO_PROJECT,))
        registered = {
            "demo-hooks": {
                "workspace_root": str(workspace),
                "dev_ports": [port],
                "recovery_actions": ["free_port"],
            },
            # Its next session starts there, with its agents' credentials.
            DEMO_PROJECT: {
                "workspace_root": str(workspace),
                "agent_nats_url": infra.agent_urls.get(DEMO_PROJECT),
            },
        }
        env = {
            **os.environ,
            "NATS_URL": infra.nats_url,
            "DATABASE_URL": infra.database_url,
            "YOKEFLOW_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
            "YOKEFLOW_PROJECTS": json.dumps(registered),
            **_peer_settings(http, smtp),
        }
        asyncio.run(_set_preferences(infra.database_url, http))
        supervisor = Supervisor(env, data_dir / "logs")
        try:
            for spec in service_specs(
                settings,
                demo=True,
                service_urls=infra.service_urls,
                database_urls=infra.database_urls,
            ):
                supervisor.start(spec)
            summary = asyncio.run(_flow(infra.nats_url, workspace, port))
            expected = {"slack": 1, "discord": 1, "webhook": 1, "email": 1, "sms": 1}
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                counts = _notification_counts(http, smtp)
                if all(counts[c]["sent"] >= n for c, n in expected.items()):
                    break
                time.sleep(0.1)
            time.sleep(0.5)  # anything sent twice would arrive now
            summary["notifications"] = _notification_counts(http, smtp)
        finally:
            supervisor.stop()
            infra.stop()
    notifications = summary.get("notifications", {})
    recovery = summary.get("recovery", {})
    ok = (
        bool(recovery.get("succeeded") and recovery.get("auto_resumed"))
        and all(
            summary[key]
            for key in (
                "intervention_id",
                "paused_row",
                "agent_blocked",
                "blocker_doc",
                "resumed",
                "new_session_started_with_context",
            )
        )
        and all(n["sent"] >= 1 and n["duplicates"] == 0 for n in notifications.values())
        and len(notifications) == 5
    )
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            if key != "blocker_entry":
                print(f"{key:34} {value}")
    _progress("every step happened" if ok else "a step did not happen: see the summary")
    return 0 if ok else 1


if __name__ == "__main__":
    from yokeflow_intervention.shared.settings import load_settings

    sys.exit(run_demo(load_settings(), "--json" in sys.argv[1:]))
