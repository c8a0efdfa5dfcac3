//! The one place authorization questions are decided.

use super::roles::{self, Policy, Scope};

/// What forward-auth (or an API handler) asks for.
#[derive(Debug, Clone, Default)]
pub struct Requirement<'a> {
    /// A role id from the catalog; `None`: membership is enough.
    pub role: Option<&'a str>,
    /// A resource id the request is about.
    pub resource: Option<&'a str>,
    /// Labels of that resource (`key:value`), when known.
    pub resource_labels: &'a [String],
}

/// Whether a scope covers a resource.
fn scope_covers(scope: &Option<Scope>, resource: Option<&str>, labels: &[String]) -> bool {
    match (scope, resource) {
        (None, _) | (Some(Scope::All), _) => true,
        // A scoped policy grants nothing workspace-wide.
        (Some(_), None) => false,
        (Some(Scope::Ids { ids }), Some(r)) => ids.iter().any(|i| i == r),
        (Some(Scope::Labels { labels: wanted }), Some(_)) => labels_match(wanted, labels),
    }
}

/// Labels with the same key are alternatives; different keys must all match.
fn labels_match(wanted: &[String], have: &[String]) -> bool {
    let mut keys: Vec<&str> = wanted
        .iter()
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    !keys.is_empty()
        && keys.iter().all(|k| {
            wanted
                .iter()
                .filter(|l| l.split_once(':').map(|(wk, _)| wk) == Some(*k))
                .any(|l| have.iter().any(|h| h == l))
        })
}

/// Decides whether `policies` (the user's own and their groups') satisfy `req`.
pub fn allows(policies: &[Policy], req: &Requirement<'_>) -> bool {
    let Some(wanted) = req.role else {
        return !policies.is_empty();
    };
    let scopable = roles::find(wanted).map(|d| d.scopable).unwrap_or(false);
    policies.iter().any(|p| {
        roles::implies(&p.role, wanted)
            && (!scopable
                || p.scope.is_none()
                || scope_covers(&p.scope, req.resource, req.resource_labels))
    })
}

/// Whether these policies make someone an owner of the workspace.
pub fn is_owner(policies: &[Policy]) -> bool {
    policies.iter().any(|p| p.role == roles::WORKSPACE_OWNER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: &str, scope: Option<Scope>) -> Policy {
        Policy {
            role: role.into(),
            scope,
        }
    }

    #[test]
    fn membership_alone_satisfies_no_role_requirement() {
        assert!(allows(
            &[p("minimal_access", None)],
            &Requirement::default()
        ));
        assert!(!allows(&[], &Requirement::default()));
    }

    #[test]
    fn scoped_roles_cover_only_their_resources() {
        let pol = [p(
            "source_admin",
            Some(Scope::Ids {
                ids: vec!["src1".into()],
            }),
        )];
        let on = |r: &'static str| Requirement {
            role: Some("source_read_only"),
            resource: Some(r),
            resource_labels: &[],
        };
        assert!(allows(&pol, &on("src1")));
        assert!(!allows(&pol, &on("src2")));
        assert!(!allows(
            &pol,
            &Requirement {
                role: Some("source_read_only"),
                ..Default::default()
            }
        ));
        let all = [p("source_admin", Some(Scope::All))];
        assert!(allows(&all, &on("anything")));
        assert!(allows(&[p("workspace_owner", None)], &on("src2")));
    }

    #[test]
    fn label_scopes_and_across_keys_or_within_a_key() {
        let pol = [p(
            "source_admin",
            Some(Scope::Labels {
                labels: vec!["env:prod".into(), "env:stage".into(), "team:a".into()],
            }),
        )];
        let labels = vec!["env:stage".to_string(), "team:a".to_string()];
        let req = Requirement {
            role: Some("source_admin"),
            resource: Some("s"),
            resource_labels: &labels,
        };
        assert!(allows(&pol, &req));
        let labels = vec!["env:stage".to_string(), "team:b".to_string()];
        let req = Requirement {
            role: Some("source_admin"),
            resource: Some("s"),
            resource_labels: &labels,
        };
        assert!(!allows(&pol, &req));
    }

    #[test]
    fn highest_access_wins_across_policies() {
        let pol = [p("minimal_access", None), p("warehouse_admin", None)];
        assert!(allows(
            &pol,
            &Requirement {
                role: Some("warehouse_read_only"),
                ..Default::default()
            }
        ));
        assert!(!allows(
            &pol,
            &Requirement {
                role: Some("billing_admin"),
                ..Default::default()
            }
        ));
    }
}
