//! Form bodies (`application/x-www-form-urlencoded`, repeated keys kept),
//! field errors shown next to their field, and the role + scope fields.

use crate::domain::roles::{self, Policy, Scope};
use crate::domain::DomainError;
use crate::web::errors::ApiError;

/// A parsed form body; repeated keys (checkboxes) are kept in order.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed ("" when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    pub fn csrf(&self) -> Option<&str> {
        Some(self.get("csrf_token")).filter(|t| !t.is_empty())
    }
}

/// Errors by field name; a template shows each next to its field.
#[derive(Debug, Default, Clone)]
pub struct Errors(Vec<(String, String)>);

impl Errors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_string(), message.into()));
    }

    pub fn one(field: &str, message: impl Into<String>) -> Self {
        let mut e = Errors::default();
        e.add(field, message);
        e
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the role and scope fields held, to show them again after an error.
#[derive(Debug, Default, Clone)]
pub struct PolicyInput {
    pub role: String,
    /// "all", "ids" or "labels" (for resource roles).
    pub scope: String,
    /// Comma-separated ids or `key:value` labels.
    pub scope_values: String,
}

impl PolicyInput {
    pub fn from_fields(f: &Fields) -> Self {
        Self {
            role: f.get("role").to_string(),
            scope: f.get("scope").to_string(),
            scope_values: f.get("scope_values").to_string(),
        }
    }

    /// The policy these fields describe; `Ok(None)` when no role was chosen.
    /// Errors name the field at fault (`role`, `scope`, `scope_values`).
    pub fn policy(&self) -> Result<Option<Policy>, (&'static str, String)> {
        if self.role.is_empty() {
            return Ok(None);
        }
        let Some(def) = roles::find(&self.role) else {
            return Err(("role", "Choose a role from the list.".into()));
        };
        let values: Vec<String> = self
            .scope_values
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        let scope = match (def.scopable, self.scope.as_str()) {
            (false, "" | "all") => None,
            (false, _) => {
                return Err((
                    "scope",
                    format!(
                    "{} applies to the whole workspace; it cannot be limited to some resources.",
                    def.name
                ),
                ))
            }
            (true, "" | "all") => Some(Scope::All),
            (true, "ids") if values.is_empty() => {
                return Err((
                    "scope_values",
                    "List at least one resource id, separated by commas.".into(),
                ))
            }
            (true, "ids") => Some(Scope::Ids { ids: values }),
            (true, "labels") if values.is_empty() || values.iter().any(|l| !l.contains(':')) => {
                return Err((
                    "scope_values",
                    "Write labels as key:value (for example env:prod), separated by commas.".into(),
                ))
            }
            (true, "labels") => Some(Scope::Labels { labels: values }),
            (true, _) => return Err(("scope", "Choose which resources this role covers.".into())),
        };
        let p = Policy {
            role: def.id.to_string(),
            scope,
        };
        p.validate().map_err(|e| ("role", e))?;
        Ok(Some(p))
    }
}

/// An operation's error, from the core or an API adapter.
pub trait Refused {
    fn domain(self) -> DomainError;
}

impl Refused for DomainError {
    fn domain(self) -> DomainError {
        self
    }
}

impl Refused for ApiError {
    fn domain(self) -> DomainError {
        self.0
    }
}

/// An operation's refusal as text for the form; internal errors and
/// unavailability stay errors (the page reports them as such).
pub fn refusal(e: impl Refused) -> Result<String, DomainError> {
    match e.domain() {
        DomainError::Invalid(m)
        | DomainError::Unprocessable(m)
        | DomainError::Conflict(m)
        | DomainError::Forbidden(m) => Ok(sentence(&m)),
        DomainError::NotFound => Ok("That no longer exists; reload the page.".into()),
        other => Err(other),
    }
}

/// Capitalised and with a full stop, for messages written for the API.
pub fn sentence(m: &str) -> String {
    let mut out: String = m
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(m.chars().skip(1))
        .collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(role: &str, scope: &str, values: &str) -> PolicyInput {
        PolicyInput {
            role: role.into(),
            scope: scope.into(),
            scope_values: values.into(),
        }
    }

    #[test]
    fn repeated_keys_are_kept_and_values_trimmed() {
        let f = Fields::parse(b"group_ids=a&group_ids=b&group_ids=&email=+x%40y.test+");
        assert_eq!(f.all("group_ids"), vec!["a", "b"]);
        assert_eq!(f.get("email"), "x@y.test");
        assert_eq!(f.get("missing"), "");
        assert!(f.csrf().is_none());
    }

    #[test]
    fn role_and_scope_fields_make_a_policy_or_name_the_field_at_fault() {
        assert_eq!(input("", "", "").policy(), Ok(None));
        assert_eq!(
            input("source_admin", "labels", "env:prod").policy(),
            Ok(Some(Policy {
                role: "source_admin".into(),
                scope: Some(Scope::Labels {
                    labels: vec!["env:prod".into()]
                })
            }))
        );
        assert_eq!(
            input("source_admin", "", "")
                .policy()
                .ok()
                .flatten()
                .and_then(|p| p.scope),
            Some(Scope::All)
        );
        assert_eq!(
            input("workspace_member", "all", "")
                .policy()
                .ok()
                .flatten()
                .map(|p| p.scope),
            Some(None)
        );
        assert_eq!(input("nope", "", "").policy().unwrap_err().0, "role");
        assert_eq!(
            input("billing_admin", "labels", "a:b")
                .policy()
                .unwrap_err()
                .0,
            "scope"
        );
        assert_eq!(
            input("source_admin", "labels", "prod")
                .policy()
                .unwrap_err()
                .0,
            "scope_values"
        );
        assert_eq!(
            input("source_admin", "ids", " , ").policy().unwrap_err().0,
            "scope_values"
        );
    }

    #[test]
    fn api_messages_become_sentences() {
        assert_eq!(sentence("name: too long"), "Name: too long.");
        assert_eq!(sentence("Done."), "Done.");
    }
}
