"""Detection rules: pure functions of an event and a session's state, no I/O.

`evaluate` is the single entry point: it folds an event into the session's state and asks each
family of rules in turn (critical errors, retries, loops, progress, text turns, budgets), each a
module of this package. The service and the offline `detect` command run exactly this code,
and all time rules use event time, so replaying a session's events always yields the same
verdicts.
"""

from __future__ import annotations

from yokeflow_agent.contract import (
    AgentEvent,
    Intervention,
    InterventionWarned,
    RiskKind,
    SessionSummary,
    ToolCall,
    ToolResult,
    ToolResultBody,
    intervention_id_for,
    warning_id_for,
)

from . import budgets, loops, progress, retries, text
from .config import BUILTIN_CRITICAL_PATTERNS, SUGGESTED_RECOVERY, DetectionConfig
from .critical import classify_critical, critical
from .fingerprints import (
    FAILURE_TEXT_LIMIT,
    call_signature,
    excerpt,
    failure_fingerprint,
    label,
    outcome_fingerprint,
    still_running,
)
from .state import SIGNATURES, Completed, SessionState, Streak, Verdict, Warning, push

__all__ = [
    "BUILTIN_CRITICAL_PATTERNS",
    "DetectionConfig",
    "SessionState",
    "call_signature",
    "classify_critical",
    "evaluate",
    "failure_fingerprint",
    "foresee",
    "summarise",
]


def _on_tool_call(state: SessionState, event: ToolCall, config: DetectionConfig) -> Verdict | None:
    signature = call_signature(event.tool, event.input, config.signature_ignore_keys)
    state.messages_since_call = 0
    if not state.round_open:  # results came in since the last call: a new round starts
        state.round_calls, state.round_open = [], True
    state.round_calls.append(signature)
    if event.call_id is not None:
        state.pending_calls[event.call_id] = signature
        if len(state.pending_calls) > SIGNATURES:  # calls whose results never came
            del state.pending_calls[next(iter(state.pending_calls))]
    # Counts per call, most recently used last; past SIGNATURES distinct calls the least
    # recently used is forgotten (a long session's memory stays bounded; retry_stats then
    # count the recent calls).
    count = state.calls_per_signature.pop(signature, 0) + 1
    state.calls_per_signature[signature] = count
    state.labels[signature] = state.labels.pop(signature, "") or label(event.tool, event.input)
    if len(state.calls_per_signature) > SIGNATURES:
        oldest = next(iter(state.calls_per_signature))
        del state.calls_per_signature[oldest]
        state.labels.pop(oldest, None)
    return retries.before_call(state, signature, config)


def _on_tool_result(
    state: SessionState, event: ToolResult, config: DetectionConfig
) -> Verdict | None:
    signature = None
    if event.call_id is not None:
        signature = state.pending_calls.pop(event.call_id, None)
    if signature is None:
        signature = call_signature(event.tool, None, config.signature_ignore_keys)
        state.labels.setdefault(signature, event.tool or "tool")
    round_verdict = loops.close_round(state, config)
    result = event.result
    ok = result.ok
    # A success's text is read only for a stop's excerpt: most results never need it.
    failure = "" if ok else _failure(result)
    fingerprint = outcome_fingerprint(result.output) if ok else failure_fingerprint(failure)
    retries.record(state, signature, ok, fingerprint, failure)
    waiting = ok and still_running(result.output)
    finished = (signature, ok, result.exit_code, fingerprint, waiting, event.ts.timestamp())
    push(state.completed, finished, loops.remembered(config))
    push(state.results, ok, state.window)
    progress.observe(state, signature, fingerprint, waiting)

    if not ok:
        verdict = critical(state, failure, config)
        if verdict is not None:
            return verdict
    loop = loops.repeated_calls(state, config) or round_verdict
    if loop is not None:
        return Verdict("loop_pattern", loop, excerpt(failure or _failure(result)))
    verdict = progress.no_progress(state, signature, config)
    if verdict is None and config.error_rate_threshold is not None:  # a budget, off unless set
        verdict = budgets.error_rate(state, excerpt(failure or _failure(result)), config)
    return verdict


def _failure(result: ToolResultBody) -> str:
    """The text a result is judged and quoted by, as far as the rules read it."""
    return result.failure_text[:FAILURE_TEXT_LIMIT]


