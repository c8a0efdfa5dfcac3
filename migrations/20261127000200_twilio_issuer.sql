-- The simulated Twilio Unified Login issuer (src/twilio_issuer/).
-- Portable SQL: the same text runs on SQLite and PostgreSQL. Times are Unix
-- seconds (BIGINT); "flags" are nullable timestamps.

-- Twilio accounts. `sub` is the OIDC subject ("US" + 32 hex digits).
-- `password_hash` is NULL until a password is set (nobody can sign in);
-- `password_link_hash` is the SHA-256 of a one-time set-password link.
-- `totp_secret` is sealed with the deployment secret; while
-- `totp_enabled_at` is NULL it is an enrolment waiting for its first code.
-- `totp_last_step` is the last accepted TOTP time step (replay refused).
CREATE TABLE twilio_accounts (
    sub                      TEXT PRIMARY KEY,
    email                    TEXT NOT NULL,
    email_norm               TEXT NOT NULL,
    email_verified_at        BIGINT,
    name                     TEXT NOT NULL,
    password_hash            TEXT,
    password_link_hash       TEXT,
    password_link_expires_at BIGINT,
    totp_secret              TEXT,
    totp_enabled_at          BIGINT,
    totp_last_step           BIGINT,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    CONSTRAINT twilio_accounts_email_key UNIQUE (email_norm)
);
CREATE INDEX twilio_accounts_link_idx ON twilio_accounts (password_link_hash);

-- The issuer's ES256 keys. The newest active key (highest seq) signs; every
-- active key is published in /oauth2/jwks; retired keys are kept, unpublished.
-- The private scalar is sealed with the deployment secret.
CREATE TABLE twilio_issuer_keys (
    kid         TEXT PRIMARY KEY,
    seq         BIGINT NOT NULL,
    private_key TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    CONSTRAINT twilio_issuer_keys_seq_key UNIQUE (seq)
);
