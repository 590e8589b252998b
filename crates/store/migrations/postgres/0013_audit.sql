-- The audit log (postgres): key, app and session events, appended and
-- never changed (the trigger refuses any UPDATE); rows go only when
-- retention prunes them. Actors are named by ids only: no secret, token,
-- cookie or hash is ever stored here. `user_id` is whose log the event is
-- in (NULL: a refused sign-in that named no known key, shown to no user).
CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    actor_user_id TEXT,
    actor_key_id TEXT,
    actor_session_id TEXT,
    source TEXT,
    user_agent TEXT,
    key_id TEXT,
    app TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_user ON audit_events (user_id, at, seq);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
