//! Members: list, show, change, remove, reset 2FA, and the members CSV
//! (SPEC section 8), streamed from the store.

use super::tokens::check_policies;
use super::{Core, Ctx};
use crate::domain::csv;
use crate::domain::model::{EffectiveAccess, Group, MemberRow, User, Workspace};
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::store::{MemberFilter, Store};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    pub policies: Option<Vec<Policy>>,
    pub group_ids: Option<Vec<String>>,
}

/// One page of members and open invitations, ordered by email, after
/// `cursor`; the cursor of the next page when there is one.
pub async fn list(
    core: &Core,
    ctx: &Ctx,
    filter: &MemberFilter,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<MemberRow>, Option<String>), DomainError> {
    let rows = core
        .store
        .list_members(&ctx.ws.id, filter, cursor, limit + 1, core.clock.now())
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|(c, _)| c.clone())
    } else {
        None
    };
    Ok((page.into_iter().map(|(_, m)| m).collect(), next))
}

/// A member's access (direct and through groups); `NotFound` for anyone
/// who is not a member.
pub async fn access(core: &Core, ctx: &Ctx, user_id: &str) -> Result<EffectiveAccess, DomainError> {
    core.store
        .effective_access(&ctx.ws.id, user_id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Where one of a member's roles comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleSource {
    /// Given to the member directly.
    Direct,
    /// Through the user group of this name.
    Group(String),
}

/// One of a member's effective roles, with every place it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct SourcedRole {
    pub policy: Policy,
    pub sources: Vec<RoleSource>,
}

/// A member's effective roles: their own policies first, then those of the
/// groups (of `groups`) whose ids are in `group_ids`, each policy once with
/// every source that gives it (SPEC 11: roles add up).
pub fn sourced_roles(
    direct: &[Policy],
    group_ids: &[String],
    groups: &[Group],
) -> Vec<SourcedRole> {
    let mut out: Vec<SourcedRole> = Vec::new();
    let mut add = |p: &Policy, source: RoleSource| match out.iter_mut().find(|r| r.policy == *p) {
        Some(r) if !r.sources.contains(&source) => r.sources.push(source),
        Some(_) => {}
        None => out.push(SourcedRole {
            policy: p.clone(),
            sources: vec![source],
        }),
    };
    for p in direct {
        add(p, RoleSource::Direct);
    }
    for g in groups.iter().filter(|g| group_ids.contains(&g.id)) {
        for p in &g.policies {
            add(p, RoleSource::Group(g.name.clone()));
        }
    }
    out
}

/// The person's workspaces (by slug) with their effective roles in each,
/// own and through groups, for `/workspaces`.
pub async fn roles_in_workspaces(
    core: &Core,
    user_id: &str,
) -> Result<Vec<(Workspace, Vec<SourcedRole>)>, DomainError> {
    let mut out = Vec::new();
    for w in core.store.workspaces_of_user(user_id).await? {
        let access = core
            .store
            .effective_access(&w.workspace.id, user_id)
            .await?
            .unwrap_or_default();
        let groups: Vec<Group> = core
            .store
            .list_groups_without_member_ids(&w.workspace.id)
            .await?
            .into_iter()
            .filter(|g| access.groups.iter().any(|(id, _)| *id == g.id))
            .collect();
        let ids: Vec<String> = groups.iter().map(|g| g.id.clone()).collect();
        let roles = sourced_roles(&access.direct, &ids, &groups);
        out.push((w.workspace, roles));
    }
    Ok(out)
}

