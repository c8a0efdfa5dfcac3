//! Upstream identity providers that workspaces connect for SSO.

pub mod saml;
