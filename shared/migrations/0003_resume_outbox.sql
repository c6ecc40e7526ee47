-- The resume is announced (session_control set running, intervention.resumed published) after
-- its transaction commits. A resolved row not yet announced is announced again by the pauser,
-- so a NATS failover or a crash between the commit and the publish loses no resume.

ALTER TABLE paused_sessions ADD COLUMN resume_announced_at timestamptz;

-- Every resume before this migration was announced when it happened.
UPDATE paused_sessions SET resume_announced_at = resolved_at WHERE resolved;

CREATE INDEX paused_sessions_unannounced ON paused_sessions (resolved_at)
    WHERE resolved AND resume_announced_at IS NULL;
