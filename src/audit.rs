//! Writing audit events. A failed audit write is logged loudly; it never
//! turns a completed change into an error for the person who made it.

use crate::domain::model::{Actor, AuditEvent};
use crate::store::Store;
use serde_json::Value;

pub struct Entry<'a> {
    pub workspace_id: Option<&'a str>,
    pub actor: Actor,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub ip: Option<String>,
    pub details: Value,
}

pub async fn record(store: &dyn Store, now: i64, e: Entry<'_>) {
    let event = AuditEvent {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: e.workspace_id.map(str::to_string),
        time: now,
        actor: e.actor,
        action: e.action.to_string(),
        target: e.target.map(str::to_string),
        ip: e.ip,
        details: e.details,
    };
    if let Err(err) = store.record_audit(&event).await {
        tracing::error!(error = %err, action = %event.action, "could not write an audit event");
    }
}
