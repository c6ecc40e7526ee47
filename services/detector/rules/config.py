"""The slice of Settings the rules read, and the built-in critical error patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from yokeflow_intervention.shared.settings import Settings

from ..watchdog import WatchdogConfig

# Checked in this order; the first blocker type whose pattern matches wins.
BUILTIN_CRITICAL_PATTERNS: dict[str, tuple[str, ...]] = {
    "prisma_schema_error": (
        r"prisma schema validation",
        r"error validating datasource",
        r"\bP1012\b",
        r'command "prisma" not found',
    ),
    "port_conflict": (
        r"EADDRINUSE",
        r"address already in use",
        r"port \d+ (?:is )?already in use",
        r"port is already allocated",
    ),
    "redis_unavailable": (
        r"ECONNREFUSED\s+\S*:6379\b",
        r"could not connect to redis",
        r"redis (?:is )?not running",
        r"redis connection (?:refused|failed)",
    ),
    "db_connection": (
        r"ECONNREFUSED\s+\S*:5432\b",
        r"\bP1001\b",
        r"can't reach database server",
        r"could not connect to server",
        r"connection to server at .* failed",
        r"database connection failed",
    ),
    "module_not_found": (
        r"ModuleNotFoundError",
        r"No module named",
        r"Cannot find module",
        r"ERR_MODULE_NOT_FOUND",
        r"Module not found",
    ),
    "missing_dependency": (r"command not found",),
}

SUGGESTED_RECOVERY = {
    "prisma_schema_error": (
        "Fix the Prisma schema (run `prisma validate`) and regenerate the client."
    ),
    "port_conflict": "Stop the process holding the port, or configure the app to use a free port.",
    "redis_unavailable": "Start Redis (redis-server) and check it answers PING.",
    "db_connection": "Start or restart PostgreSQL and check the connection settings.",
    "module_not_found": "Install the missing module into the project's environment.",
    "missing_dependency": "Install the missing command-line tool or add it to PATH.",
}


@dataclass(frozen=True)
class DetectionConfig:
    """The slice of Settings the rules read. `error_rate_threshold` and `session_duration_limit`
    are None when the operator set no such limit: neither is a sign of being stuck, so neither
    stops a session unless asked to (docs/architecture.md, "Detection rules and their
    defaults")."""

    enabled: bool = True
    max_retries: int = 3
    detect_infrastructure_errors: bool = True
    loop_repeat_threshold: int = 4
    max_retries_rotating: int = 5
    no_progress_window: int = 15
    monologue_limit: int = 8
    empty_reply_limit: int = 3
    repeated_message_limit: int = 3
    reply_repeat_limit: int = 10
    missing_dependency_repeats: int = 2
    signature_ignore_keys: frozenset[str] = frozenset(
        {"description", "task_progress", "explanation"}
    )
    error_rate_threshold: float | None = None
    error_rate_window: int = 50
    error_rate_min_results: int = 20
    session_duration_limit: float | None = None
    warn_before_stop: bool = True
    duration_warning_share: float = 0.8
    critical_patterns: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = ()
    auto_recovery_blockers: frozenset[str] = frozenset()
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectionConfig:
        merged: dict[str, list[str]] = {k: list(v) for k, v in BUILTIN_CRITICAL_PATTERNS.items()}
        for blocker, extra in settings.critical_patterns.items():
            merged.setdefault(blocker, []).extend(extra)
        compiled = tuple(
            (blocker, tuple(re.compile(p, re.IGNORECASE) for p in patterns))
            for blocker, patterns in merged.items()
        )
        return cls(
            enabled=settings.enabled,
            max_retries=settings.max_retries,
            detect_infrastructure_errors=settings.detect_infrastructure_errors,
            loop_repeat_threshold=settings.loop_repeat_threshold,
            max_retries_rotating=settings.max_retries_rotating,
            no_progress_window=settings.no_progress_window,
            monologue_limit=settings.monologue_limit,
            empty_reply_limit=settings.empty_reply_limit,
            repeated_message_limit=settings.repeated_message_limit,
            reply_repeat_limit=settings.reply_repeat_limit,
            missing_dependency_repeats=settings.missing_dependency_repeats,
            signature_ignore_keys=frozenset(settings.signature_ignore_keys),
            error_rate_threshold=settings.error_rate_threshold,
            error_rate_window=settings.error_rate_window,
            error_rate_min_results=settings.error_rate_min_results,
            session_duration_limit=settings.session_duration_limit,
            warn_before_stop=settings.warn_before_stop,
            duration_warning_share=settings.duration_warning_share,
            critical_patterns=compiled,
            auto_recovery_blockers=frozenset(settings.auto_recovery_blockers),
            watchdog=WatchdogConfig.from_settings(settings),
        )
