//! SAML 2.0 SP core (`iam_gateway::connectors::saml`) against a test IdP
//! whose keys are made by `openssl` and whose responses are signed by the
//! `xmlsec1` CLI: the accepted paths and one test per attack on the ACS
//! (the replay cache is the caller's: tests/it/sso.rs).

mod accept;
mod dsig;
pub mod idp;
mod metadata;
mod props;
mod refuse;
pub mod template;
mod wrapping;
