-- fal schema v1 (PostgreSQL). Timestamps are milliseconds since the Unix epoch.
CREATE TABLE fal_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    user_id    TEXT PRIMARY KEY,
    nickname   TEXT NOT NULL,
    full_name  TEXT NOT NULL DEFAULT '',
    github_id  BIGINT UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id),
    scope        TEXT NOT NULL CHECK (scope IN ('ADMIN', 'API')),
    alias        TEXT NOT NULL DEFAULT '',
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE INDEX api_keys_by_user ON api_keys (user_id, created_at DESC, key_id DESC);
