//! Upstream identity sources ("connectors", as in Dex). Every connector,
//! whatever protocol it speaks, hands back one [`ExternalIdentity`]; the
//! mapping layer turns that into a gateway user without knowing which kind of
//! identity provider produced it.
//!
//! * [`oidc`]: OpenID Connect relying party (Twilio Unified Login and
//!   per-workspace OIDC SSO), built on the `openidconnect` crate.
//! * [`saml`]: SAML 2.0 service provider core (metadata, AuthnRequest and a
//!   fail-closed Response validator), built on libxml2 and OpenSSL.

pub mod oidc;
pub mod saml;

use serde::{Deserialize, Serialize};

/// Who the upstream identity provider says signed in. Only produced after
/// every check of the connector passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    /// The issuer (OIDC `iss`, exactly the configured issuer URL).
    pub issuer: String,
    /// The issuer's stable identifier for the person (OIDC `sub`); never empty.
    pub subject: String,
    pub email: Option<String>,
    /// Whether the issuer vouches for `email`; false when it does not say.
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// Authentication methods the issuer reports (OIDC `amr`, e.g. `pwd`, `otp`).
    pub amr: Vec<String>,
}
