//! The one integration-test binary (one link, shared harness).

mod cli;
mod forward_auth;
mod saml;
mod session_conformance;
mod signin;
mod store_conformance;
mod support;
