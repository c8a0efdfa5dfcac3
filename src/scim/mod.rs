//! SCIM 2.0 provisioning (RFC 7643/7644) under `/scim/v2` (docs/scim.md).
//!
//! * [`schema`]: the attribute definitions behind `/Schemas`, validation,
//!   filters and PATCH paths.
//! * [`filter`]: filter parser (tokens → syntax tree), typing against the
//!   schemas, evaluation on representations, and translation to SQL.
//! * [`patch`]: PATCH operations, including Entra ID's and Okta's shapes.
//! * [`resources`]: SCIM JSON ⇄ model, projections, lists, ETags.
//! * [`routes`]: the axum handlers; [`errors`]: SCIM error responses.
//!
//! Storage is [`crate::store::scim`]. Design notes: `docs/scim.md`.

pub mod errors;
pub mod filter;
pub mod patch;
pub mod resources;
pub mod routes;
pub mod schema;

pub use routes::routes;
