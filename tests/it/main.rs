//! The one integration-test binary (one link, shared harness).

mod access;
mod cli;
mod credentials;
mod forward_auth;
mod oidc_fixture;
mod oidc_rp;
mod pages;
mod saml;
mod session_conformance;
mod signin;
mod smtp_sink;
mod store_conformance;
mod support;
mod twilio_issuer;
