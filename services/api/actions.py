"""The action-link routes: `GET /actions/<token>` shows what the link would do and asks to
confirm; only `POST /actions/<token>` acts. They are authenticated by the link's signature
(shared/action_links.py), not by the API token: the person who got the email or text has no
token. Every refusal, and every use, is written to action_link_audit.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from yokeflow_intervention.shared.action_links import ActionLink, LinkRefused, verify_link
from yokeflow_intervention.shared.commands import (
    AlreadyResolvedError,
    CommandFailed,
    NotFoundError,
    PauserClient,
)
from yokeflow_intervention.shared.settings import Settings

__all__ = ["MAX_FORM_BYTES", "BodyTooLarge", "audit_act", "capped_body", "mount_action_links"]

log = logging.getLogger(__name__)

# The confirmation form carries the resume notes and nothing else; the API's notes cap is
# 20,000 characters, form-encoded up to three bytes each.
MAX_FORM_BYTES = 64 * 1024
_VERBS = {"acknowledge": "Acknowledge", "resume": "Resume", "snooze": "Snooze for 1 hour"}
# The page shows agent text (escaped) and holds a token in its URL: no framing (a hidden frame
# could trick a click), no referrer (the token would leak), no scripts at all, no caching.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class BodyTooLarge(Exception):
    pass


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title></head>
<body style="font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem">
<h1 style="font-size:1.4rem">{html.escape(title)}</h1>
{body}
</body></html>""",
        status_code=status,
        headers=_HEADERS,
    )


def _refused(reason: str, status: int) -> HTMLResponse:
    return _page(status, "This link cannot be used", f"<p id='reason'>{html.escape(reason)}.</p>")


async def capped_body(request: Request, limit: int) -> bytes:
    """The raw body, refused past `limit` bytes before more is read."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


async def audit_act(
    pool: asyncpg.Pool,
    request: Request,
    what: tuple[str | None, ...],
    outcome: str,
    reason: str,
) -> None:
    """One row of action_link_audit: (intervention, project, action, recipient) as far as they
    are known, accepted or refused, and why."""
    await pool.execute(
        """INSERT INTO action_link_audit (intervention_id, project_id, action, recipient,
                                          outcome, reason, remote)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        *what,
        outcome,
        reason[:500],
        request.client.host if request.client else "",
    )