def evaluate(
    state: SessionState, event: AgentEvent, config: DetectionConfig
) -> Intervention | None:
    """Fold one event into the state; return the intervention it triggers, if any.

    At most one intervention per session: once intervened, events are ignored until the
    service starts a new epoch for the session (after a resume).
    """
    if state.intervened is not None or not state.seen_event_ids.first(event.event_id):
        return None
    state.events += 1
    ts = event.ts
    state.last_event_at = max(ts, state.last_event_at or ts)
    # Dispatched on `type`: an isinstance check of a pydantic model costs more than a string's.
    kind = event.type
    if state.started_at is None or kind == "session_started":
        state.started_at = ts
    if event.task is not None:
        state.task = event.task
    if event.type == "session_started":
        if event.workspace:
            state.workspace = event.workspace
        if event.client:
            state.client = event.client
    if not config.enabled:
        return None

    verdict: Verdict | None = None
    if event.type == "tool_call":
        verdict = _on_tool_call(state, event, config)
    elif event.type == "tool_result":
        verdict = _on_tool_result(state, event, config)
    elif event.type == "error":
        verdict = critical(state, event.message, config) or loops.repeated_error(
            state, event, config
        )
    elif event.type == "agent_message":
        verdict = text.on_message(state, event, config)
    if verdict is None and kind != "session_ended":
        verdict = budgets.duration(state, ts, config)
    if verdict is None:
        return None

    intervention = Intervention(
        intervention_id=intervention_id_for(event.project_id, event.session_id, event.event_id),
        project_id=event.project_id,
        session_id=event.session_id,
        trigger=verdict.trigger,
        blocker_type=verdict.blocker_type,
        reason=verdict.reason,
        error_excerpt=verdict.excerpt,
        event_seq=event.seq,
        event_id=event.event_id,
        retry_stats=state.retry_stats(),
        task=state.task,
        detected_at=event.ts,
        can_auto_resume=verdict.blocker_type in config.auto_recovery_blockers,
        suggested_recovery=SUGGESTED_RECOVERY.get(verdict.blocker_type or ""),
        workspace=state.workspace,
        client=state.client,
    )
    state.intervened = intervention.intervention_id
    return intervention


def _warning_of(state: SessionState, event: AgentEvent, config: DetectionConfig) -> Warning | None:
    """The warning earned when one more step of the same kind stops the session."""
    found: Warning | None = None
    if event.type == "tool_result":
        if state.completed:
            last = Completed._make(state.completed[-1])
            found = (
                retries.warning(state, last, config)
                or loops.result_warning(state, last, config)
                or progress.warning(state, config)
                or budgets.error_rate_warning(state, config)
            )
    elif event.type == "error":
        found = loops.error_warning(state, event, config)
    elif event.type == "agent_message":
        found = text.warning(state, config)
    if found is None and event.type != "session_ended":
        found = budgets.duration_warning(state, event.ts, config)
    return found


def foresee(
    state: SessionState, event: AgentEvent, config: DetectionConfig
) -> InterventionWarned | None:
    """After `evaluate` let `event` pass: the warning it earns when one more step of the same
    kind would stop the session, once per pattern per epoch. Pure, like `evaluate`."""
    if not (config.enabled and config.warn_before_stop) or state.intervened is not None:
        return None
    found = _warning_of(state, event, config)
    if found is None or found[0] in state.warned:
        return None
    key, trigger, reason, advice = found
    state.warned[key] = None
    return InterventionWarned(
        warning_id=warning_id_for(event.project_id, event.session_id, event.event_id),
        project_id=event.project_id,
        session_id=event.session_id,
        trigger=trigger,
        reason=reason,
        advice=advice,
        event_seq=event.seq,
        event_id=event.event_id,
        task=state.task,
        detected_at=event.ts,
    )


def summarise(state: SessionState, config: DetectionConfig, ended: bool = False) -> SessionSummary:
    """The session's live risk signals against the limits that would stop it, for the fleet
    view. Pure; each share is 1.0 when the next step of its kind stops the session; a budget
    the operator did not set has no share (and a limit of 0)."""
    streak = max((Streak._make(s).repeats for s in state.streaks.values()), default=0)
    total = len(state.results)
    failed = total - sum(state.results)
    last = state.last_event_at
    elapsed = (last - state.started_at).total_seconds() if last and state.started_at else 0.0
    rate_share, time_share = budgets.shares(state, config)
    shares: dict[RiskKind, float] = {
        "retry_limit": streak / config.max_retries if config.max_retries else 0.0,
        "no_progress": progress.share(state, config),
    }
    if rate_share is not None:
        shares["error_rate"] = rate_share
    if time_share is not None:
        shares["session_duration"] = time_share
    nearest = max(shares, key=lambda k: shares[k])
    risk = shares[nearest]
    return SessionSummary(
        project_id=state.project_id,
        session_id=state.session_id,
        state="ended" if ended else "stopped" if state.intervened else "running",
        intervention_id=state.intervened,
        task=state.task,
        started_at=state.started_at,
        last_event_at=last,
        events=state.events,
        retry_streak=streak,
        max_retries=config.max_retries,
        error_rate=round(failed / total, 4) if total else 0.0,
        results=total,
        error_rate_threshold=config.error_rate_threshold or 0.0,
        error_rate_min_results=config.error_rate_min_results,
        elapsed_s=round(max(elapsed, 0.0), 3),
        duration_limit_s=config.session_duration_limit or 0.0,
        warnings=sorted({key.split(":", 1)[0] for key in state.warned}),
        shares={kind: round(share, 4) for kind, share in shares.items()},
        risk=round(risk, 4),
        nearest=nearest if risk > 0 else None,
        client=state.client,
    )
