-- Sessions know what they came from (PostgreSQL): the key a dashboard session was
-- opened with (revoking the key ends it), and, for a CLI session from GitHub,
-- the user's GitHub token sealed with a key derived from the pepper (refresh
-- re-checks the allow-lists and org membership with it).
ALTER TABLE sessions ADD COLUMN key_id TEXT;
ALTER TABLE sessions ADD COLUMN github_token TEXT;
CREATE INDEX sessions_by_key ON sessions (key_id);

-- Refresh tokens already spent, kept until their session's refresh expiry, so
-- a replayed one is recognised and ends its session.
CREATE TABLE spent_refresh_tokens (
    refresh_hash TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (session_id),
    expires_at   BIGINT NOT NULL
);
CREATE INDEX spent_refresh_tokens_by_expiry ON spent_refresh_tokens (expires_at);
