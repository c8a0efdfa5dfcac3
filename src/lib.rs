//! iam-gateway: an identity gateway for a multi-workspace SaaS.
//!
//! Module map (see `docs/architecture.md`):
//! * [`config`]: typed configuration from TOML and `IAMGW_` environment.
//! * [`clock`]: time as a parameter, so expiry is testable without sleeping.
//! * [`domain`]: pure rules (roles, access decisions, return_to, durations).
//! * [`store`]: durable data behind the [`store::Store`] trait (SQLite, PostgreSQL).
//! * [`session`]: key-value-with-TTL backends and the session manager.
//! * [`connectors`]: upstream identity sources (OIDC) returning one `ExternalIdentity`.
//! * [`crypto`], [`password`], [`jwt`]: secrets, argon2id, signed assertions.
//! * [`scim`]: SCIM 2.0 provisioning of users and groups per workspace.
//! * [`service`]: the core: the one access decision and the business operations.
//! * [`web`]: the axum application (pages, forward-auth, API, operations).
//! * [`twilio_issuer`]: the simulated Twilio Unified Login OIDC provider.
//! * [`app`]: wiring everything together; [`cli`]: the command line verbs.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod dns;
pub mod domain;
pub mod fastpath;
pub mod invalidation;
pub mod jwt;
pub mod keys;
pub mod mail;
pub mod mapping;
pub mod metrics;
pub mod password;
pub(crate) mod round;
pub mod scim;
pub mod service;
pub mod session;
pub mod sso_config;
pub mod store;
pub mod throttle;
pub mod tls;
pub mod tokens;
pub mod totp;
pub mod twilio_issuer;
pub mod unix_socket;
pub mod web;
