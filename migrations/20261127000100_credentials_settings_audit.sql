-- Two-factor authentication, workspace settings, audit log and mail outbox.

ALTER TABLE users ADD COLUMN totp_secret TEXT;          -- sealed with the deployment secret
ALTER TABLE users ADD COLUMN totp_enabled_at BIGINT;    -- NULL: 2FA off (a secret may be pending confirmation)
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;     -- last accepted TOTP step (replay protection)
ALTER TABLE users ADD COLUMN password_changed_at BIGINT;

CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   BIGINT,
    CONSTRAINT recovery_codes_pkey PRIMARY KEY (user_id, code_hash)
);

-- Workspace settings as a JSON document (require_sso, require_mfa, ...).
ALTER TABLE workspaces ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT,
    time         BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT,
    actor_email  TEXT,
    action       TEXT NOT NULL,
    target       TEXT,
    ip           TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_ws_time_idx ON audit_events (workspace_id, time);

CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    to_addr    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at    BIGINT,
    attempts   BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
