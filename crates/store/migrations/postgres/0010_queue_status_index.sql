-- Finding the apps with waiting requests, or with claims whose lease ran
-- out (postgres), without reading the rows of completed requests, which are
-- kept for the retention period.
CREATE INDEX queue_requests_status ON queue_requests (status, lease_until);
