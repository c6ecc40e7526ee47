"""Signed, expiring, single-use action links: how a human acts on an incident from an email, an
SMS or a Discord message, without the API token.

A link says which intervention (and its project), which action, to whom it was sent (the act is
attributed to that recipient) and until when it is valid, and carries an HMAC-SHA256 of all of
that under `action_link_secret`. The signature is checked first, in constant time; a link is
then refused when expired, or when its intervention is not of its project; it acts only on a
POST (a GET shows a confirmation page, so a mail scanner fetching links acts on nothing) and
only once (its signature is the key of a row in action_link_uses).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal, get_args

from yokeflow_agent.contract import ActingChannel

__all__ = ["ACTIONS", "Action", "ActionLink", "LinkRefused", "sign_link", "verify_link"]

Action = Literal["acknowledge", "resume", "snooze"]
ACTIONS: tuple[Action, ...] = get_args(Action)
_DOMAIN = b"yokeflow-action-link:v1\n"
_SIGNATURE_BYTES = 16  # 128 bits: unforgeable, and short enough for an SMS
_MAX_TOKEN = 1024


class LinkRefused(ValueError):
    """A link that must not act; `reason` is what the audit records."""

    def __init__(self, reason: str, status: int = 403, link: ActionLink | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.link = link  # when the signature held: what the refused link was for


@dataclass(frozen=True)
class ActionLink:
    intervention_id: str
    project_id: str
    action: Action
    via: ActingChannel
    recipient: str
    expires: int  # Unix seconds

    def payload(self) -> bytes:
        # Newlines cannot occur in ids, actions, addresses or numbers; the recipient goes last.
        fields = (
            self.intervention_id,
            self.project_id,
            self.action,
            self.via,
            str(self.expires),
            self.recipient,
        )
        return "\n".join(fields).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), _DOMAIN + payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def sign_link(secret: str, link: ActionLink) -> str:
    """The token that goes into the URL: <payload>.<signature>, both base64url."""
    payload = link.payload()
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify_link(token: str, secrets: list[str], now: float | None = None) -> tuple[ActionLink, str]:
    """The link and its signature (the single-use key), or LinkRefused saying why. The
    signature is checked before anything in the payload is believed."""
    if not secrets:
        raise LinkRefused("action links are not configured", 404)
    if len(token) > _MAX_TOKEN or token.count(".") != 1:
        raise LinkRefused("malformed link")
    encoded, signature = token.split(".")
    try:
        payload, given = _unb64(encoded), _unb64(signature)
    except ValueError:  # binascii.Error is one
        raise LinkRefused("malformed link") from None
    if not any(hmac.compare_digest(given, _mac(secret, payload)) for secret in secrets):
        raise LinkRefused("bad signature")
    try:
        ident, project, action, via, expires, recipient = payload.decode().split("\n", 5)
        link = ActionLink(ident, project, action, via, recipient, int(expires))  # type: ignore[arg-type]
    except ValueError:
        raise LinkRefused("malformed link") from None
    if link.action not in ACTIONS:
        raise LinkRefused(f"unknown action {link.action!r}")
    if link.expires < (time.time() if now is None else now):
        raise LinkRefused("link expired", 410, link)
    return link, signature
