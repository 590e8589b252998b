-- Key lifecycle: expiry and roll (postgres). `expires_at` (ms) is when the key
-- stops working, NULL for never; `lifetime_ms` is the lifetime it was made
-- with (`30d`), NULL when it was made with a date or none, so that a roll
-- gives the new pair the same lifetime from the roll; `rolled_to` is the
-- key that replaced it, once rolled (its `expires_at` is then the end of
-- its grace, or its own expiry if sooner).
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
ALTER TABLE api_keys ADD COLUMN lifetime_ms BIGINT;
ALTER TABLE api_keys ADD COLUMN rolled_to TEXT;
