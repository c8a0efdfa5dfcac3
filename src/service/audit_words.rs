//! Audit events in plain words, for the owner's audit log page:
//! "ann@acme.test removed mia@acme.test from the workspace".
//!
//! [`ACTIONS`] lists every action the gateway writes; a test checks that
//! each has its own sentence and that no action string in `src/` is missing
//! from the list.

use crate::domain::model::AuditEvent;
use crate::domain::roles;
use serde_json::Value;
use std::collections::HashMap;

/// Every audit action the gateway writes, with a short label (the audit
/// page's action filter).
pub const ACTIONS: &[(&str, &str)] = &[
    ("member.updated", "Member's access changed"),
    ("member.removed", "Member removed"),
    ("member.mfa_reset", "Member's 2FA reset"),
    ("members.exported", "Member list downloaded"),
    ("invitation.created", "Invitation sent"),
    ("invitation.resent", "Invitation sent again"),
    ("invitation.revoked", "Invitation revoked"),
    ("invitation.accepted", "Invitation accepted"),
    ("group.created", "Group created"),
    ("group.updated", "Group changed"),
    ("group.deleted", "Group deleted"),
    ("group.member_added", "Added to a group"),
    ("group.member_removed", "Removed from a group"),
    ("token.created", "API token created"),
    ("token.revoked", "API token revoked"),
    ("scim_token.created", "SCIM token created"),
    ("scim_token.revoked", "SCIM token revoked"),
    ("resource.registered", "Resource registered"),
    ("resource.deleted", "Resource deleted"),
    ("workspace.created", "Workspace created"),
    ("workspace.settings_updated", "Sign-in settings changed"),
    ("domain.added", "Domain claimed"),
    ("domain.verified", "Domain verified"),
    ("domain.removed", "Domain removed"),
    ("sso.connection_created", "SSO connection added"),
    ("sso.connection_updated", "SSO connection changed"),
    ("sso.connection_deleted", "SSO connection deleted"),
    ("sso.signed_in", "SSO sign-in"),
    ("sso.refused", "SSO sign-in refused"),
    ("sso.tested", "SSO test sign-in"),
    ("scim.user.created", "SCIM: user created"),
    ("scim.user.updated", "SCIM: user updated"),
    ("scim.user.deactivated", "SCIM: user deactivated"),
    ("scim.user.reactivated", "SCIM: user reactivated"),
    ("scim.user.deleted", "SCIM: user deleted"),
    ("scim.group.created", "SCIM: group created"),
    ("scim.group.updated", "SCIM: group updated"),
    ("scim.group.deleted", "SCIM: group deleted"),
    ("user.signed_in", "Signed in"),
    ("signin.refused", "Sign-in refused"),
    ("user.password_changed", "Password changed"),
    ("user.password_reset", "Password reset"),
    ("user.password_set", "Password set"),
    ("user.mfa_enabled", "2FA turned on"),
    ("user.mfa_disabled", "2FA turned off"),
    ("user.recovery_codes_replaced", "New recovery codes"),
    ("user.twilio_linked", "Twilio account linked"),
    ("user.twilio_unlinked", "Twilio account unlinked"),
    ("oidc_client.created", "App (OpenID client) registered"),
    ("oidc_client.deleted", "App (OpenID client) deleted"),
    ("oidc.logout_delivered", "App told of a sign-out"),
    ("oidc.logout_failed", "App could not be told of a sign-out"),
];

/// What the page knows about the ids its events mention: user id → email,
/// token id → description, group id → name, connection id → name.
#[derive(Debug, Default, Clone)]
pub struct Names {
    pub users: HashMap<String, String>,
    pub tokens: HashMap<String, String>,
    pub groups: HashMap<String, String>,
    pub connections: HashMap<String, String>,
}

/// The ids of users an event mentions (actor, target, details), for
/// [`Names::users`].
pub fn user_ids(e: &AuditEvent) -> Vec<String> {
    let mut ids = Vec::new();
    if e.actor.kind == "user" {
        ids.extend(e.actor.id.clone());
    }
    let a = e.action.as_str();
    if a.starts_with("member.") || a.starts_with("scim.user.") || a.starts_with("user.") {
        ids.extend(e.target.clone());
    }
    ids.extend(text(&e.details, "user_id").map(str::to_string));
    ids
}

fn text<'a>(details: &'a Value, key: &str) -> Option<&'a str> {
    details
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn quoted(s: &str) -> String {
    format!("“{s}”")
}

