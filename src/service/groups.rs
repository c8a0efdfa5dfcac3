//! User groups: their policies apply to their members.

use super::tokens::check_policies;
use super::{Core, Ctx};
use crate::domain::model::Group;
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use serde::Deserialize;
use serde_json::json;

/// A group name: 1 to 100 characters, no control characters. Length and
/// control characters are checked on the name as sent, not on what
/// trimming leaves (a form feed or a no-break space before it, say): what
/// the API documents is what it accepts.
pub fn check_name(name: &str) -> Result<(), DomainError> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(
            "name: 1 to 100 characters, no line breaks".into(),
        ));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub policies: Option<Vec<Policy>>,
}

/// The workspace's groups.
pub async fn list(core: &Core, ctx: &Ctx) -> Result<Vec<Group>, DomainError> {
    Ok(core.store.list_groups(&ctx.ws.id).await?)
}

/// One group of the workspace without its members' ids (`NotFound`
/// otherwise): what needs its name and roles, whatever its size.
pub async fn get_bare(core: &Core, ctx: &Ctx, id: &str) -> Result<Group, DomainError> {
    core.store
        .list_groups_without_member_ids(&ctx.ws.id)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or(DomainError::NotFound)
}

/// The first of `ids` that names no group of workspace `ws_id`, if any
/// (the groups' ids only: no group's members are read).
pub async fn first_unknown<'a>(
    core: &Core,
    ws_id: &str,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<Option<&'a str>, DomainError> {
    let mut ids = ids.into_iter().peekable();
    if ids.peek().is_none() {
        return Ok(None);
    }
    let known = core.store.list_groups_without_member_ids(ws_id).await?;
    Ok(ids.find(|id| !known.iter().any(|g| g.id == *id)))
}

/// How many members group `id` has in `counts` ([`crate::store::AccessStore::group_member_counts`]).
fn count_in(counts: &[(String, i64)], id: &str) -> usize {
    counts
        .iter()
        .find(|(g, _)| g == id)
        .map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0))
}

/// How many members group `id` of the workspace has, counted by the database.
pub async fn member_count(core: &Core, ctx: &Ctx, id: &str) -> Result<usize, DomainError> {
    Ok(count_in(
        &core.store.group_member_counts(&ctx.ws.id).await?,
        id,
    ))
}

/// The workspace's groups (without their members' ids), each with how many
/// members it has: counted by the database, so a group of half of a large
/// workspace costs a count, not its members' rows (the Access page).
pub async fn list_counted(core: &Core, ctx: &Ctx) -> Result<Vec<(Group, usize)>, DomainError> {
    let groups = core
        .store
        .list_groups_without_member_ids(&ctx.ws.id)
        .await?;
    let counts = core.store.group_member_counts(&ctx.ws.id).await?;
    Ok(groups
        .into_iter()
        .map(|g| {
            let n = count_in(&counts, &g.id);
            (g, n)
        })
        .collect())
}

/// One group of the workspace (`NotFound` otherwise).
pub async fn get(core: &Core, ctx: &Ctx, id: &str) -> Result<Group, DomainError> {
    core.store
        .get_group(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Checks and creates a group (owners; audited).
pub async fn create(core: &Core, ctx: &Ctx, req: NewGroup) -> Result<Group, DomainError> {
    ctx.require_owner()?;
    check_name(&req.name)?;
    check_policies(&req.policies)?;
    let name = req.name.trim();
    let details = json!({"name": name, "policies": req.policies});
    let create = core.store.create_group(
        &ctx.ws.id,
        name,
        &req.description,
        &req.policies,
        core.clock.now(),
    );
    // The event's target is the group the store creates.
    let g = ctx
        .audited(core, "group.created", None, details, create)
        .await?;
    Ok(g)
}

/// Checks and applies a change to a group (owners; audited); returns the
/// group after it.
pub async fn update(
    core: &Core,
    ctx: &Ctx,
    id: &str,
    req: GroupPatch,
) -> Result<Group, DomainError> {
    ctx.require_owner()?;
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    if let Some(p) = &req.policies {
        check_policies(p)?;
    }
    let name = req.name.as_deref().map(str::trim);
    let details = json!({"name": name, "description": req.description, "policies": req.policies});
    let change = core.store.update_group(
        &ctx.ws.id,
        id,
        name,
        req.description.as_deref(),
        req.policies.as_deref(),
    );
    ctx.audited(core, "group.updated", Some(id), details, change)
        .await?;
    get(core, ctx, id).await
}

/// Deletes a group (owners; audited); its members stay with their own roles.
pub async fn delete(core: &Core, ctx: &Ctx, id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let change = core.store.delete_group(&ctx.ws.id, id);
    ctx.audited(core, "group.deleted", Some(id), json!({}), change)
        .await
}

/// Adds (`add`) or removes a workspace member to or from a group (owners;
/// audited).
pub async fn set_member(
    core: &Core,
    ctx: &Ctx,
    id: &str,
    user_id: &str,
    add: bool,
) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let details = json!({"user_id": user_id});
    if add {
        let change = core.store.add_group_member(&ctx.ws.id, id, user_id);
        ctx.audited(core, "group.member_added", Some(id), details, change)
            .await
    } else {
        let change = core.store.remove_group_member(&ctx.ws.id, id, user_id);
        ctx.audited(core, "group.member_removed", Some(id), details, change)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_line_of_1_to_100_characters() {
        assert!(check_name("Engineering").is_ok());
        for bad in ["", "  ", "a\nb", &"x".repeat(101)] {
            let e = check_name(bad).unwrap_err().to_string();
            assert!(e.starts_with("name: "), "{bad:?}: {e}");
        }
    }
}
