-- Signing-key rotation: a key is published from its creation and signs from
-- `activates_at` (the newest key whose time has come signs); `retired_at`
-- unpublishes a key at once (an operator's `keys retire`).
ALTER TABLE signing_keys ADD COLUMN activates_at BIGINT;
UPDATE signing_keys SET activates_at = created_at;
