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
    /// Sealed TOTP secret (pending until `totp_enabled_at` is set).
    #[serde(skip)]
    pub totp_secret: Option<String>,
    pub totp_enabled_at: Option<i64>,
    #[serde(skip)]
    pub totp_last_step: Option<i64>,
}

impl User {
    pub fn mfa_enabled(&self) -> bool {
        self.totp_enabled_at.is_some() && self.totp_secret.is_some()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Workspace {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub created_at: i64,
    pub settings: WorkspaceSettings,
}

fn default_role() -> String {
    super::roles::MINIMAL_ACCESS.to_string()
}

/// Per-workspace settings (stored as one JSON document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WorkspaceSettings {
    pub require_sso: bool,
    pub sso_exempt_user_ids: Vec<String>,
    pub require_mfa: bool,
    #[serde(default = "default_role")]
    pub default_role: String,
    /// Tighter session timeouts for this workspace (`30m`, `8h`), if any.
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
    /// How long invitations stay open (default 7d).
    pub invitation_ttl: Option<String>,
    /// How long audit events are kept (default 90d).
    pub audit_retention: Option<String>,
}

/// Seconds of an optional duration setting (`None` when unset or unreadable).
fn setting_secs(value: &Option<String>) -> Option<i64> {
    value
        .as_deref()
        .and_then(|t| super::duration::parse(t).ok())
        .map(|d| d.as_secs() as i64)
}

impl WorkspaceSettings {
    pub fn invitation_ttl_secs(&self) -> i64 {
        setting_secs(&self.invitation_ttl).unwrap_or(7 * 86_400)
    }

    pub fn audit_retention_secs(&self) -> i64 {
        setting_secs(&self.audit_retention).unwrap_or(90 * 86_400)
    }

    /// The workspace's own (tighter) idle timeout, if set.
    pub fn idle_timeout_secs(&self) -> Option<i64> {
        setting_secs(&self.idle_timeout)
    }

    /// The workspace's own (tighter) absolute timeout, if set.
    pub fn absolute_timeout_secs(&self) -> Option<i64> {
        setting_secs(&self.absolute_timeout)
    }
}

impl Default for WorkspaceSettings {
    fn default() -> Self {
        Self {
            require_sso: false,
            sso_exempt_user_ids: Vec::new(),
            require_mfa: false,
            default_role: default_role(),
            idle_timeout: None,
            absolute_timeout: None,
            invitation_ttl: None,
            audit_retention: None,
        }
    }
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl Actor {
    pub fn user(id: &str, email: &str) -> Self {
        Self {
            kind: "user".into(),
            id: Some(id.into()),
            email: Some(email.into()),
        }
    }
    pub fn system() -> Self {
        Self {
            kind: "system".into(),
            id: None,
            email: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub workspace_id: Option<String>,
    pub time: i64,
    pub actor: Actor,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub details: serde_json::Value,
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

/// The domain part of an email, normalised (`corp.test`).
pub fn email_domain(email: &str) -> String {
    normalize_email(email)
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default()
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

/// A user group of one workspace; its policies apply to its members.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub description: String,
    pub policies: Vec<Policy>,
    pub member_ids: Vec<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub id: String,
    pub workspace_id: String,
    pub email: String,
    pub policies: Vec<Policy>,
    pub group_ids: Vec<String>,
    pub invited_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Invitation {
    pub fn is_open(&self, now: i64) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// An API or SCIM token (the secret itself is never stored).
#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: String,
    pub workspace_id: String,
    pub kind: String,
    pub description: String,
    pub policies: Vec<Policy>,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A workspace resource (source, function, space...) that scopes refer to.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Resource {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub labels: Vec<String>,
}

/// One row of the member list: an active member or an open invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    /// The user id, or the invitation id for invitations.
    pub id: String,
    pub email: String,
    pub name: String,
    pub invited: bool,
    pub policies: Vec<Policy>,
    pub group_ids: Vec<String>,
    pub auth_method: Option<String>,
    pub twilio_linked: bool,
    pub mfa_enabled: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
}

/// A user's access in one workspace: their own policies and their groups'.
#[derive(Debug, Clone, Default)]
pub struct EffectiveAccess {
    pub direct: Vec<Policy>,
    pub groups: Vec<(String, Vec<Policy>)>,
}

impl EffectiveAccess {
    /// Every policy that applies, direct and through groups.
    pub fn all(&self) -> Vec<Policy> {
        let mut out = self.direct.clone();
        for (_, ps) in &self.groups {
            for p in ps {
                if !out.contains(p) {
                    out.push(p.clone());
                }
            }
        }
        out
    }
}

/// Builds the `NewUser` that stands for an existing user when a store
/// operation creates-or-reuses a user by email.
pub struct NewUserPlaceholder;

impl NewUserPlaceholder {
    pub fn existing(user: &User) -> crate::store::NewUser {
        crate::store::NewUser {
            email: user.email.clone(),
            name: user.name.clone(),
            password_hash: None,
        }
    }
}
