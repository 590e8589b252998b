-- Sessions from GitHub sign-in (PostgreSQL). Tokens are stored as keyed hashes.
CREATE TABLE sessions (
    session_id         TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (user_id),
    kind               TEXT NOT NULL CHECK (kind IN ('cli', 'web')),
    access_hash        TEXT NOT NULL UNIQUE,
    refresh_hash       TEXT UNIQUE,
    access_expires_at  BIGINT NOT NULL,
    refresh_expires_at BIGINT,
    created_at         BIGINT NOT NULL,
    revoked_at         BIGINT
);
