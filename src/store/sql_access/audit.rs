//! The audit log: list with filters and cursor, purge by age.

use super::*;

fn audit_from(r: &AnyRow) -> StoreResult<AuditEvent> {
    let details: String = r.try_get("details")?;
    Ok(AuditEvent {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        time: r.try_get("time")?,
        actor: Actor {
            kind: r.try_get("actor_type")?,
            id: r.try_get("actor_id")?,
            email: r.try_get("actor_email")?,
        },
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        ip: r.try_get("ip")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
    })
}

pub(super) async fn list_audit(
    s: &SqlStore,
    workspace_id: &str,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: i64,
) -> StoreResult<Vec<AuditEvent>> {
    let mut binds = vec![Bind::S(workspace_id.to_string())];
    let mut wheres = vec!["workspace_id = $1".to_string()];
    if let Some(c) = cursor {
        let parts = decode_cursor(c)?;
        let (Some(t), Some(id)) = (
            parts.first().and_then(|t| t.parse::<i64>().ok()),
            parts.get(1),
        ) else {
            return Err(StoreError::Invalid("malformed cursor".into()));
        };
        binds.push(Bind::I(t));
        binds.push(Bind::S(id.clone()));
        let (a, b) = (binds.len() - 1, binds.len());
        wheres.push(format!("(time < ${a} OR (time = ${a} AND id < ${b}))"));
    }
    if let Some(a) = &filter.actor_id {
        binds.push(Bind::S(a.clone()));
        let n = binds.len();
        wheres.push(format!("(actor_id = ${n} OR actor_email = ${n})"));
    }
    if let Some(a) = &filter.action {
        binds.push(Bind::S(a.clone()));
        wheres.push(format!("action = ${}", binds.len()));
    }
    if !filter.targets.is_empty() {
        let mut marks = Vec::new();
        for t in &filter.targets {
            binds.push(Bind::S(t.clone()));
            marks.push(format!("${}", binds.len()));
        }
        wheres.push(format!("target IN ({})", marks.join(", ")));
    }
    if let Some(t) = filter.since {
        binds.push(Bind::I(t));
        wheres.push(format!("time >= ${}", binds.len()));
    }
    if let Some(t) = filter.until {
        binds.push(Bind::I(t));
        wheres.push(format!("time < ${}", binds.len()));
    }
    binds.push(Bind::I(limit));
    let sql = format!(
        "SELECT id, workspace_id, time, actor_type, actor_id, actor_email, action, target, ip, details FROM audit_events WHERE {} ORDER BY time DESC, id DESC LIMIT ${}",
        wheres.join(" AND "),
        binds.len()
    );
    let rows = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(s.read())
        .await?;
    rows.iter().map(audit_from).collect()
}

pub(super) async fn user_emails(
    s: &SqlStore,
    ids: &[String],
) -> StoreResult<Vec<(String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let binds: Vec<Bind> = ids.iter().map(|i| Bind::S(i.clone())).collect();
    let marks: Vec<String> = (1..=binds.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "SELECT id, email FROM users WHERE id IN ({})",
        marks.join(", ")
    );
    let rows = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(s.read())
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("email")?)))
        .collect()
}

pub(super) async fn purge_audit(s: &SqlStore, workspace_id: &str, before: i64) -> StoreResult<u64> {
    let done = sqlx::query("DELETE FROM audit_events WHERE workspace_id = $1 AND time < $2")
        .bind(workspace_id)
        .bind(before)
        .execute(s.write())
        .await?;
    s.db().durable().await?;
    Ok(done.rows_affected())
}
