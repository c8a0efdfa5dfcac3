-- The gateway as an OpenID Provider for downstream apps (SPEC section 13).
-- Secrets (client secrets, codes, access and refresh tokens) are stored as
-- SHA-256 hex only.

CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY,          -- client_id
    workspace_id              TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                      TEXT NOT NULL,
    secret_hash               TEXT,                      -- NULL: public client
    redirect_uris             TEXT NOT NULL,             -- JSON array
    post_logout_redirect_uris TEXT NOT NULL,             -- JSON array
    backchannel_logout_uri    TEXT,
    required_role             TEXT,
    created_by                TEXT,
    created_at                BIGINT NOT NULL
);
CREATE INDEX oidc_clients_ws_idx ON oidc_clients (workspace_id);

-- One authorization of one client for one person in one gateway session;
-- its code, access tokens and refresh tokens (one family) hang off it.
CREATE TABLE oidc_grants (
    id            TEXT PRIMARY KEY,
    client_id     TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    session_key   TEXT NOT NULL,                         -- the session's storage key
    sid           TEXT NOT NULL,
    scope         TEXT NOT NULL,
    nonce         TEXT,
    auth_time     BIGINT NOT NULL,
    amr           TEXT NOT NULL,                         -- JSON array
    created_at    BIGINT NOT NULL,
    id_token_at   BIGINT,                                -- first ID token issued
    revoked_at    BIGINT,
    logged_out_at BIGINT                                 -- back-channel logout queued
);
CREATE INDEX oidc_grants_session_idx ON oidc_grants (session_key);
CREATE INDEX oidc_grants_user_idx ON oidc_grants (user_id);

CREATE TABLE oidc_codes (
    hash           TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    used_at        BIGINT
);
CREATE INDEX oidc_codes_grant_idx ON oidc_codes (grant_id);

CREATE TABLE oidc_tokens (
    hash       TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,                            -- access | refresh
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT                                    -- refresh: rotated
);
CREATE INDEX oidc_tokens_grant_idx ON oidc_tokens (grant_id);

-- Back-channel logouts waiting for delivery (a durable outbox): the logout
-- token is signed at each attempt from these facts.
CREATE TABLE oidc_logouts (
    id           TEXT PRIMARY KEY,                       -- the logout token's jti
    client_id    TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    uri          TEXT NOT NULL,
    sub          TEXT NOT NULL,
    sid          TEXT NOT NULL,
    attempts     BIGINT NOT NULL,
    next_at      BIGINT NOT NULL,
    last_error   TEXT,
    created_at   BIGINT NOT NULL,
    delivered_at BIGINT,
    failed_at    BIGINT
);
CREATE INDEX oidc_logouts_due_idx ON oidc_logouts (next_at);
