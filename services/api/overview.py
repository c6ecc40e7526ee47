"""The dashboard's overview: what the interventions of a period cost, and how right the detector
was (stops, observed stops, false stops), aggregated in PostgreSQL.

Every figure is one query over the tables the services own (the API only reads them), so the
overview is as right as the audit trail and costs the API no memory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, computed_field
from yokeflow_agent.contract import AUTO_RECOVERY_RESOLVER

__all__ = ["Judgement", "Overview", "overview"]


class _Figures(BaseModel):
    # Every figure is in every answer (those with a default too): the dashboard's generated
    # types say so.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class TriggerCount(_Figures):
    bucket: datetime
    trigger: str
    count: int


class ResumeTimes(_Figures):
    kind: Literal["human", "automatic"]
    count: int
    p50_s: float
    p90_s: float


class RecoveryOutcomes(_Figures):
    succeeded: int = 0
    failed: int = 0
    refused: int = 0
    nothing_to_do: int = 0
    attempted: int = 0

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form
    @property
    def success_rate(self) -> float | None:
        """succeeded / (succeeded + failed); None before any fix was tried to its end."""
        decided = self.succeeded + self.failed
        return round(self.succeeded / decided, 4) if decided else None


class Cost(_Figures):
    name: str
    interventions: int
    paused_s: float  # time its sessions spent paused (until resumed, or until now)


class ChannelOutcomeCount(_Figures):
    channel: str
    status: str
    count: int


class Totals(_Figures):
    interventions: int  # stops made (enforce mode); the figures below count only these
    active: int
    resolved: int
    warnings: int
    observed: int  # stops observe mode would have made (nothing was paused)
    false_stops: int  # stops, made or observed, a human marked false


class Judgement(_Figures):
    """How right the detector was for one project and trigger: the stops it made, the ones it
    would have made in observe mode, and how many of either a human marked false."""

    project_id: str
    trigger: str
    stops: int
    observed: int
    false_stops: int


class Overview(_Figures):
    since: datetime
    bucket: Literal["hour", "day"]
    totals: Totals
    over_time: list[TriggerCount]
    time_to_resume: list[ResumeTimes]
    recovery: RecoveryOutcomes
    projects: list[Cost]
    blockers: list[Cost]
    clients: list[Cost]  # by the agent CLI the sessions ran ("not named": no CLI hook said)
    notifications: list[ChannelOutcomeCount]
    judgement: list[Judgement]


# One statement, one snapshot: every figure is over the same `now()`. $1 days, $2 project or
# NULL, $3 the time bucket, $4 the resolver name of automatic resumes.
_OVERVIEW = """
WITH judged AS (  -- stops made and stops observed
    SELECT * FROM paused_sessions
    WHERE paused_at >= now() - make_interval(days => $1)
      AND ($2::text IS NULL OR project_id = $2)
), scoped AS (  -- stops made: an observed stop paused nothing and cost nothing
    SELECT *, extract(epoch FROM coalesce(resolved_at, now()) - paused_at) AS paused_s
    FROM judged WHERE mode = 'enforce'
), recovered AS (  -- one outcome per intervention recovery took up: the best of its attempts
    SELECT CASE WHEN bool_or(a.action_status = 'succeeded') THEN 'succeeded'
                WHEN bool_or(a.action_status = 'failed') THEN 'failed'
                WHEN bool_or(a.action_status = 'refused') THEN 'refused'
                WHEN bool_or(a.action_status = 'nothing_to_do') THEN 'nothing_to_do'
                ELSE 'attempted' END AS outcome
    FROM intervention_actions a JOIN scoped s ON s.id = a.paused_session_id
    WHERE a.action_type = 'recovery'
    GROUP BY a.paused_session_id
)
SELECT json_build_object(
    'since', now() - make_interval(days => $1),
    'bucket', $3::text,
    'totals', (
        SELECT json_build_object(
            'interventions', count(*),
            'active', count(*) FILTER (WHERE NOT resolved),
            'resolved', count(*) FILTER (WHERE resolved),
            'warnings', (SELECT count(*) FROM session_warnings
                         WHERE detected_at >= now() - make_interval(days => $1)
                           AND ($2::text IS NULL OR project_id = $2)),
            'observed', (SELECT count(*) FROM judged WHERE mode = 'observe'),
            'false_stops', (SELECT count(*) FROM judged WHERE false_stop))
        FROM scoped),
    'over_time', (
        SELECT coalesce(json_agg(t ORDER BY t.bucket, t.trigger), '[]')
        FROM (SELECT date_trunc($3, paused_at) AS bucket, pause_type AS trigger,
                     count(*) AS count
              FROM scoped GROUP BY 1, 2) t),
    'time_to_resume', (
        SELECT coalesce(json_agg(t ORDER BY t.kind), '[]')
        FROM (SELECT CASE WHEN resolved_by = $4 THEN 'automatic' ELSE 'human' END AS kind,
                     count(*) AS count,
                     percentile_cont(0.5) WITHIN GROUP (ORDER BY paused_s) AS p50_s,
                     percentile_cont(0.9) WITHIN GROUP (ORDER BY paused_s) AS p90_s
              FROM scoped WHERE resolved AND resolved_at IS NOT NULL GROUP BY 1) t),
    'recovery', (
        SELECT coalesce(json_object_agg(outcome, n), '{}')
        FROM (SELECT outcome, count(*) AS n FROM recovered GROUP BY 1) t),
    'projects', (
        SELECT coalesce(json_agg(t ORDER BY t.paused_s DESC, t.interventions DESC), '[]')
        FROM (SELECT project_id AS name, count(*) AS interventions, sum(paused_s) AS paused_s
              FROM scoped GROUP BY 1 ORDER BY 3 DESC, 2 DESC LIMIT 8) t),
    'blockers', (
        SELECT coalesce(json_agg(t ORDER BY t.paused_s DESC, t.interventions DESC), '[]')
        FROM (SELECT coalesce(blocker_type, pause_type) AS name, count(*) AS interventions,
                     sum(paused_s) AS paused_s
              FROM scoped GROUP BY 1 ORDER BY 3 DESC, 2 DESC LIMIT 8) t),
    'clients', (
        SELECT coalesce(json_agg(t ORDER BY t.paused_s DESC, t.interventions DESC), '[]')
        FROM (SELECT coalesce(blocker_info->>'client', 'not named') AS name,
                     count(*) AS interventions, sum(paused_s) AS paused_s
              FROM scoped GROUP BY 1 ORDER BY 3 DESC, 2 DESC LIMIT 8) t),
    'notifications', (
        SELECT coalesce(json_agg(t ORDER BY t.channel, t.status), '[]')
        FROM (SELECT channel, status, count(*) AS count FROM notification_deliveries
              WHERE created_at >= now() - make_interval(days => $1)
                AND ($2::text IS NULL OR project_id = $2)
              GROUP BY 1, 2) t),
    'judgement', (  -- the detector's stops only: a human's pause is not its judgement
        SELECT coalesce(json_agg(t ORDER BY t.false_stops DESC, t.stops + t.observed DESC,
                                 t.project_id, t.trigger), '[]')
        FROM (SELECT project_id, pause_type AS trigger,
                     count(*) FILTER (WHERE mode = 'enforce') AS stops,
                     count(*) FILTER (WHERE mode = 'observe') AS observed,
                     count(*) FILTER (WHERE false_stop) AS false_stops
              FROM judged WHERE pause_type <> 'manual'
              GROUP BY 1, 2 ORDER BY 5 DESC, 3 + 4 DESC LIMIT 50) t)
)::text
"""


async def overview(pool: asyncpg.Pool, days: int, project_id: str | None) -> Overview:
    """The last `days` days (by pause time), of one project or of all."""
    bucket = "hour" if days <= 2 else "day"
    document = await pool.fetchval(_OVERVIEW, days, project_id, bucket, AUTO_RECOVERY_RESOLVER)
    return Overview.model_validate_json(document)
