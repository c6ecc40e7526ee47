"""API service: serves the REST API, the live event stream and the dashboard."""

from __future__ import annotations

import uvicorn

from yokeflow_intervention.shared.runtime import service_context

from .app import create_api

__all__ = ["main"]


def main() -> None:
    context = service_context("api")
    settings = context.settings
    app = create_api(settings, context.nats_url, context.require_database())
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
