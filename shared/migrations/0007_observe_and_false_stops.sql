-- Observe mode and false stops: what lets operators judge the detector before they trust it.
-- `mode` is the project's detection mode when the stop was detected: an observed stop
-- ('observe') is recorded, resolved at once by 'observe-mode', and never paused a session.
-- A human may mark any stop a false stop (at resume or later): who, when and why, counted
-- per trigger and project on the overview.
ALTER TABLE paused_sessions
    ADD COLUMN mode            text NOT NULL DEFAULT 'enforce'
                               CHECK (mode IN ('enforce', 'observe')),
    ADD COLUMN false_stop      boolean NOT NULL DEFAULT false,
    ADD COLUMN false_stop_by   text,
    ADD COLUMN false_stop_at   timestamptz,
    ADD COLUMN false_stop_note text,
    ADD CONSTRAINT false_stop_has_marker CHECK (NOT false_stop OR false_stop_by IS NOT NULL);
-- The views were created with `SELECT *`, which PostgreSQL expands when a view is made: they
-- are made again to show the new columns.
DROP VIEW active_interventions;
CREATE VIEW active_interventions AS
    SELECT * FROM paused_sessions WHERE NOT resolved ORDER BY paused_at DESC;
DROP VIEW intervention_history;
CREATE VIEW intervention_history AS
    SELECT * FROM paused_sessions WHERE resolved ORDER BY paused_at DESC;
