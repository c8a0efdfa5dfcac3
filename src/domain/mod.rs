//! Pure rules: no HTTP, no SQL.

pub mod access;
pub mod csv;
pub mod duration;
pub mod errors;
pub mod model;
pub mod return_to;
pub mod roles;

pub use errors::DomainError;
