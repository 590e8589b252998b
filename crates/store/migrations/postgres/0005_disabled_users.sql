-- Users can be disabled by an operator (postgres): disabled_at is set, and
-- their keys and sessions are revoked in the same transaction.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
