-- The member list and the members CSV in email order from an index
-- (issue 16): each membership carries its user's normalised email, kept in
-- step by the store in the same transaction as the email (an email change,
-- a new membership), so a page is a range of one index instead of a sort of
-- the whole workspace. The index also holds the policies, so the role
-- filter is answered from the index alone.

ALTER TABLE memberships ADD COLUMN sort_email TEXT NOT NULL DEFAULT '';
UPDATE memberships SET sort_email = (SELECT u.email_norm FROM users u WHERE u.id = memberships.user_id);
CREATE INDEX memberships_order_idx ON memberships (workspace_id, sort_email, user_id, policies);
-- memberships_ws_idx is a prefix of the new index.
DROP INDEX memberships_ws_idx;

-- Open invitations of a workspace in email order.
CREATE INDEX invitations_open_order_idx ON invitations (workspace_id, email_norm, id)
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
