//! Writing audit events.
//!
//! A change and its audit event commit together: [`bound`] runs a change
//! with its event pending, and the store writes the pending event inside the
//! transaction that commits the change ([`take_pending`], called by the SQL
//! store's commit). If the audit insert fails, the change is rolled back; if
//! the change fails, no event is written. An event still pending when the
//! change returned (the change wrote nothing: a no-op) is written on its own.
//!
//! Events that record no change (a sign-in, an export) go through
//! [`record`]: best effort, a failure is logged loudly.

use crate::domain::model::{Actor, AuditEvent};
use crate::store::Store;
use serde_json::Value;
use std::cell::RefCell;
use std::future::Future;

pub struct Entry<'a> {
    pub workspace_id: Option<&'a str>,
    pub actor: Actor,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub ip: Option<String>,
    pub details: Value,
}

impl Entry<'_> {
    /// The event this entry describes, at `now`.
    pub fn event(self, now: i64) -> AuditEvent {
        AuditEvent {
            // Time-ordered: events of the same second list in the order
            // they were made (the log orders by time, then id).
            id: uuid::Uuid::now_v7().to_string(),
            workspace_id: self.workspace_id.map(str::to_string),
            time: now,
            actor: self.actor,
            action: self.action.to_string(),
            target: self.target.map(str::to_string),
            ip: self.ip,
            details: self.details,
        }
    }
}

tokio::task_local! {
    /// The audit event of the change running in this task, until the
    /// store's commit takes it.
    static PENDING: RefCell<Option<AuditEvent>>;
}

/// Runs `change` with `event` pending, so that the store commits it with
/// the change. Returns the change's output and the event if nothing took it.
pub async fn bound<F: Future>(event: AuditEvent, change: F) -> (F::Output, Option<AuditEvent>) {
    PENDING
        .scope(RefCell::new(Some(event)), async {
            let out = change.await;
            (out, take_pending())
        })
        .await
}

/// Runs a change with its event bound to it ([`bound`]); if the change
/// wrote nothing (a no-op) the event is written on its own.
pub async fn with_change<T, F>(
    store: &dyn Store,
    event: AuditEvent,
    change: F,
) -> Result<T, crate::store::StoreError>
where
    F: Future<Output = Result<T, crate::store::StoreError>>,
{
    let (out, unwritten) = bound(event, change).await;
    let out = out?;
    if let Some(event) = unwritten {
        write(store, &event).await;
    }
    Ok(out)
}

/// The pending event, taken (the store writes it in the transaction it is
/// about to commit), completed with what only the change learnt: `created`
/// names the row it created (the event's target when it had none), and
/// `facts` (a JSON object) join the event's details.
pub fn take_pending_for(created: Option<&str>, facts: Option<Value>) -> Option<AuditEvent> {
    PENDING
        .try_with(|p| p.borrow_mut().take())
        .ok()
        .flatten()
        .map(|mut e| {
            if e.target.is_none() {
                e.target = created.map(str::to_string);
            }
            if let (Some(Value::Object(facts)), Value::Object(details)) = (facts, &mut e.details) {
                details.extend(facts);
            }
            e
        })
}

/// [`take_pending_for`] a change that created nothing.
pub fn take_pending() -> Option<AuditEvent> {
    take_pending_for(None, None)
}

/// Whether a change with an audit event is running in this task.
pub fn is_pending() -> bool {
    PENDING.try_with(|p| p.borrow().is_some()).unwrap_or(false)
}

/// Writes an event that records no change (best effort).
pub async fn record(store: &dyn Store, now: i64, e: Entry<'_>) {
    write(store, &e.event(now)).await;
}

/// Writes one event on its own; a failure is logged, never returned.
pub async fn write(store: &dyn Store, event: &AuditEvent) {
    if let Err(err) = store.record_audit(event).await {
        tracing::error!(error = %err, action = %event.action, "could not write an audit event");
    }
}
