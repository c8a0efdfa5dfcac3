//! The role catalog (Segment's workspace and resource roles) and how roles
//! imply one another.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleDef {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// Resource roles can be limited to some resources.
    pub scopable: bool,
}

pub const WORKSPACE_OWNER: &str = "workspace_owner";
pub const WORKSPACE_MEMBER: &str = "workspace_member";
pub const MINIMAL_ACCESS: &str = "minimal_access";

pub const CATALOG: &[RoleDef] = &[
    RoleDef { id: WORKSPACE_OWNER, name: "Workspace Owner", description: "Full read and edit access to everything in the workspace, including members, SSO and billing.", scopable: false },
    RoleDef { id: WORKSPACE_MEMBER, name: "Workspace Member", description: "Read-only access to the whole workspace.", scopable: false },
    RoleDef { id: MINIMAL_ACCESS, name: "Minimal Workspace Access", description: "Can see the workspace and nothing else until given more roles.", scopable: false },
    RoleDef { id: "billing_admin", name: "Billing Admin", description: "Manage the workspace's plan, invoices and payment details.", scopable: false },
    RoleDef { id: "source_admin", name: "Source Admin", description: "Create, edit and delete sources and their settings.", scopable: true },
    RoleDef { id: "source_read_only", name: "Source Read-only", description: "View sources and their settings.", scopable: true },
    RoleDef { id: "function_admin", name: "Functions Admin", description: "Create, edit, deploy and delete functions.", scopable: true },
    RoleDef { id: "function_read_only", name: "Functions Read-only", description: "View functions and their code.", scopable: true },
    RoleDef { id: "engage_admin", name: "Engage Admin", description: "Edit Engage spaces, audiences, traits and journeys.", scopable: true },
    RoleDef { id: "engage_read_only", name: "Engage Read-only", description: "View Engage spaces, audiences and journeys.", scopable: true },
    RoleDef { id: "engage_user", name: "Engage User", description: "Build and edit audiences and journeys, without space settings.", scopable: true },
    RoleDef { id: "privacy_admin", name: "Privacy Admin", description: "Manage the privacy portal, data controls and deletion requests.", scopable: false },
    RoleDef { id: "identity_admin", name: "Identity Admin", description: "Manage identity resolution settings.", scopable: false },
    RoleDef { id: "tracking_plan_admin", name: "Tracking Plan Admin", description: "Create and edit tracking plans.", scopable: false },
    RoleDef { id: "tracking_plan_read_only", name: "Tracking Plan Read-only", description: "View tracking plans.", scopable: false },
    RoleDef { id: "warehouse_admin", name: "Warehouse Admin", description: "Create and edit warehouses and their schedules.", scopable: false },
    RoleDef { id: "warehouse_read_only", name: "Warehouse Read-only", description: "View warehouses.", scopable: false },
    RoleDef { id: PII_ACCESS, name: "PII Access", description: "See personal data unmasked wherever the person has access.", scopable: false },
];

/// The PII-access flag: lets a person see unmasked personal data.
pub const PII_ACCESS: &str = "pii_access";

pub fn find(id: &str) -> Option<&'static RoleDef> {
    CATALOG.iter().find(|r| r.id == id)
}

/// Whether holding `held` grants what `wanted` grants (ignoring scope).
pub fn implies(held: &str, wanted: &str) -> bool {
    if held == wanted || held == WORKSPACE_OWNER || wanted == MINIMAL_ACCESS {
        return true;
    }
    if held == WORKSPACE_MEMBER {
        return wanted.ends_with("_read_only");
    }
    match held {
        "source_admin" => wanted == "source_read_only",
        "function_admin" => wanted == "function_read_only",
        "engage_admin" => matches!(wanted, "engage_user" | "engage_read_only"),
        "engage_user" => wanted == "engage_read_only",
        "tracking_plan_admin" => wanted == "tracking_plan_read_only",
        "warehouse_admin" => wanted == "warehouse_read_only",
        _ => false,
    }
}

/// Which resources a resource role covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Scope {
    /// All current and future resources.
    All,
    Ids {
        ids: Vec<String>,
    },
    /// `key:value` labels; labels with different keys must all match.
    Labels {
        labels: Vec<String>,
    },
}

/// A role plus its scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub role: String,
    #[serde(default)]
    pub scope: Option<Scope>,
}

impl Policy {
    pub fn workspace(role: &str) -> Self {
        Self {
            role: role.to_string(),
            scope: None,
        }
    }

    /// Checks the role exists and the scope fits it.
    pub fn validate(&self) -> Result<(), String> {
        let def = find(&self.role).ok_or_else(|| format!("unknown role `{}`", self.role))?;
        match &self.scope {
            Some(_) if !def.scopable => Err(format!(
                "role `{}` cannot be scoped to resources",
                self.role
            )),
            Some(Scope::Ids { ids }) if ids.is_empty() => {
                Err("a scope of ids needs at least one id".into())
            }
            Some(Scope::Labels { labels }) if labels.is_empty() => {
                Err("a scope of labels needs at least one label".into())
            }
            Some(Scope::Labels { labels }) if labels.iter().any(|l| !l.contains(':')) => {
                Err("labels are written key:value".into())
            }
            _ => Ok(()),
        }
    }

    /// `role` or `role:scope`, as in the `X-Auth-Roles` header and the CSV.
    pub fn label(&self) -> String {
        match &self.scope {
            None => self.role.clone(),
            Some(Scope::All) => format!("{}:all", self.role),
            Some(Scope::Ids { ids }) => format!("{}:ids={}", self.role, ids.join("|")),
            Some(Scope::Labels { labels }) => format!("{}:labels={}", self.role, labels.join("|")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_implies_everything_and_admin_implies_its_read_only() {
        for r in CATALOG {
            assert!(implies(WORKSPACE_OWNER, r.id));
            assert!(implies(r.id, MINIMAL_ACCESS));
        }
        assert!(implies("source_admin", "source_read_only"));
        assert!(!implies("source_read_only", "source_admin"));
        assert!(!implies("source_admin", "function_admin"));
        assert!(implies(WORKSPACE_MEMBER, "warehouse_read_only"));
        assert!(!implies(WORKSPACE_MEMBER, "warehouse_admin"));
        assert!(!implies(MINIMAL_ACCESS, "source_read_only"));
    }

    #[test]
    fn validates_scopes_against_the_catalog() {
        assert!(Policy::workspace("nope").validate().is_err());
        let mut p = Policy::workspace("billing_admin");
        p.scope = Some(Scope::All);
        assert!(p.validate().is_err());
        let p = Policy {
            role: "source_admin".into(),
            scope: Some(Scope::Labels {
                labels: vec!["env:prod".into()],
            }),
        };
        assert!(p.validate().is_ok());
        assert_eq!(p.label(), "source_admin:labels=env:prod");
    }
}
