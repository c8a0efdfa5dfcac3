//! Workspace resources (id, kind, name, labels) that scoped roles refer to.

use super::{Core, Ctx};
use crate::domain::model::Resource;
use crate::domain::DomainError;
use serde_json::json;

/// Lengths in characters, as JSON Schema's maxLength counts them.
pub fn check(r: &Resource) -> Result<(), DomainError> {
    let chars = |s: &str| s.chars().count();
    let ok_text = |s: &str, max: usize| {
        !s.trim().is_empty() && chars(s) <= max && !s.chars().any(char::is_control)
    };
    if !ok_text(&r.id, 200) || !ok_text(&r.kind, 50) || chars(&r.name) > 200 {
        return Err(DomainError::Invalid(
            "id (≤200) and kind (≤50) are required; name ≤200 characters".into(),
        ));
    }
    if r.labels.iter().any(|l| !l.contains(':') || chars(l) > 200) {
        return Err(DomainError::Invalid(
            "labels: each is written key:value".into(),
        ));
    }
    Ok(())
}

pub async fn list(core: &Core, ctx: &Ctx) -> Result<Vec<Resource>, DomainError> {
    Ok(core.store.list_resources(&ctx.ws.id).await?)
}

pub async fn get(core: &Core, ctx: &Ctx, id: &str) -> Result<Resource, DomainError> {
    core.store
        .get_resource(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Registers or updates a resource (owners; audited).
pub async fn put(core: &Core, ctx: &Ctx, r: &Resource) -> Result<(), DomainError> {
    ctx.require_owner()?;
    check(r)?;
    let details = json!({"kind": r.kind, "labels": r.labels});
    let change = core.store.put_resource(&ctx.ws.id, r, core.clock.now());
    ctx.audited(core, "resource.registered", Some(&r.id), details, change)
        .await
}

/// Deletes a resource (owners; audited).
pub async fn delete(core: &Core, ctx: &Ctx, id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let change = core.store.delete_resource(&ctx.ws.id, id);
    ctx.audited(core, "resource.deleted", Some(id), json!({}), change)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(id: &str, kind: &str, labels: &[&str]) -> Resource {
        Resource {
            id: id.into(),
            kind: kind.into(),
            name: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(check(&resource("src-1", "source", &["env:prod"])).is_ok());
        let e = check(&resource(" ", "source", &[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("id "), "{e}");
        let e = check(&resource("src-1", "source", &["prod"]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("labels: "), "{e}");
    }
}
