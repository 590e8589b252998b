-- A claim takes an app's first waiting request in queue order (priority,
-- age, id): with the id in the index, the first entry of the range is the
-- answer, instead of sorting every waiting request of the app on each
-- claim. Also covers the count behind `queue_position`.
DROP INDEX queue_requests_waiting;
CREATE INDEX queue_requests_waiting
    ON queue_requests (owner, name, status, priority, created_at, request_id);
