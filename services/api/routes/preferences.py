"""A project's notification preferences, shown with their secrets masked (the webhook URL and
the PagerDuty routing key: whoever has them can post)."""

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from yokeflow_agent.contract import Identifier

from yokeflow_intervention.shared.preferences import (
    NotificationPreferences,
    load_preferences,
    redact_url,
    save_preferences,
)

from ..deps import Authorised, PoolDep, SettingsDep, postgres

__all__ = ["router"]

router = APIRouter(prefix="/api/projects", tags=["projects"], dependencies=Authorised)


class ProjectPreferences(BaseModel):
    project_id: str
    source: Literal["project", "defaults"]  # the project's own row, or the configuration's
    preferences: NotificationPreferences  # secrets masked


def _masked(preferences: NotificationPreferences) -> NotificationPreferences:
    """Preferences as shown: the webhook URL and the routing key masked."""
    shown: dict[str, str] = {}
    if preferences.webhook_url:
        shown["webhook_url"] = redact_url(preferences.webhook_url)
    if preferences.pagerduty_routing_key:
        shown["pagerduty_routing_key"] = "****" + preferences.pagerduty_routing_key[-4:]
    return preferences.model_copy(update=shown)


@router.get("/{project_id}/notifications/preferences", response_model=ProjectPreferences)
async def get_preferences(
    pool: PoolDep, settings: SettingsDep, project_id: Identifier
) -> ProjectPreferences:
    async with postgres():
        stored = await load_preferences(pool, project_id)
    preferences = stored or NotificationPreferences.from_settings(settings)
    return ProjectPreferences(
        project_id=project_id,
        source="project" if stored else "defaults",
        preferences=_masked(preferences),
    )


@router.post("/{project_id}/notifications/preferences", response_model=ProjectPreferences)
async def set_preferences(
    pool: PoolDep, project_id: Identifier, preferences: NotificationPreferences
) -> ProjectPreferences:
    async with postgres():
        stored = await load_preferences(pool, project_id)
    if (
        stored is not None
        and stored.webhook_url
        and preferences.webhook_url == redact_url(stored.webhook_url)
    ):
        # The form sent back the masked URL it was shown: keep the stored one.
        preferences = preferences.model_copy(update={"webhook_url": stored.webhook_url})
    key = preferences.pagerduty_routing_key
    if key is not None and key.startswith("****"):
        if (
            stored is None
            or not stored.pagerduty_routing_key
            or key != _masked(stored).pagerduty_routing_key
        ):
            raise HTTPException(422, "pagerduty_routing_key: send the routing key itself")
        preferences = preferences.model_copy(
            update={"pagerduty_routing_key": stored.pagerduty_routing_key}
        )
    async with postgres():
        await save_preferences(pool, project_id, preferences)
    return ProjectPreferences(
        project_id=project_id, source="project", preferences=_masked(preferences)
    )
