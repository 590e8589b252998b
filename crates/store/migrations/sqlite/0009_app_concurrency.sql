-- How many queued requests of an app run at once (sqlite): NULL for the
-- servers' default (--queue-concurrency).
ALTER TABLE apps ADD COLUMN concurrency BIGINT;