impl Names {
    fn user(&self, id: Option<&str>) -> String {
        match id {
            Some(id) => self
                .users
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("a former user ({id})")),
            None => "someone".into(),
        }
    }

    fn token(&self, id: Option<&str>) -> Option<String> {
        id.and_then(|id| self.tokens.get(id))
            .filter(|d| !d.is_empty())
            .map(|d| quoted(d))
    }

    fn group(&self, e: &AuditEvent) -> String {
        e.target
            .as_deref()
            .and_then(|id| self.groups.get(id))
            .map(|n| quoted(n))
            .or_else(|| text(&e.details, "name").map(quoted))
            .unwrap_or_else(|| "a group that no longer exists".into())
    }

    fn connection(&self, id: Option<&str>) -> String {
        match id.and_then(|id| self.connections.get(id)) {
            Some(n) => quoted(n),
            None => "a deleted connection".into(),
        }
    }

    /// Who did it: an email, a token, SCIM, the command line or the gateway.
    fn actor(&self, e: &AuditEvent) -> String {
        let id = e.actor.id.as_deref();
        match e.actor.kind.as_str() {
            "user" => e.actor.email.clone().unwrap_or_else(|| self.user(id)),
            "token" => match self.token(id) {
                Some(t) => format!("API token {t}"),
                None => "An API token".into(),
            },
            "scim" => match id.and_then(|id| self.tokens.get(id)) {
                Some(d) if !d.is_empty() => format!("{d} (SCIM)"),
                _ => "A SCIM token (SCIM)".into(),
            },
            _ if text(&e.details, "via") == Some("cli") => "The command line".into(),
            _ => "The gateway".into(),
        }
    }
}

/// Role names of the policies in `details[key]`, comma-separated.
fn roles_of(details: &Value, key: &str) -> Option<String> {
    let ps = details.get(key)?.as_array()?;
    let names: Vec<String> = ps
        .iter()
        .filter_map(|p| p.get("role").and_then(Value::as_str))
        .map(|r| {
            roles::find(r)
                .map(|d| d.name.to_string())
                .unwrap_or_else(|| r.to_string())
        })
        .collect();
    Some(if names.is_empty() {
        "no role".into()
    } else {
        names.join(", ")
    })
}

/// The settings that differ between `details.before` and `details.after`.
fn changed_settings(details: &Value) -> String {
    let (Some(before), Some(after)) = (
        details.get("before").and_then(Value::as_object),
        details.get("after").and_then(Value::as_object),
    ) else {
        return String::new();
    };
    let changed: Vec<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| {
            let label = k.replace('_', " ");
            match v {
                Value::Bool(true) => format!("{label} on"),
                Value::Bool(false) => format!("{label} off"),
                Value::String(s) => format!("{label} {s}"),
                _ => label,
            }
        })
        .collect();
    if changed.is_empty() {
        " (nothing changed)".into()
    } else {
        format!(": {}", changed.join(", "))
    }
}

/// One event in plain words.
pub fn describe(e: &AuditEvent, names: &Names) -> String {
    specific(e, names).unwrap_or_else(|| generic(e, names))
}

/// The fallback for an action without its own sentence.
fn generic(e: &AuditEvent, names: &Names) -> String {
    match &e.target {
        Some(t) => format!("{} did {} on {t}", names.actor(e), e.action),
        None => format!("{} did {}", names.actor(e), e.action),
    }
}

