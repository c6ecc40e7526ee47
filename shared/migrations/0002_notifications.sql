-- Notifications: how each project's webhook is formatted, the delivery ledger, the rate limit.

ALTER TABLE notification_preferences
    ADD COLUMN webhook_kind text NOT NULL DEFAULT 'auto'
        CHECK (webhook_kind IN ('auto', 'slack', 'discord', 'generic'));

-- One row per (intervention, channel, recipient): a redelivered message, or a second replica,
-- finds the row and never sends again. Recipients of webhooks are stored redacted.
CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    intervention_id text NOT NULL REFERENCES paused_sessions (id),
    project_id      text NOT NULL,
    channel         text NOT NULL,          -- slack, discord, webhook, email, sms
    recipient       text NOT NULL,
    status          text NOT NULL CHECK (status IN ('sending', 'sent', 'failed', 'suppressed', 'unknown')),
    detail          text NOT NULL DEFAULT '',
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (intervention_id, channel, recipient)
);
CREATE INDEX notification_deliveries_project_idx ON notification_deliveries (project_id, created_at DESC);

-- At most one notification per project per interval, decided under a row lock so that any
-- number of notifier replicas agree. The decision per intervention is kept, so a redelivered
-- message gets the same answer.
CREATE TABLE notification_throttle (
    project_id        text PRIMARY KEY,
    last_notified_at  timestamptz,
    suppressed_since  integer NOT NULL DEFAULT 0
);

CREATE TABLE notification_decisions (
    intervention_id    text PRIMARY KEY REFERENCES paused_sessions (id),
    project_id         text NOT NULL,
    decision           text NOT NULL CHECK (decision IN ('notify', 'suppressed', 'muted')),
    suppressed_before  integer NOT NULL DEFAULT 0,
    decided_at         timestamptz NOT NULL DEFAULT now()
);
