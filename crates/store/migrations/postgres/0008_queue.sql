-- The request queue (postgres): every request accepted for later, stored before
-- its id is handed out, with its answer once completed. A worker claims a
-- request by setting claimed_by and a lease; a request whose lease ran out
-- is claimed again by another worker. Flags are 0/1 integers. Rows are
-- deleted after the retention period.
CREATE TABLE queue_requests (
    request_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    key_id TEXT,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    method TEXT NOT NULL,
    content_type TEXT,
    body BYTEA NOT NULL,
    priority BIGINT NOT NULL,
    timeout_ms BIGINT,
    webhook TEXT,
    status TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    claimed_by TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT,
    completed_at BIGINT,
    result_status BIGINT,
    result_content_type TEXT,
    result_body BYTEA,
    result_file TEXT,
    error TEXT,
    error_type TEXT,
    webhook_state TEXT,
    webhook_attempts BIGINT NOT NULL DEFAULT 0,
    webhook_next_at BIGINT
);
CREATE INDEX queue_requests_waiting ON queue_requests (owner, name, status, priority, created_at);
CREATE INDEX queue_requests_completed ON queue_requests (completed_at);
CREATE INDEX queue_requests_webhooks ON queue_requests (webhook_state, webhook_next_at);
