-- A member's groups from the index alone (issue 16): the member list and
-- the members CSV look up each member's groups in their workspace; with the
-- group id in the index, that is one index read instead of an index read
-- and a table read per member.

DROP INDEX group_members_user_idx;
CREATE INDEX group_members_user_idx ON group_members (workspace_id, user_id, group_id);
