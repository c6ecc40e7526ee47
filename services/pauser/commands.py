"""Request/reply command handling: one request model in, one CommandReply out, never a crash."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from yokeflow_agent.contract import CommandError, CommandReply

from yokeflow_intervention.shared.commands import describe_validation
from yokeflow_intervention.shared.handling import TRANSIENT_ERRORS

from .store import AlreadyResolved, UnknownIntervention, UnknownSession

__all__ = ["run_command"]

log = logging.getLogger(__name__)
RequestT = TypeVar("RequestT", bound=BaseModel)


def _failure(code: Any, message: str) -> CommandReply:
    return CommandReply(ok=False, error=CommandError(code=code, message=message))


async def run_command(
    data: bytes, model: type[RequestT], operation: Callable[[RequestT], Awaitable[Any]]
) -> CommandReply:
    try:
        request = model.model_validate_json(data)
    except ValidationError as exc:
        return _failure("invalid", describe_validation(exc))
    try:
        return CommandReply(ok=True, result=await operation(request))
    except (UnknownIntervention, UnknownSession) as exc:
        return _failure("not_found", str(exc))
    except AlreadyResolved as exc:
        return _failure("already_resolved", str(exc))
    except TRANSIENT_ERRORS as exc:
        log.warning("command %s unavailable: %r", model.__name__, exc)
        return _failure("unavailable", f"a dependency is unavailable: {type(exc).__name__}")
    except Exception:
        log.exception("command %s failed", model.__name__)
        return _failure("internal", "internal error; see the pauser's log")
