-- SCIM 2.0 provisioning (src/scim/, src/store/scim.rs).
-- Portable SQL: the same text runs on SQLite and PostgreSQL. Times are Unix
-- seconds (BIGINT); JSON is stored as text.
--
-- What a workspace's SCIM client asserted about one user. The user account
-- itself stays in `users` (userName is its email, looked up through the
-- unique index on users.email_norm) and workspace access stays in
-- `memberships`: a SCIM user is "active" exactly while the membership exists.
--   external_id  the IdP's id for the person (case-exact)
--   active       what the client last said: 1, 0, or NULL (never said)
--   attributes   every other attribute the client sent (name, emails,
--                the enterprise extension...), as one JSON object
--   created_user 1 when this provisioning created the account (the SCIM
--                client then also owns its display name)
--   version      bumped by every SCIM write; the ETag is W/"<version>"
CREATE TABLE scim_users (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    external_id  TEXT,
    active       BIGINT,
    attributes   TEXT NOT NULL DEFAULT '{}',
    created_user BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT scim_users_pkey PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX scim_users_external_idx ON scim_users (workspace_id, external_id);
CREATE INDEX scim_users_user_idx ON scim_users (user_id);

-- The same for user groups (`user_groups`): the group's name is its SCIM
-- displayName and `group_members` its members.
CREATE TABLE scim_groups (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL REFERENCES user_groups (id) ON DELETE CASCADE,
    external_id  TEXT,
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT scim_groups_pkey PRIMARY KEY (workspace_id, group_id)
);
CREATE INDEX scim_groups_external_idx ON scim_groups (workspace_id, external_id);
CREATE INDEX scim_groups_group_idx ON scim_groups (group_id);
