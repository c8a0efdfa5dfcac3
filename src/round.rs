//! One round of a batch (see `session::batch` and `store::audit_batch`):
//! many callers wait for one outcome, which a task of the batch's own sets
//! once. Waiting costs no allocation per caller: everyone in a round shares
//! the outcome and one wake-up list.

use std::sync::OnceLock;
use tokio::sync::Notify;

pub(crate) struct Round<T> {
    outcome: OnceLock<T>,
    done: Notify,
}

impl<T> Default for Round<T> {
    fn default() -> Self {
        Self {
            outcome: OnceLock::new(),
            done: Notify::new(),
        }
    }
}

impl<T> Round<T> {
    /// Sets the outcome and wakes everyone waiting. Set once: a round that
    /// already has its outcome keeps it.
    pub(crate) fn finish(&self, outcome: T) {
        let _ = self.outcome.set(outcome);
        self.done.notify_waiters();
    }

    /// The outcome, once the round has finished.
    pub(crate) async fn outcome(&self) -> Option<&T> {
        let done = self.done.notified();
        tokio::pin!(done);
        // Registered before looking, so a round finishing in between still
        // wakes us.
        done.as_mut().enable();
        if self.outcome.get().is_none() {
            done.await;
        }
        self.outcome.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn everyone_waiting_gets_the_first_outcome_set() {
        let round = Arc::new(Round::<u32>::default());
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let round = round.clone();
                tokio::spawn(async move { round.outcome().await.copied() })
            })
            .collect();
        tokio::task::yield_now().await;
        round.finish(7);
        round.finish(8);
        for w in waiters {
            assert_eq!(w.await.unwrap(), Some(7));
        }
        // A caller that comes after the outcome gets it at once.
        assert_eq!(round.outcome().await, Some(&7));
    }
}
