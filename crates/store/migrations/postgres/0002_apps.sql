-- Apps: `owner/name` mapped to an upstream base URL (PostgreSQL).
CREATE TABLE apps (
    owner      TEXT NOT NULL,
    name       TEXT NOT NULL,
    upstream   TEXT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (user_id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (owner, name)
);
