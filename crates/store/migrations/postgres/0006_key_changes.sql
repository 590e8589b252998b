-- The key change log (postgres): every creation, revocation or other change
-- of a key that verification depends on. Servers read it once per interval
-- to keep their key caches current without reading each cached key again
-- (notifications stay the fast path); rows are pruned after a retention
-- period. A sequence can hand out numbers in an order other than commit
-- order: readers wait a little at a gap before moving past it.
CREATE TABLE key_changes (
    seq BIGSERIAL PRIMARY KEY,
    key_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX key_changes_changed_at ON key_changes (changed_at);
