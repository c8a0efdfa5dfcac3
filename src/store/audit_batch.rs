//! Audit events recorded on their own (outside a transaction) are written
//! in batches: an event recorded while a batch is being written joins the
//! next one, and one multi-row `INSERT` writes each batch. A caller still
//! returns only once the batch holding its event is committed, so what a
//! request recorded is in the database before its answer leaves, as with
//! one statement per event; what changes is the number of statements the
//! single writer runs when many requests record at once (issue 16: a
//! SAML sign-in's audit event was about a sixth of its cost at 16
//! connections).
//!
//! The batches are written by a task of their own, so a request that goes
//! away (a client that disconnects) never leaves the others waiting. A
//! batch is written all or none and fails as a whole: every caller in it
//! gets the error (which `audit::write` logs, as before).

use super::sql::{insert_audit_rows, Db};
use super::StoreError;
use crate::domain::model::AuditEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One batch: its outcome, once known, and everyone waiting for it.
type Batch = crate::round::Round<Result<(), String>>;

#[derive(Default)]
struct Pending {
    /// A task is writing batches (and will take `events` next).
    writing: bool,
    events: Vec<AuditEvent>,
    /// The batch `events` will be written in.
    batch: Arc<Batch>,
}

#[derive(Default)]
pub struct AuditBatcher {
    pending: Mutex<Pending>,
    /// Statements written so far (for tests).
    statements: AtomicU64,
}

impl AuditBatcher {
    /// Writes `event` with whatever else is recorded meanwhile; returns
    /// once its batch is committed (not yet synced: the caller waits for
    /// durability as after any write).
    pub async fn record(self: &Arc<Self>, db: &Db, event: &AuditEvent) -> Result<(), StoreError> {
        let batch = {
            let mut p = self.lock()?;
            p.events.push(event.clone());
            if !p.writing {
                p.writing = true;
                tokio::spawn(Writer::new(self.clone()).run(db.clone()));
            }
            p.batch.clone()
        };
        match batch.outcome().await {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(StoreError::Unavailable(e.clone())),
            None => Err(StoreError::Unavailable(
                "the audit writer stopped before writing the event".into(),
            )),
        }
    }

    /// Multi-row statements written so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Pending>, StoreError> {
        self.pending
            .lock()
            .map_err(|_| StoreError::Other("the audit batch is poisoned".into()))
    }
}

/// The task writing batches until none is pending. If it ends any other
/// way (a panic, the runtime shutting down), its drop fails the batch in
/// hand and those waiting, and lets the next event start a new writer.
struct Writer {
    batcher: Arc<AuditBatcher>,
    in_hand: Option<Arc<Batch>>,
    finished: bool,
}

impl Writer {
    fn new(batcher: Arc<AuditBatcher>) -> Self {
        Self {
            batcher,
            in_hand: None,
            finished: false,
        }
    }

    async fn run(mut self, db: Db) {
        loop {
            let events = {
                let Ok(mut p) = self.batcher.lock() else {
                    return;
                };
                if p.events.is_empty() {
                    p.writing = false;
                    self.finished = true;
                    return;
                }
                self.in_hand = Some(std::mem::take(&mut p.batch));
                std::mem::take(&mut p.events)
            };
            let outcome = insert_audit_rows(&db, &events, &self.batcher.statements).await;
            if let Some(batch) = self.in_hand.take() {
                batch.finish(outcome.map_err(|e| e.to_string()));
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let stopped = || Err("the audit writer stopped".to_string());
        if let Some(batch) = self.in_hand.take() {
            batch.finish(stopped());
        }
        if self.finished {
            return;
        }
        let Ok(mut p) = self.batcher.lock() else {
            return;
        };
        p.writing = false;
        p.events.clear();
        let batch = std::mem::take(&mut p.batch);
        drop(p);
        batch.finish(stopped());
    }
}
