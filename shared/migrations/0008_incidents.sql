-- Incidents: each intervention is one incident that a human acknowledges (once, from wherever
-- they are) and may snooze; signed action links are single-use, and every use or refusal of one
-- is audited.

ALTER TABLE paused_sessions
    ADD COLUMN acknowledged_at  timestamptz,
    ADD COLUMN acknowledged_by  text,
    ADD COLUMN acknowledged_via text,
    ADD COLUMN snoozed_until    timestamptz;

-- The views select *, frozen at creation: recreate them so they show the new columns.
DROP VIEW active_interventions;
CREATE VIEW active_interventions AS
    SELECT * FROM paused_sessions WHERE NOT resolved ORDER BY paused_at DESC;
DROP VIEW intervention_history;
CREATE VIEW intervention_history AS
    SELECT * FROM paused_sessions WHERE resolved ORDER BY paused_at DESC;

-- One row per action link used: the primary key is the link's signature, so a second use of
-- the same link (a replay, a double submit) finds the row and is refused.
CREATE TABLE action_link_uses (
    signature       text PRIMARY KEY,
    intervention_id text NOT NULL,
    project_id      text NOT NULL,
    action          text NOT NULL,
    recipient       text NOT NULL,
    used_at         timestamptz NOT NULL DEFAULT now()
);

-- Every attempt at an action link, accepted or refused, with the reason; no foreign key, since
-- a refused link may name an intervention that does not exist.
CREATE TABLE action_link_audit (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    intervention_id text,
    project_id      text,
    action          text,
    recipient       text,
    outcome         text NOT NULL,   -- accepted, refused
    reason          text NOT NULL DEFAULT '',
    remote          text NOT NULL DEFAULT ''
);
CREATE INDEX action_link_audit_intervention_idx ON action_link_audit (intervention_id, at);

-- The Slack app: each project's channel and who may act there.
ALTER TABLE notification_preferences
    ADD COLUMN slack_channel          text,
    ADD COLUMN slack_allowed_team_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN slack_allowed_user_ids text[] NOT NULL DEFAULT '{}';

-- The message each incident was posted as in Slack, so every change of it edits that message.
CREATE TABLE slack_messages (
    intervention_id text PRIMARY KEY REFERENCES paused_sessions (id),
    project_id      text NOT NULL,
    channel         text NOT NULL,
    ts              text NOT NULL,
    posted_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz
);

-- Repeat, escalate, group, inhibit (docs/notifications.md). Stops of one project with the same
-- blocker within the group window join the incident first notified; a project's critical
-- infrastructure incident inhibits the loop notices it caused.
ALTER TABLE notification_preferences
    ADD COLUMN notification_repeat_interval integer NOT NULL DEFAULT 1800,
    ADD COLUMN notification_escalate_after  integer NOT NULL DEFAULT 3600,
    ADD COLUMN notification_group_window    integer NOT NULL DEFAULT 300,
    ADD COLUMN escalation_email_addresses   text[] NOT NULL DEFAULT '{}',
    ADD COLUMN escalation_sms_numbers       text[] NOT NULL DEFAULT '{}';
ALTER TABLE notification_preferences ALTER COLUMN min_notification_interval SET DEFAULT 0;

ALTER TABLE notification_decisions
    ADD COLUMN group_key    text NOT NULL DEFAULT '',
    ADD COLUMN grouped_into text,              -- the incident this stop was told as part of
    ADD COLUMN reason       text NOT NULL DEFAULT '';
CREATE INDEX notification_decisions_group_idx
    ON notification_decisions (project_id, group_key, decided_at DESC) WHERE decision = 'notify';

-- The notifier's paging state of each notified incident: when it was last paged, how many
-- repeats, whether it was escalated. A sweep claims due rows with an UPDATE, so replicas never
-- page twice.
CREATE TABLE incident_pages (
    intervention_id text PRIMARY KEY REFERENCES paused_sessions (id),
    project_id      text NOT NULL,
    last_paged_at   timestamptz NOT NULL DEFAULT now(),
    repeats         integer NOT NULL DEFAULT 0,
    escalated_at    timestamptz
);

-- PagerDuty Events API v2: trigger, acknowledge and resolve with the incident's dedup key.
ALTER TABLE notification_preferences ADD COLUMN pagerduty_routing_key text;
