-- The key change log (sqlite): every creation, revocation or other change
-- of a key that verification depends on, in commit order. Servers read it
-- once per interval to keep their key caches current without reading each
-- cached key again; rows are pruned after a retention period.
CREATE TABLE key_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL,
    changed_at BIGINT NOT NULL
);
CREATE INDEX key_changes_changed_at ON key_changes (changed_at);
