-- Finding the keys whose secret hashes to a given value (postgres): a secret
-- reported as leaked (secret scanning) is looked up by its keyed hash, not
-- by key id, so it needs its own index.
CREATE INDEX api_keys_by_secret_hash ON api_keys (secret_hash);
