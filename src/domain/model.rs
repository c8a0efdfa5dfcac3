//! The durable entities.

use super::roles::Policy;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    #[serde(skip)]
    pub password_hash: Option<String>,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Membership {
    pub workspace_id: String,
    pub user_id: String,
    pub policies: Vec<Policy>,
    pub created_at: i64,
}

/// How a session was established (`X-Auth-Method`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AuthMethod {
    Password,
    Twilio,
    Sso(String),
}

impl AuthMethod {
    pub fn as_header(&self) -> String {
        match self {
            AuthMethod::Password => "password".into(),
            AuthMethod::Twilio => "twilio".into(),
            AuthMethod::Sso(id) => format!("sso:{id}"),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "password" => Some(AuthMethod::Password),
            "twilio" => Some(AuthMethod::Twilio),
            _ => s
                .strip_prefix("sso:")
                .map(|id| AuthMethod::Sso(id.to_string())),
        }
    }
}

/// Normalised form of an email for lookups and uniqueness (case-insensitive).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible email: one `@`, something on each side, a dot in the domain,
/// no spaces or control characters, at most 254 bytes.
pub fn valid_email(email: &str) -> bool {
    let e = email.trim();
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Workspace slugs: 2–63 of `a-z0-9-`, not starting or ending with `-`.
pub fn valid_slug(slug: &str) -> bool {
    (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_and_slug_rules() {
        assert!(valid_email("a.b@corp.test"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("a b@corp.test"));
        assert!(!valid_email("@corp.test"));
        assert!(valid_slug("acme"));
        assert!(!valid_slug("Acme"));
        assert!(!valid_slug("-acme"));
        assert_eq!(normalize_email(" Ann@Corp.TEST "), "ann@corp.test");
    }

    #[test]
    fn auth_method_round_trips() {
        for m in [
            AuthMethod::Password,
            AuthMethod::Twilio,
            AuthMethod::Sso("c1".into()),
        ] {
            assert_eq!(AuthMethod::parse(&m.as_header()), Some(m));
        }
    }
}
