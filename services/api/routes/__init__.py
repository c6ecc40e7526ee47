"""The API's routers, one per resource; `app.py` includes them in this order (the fixed paths of a
resource before its `{id}` ones)."""

from . import events, fleet, interventions, operations, overview, preferences, projects

__all__ = ["ROUTERS"]

ROUTERS = (
    interventions.router,
    overview.router,
    fleet.router,
    projects.router,
    preferences.router,
    events.router,
    operations.router,
)
