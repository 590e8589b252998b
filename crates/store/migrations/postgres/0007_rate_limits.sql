-- Per-key rate limits (postgres). `rate_limit` is the limit as written
-- (`100/s`, `100/min`, `100/h`), NULL for none. `rate_limit_usage` counts
-- calls per key and window, as servers lease them (see fal_core::budget);
-- rows are pruned once their window is over.
ALTER TABLE api_keys ADD COLUMN rate_limit TEXT;
CREATE TABLE rate_limit_usage (
    key_id TEXT NOT NULL,
    period_ms BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (key_id, period_ms, window_start)
);
CREATE INDEX rate_limit_usage_window ON rate_limit_usage (window_start);
