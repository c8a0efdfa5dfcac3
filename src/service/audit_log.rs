//! A workspace's audit log for its owners: listed a page at a time with
//! filters, or whole as CSV.

use super::{Core, Ctx};
use crate::domain::csv;
use crate::domain::model::AuditEvent;
use crate::domain::DomainError;
use crate::store::AuditFilter;
use serde::Deserialize;

pub use super::audit_words::{describe, user_ids, Names, ACTIONS};

/// The filters and paging of an audit log request.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// The event's target (an id, an email, a domain...); an email of a
    /// user also finds the events whose target is that user's id.
    pub target: Option<String>,
    /// RFC 3339 or Unix seconds.
    pub since: Option<String>,
    pub until: Option<String>,
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<i64>, DomainError> {
    let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| {
            DomainError::Invalid(format!(
                "{name}: use RFC 3339 (2026-01-31T12:00:00Z) or Unix seconds"
            ))
        })
}

impl AuditQuery {
    /// The store's filter; `Invalid` naming `since` or `until` when a time
    /// cannot be read.
    pub fn filter(&self) -> Result<AuditFilter, DomainError> {
        Ok(AuditFilter {
            actor_id: self.actor.clone(),
            action: self.action.clone(),
            targets: self.target.clone().into_iter().collect(),
            since: parse_time("since", &self.since)?,
            until: parse_time("until", &self.until)?,
        })
    }
}

/// The cursor that continues after this event.
fn cursor_after(e: &AuditEvent) -> String {
    crate::store::sql_access::encode_cursor(&[&e.time.to_string(), &e.id])
}

/// The filter with, for a target that is a user's email, that user's id
/// too (member events name the user by id).
async fn widen(core: &Core, filter: &AuditFilter) -> Result<AuditFilter, DomainError> {
    let mut out = filter.clone();
    for t in &filter.targets {
        if t.contains('@') {
            if let Some(u) = core.store.user_by_email(t).await? {
                out.targets.push(u.id);
            }
        }
    }
    Ok(out)
}

/// Up to `limit` events after `cursor` (owners), and the cursor of the
/// next page when there is one.
pub async fn list(
    core: &Core,
    ctx: &Ctx,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<AuditEvent>, Option<String>), DomainError> {
    ctx.require_owner()?;
    let filter = &widen(core, filter).await?;
    let rows = core
        .store
        .list_audit(&ctx.ws.id, filter, cursor, limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(cursor_after)
    } else {
        None
    };
    Ok((page, next))
}

/// An event and its sentence.
pub struct Line {
    pub event: AuditEvent,
    pub text: String,
}

/// A page of events in plain words (owners): [`list`], with the people,
/// tokens, groups and connections they mention looked up once for the
/// page.
pub async fn lines(
    core: &Core,
    ctx: &Ctx,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<Line>, Option<String>), DomainError> {
    let (events, next) = list(core, ctx, filter, cursor, limit).await?;
    let names = names_for(core, ctx, &events).await?;
    let lines = events
        .into_iter()
        .map(|event| Line {
            text: describe(&event, &names),
            event,
        })
        .collect();
    Ok((lines, next))
}

/// What `events` mention, by id: one query for the users, one each for the
/// tokens, groups and connections.
async fn names_for(core: &Core, ctx: &Ctx, events: &[AuditEvent]) -> Result<Names, DomainError> {
    let mut ids: Vec<String> = events.iter().flat_map(user_ids).collect();
    ids.sort();
    ids.dedup();
    let mut names = Names {
        users: core.store.user_emails(&ids).await?.into_iter().collect(),
        ..Names::default()
    };
    // Revoked tokens are no longer listed: their creation event says what
    // they were called.
    for e in events {
        if let (Some(id), Some(d)) = (&e.target, e.details.get("description")) {
            if e.action.ends_with("token.created") {
                let d = d.as_str().unwrap_or_default().to_string();
                names.tokens.insert(id.clone(), d);
            }
        }
    }
    for kind in ["api", "scim"] {
        for t in core.store.list_tokens(&ctx.ws.id, kind).await? {
            names.tokens.insert(t.id, t.description);
        }
    }
    for g in core
        .store
        .list_groups_without_member_ids(&ctx.ws.id)
        .await?
    {
        names.groups.insert(g.id, g.name);
    }
    for c in core.store.list_connections(&ctx.ws.id).await? {
        names.connections.insert(c.id, c.name);
    }
    Ok(names)
}

pub const CSV_HEADER: [&str; 10] = [
    "id",
    "time",
    "workspace",
    "actor_type",
    "actor_id",
    "actor_email",
    "action",
    "target",
    "ip",
    "details",
];

/// One CSV record for an event of the workspace `slug`.
pub fn csv_record(e: &AuditEvent, slug: &str) -> String {
    csv::row(&[
        e.id.clone(),
        crate::clock::rfc3339(e.time),
        slug.to_string(),
        e.actor.kind.clone(),
        e.actor.id.clone().unwrap_or_default(),
        e.actor.email.clone().unwrap_or_default(),
        e.action.clone(),
        e.target.clone().unwrap_or_default(),
        e.ip.clone().unwrap_or_default(),
        e.details.to_string(),
    ])
}

/// Every event that passes the filter, as CSV with a header (owners).
pub async fn csv(core: &Core, ctx: &Ctx, filter: &AuditFilter) -> Result<String, DomainError> {
    ctx.require_owner()?;
    let filter = &widen(core, filter).await?;
    let mut out = csv::row(&CSV_HEADER);
    let mut cursor: Option<String> = None;
    loop {
        let rows = core
            .store
            .list_audit(&ctx.ws.id, filter, cursor.as_deref(), 500)
            .await?;
        for e in &rows {
            out.push_str(&csv_record(e, &ctx.ws.slug));
        }
        if rows.len() < 500 {
            return Ok(out);
        }
        cursor = rows.last().map(cursor_after);
    }
}

#[cfg(test)]
mod tests {
    use super::AuditQuery;

    fn query(since: &str, until: &str) -> AuditQuery {
        AuditQuery {
            cursor: None,
            limit: None,
            actor: None,
            action: None,
            target: None,
            since: Some(since.into()),
            until: Some(until.into()),
        }
    }

    #[test]
    fn times_are_rfc3339_or_unix_seconds_and_errors_name_the_field() {
        let f = query("2026-01-31T12:00:00Z", "1700000000")
            .filter()
            .unwrap();
        assert_eq!(f.since, Some(1_769_860_800));
        assert_eq!(f.until, Some(1_700_000_000));
        assert!(query("", "").filter().unwrap().since.is_none());
        let e = query("yesterday", "").filter().unwrap_err();
        assert!(e.to_string().starts_with("since:"), "{e}");
        let e = query("1", "soon").filter().unwrap_err();
        assert!(e.to_string().starts_with("until:"), "{e}");
    }
}
