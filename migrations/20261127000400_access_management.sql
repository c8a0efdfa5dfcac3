-- Access management: user groups, invitations, API tokens, resources,
-- linked identities, and the last sign-in method of each user.

ALTER TABLE users ADD COLUMN last_auth_method TEXT;

CREATE TABLE user_groups (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    policies     TEXT NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL,
    CONSTRAINT user_groups_name_key UNIQUE (workspace_id, name)
);

CREATE TABLE group_members (
    group_id     TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    CONSTRAINT group_members_pkey PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (workspace_id, user_id);

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email        TEXT NOT NULL,
    email_norm   TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    policies     TEXT NOT NULL DEFAULT '[]',
    group_ids    TEXT NOT NULL DEFAULT '[]',
    invited_by   TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    accepted_at  BIGINT,
    revoked_at   BIGINT,
    CONSTRAINT invitations_token_key UNIQUE (token_hash)
);
-- At most one open invitation per email and workspace.
CREATE UNIQUE INDEX invitations_open_key ON invitations (workspace_id, email_norm)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'api',   -- api | scim
    description  TEXT NOT NULL DEFAULT '',
    policies     TEXT NOT NULL DEFAULT '[]',
    created_by   TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    CONSTRAINT api_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX api_tokens_ws_idx ON api_tokens (workspace_id, kind);

CREATE TABLE resources (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL DEFAULT '',
    labels       TEXT NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL,
    CONSTRAINT resources_pkey PRIMARY KEY (workspace_id, id)
);

-- External identities linked to users: provider is "twilio" or
-- "sso:<connection id>"; subject is the IdP's subject.
CREATE TABLE identity_links (
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT,
    created_at BIGINT NOT NULL,
    CONSTRAINT identity_links_pkey PRIMARY KEY (provider, subject)
);
CREATE INDEX identity_links_user_idx ON identity_links (user_id);

CREATE INDEX memberships_ws_idx ON memberships (workspace_id);
CREATE INDEX audit_events_time_idx ON audit_events (time);