/// A member with their access.
pub async fn show(
    core: &Core,
    ctx: &Ctx,
    user_id: &str,
) -> Result<(User, EffectiveAccess), DomainError> {
    let access = access(core, ctx, user_id).await?;
    let user = core
        .store
        .user_by_id(user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok((user, access))
}

/// The member with this email, if there is one.
pub async fn by_email(core: &Core, ctx: &Ctx, email: &str) -> Result<Option<User>, DomainError> {
    let Some(user) = core.store.user_by_email(email).await? else {
        return Ok(None);
    };
    let member = core.store.membership(&ctx.ws.id, &user.id).await?;
    Ok(member.map(|_| user))
}

/// Replaces a member's policies and/or groups (owners; audited); the last
/// owner stays (409). Returns the member's access after the change.
pub async fn update(
    core: &Core,
    ctx: &Ctx,
    user_id: &str,
    patch: MemberPatch,
) -> Result<EffectiveAccess, DomainError> {
    ctx.require_owner()?;
    if let Some(p) = &patch.policies {
        check_policies(p)?;
    }
    let details = json!({"policies": patch.policies, "group_ids": patch.group_ids});
    let change = core.store.update_member(
        &ctx.ws.id,
        user_id,
        patch.policies.as_deref(),
        patch.group_ids.as_deref(),
    );
    ctx.audited(core, "member.updated", Some(user_id), details, change)
        .await?;
    access(core, ctx, user_id).await
}

/// Removes a member (owners; audited): their access to this workspace ends
/// at the next request; the user and their other workspaces stay. Refuses
/// the last owner (409).
pub async fn remove(core: &Core, ctx: &Ctx, user_id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let change = core.store.remove_member_checked(&ctx.ws.id, user_id);
    ctx.audited(core, "member.removed", Some(user_id), json!({}), change)
        .await?;
    // The workspace's apps hear of it (back-channel logout).
    let which = crate::store::oidc::GrantsOf::UserInWorkspace(user_id, &ctx.ws.id);
    super::op::grants_ended(core, which).await;
    Ok(())
}

/// An owner resets a member's two-factor authentication (audited).
pub async fn reset_mfa(core: &Core, ctx: &Ctx, user_id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    core.store
        .membership(&ctx.ws.id, user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let change = core.store.disable_totp(user_id);
    ctx.audited(core, "member.mfa_reset", Some(user_id), json!({}), change)
        .await
}

/// The members CSV for an owner (audited as an export).
pub async fn export(
    core: &Core,
    ctx: &Ctx,
) -> Result<impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send, DomainError> {
    ctx.require_owner()?;
    // audit-after: an export changes nothing; it is recorded as it starts.
    ctx.audit(core, "members.exported", Some(&ctx.ws.slug), json!({}))
        .await;
    Ok(csv_stream(
        core.store.clone(),
        ctx.ws.id.clone(),
        core.clock.now(),
    ))
}

pub const CSV_HEADER: [&str; 11] = [
    "user_id",
    "email",
    "name",
    "status",
    "roles",
    "groups",
    "auth_method",
    "twilio_linked",
    "mfa_enabled",
    "created_at",
    "last_login_at",
];

/// The `roles` cell (effective roles, own and through groups, with scopes,
/// `;`-separated) and the `groups` cell (group names likewise) of a member.
fn access_cells(m: &MemberRow, groups: &[Group]) -> (String, String) {
    let mut effective: Vec<&Policy> = m.policies.iter().collect();
    let theirs = || groups.iter().filter(|g| m.group_ids.contains(&g.id));
    for p in theirs().flat_map(|g| &g.policies) {
        if !effective.contains(&p) {
            effective.push(p);
        }
    }
    let roles = effective
        .iter()
        .map(|p| p.label())
        .collect::<Vec<_>>()
        .join(";");
    let names = theirs()
        .map(|g| g.name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (roles, names)
}

/// [`access_cells`] worked out once for each combination of own policies
/// and groups that an export meets, the last [`AccessCells::KEEP`] kept: a
/// workspace's members share a handful of combinations, so a 100 000-row
/// download works them out a handful of times.
#[derive(Default)]
pub struct AccessCells {
    known: std::collections::VecDeque<(Vec<Policy>, Vec<String>, String, String)>,
}

impl AccessCells {
    const KEEP: usize = 16;

    fn of(&mut self, m: &MemberRow, groups: &[Group]) -> (&str, &str) {
        let known = self
            .known
            .iter()
            .position(|(p, g, ..)| *p == m.policies && *g == m.group_ids);
        let at = match known {
            Some(at) => at,
            None => {
                if self.known.len() == Self::KEEP {
                    self.known.pop_front();
                }
                let (roles, names) = access_cells(m, groups);
                self.known
                    .push_back((m.policies.clone(), m.group_ids.clone(), roles, names));
                self.known.len() - 1
            }
        };
        match self.known.get(at) {
            Some((.., roles, names)) => (roles, names),
            None => ("", ""),
        }
    }
}

/// One CSV record for a member, written at the end of `out`: effective
/// roles (own and through groups) with scopes, `;`-separated; group names
/// likewise.
pub fn push_csv_record(out: &mut String, m: &MemberRow, groups: &[Group], cells: &mut AccessCells) {
    let (roles, names) = cells.of(m, groups);
    let created = crate::clock::rfc3339(m.created_at);
    let last_login = m.last_login_at.map(crate::clock::rfc3339);
    csv::push_row(
        out,
        &[
            if m.invited { "" } else { m.id.as_str() },
            &m.email,
            &m.name,
            if m.invited { "invited" } else { "active" },
            roles,
            names,
            m.auth_method.as_deref().unwrap_or_default(),
            if m.twilio_linked { "true" } else { "false" },
            if m.mfa_enabled { "true" } else { "false" },
            &created,
            last_login.as_deref().unwrap_or_default(),
        ],
    );
}

/// [`push_csv_record`] as a string of its own.
pub fn csv_record(m: &MemberRow, groups: &[Group]) -> String {
    let mut out = String::new();
    push_csv_record(&mut out, m, groups, &mut AccessCells::default());
    out
}

/// Streams the member list as CSV: the header, then the store's one
/// ordered stream of rows, a few hundred records per chunk, so memory stays
/// flat whatever the workspace size. A store error ends the body early (the
/// download fails rather than looking complete).
pub fn csv_stream(
    store: Arc<dyn Store>,
    workspace_id: String,
    now: i64,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send {
    use futures_util::StreamExt as _;
    let header = futures_util::stream::once(async { Ok(csv::row(&CSV_HEADER)) });
    let body = futures_util::stream::once(async move {
        let rows = match store.list_groups_without_member_ids(&workspace_id).await {
            Ok(groups) => store
                .member_stream(&workspace_id, now)
                .ready_chunks(256)
                .scan(AccessCells::default(), move |cells, chunk| {
                    let mut out = String::with_capacity(chunk.len() * 160);
                    let written = chunk
                        .into_iter()
                        .try_for_each(|m| m.map(|m| push_csv_record(&mut out, &m, &groups, cells)));
                    std::future::ready(Some(written.map(|()| out)))
                })
                .boxed(),
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        };
        rows.map(|r| r.map_err(|e| std::io::Error::other(e.to_string())))
    })
    .flatten();
    header.chain(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, name: &str, roles: &[&str]) -> Group {
        Group {
            id: id.into(),
            workspace_id: "ws".into(),
            name: name.into(),
            description: String::new(),
            policies: roles.iter().map(|r| Policy::workspace(r)).collect(),
            member_ids: Vec::new(),
            created_at: 0,
        }
    }

    #[test]
    fn records_written_with_remembered_cells_are_those_worked_out_afresh() {
        let groups = [
            group("g1", "Everyone", &["workspace_member", "billing_admin"]),
            group("g2", "Admins, \"core\"", &["workspace_owner"]),
            group("g3", "=Ops", &["source_admin"]),
        ];
        let roles = [
            "workspace_member",
            "billing_admin",
            "source_read_only",
            "-x",
        ];
        let group_sets: Vec<Vec<String>> = vec![
            vec![],
            vec!["g1".into()],
            vec!["g2".into()],
            vec!["g1".into(), "g3".into()],
            vec!["g1".into(), "g2".into(), "g3".into()],
        ];
        // 4 x 4 x 5 = 80 combinations, more than the cells remember, met in
        // an order that comes back to each one after the others.
        let mut rows = Vec::new();
        for round in 0..3_usize {
            for (i, own) in roles.iter().enumerate() {
                for other in roles.iter().skip(round) {
                    for (k, ids) in group_sets.iter().enumerate() {
                        rows.push(MemberRow {
                            id: format!("u{i}{k}"),
                            email: format!("p{i}{k}@x.test"),
                            name: " Ann ".into(),
                            invited: k == 2,
                            policies: vec![Policy::workspace(own), Policy::workspace(other)],
                            group_ids: ids.clone(),
                            auth_method: (k == 1).then(|| "password".into()),
                            twilio_linked: i == 0,
                            mfa_enabled: k == 3,
                            created_at: 1_700_000_000,
                            last_login_at: (k > 2).then_some(1_700_000_100),
                        });
                    }
                }
            }
        }
        let mut cells = AccessCells::default();
        let mut out = String::new();
        let mut fresh = String::new();
        for m in &rows {
            push_csv_record(&mut out, m, &groups, &mut cells);
            fresh.push_str(&csv_record(m, &groups));
        }
        assert_eq!(out, fresh);
        assert!(cells.known.len() <= AccessCells::KEEP);
        assert_eq!(
            csv_record(&rows[3], &groups),
            "u03,p03@x.test,\" Ann \",active,workspace_member;workspace_member;billing_admin;source_admin,\
             Everyone;=Ops,,true,true,2023-11-14T22:13:20Z,2023-11-14T22:15:00Z\r\n"
        );
    }

    #[test]
    fn each_effective_role_is_listed_once_with_every_source_and_only_the_members_groups_count() {
        let groups = [
            group("g1", "Everyone", &["workspace_member", "billing_admin"]),
            group("g2", "Admins", &["workspace_member"]),
            group("g3", "Not hers", &["workspace_owner"]),
        ];
        let direct = [Policy::workspace("workspace_member")];
        let ids = ["g1".to_string(), "g2".to_string()];
        let roles = sourced_roles(&direct, &ids, &groups);
        assert_eq!(roles.len(), 2, "{roles:?}");
        assert_eq!(roles[0].policy, Policy::workspace("workspace_member"));
        assert_eq!(
            roles[0].sources,
            vec![
                RoleSource::Direct,
                RoleSource::Group("Everyone".into()),
                RoleSource::Group("Admins".into()),
            ]
        );
        assert_eq!(roles[1].policy, Policy::workspace("billing_admin"));
        assert_eq!(roles[1].sources, vec![RoleSource::Group("Everyone".into())]);
        assert!(sourced_roles(&[], &[], &groups).is_empty());
    }
}
