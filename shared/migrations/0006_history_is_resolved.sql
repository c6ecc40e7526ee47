-- History is what is resolved; what is not is active. The dashboard's two tabs, the API and the
-- CLI never show one intervention in both.
DROP VIEW intervention_history;
CREATE VIEW intervention_history AS
    SELECT * FROM paused_sessions WHERE resolved ORDER BY paused_at DESC;
