-- Workspace SSO: connections (SAML or OIDC) and verified email domains.

CREATE TABLE sso_connections (
    id                  TEXT PRIMARY KEY,
    workspace_id        TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind                TEXT NOT NULL,            -- saml | oidc
    name                TEXT NOT NULL,
    enabled_at          BIGINT,                   -- NULL: disabled
    allow_idp_initiated BIGINT,                   -- NULL: refused
    config              TEXT NOT NULL,            -- JSON; secrets sealed
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX sso_connections_ws_idx ON sso_connections (workspace_id);

CREATE TABLE domains (
    domain       TEXT PRIMARY KEY,               -- lower case; one workspace each
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    token        TEXT NOT NULL,
    verified_at  BIGINT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX domains_ws_idx ON domains (workspace_id);
