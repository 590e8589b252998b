-- Per-key usage (sqlite): calls per key and hour (UTC, by the hour's first
-- millisecond), accepted and refused by reason. Servers add their counts
-- in batches (INSERT … ON CONFLICT DO UPDATE adding to each column), so
-- the counts of several servers add up; hours older than 30 days are
-- pruned. No foreign key: a flush must not fail for a key it cannot see.
CREATE TABLE key_usage (
    key_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    accepted BIGINT NOT NULL DEFAULT 0,
    wrong_secret BIGINT NOT NULL DEFAULT 0,
    revoked BIGINT NOT NULL DEFAULT 0,
    rate_limited BIGINT NOT NULL DEFAULT 0,
    expired BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (key_id, hour)
);
CREATE INDEX key_usage_hour ON key_usage (hour);
