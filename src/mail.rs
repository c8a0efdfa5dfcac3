//! Outgoing mail: every message is written to the outbox table first (so
//! nothing is lost), then sent through SMTP with lettre. With no
//! `mail.smtp_url`, messages go to the log and stay in the outbox.

use crate::clock::Clock;
use crate::config::MailConfig;
use crate::store::{OutboxMail, Store};
use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use std::sync::Arc;

#[derive(Clone)]
pub struct Mailer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    from: Option<Mailbox>,
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
}

impl Mailer {
    pub fn new(
        cfg: &MailConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, MailError> {
        let from = cfg
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Config(format!("mail.from: {e}")))?;
        let transport = if cfg.smtp_url.is_empty() {
            None
        } else {
            Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&cfg.smtp_url)
                    .map_err(|e| MailError::Config(format!("mail.smtp_url: {e}")))?
                    .timeout(Some(std::time::Duration::from_secs(10)))
                    .build(),
            )
        };
        Ok(Self {
            store,
            clock,
            from: Some(from),
            transport,
        })
    }

    /// Queues a message and sends it in the background.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let mail = OutboxMail {
            id: uuid::Uuid::new_v4().to_string(),
            to: to.to_string(),
            subject: subject.to_string(),
            body: body.to_string(),
            created_at: self.clock.now(),
        };
        self.store.enqueue_mail(&mail).await?;
        let me = self.clone();
        tokio::spawn(async move { me.deliver(mail).await });
        Ok(())
    }

    async fn deliver(&self, mail: OutboxMail) {
        let Some(transport) = &self.transport else {
            tracing::info!(to = %mail.to, subject = %mail.subject, body = %mail.body, "mail (no smtp_url configured; kept in the outbox)");
            return;
        };
        let result = match (self.from.clone(), mail.to.parse::<Mailbox>()) {
            (Some(from), Ok(to)) => match Message::builder()
                .from(from)
                .to(to)
                .subject(mail.subject.clone())
                .body(mail.body.clone())
            {
                Ok(msg) => transport
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            (_, Err(e)) => Err(format!("bad recipient: {e}")),
            (None, _) => Err("no sender".into()),
        };
        let outcome = match &result {
            Ok(()) => self.store.mail_sent(&mail.id, self.clock.now()).await,
            Err(e) => {
                tracing::warn!(to = %mail.to, error = %e, "sending mail failed; kept in the outbox");
                self.store.mail_failed(&mail.id, e).await
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "updating the outbox failed");
        }
    }
}