def mount_action_links(
    app: FastAPI,
    settings: Settings,
    pool: Callable[[], asyncpg.Pool],
    pauser: Callable[[], PauserClient],
) -> None:
    secrets = [
        s.get_secret_value()
        for s in (settings.action_link_secret, settings.action_link_previous_secret)
        if s is not None
    ]

    async def audit(request: Request, link: ActionLink | None, outcome: str, reason: str) -> None:
        await pool().execute(
            """INSERT INTO action_link_audit (intervention_id, project_id, action, recipient,
                                              outcome, reason, remote)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            link.intervention_id if link else None,
            link.project_id if link else None,
            link.action if link else None,
            f"{link.via}:{link.recipient}" if link else None,
            outcome,
            reason,
            request.client.host if request.client else "",
        )

    async def check(request: Request, token: str) -> tuple[ActionLink, str, asyncpg.Record]:
        """The link, its signature and its intervention; LinkRefused (audited) otherwise."""
        link: ActionLink | None = None
        try:
            link, signature = verify_link(token, secrets)
            row = await pool().fetchrow(
                """SELECT id, project_id, session_id, pause_type, pause_reason, paused_at,
                          resolved, resolved_by, acknowledged_by, acknowledged_via
                   FROM paused_sessions WHERE id = $1""",
                link.intervention_id,
            )
            if row is None or row["project_id"] != link.project_id:
                raise LinkRefused("the intervention is not one of the link's project", 404)
            used = await pool().fetchval(
                "SELECT used_at FROM action_link_uses WHERE signature = $1", signature
            )
            if used is not None:
                raise LinkRefused(f"the link was already used, at {used:%Y-%m-%d %H:%M UTC}", 409)
        except LinkRefused as exc:
            await audit(request, link or exc.link, "refused", exc.reason)
            raise
        return link, signature, row

    @app.get("/actions/{token}", include_in_schema=False)
    async def confirm(request: Request, token: str) -> HTMLResponse:
        try:
            link, _, row = await check(request, token)
        except LinkRefused as exc:
            return _refused(exc.reason, exc.status)
        verb = _VERBS[link.action]
        state = "resolved" if row["resolved"] else "paused"
        if row["acknowledged_by"] and not row["resolved"]:
            state += f", acknowledged by {row['acknowledged_by']} ({row['acknowledged_via']})"
        notes = (
            "<p><label for='notes'>Notes for the next session (what you fixed, what to do "
            "differently)</label><br><textarea id='notes' name='notes' rows='6' "
            "style='width:100%' maxlength='20000'></textarea></p>"
            if link.action == "resume"
            else ""
        )
        body = f"""<p>{html.escape(verb)} intervention <code>{html.escape(row["id"])}</code> as
<b>{html.escape(link.recipient)}</b>?</p>
<table>
<tr><th align="left">Project</th><td>{html.escape(row["project_id"])}</td></tr>
<tr><th align="left">Session</th><td>{html.escape(row["session_id"])}</td></tr>
<tr><th align="left">Trigger</th><td>{html.escape(row["pause_type"])}</td></tr>
<tr><th align="left">State</th><td id="state">{html.escape(state)}</td></tr>
</table>
<p>What stopped it, in the session's own words (untrusted):</p>
<blockquote style="white-space:pre-wrap">{html.escape(row["pause_reason"][:2000])}</blockquote>
<form method="post">{notes}
<button id="confirm" type="submit"
 style="font-size:1rem;padding:8px 16px">{html.escape(verb)}</button>
</form>
<p style="color:#667085">This link works once and expires.</p>"""
        return _page(200, f"{verb}: {row['project_id']}", body)

    @app.post("/actions/{token}", include_in_schema=False)
    async def act(request: Request, token: str) -> HTMLResponse:
        try:
            form = await capped_body(request, MAX_FORM_BYTES)
        except BodyTooLarge:
            await audit(request, None, "refused", "form too large")
            return _refused(f"the form is larger than {MAX_FORM_BYTES} bytes", 413)
        try:
            link, signature, _ = await check(request, token)
        except LinkRefused as exc:
            return _refused(exc.reason, exc.status)
        claimed = await pool().fetchval(
            """INSERT INTO action_link_uses (signature, intervention_id, project_id, action,
                                             recipient)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING signature""",
            signature,
            link.intervention_id,
            link.project_id,
            link.action,
            f"{link.via}:{link.recipient}",
        )
        if claimed is None:  # two submits raced; the other one acts
            await audit(request, link, "refused", "the link was already used")
            return _refused("the link was already used", 409)
        try:
            result = await _perform(pauser(), link, form)
        except CommandFailed as exc:
            # Nothing changed: the link is not spent either.
            await pool().execute("DELETE FROM action_link_uses WHERE signature = $1", signature)
            await audit(request, link, "refused", str(exc))
            if isinstance(exc, NotFoundError | AlreadyResolvedError):
                return _refused(str(exc), 404 if isinstance(exc, NotFoundError) else 409)
            return _page(503, "Try again shortly", f"<p>{html.escape(str(exc))}</p>")
        await audit(request, link, "accepted", "")
        return _page(200, "Done", f"<p id='result'>{html.escape(result)}</p>")


async def _perform(pauser: PauserClient, link: ActionLink, form: bytes) -> str:
    """Do what the link says, as its recipient; one line on what happened."""
    ident, by = link.intervention_id, link.recipient
    if link.action == "acknowledge":
        row: dict[str, Any] = await pauser.acknowledge(ident, by, link.via, link.project_id)
        if row["changed"]:
            return f"Acknowledged by {by}."
        return f"Already acknowledged by {row['acknowledged_by']} ({row['acknowledged_via']})."
    if link.action == "snooze":
        row = await pauser.snooze(ident, by, 60, link.via, link.project_id)
        until = str(row["snoozed_until"])[:16].replace("T", " ")
        return (
            f"Snoozed until {until} UTC."
            if row["changed"]
            else f"Already snoozed until {until} UTC."
        )
    notes = parse_qs(form.decode(errors="replace")).get("notes", [""])[0]
    row = await pauser.resume_session(ident, f"{by} (via {link.via} link)", notes)
    return f"Resumed by {row['resolved_by']}; the next session gets your notes."