fn specific(e: &AuditEvent, names: &Names) -> Option<String> {
    let who = names.actor(e);
    let d = &e.details;
    let target = e.target.as_deref();
    let t = target.unwrap_or("?");
    let user = || names.user(target);
    let s = match e.action.as_str() {
        "member.updated" => {
            let mut parts = Vec::new();
            if let Some(r) = roles_of(d, "policies") {
                parts.push(format!("roles to {r}"));
            }
            if let Some(g) = d.get("group_ids").and_then(Value::as_array) {
                parts.push(format!("groups ({} in all)", g.len()));
            }
            if parts.is_empty() {
                format!("{who} changed the access of {}", user())
            } else {
                format!("{who} set the {} of {}", parts.join(" and "), user())
            }
        }
        "member.removed" => format!("{who} removed {} from the workspace", user()),
        "member.mfa_reset" => format!("{who} reset the two-factor authentication of {}", user()),
        "members.exported" => format!("{who} downloaded the member list (CSV)"),
        "invitation.created" => match roles_of(d, "policies") {
            Some(r) => format!("{who} invited {t} as {r}"),
            None => format!("{who} invited {t}"),
        },
        "invitation.resent" => format!("{who} sent the invitation to {t} again"),
        "invitation.revoked" => format!("{who} revoked an invitation"),
        "invitation.accepted" => format!("{who} accepted an invitation and joined the workspace"),
        "group.created" => format!(
            "{who} created the group {}",
            text(d, "name")
                .map(quoted)
                .unwrap_or_else(|| names.group(e))
        ),
        "group.updated" => format!("{who} changed the group {}", names.group(e)),
        "group.deleted" => format!("{who} deleted the group {}", names.group(e)),
        "group.member_added" => format!(
            "{who} added {} to the group {}",
            names.user(text(d, "user_id")),
            names.group(e)
        ),
        "group.member_removed" => format!(
            "{who} removed {} from the group {}",
            names.user(text(d, "user_id")),
            names.group(e)
        ),
        "token.created" | "scim_token.created" => {
            let kind = if e.action == "token.created" {
                "API"
            } else {
                "SCIM"
            };
            let desc = text(d, "description")
                .map(quoted)
                .or_else(|| names.token(target))
                .unwrap_or_else(|| "(no description)".into());
            format!("{who} created the {kind} token {desc}")
        }
        "token.revoked" | "scim_token.revoked" => {
            let kind = if e.action == "token.revoked" {
                "API"
            } else {
                "SCIM"
            };
            match names.token(target) {
                Some(desc) => format!("{who} revoked the {kind} token {desc}"),
                None => format!("{who} revoked a {kind} token"),
            }
        }
        "resource.registered" => match text(d, "kind") {
            Some(k) => format!("{who} registered the {k} {t}"),
            None => format!("{who} registered the resource {t}"),
        },
        "resource.deleted" => format!("{who} deleted the resource {t}"),
        "oidc_client.created" => format!(
            "{who} registered the app {}",
            text(d, "name").map(quoted).unwrap_or_else(|| t.to_string())
        ),
        "oidc_client.deleted" => format!("{who} deleted the app {t}"),
        "oidc.logout_delivered" => format!(
            "The app {t} was told that {} signed out (back-channel logout)",
            names.user(text(d, "user_id"))
        ),
        "oidc.logout_failed" => format!(
            "The app {t} could not be told that {} signed out: {}",
            names.user(text(d, "user_id")),
            text(d, "error").unwrap_or("it did not answer")
        ),
        "workspace.created" => format!("{who} created the workspace {t}"),
        "workspace.settings_updated" => {
            format!("{who} changed the sign-in settings{}", changed_settings(d))
        }
        "domain.added" => format!("{who} claimed the domain {t}"),
        "domain.verified" => format!("{who} verified the domain {t}"),
        "domain.removed" => format!("{who} removed the domain {t}"),
        "sso.connection_created" => format!(
            "{who} added the {} connection {}",
            text(d, "type").unwrap_or("SSO").to_uppercase(),
            text(d, "name")
                .map(quoted)
                .unwrap_or_else(|| names.connection(target))
        ),
        "sso.connection_updated" => {
            let state = match d.get("enabled").and_then(Value::as_bool) {
                Some(true) => " (enabled)",
                Some(false) => " (disabled)",
                None => "",
            };
            let name = text(d, "name")
                .map(quoted)
                .unwrap_or_else(|| names.connection(target));
            format!("{who} changed the SSO connection {name}{state}")
        }
        "sso.connection_deleted" => format!(
            "{who} deleted the SSO connection {}",
            names.connection(target)
        ),
        "sso.signed_in" => format!(
            "{who} signed in through the SSO connection {}",
            names.connection(text(d, "connection").or(target))
        ),
        "sso.tested" => format!(
            "{who} tested the SSO connection {}: the IdP sent {}",
            names.connection(text(d, "connection").or(target)),
            text(d, "email").unwrap_or("no email")
        ),
        "sso.refused" => format!(
            "SSO sign-in refused: {}",
            text(d, "reason").unwrap_or("no reason was recorded")
        ),
        "signin.refused" => format!(
            "Sign-in{} refused: {}",
            match text(d, "method") {
                Some("twilio") => " with Twilio",
                _ => "",
            },
            text(d, "reason").unwrap_or("no reason was recorded")
        ),
        "scim.user.created" => format!(
            "{who} created the user {}",
            text(d, "userName").unwrap_or(t)
        ),
        "scim.user.updated" => format!("{who} updated {}", user()),
        "scim.user.deactivated" => format!("{who} deactivated {}", user()),
        "scim.user.reactivated" => format!("{who} reactivated {}", user()),
        "scim.user.deleted" => format!("{who} deleted {}", user()),
        "scim.group.created" => format!(
            "{who} created the group {}",
            text(d, "displayName").map(quoted).unwrap_or_default()
        ),
        "scim.group.updated" => format!("{who} updated the group {}", names.group(e)),
        "scim.group.deleted" => format!("{who} deleted the group {}", names.group(e)),
        "user.signed_in" => match text(d, "method") {
            Some(m) => format!("{who} signed in ({m})"),
            None => format!("{who} signed in"),
        },
        "user.password_changed" => format!("{who} changed their password"),
        "user.password_reset" => format!("{who} reset their password with an emailed link"),
        "user.password_set" => format!("{who} set their password"),
        "user.mfa_enabled" => format!("{who} turned on two-factor authentication"),
        "user.mfa_disabled" => format!("{who} turned off two-factor authentication"),
        "user.recovery_codes_replaced" => format!("{who} made new recovery codes"),
        "user.twilio_linked" => format!("{who} linked their Twilio account"),
        "user.twilio_unlinked" => format!("{who} unlinked their Twilio account"),
        _ => return None,
    };
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Actor;
    use serde_json::json;

    fn event(action: &str, actor: Actor, target: Option<&str>, details: Value) -> AuditEvent {
        AuditEvent {
            id: "e1".into(),
            workspace_id: Some("w".into()),
            time: 0,
            actor,
            action: action.into(),
            target: target.map(str::to_string),
            ip: None,
            details,
        }
    }

    fn names() -> Names {
        let mut n = Names::default();
        n.users.insert("u-mia".into(), "mia@acme.test".into());
        n.users.insert("u-sam".into(), "sam@acme.test".into());
        n.tokens.insert("t-scim".into(), "scim token".into());
        n
    }

    #[test]
    fn every_listed_action_has_its_own_sentence() {
        let n = names();
        for (action, label) in ACTIONS {
            assert!(!label.is_empty());
            let e = event(
                action,
                Actor::user("u-ann", "ann@acme.test"),
                Some("x"),
                json!({}),
            );
            assert!(specific(&e, &n).is_some(), "{action} has no sentence");
            assert!(!describe(&e, &n).contains(action), "{action}");
        }
        let e = event("made.up", Actor::system(), None, json!({}));
        assert_eq!(describe(&e, &n), "The gateway did made.up");
    }

    /// Every action string written in `src/` is in [`ACTIONS`].
    #[test]
    fn every_action_in_the_source_is_listed() {
        const PREFIXES: &[&str] = &[
            "member.",
            "members.",
            "invitation.",
            "group.",
            "token.",
            "scim_token.",
            "resource.",
            "workspace.",
            "domain.",
            "sso.",
            "scim.user.",
            "scim.group.",
            "user.",
            "signin.",
            "oidc_client.",
            "oidc.logout_",
        ];
        let listed: Vec<&str> = ACTIONS.iter().map(|(a, _)| *a).collect();
        let mut found = 0;
        let mut missing = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let src = std::fs::read_to_string(&path).unwrap();
                for lit in src.split('"').skip(1).step_by(2) {
                    let word = lit
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.');
                    if !word
                        || lit.ends_with(".html")
                        || lit.ends_with('.')
                        || PREFIXES.contains(&lit)
                        || !PREFIXES.iter().any(|p| lit.starts_with(p))
                    {
                        continue;
                    }
                    found += 1;
                    if !listed.contains(&lit) {
                        missing.push(format!("{lit} ({})", path.display()));
                    }
                }
            }
        }
        assert!(found > 40, "only {found} action strings found");
        assert!(missing.is_empty(), "not in ACTIONS: {missing:?}");
        // Built with format!: `scim.{}.deleted`.
        assert!(listed.contains(&"scim.user.deleted") && listed.contains(&"scim.group.deleted"));
    }

    #[test]
    fn sentences_name_people_and_reasons() {
        let n = names();
        let ann = Actor::user("u-ann", "ann@acme.test");
        let e = event("member.removed", ann.clone(), Some("u-mia"), json!({}));
        assert_eq!(
            describe(&e, &n),
            "ann@acme.test removed mia@acme.test from the workspace"
        );
        let scim = Actor {
            kind: "scim".into(),
            id: Some("t-scim".into()),
            email: None,
        };
        let e = event("scim.user.deactivated", scim, Some("u-sam"), json!({}));
        assert_eq!(
            describe(&e, &n),
            "scim token (SCIM) deactivated sam@acme.test"
        );
        let e = event(
            "sso.refused",
            Actor::system(),
            Some("c1"),
            json!({"reason": "the audience is wrong", "status": 403}),
        );
        assert_eq!(
            describe(&e, &n),
            "SSO sign-in refused: the audience is wrong"
        );
        let e = event(
            "workspace.settings_updated",
            ann,
            Some("acme"),
            json!({"before": {"require_sso": false, "idle_timeout": "1h"}, "after": {"require_sso": true, "idle_timeout": "1h"}}),
        );
        assert_eq!(
            describe(&e, &n),
            "ann@acme.test changed the sign-in settings: require sso on"
        );
    }
}
