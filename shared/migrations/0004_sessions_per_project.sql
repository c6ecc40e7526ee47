-- A session is (project_id, session_id): two projects may use the same session id without
-- sharing a row, a pause or a control key. Session ids are chosen by agents (untrusted), so a
-- session id alone must never reach across projects.
ALTER TABLE paused_sessions DROP CONSTRAINT paused_sessions_session_id_fkey;
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE sessions ADD PRIMARY KEY (project_id, id);
ALTER TABLE paused_sessions
    ADD CONSTRAINT paused_sessions_session_fkey
    FOREIGN KEY (project_id, session_id) REFERENCES sessions (project_id, id);
DROP INDEX paused_sessions_one_active;
CREATE UNIQUE INDEX paused_sessions_one_active
    ON paused_sessions (project_id, session_id) WHERE NOT resolved;
DROP INDEX paused_sessions_session_idx;
CREATE INDEX paused_sessions_session_idx ON paused_sessions (project_id, session_id);
