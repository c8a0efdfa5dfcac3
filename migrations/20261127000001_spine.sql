-- Portable SQL: the same text runs on SQLite and PostgreSQL.
-- Times are Unix seconds (BIGINT); ids are text; JSON is stored as text.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_norm    TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT,
    CONSTRAINT users_email_key UNIQUE (email_norm)
);

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);

CREATE TABLE memberships (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    policies     TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    CONSTRAINT memberships_pkey PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- One-time links (set password, reset password); only the hash is kept.
CREATE TABLE action_tokens (
    token_hash TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Keys that sign X-Auth-Assertion; the private half is sealed with the
-- deployment secret key.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    private_key TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);

-- The "database" session store: key-value with expiry (milliseconds).
CREATE TABLE kv (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX kv_expires_idx ON kv (expires_at);

CREATE TABLE kv_index (
    ikey       TEXT NOT NULL,
    member     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT kv_index_pkey PRIMARY KEY (ikey, member)
);
CREATE INDEX kv_index_expires_idx ON kv_index (expires_at);
