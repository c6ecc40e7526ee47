-- The intervention database. Table and column names follow the original YokeFlow design;
-- columns after the originals (trigger, event_seq, ...) are what the product needs more.

CREATE TABLE projects (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id               text PRIMARY KEY,
    project_id       text NOT NULL REFERENCES projects (id),
    workspace        text,
    task_id          text,
    task_description text,
    started_at       timestamptz,
    ended_at         timestamptz,
    status           text NOT NULL DEFAULT 'running',
    end_reason       text,
    resumed_from     text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_project_idx ON sessions (project_id, started_at DESC);

CREATE TABLE paused_sessions (
    id                       text PRIMARY KEY,            -- = intervention_id
    session_id               text NOT NULL REFERENCES sessions (id),
    project_id               text NOT NULL REFERENCES projects (id),
    pause_reason             text NOT NULL,
    pause_type               text NOT NULL,               -- the trigger
    blocker_info             jsonb NOT NULL DEFAULT '{}'::jsonb,
    retry_stats              jsonb NOT NULL DEFAULT '{}'::jsonb,
    current_task_id          text,
    current_task_description text,
    paused_at                timestamptz NOT NULL DEFAULT now(),
    resolved                 boolean NOT NULL DEFAULT false,
    resolved_at              timestamptz,
    resolved_by              text,
    resolution_notes         text,
    can_auto_resume          boolean NOT NULL DEFAULT false,
    -- beyond the original design
    blocker_type             text,
    event_seq                integer,
    detected_at              timestamptz,
    intervention             jsonb NOT NULL,              -- the full published record
    resume_context           text,
    next_session_id          text,
    CONSTRAINT resolved_has_resolver CHECK (NOT resolved OR resolved_by IS NOT NULL)
);
CREATE INDEX paused_sessions_active_idx ON paused_sessions (project_id, paused_at DESC) WHERE NOT resolved;
CREATE INDEX paused_sessions_history_idx ON paused_sessions (project_id, paused_at DESC);
CREATE INDEX paused_sessions_session_idx ON paused_sessions (session_id);
-- One open pause per session: a session cannot be paused twice at once.
CREATE UNIQUE INDEX paused_sessions_one_active ON paused_sessions (session_id) WHERE NOT resolved;

CREATE TABLE intervention_actions (
    id                bigserial PRIMARY KEY,
    paused_session_id text NOT NULL REFERENCES paused_sessions (id),
    action_type       text NOT NULL,     -- paused, resumed, notification, recovery, ...
    action_status     text NOT NULL,     -- succeeded, failed, started, refused, ...
    action_details    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intervention_actions_paused_idx ON intervention_actions (paused_session_id, created_at);

CREATE TABLE notification_preferences (
    project_id                text PRIMARY KEY REFERENCES projects (id),
    webhook_enabled           boolean NOT NULL DEFAULT false,
    webhook_url               text,
    email_enabled             boolean NOT NULL DEFAULT false,
    email_addresses           text[] NOT NULL DEFAULT '{}',
    sms_enabled               boolean NOT NULL DEFAULT false,
    sms_numbers               text[] NOT NULL DEFAULT '{}',
    notify_on_retry_limit     boolean NOT NULL DEFAULT true,
    notify_on_critical_error  boolean NOT NULL DEFAULT true,
    notify_on_timeout         boolean NOT NULL DEFAULT true,
    notify_on_manual_pause    boolean NOT NULL DEFAULT false,
    min_notification_interval integer NOT NULL DEFAULT 300 CHECK (min_notification_interval >= 0),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

CREATE VIEW active_interventions AS
    SELECT * FROM paused_sessions WHERE NOT resolved ORDER BY paused_at DESC;

CREATE VIEW intervention_history AS
    SELECT * FROM paused_sessions ORDER BY paused_at DESC;
