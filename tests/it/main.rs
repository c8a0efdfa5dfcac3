//! The one integration-test binary (one link, shared harness).

mod cli;
mod forward_auth;
mod oidc_fixture;
mod oidc_rp;
mod session_conformance;
mod signin;
mod store_conformance;
mod support;
