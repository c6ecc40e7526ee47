"""`POST /api/integrations/slack/interactions`: the Slack app's buttons and its notes modal.

Authenticated by Slack's signature, not the API token. In this order, before anything in the
body is believed: the body is capped; the timestamp must be within five minutes; the v0
signature (HMAC-SHA256 of `v0:<timestamp>:<raw body>` with `slack_signing_secret`) is checked
in constant time by slack-sdk's SignatureVerifier; a signature seen before is a replay. Then the
intervention id in the payload is only a lookup key: the click must come from that project's
channel, by a user (or team) the project allows. Anyone else gets an explanation, never an act.

Slack wants an answer within 3 seconds: a click is acknowledged at once and acted on in the
background, its outcome posted to the click's `response_url`; "Resume with notes" opens the
modal (views.open needs the click's trigger_id, valid for 3 seconds) before answering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import InputBlock, PlainTextInputElement
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient

from yokeflow_intervention.shared.commands import CommandFailed, PauserClient
from yokeflow_intervention.shared.preferences import load_preferences
from yokeflow_intervention.shared.settings import Settings
from yokeflow_intervention.shared.slack import BUTTONS, RESUME_WITH_NOTES, web_client

from .actions import BodyTooLarge, audit_act, capped_body

__all__ = ["MAX_SLACK_BODY", "mount_slack"]

log = logging.getLogger(__name__)

# A block_actions payload repeats the whole message (a few KB for ours); a view_submission
# carries the notes (at most 3,000 characters). Anything near this cap is not from Slack.
MAX_SLACK_BODY = 64 * 1024
WINDOW_S = 300  # Slack's documented replay window
ACTS = ("acknowledge", "resume", "snooze", RESUME_WITH_NOTES)
# What the audit records of a click: intervention, project, action, who.
Acted = tuple[str | None, str | None, str | None, str | None]


def _modal(intervention_id: str, channel: str, project_id: str) -> View:
    return View(
        type="modal",
        callback_id=RESUME_WITH_NOTES,
        title="Resume with notes",
        submit="Resume",
        close="Cancel",
        private_metadata=json.dumps({"i": intervention_id, "c": channel}),
        blocks=[
            InputBlock(
                block_id="notes",
                label=f"What the next session of {project_id} should know"[:2000],
                element=PlainTextInputElement(action_id="notes", multiline=True, max_length=3000),
            )
        ],
    )


def mount_slack(
    app: FastAPI,
    settings: Settings,
    pool: Callable[[], asyncpg.Pool],
    pauser: Callable[[], PauserClient],
) -> None:
    secret = settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value()) if secret is not None else None
    client = web_client(settings)
    api_host = urlsplit(settings.slack_api_base_url).netloc
    background: set[asyncio.Task[None]] = set()

    def later(work: Coroutine[Any, Any, None]) -> None:
        """Run after the answer to Slack; a failure is logged, never lost."""
        task = asyncio.create_task(work)
        background.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            background.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                log.warning("a Slack click's work failed: %r", finished.exception())

        task.add_done_callback(done)

    async def answer(response_url: str | None, text: str) -> None:
        """Tell the one who clicked (only them: ephemeral), at the click's response_url, if it
        is Slack's (or the configured Web API host's) and nowhere else."""
        if not response_url:
            return
        host = urlsplit(response_url).netloc
        if urlsplit(response_url).scheme != "https" and host != api_host:
            return
        if host not in ("hooks.slack.com", api_host):
            return
        try:
            await AsyncWebhookClient(response_url, timeout=10).send(
                text=text, response_type="ephemeral", replace_original=False
            )
        except Exception as exc:  # the act stands; only the reply to it is lost
            log.warning("answering a Slack click failed: %s", type(exc).__name__)

    @app.post("/api/integrations/slack/interactions", tags=["integrations"])
    async def interactions(request: Request) -> Response:
        """Slack's interactivity request URL (signed by Slack; no API token)."""

        async def refused(
            reason: str, status: int, what: Acted = (None, None, None, None)
        ) -> Response:
            await audit_act(pool(), request, what, "refused", reason)
            return JSONResponse({"error": reason}, status)

        if verifier is None:
            return JSONResponse({"error": "the Slack app is not configured"}, 404)
        try:
            body = await capped_body(request, MAX_SLACK_BODY)
        except BodyTooLarge:
            return await refused("body too large", 413)
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > WINDOW_S:
            return await refused("stale or missing timestamp", 401)
        if not verifier.is_valid(body, timestamp, signature):
            return await refused("bad signature", 401)
        notes = ""
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            user, team = payload["user"]["id"], payload["team"]["id"]
            name = payload["user"].get("username") or payload["user"].get("name") or user
            if payload["type"] == "block_actions":
                action = payload["actions"][0]
                act, ident = action["action_id"], action.get("value", "")
                channel, response_url = payload["channel"]["id"], payload.get("response_url")
            elif payload["type"] == "view_submission":
                view = payload["view"]
                if view.get("callback_id") != RESUME_WITH_NOTES:
                    return Response(status_code=200)
                meta = json.loads(view["private_metadata"])
                act, ident, channel, response_url = "resume", meta["i"], meta["c"], None
                notes = view["state"]["values"]["notes"]["notes"].get("value") or ""
            else:
                return Response(status_code=200)  # nothing of ours
        except (KeyError, IndexError, TypeError, ValueError):
            return await refused("malformed payload", 400)
        if act not in ACTS:
            return Response(status_code=200)  # the Open button is a link
        ident = str(ident)[:128]
        what: Acted = (ident, None, act, f"slack:{user}")
        first = await pool().fetchval(
            """INSERT INTO action_link_uses (signature, intervention_id, project_id, action,
                                             recipient)
               VALUES ($1, $2, '', $3, $4) ON CONFLICT DO NOTHING RETURNING signature""",
            f"slack:{signature}",
            ident,
            act,
            what[3],
        )
        if first is None:
            return await refused("replayed request", 401, what)
        row = await pool().fetchrow("SELECT project_id FROM paused_sessions WHERE id = $1", ident)
        preferences = await load_preferences(pool(), row["project_id"]) if row else None
        if row is None or preferences is None or preferences.slack_channel != channel:
            later(answer(response_url, "This incident is not one of this channel's projects."))
            return await refused("the intervention is not of the channel's project", 403, what)
        project = row["project_id"]
        what = (ident, project, act, what[3])
        if not preferences.may_act_in_slack(team, user):
            explanation = (
                f"You may not act on {project}'s incidents; ask its owners to add your Slack "
                "user id to the project's slack_allowed_user_ids."
            )
            later(answer(response_url, explanation))
            if payload["type"] == "view_submission":
                await refused("user not allowed", 200, what)
                errors = {"notes": "You may not act on this project's incidents."}
                return JSONResponse({"response_action": "errors", "errors": errors})
            return await refused("user not allowed", 403, what)
        by = f"{str(name)[:80]} ({user})"
        if act == RESUME_WITH_NOTES:
            if client is None:
                later(answer(response_url, "Notes cannot be asked for here; use Resume."))
                return await refused("no SLACK_BOT_TOKEN on the API for views.open", 200, what)
            try:
                await client.views_open(
                    trigger_id=payload["trigger_id"], view=_modal(ident, channel, project)
                )
            except (SlackApiError, KeyError) as exc:
                later(answer(response_url, "Could not open the notes form; try again."))
                return await refused(f"views.open failed: {exc}"[:200], 200, what)
            await audit_act(pool(), request, what, "accepted", "modal opened")
            return Response(status_code=200)
        later(perform(request, what, act, ident, by, notes, response_url))
        return Response(status_code=200)

    async def perform(
        request: Request,
        what: Acted,
        act: str,
        ident: str,
        by: str,
        notes: str,
        response_url: str | None,
    ) -> None:
        project = what[1]
        try:
            if act == "acknowledge":
                row = await pauser().acknowledge(ident, by, "slack", project)
                text = (
                    f"Acknowledged. Everyone paged sees that {by} is on it."
                    if row["changed"]
                    else f"Already acknowledged by {row['acknowledged_by']} "
                    f"({row['acknowledged_via']})."
                )
            elif act == "snooze":
                row = await pauser().snooze(ident, by, 60, "slack", project)
                text = f"Snoozed until {str(row['snoozed_until'])[11:16]} UTC."
            else:
                row = await pauser().resume_session(ident, by, notes)
                text = f"Resumed by {by}; the next session gets the notes."
        except CommandFailed as exc:
            await audit_act(pool(), request, what, "refused", str(exc))
            await answer(response_url, f"{BUTTONS.get(act, act)}: {exc}")
            return
        await audit_act(pool(), request, what, "accepted", "")
        await answer(response_url, text)
