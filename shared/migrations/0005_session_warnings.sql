-- Warnings the detector gave sessions one step before a stop (intervention.warned), recorded by
-- the pauser so operators can count them and see which sessions changed course in time.
CREATE TABLE session_warnings (
    warning_id  text PRIMARY KEY,
    project_id  text NOT NULL,
    session_id  text NOT NULL,
    trigger     text NOT NULL,
    reason      text NOT NULL,
    advice      text NOT NULL,
    event_seq   integer NOT NULL,
    detected_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_warnings_project_idx ON session_warnings (project_id, detected_at DESC);
CREATE INDEX session_warnings_session_idx ON session_warnings (project_id, session_id);
