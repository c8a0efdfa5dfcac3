-- The member list and the members CSV in email order from an index
-- (issue 16): each membership carries its user's normalised email, kept in
-- step by the store in the same transaction as the email (an email change,
-- a new membership), so a page is a range of one index instead of a sort of
-- the whole workspace. (The policies stay out of the index: a list of many
-- scoped ids would pass PostgreSQL's limit on an index entry's size.)

ALTER TABLE memberships ADD COLUMN sort_email TEXT NOT NULL DEFAULT '';
UPDATE memberships SET sort_email = (SELECT u.email_norm FROM users u WHERE u.id = memberships.user_id);
CREATE INDEX memberships_order_idx ON memberships (workspace_id, sort_email, user_id);
-- memberships_ws_idx stays: it lists a workspace's memberships in table
-- order, which a filter on the policies reads (see the member list).

-- Open invitations of a workspace in email order.
CREATE INDEX invitations_open_order_idx ON invitations (workspace_id, email_norm, id)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
