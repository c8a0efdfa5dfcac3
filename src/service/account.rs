//! Rules about a person's own account.

use crate::domain::DomainError;
use crate::store::Store;

/// The identity provider name of Twilio Unified Login links.
pub const TWILIO_PROVIDER: &str = "twilio";

/// Whether the account is linked to Twilio: then its password, name and
/// second factor are managed in Twilio (SPEC 6b), and the gateway refuses to
/// set them.
pub async fn twilio_linked(store: &dyn Store, user_id: &str) -> Result<bool, DomainError> {
    Ok(store
        .identities_of(user_id)
        .await?
        .iter()
        .any(|(provider, _)| provider == TWILIO_PROVIDER))
}

/// `Conflict` when the account is Twilio-linked; what the password, reset,
/// name and 2FA operations check first.
pub async fn ensure_managed_here(store: &dyn Store, user_id: &str) -> Result<(), DomainError> {
    if twilio_linked(store, user_id).await? {
        return Err(DomainError::Conflict(MANAGED_IN_TWILIO.into()));
    }
    Ok(())
}

/// What a Twilio-linked person is told when they try to change what Twilio
/// manages.
pub const MANAGED_IN_TWILIO: &str = "Your account is linked to Twilio: your password, name and two-factor authentication are managed in Twilio. Change them in the Twilio Console, or unlink Twilio from your account page first.";

/// Purpose of a one-time link that sets a first password (a new account).
pub const SET_PASSWORD: &str = "set_password";
/// Purpose of a one-time link that resets a forgotten password.
pub const RESET_PASSWORD: &str = "reset_password";
