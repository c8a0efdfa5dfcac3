//! SAML 2.0 SP core (`iam_gateway::connectors::saml`) against a test IdP
//! whose keys are made by `openssl` and whose responses are signed by the
//! `xmlsec1` CLI: the accepted paths and one test per attack of
//! SECURITY-CASES 1–5 and 7–12 (case 6, the replay cache, is the caller's).

mod accept;
pub mod idp;
mod metadata;
mod props;
mod refuse;
pub mod template;
mod wrapping;
