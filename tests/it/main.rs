//! The one integration-test binary (one link, shared harness).

mod access;
mod cli;
mod concurrency;
mod credentials;
mod dns;
mod dns_server;
mod every_door;
mod forward_auth;
mod header_props;
mod keys;
mod oidc_fixture;
mod oidc_rp;
mod openapi;
mod ops;
mod pages;
mod rules_6b;
mod saml;
mod scim;
mod session_conformance;
mod signin;
mod smtp_sink;
mod sso;
mod store_conformance;
mod support;
mod twilio_issuer;
mod twilio_login;
