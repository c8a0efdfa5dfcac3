//! Back-channel logout delivery (OpenID Connect Back-Channel Logout 1.0).
//!
//! Ending a session queues one row per app to tell in `oidc_logouts`, in the
//! transaction that ends the grants ([`super::op::grants_ended`]); this
//! loop delivers them in the background, so a logout never waits for an
//! app. Each attempt signs a fresh logout token and POSTs it; a non-2xx
//! answer, a timeout or a refused connection is retried with exponential
//! backoff, up to [`MAX_ATTEMPTS`]. Rows survive a restart, and several
//! instances share the outbox: an instance leases a row before its attempt.
//! Every delivery and every give-up is in the audit log; the counts are in
//! `/metrics`.

use super::Core;
use crate::domain::model::Actor;
use crate::store::oidc::PendingLogout;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Attempts before a logout is given up (backoff 1 s doubling, at most
/// [`MAX_BACKOFF`]: about half an hour in all).
pub const MAX_ATTEMPTS: i64 = 12;
const MAX_BACKOFF: i64 = 300;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// A leased row is tried again after this if its instance died mid-attempt.
const LEASE: i64 = 30;
/// How often the outbox is looked at without a wake-up (retries, other
/// instances' rows, rows left by a previous run).
const POLL: Duration = Duration::from_secs(1);
const BATCH: i64 = 32;
/// A logout token's lifetime.
const TOKEN_TTL: i64 = 120;

pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The wait before attempt `attempts + 1`.
pub fn backoff(attempts: i64) -> i64 {
    1i64.checked_shl(attempts.clamp(0, 30) as u32)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

/// Starts the delivery loop of this instance; it ends when the core is
/// dropped.
pub fn spawn(core: &Arc<Core>) {
    let weak = Arc::downgrade(core);
    let wake = core.logouts.clone();
    let allow_private = core.cfg.oidc_backchannel_private;
    tokio::spawn(async move {
        let mut builder = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        let client = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "back-channel logout delivery cannot start");
                return;
            }
        };
        let mut last_prune = None;
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        loop {
            match weak.upgrade() {
                Some(core) => {
                    deliver_due(&core, &client, &slots).await;
                    prune(&core, &mut last_prune).await;
                }
                None => return,
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

/// How long spent codes and tokens, ended grants and finished logouts are
/// kept (a refresh-token reuse is recognised while its row exists).
const KEEP: i64 = 30 * 24 * 3600;
const PRUNE_EVERY: i64 = 3600;

/// Deletes the OpenID Provider's dead rows, at most once an hour.
async fn prune(core: &Core, last: &mut Option<i64>) {
    let now = core.clock.now();
    if last.is_some_and(|at| now - at < PRUNE_EVERY) {
        return;
    }
    *last = Some(now);
    match core.store.prune_oidc(now - KEEP).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "old OpenID Provider rows deleted"),
        Err(e) => tracing::warn!(error = %e, "pruning OpenID Provider rows failed"),
    }
}

/// Attempts in flight at once, per instance.
const IN_FLIGHT: usize = 64;

async fn deliver_due(
    core: &Arc<Core>,
    client: &reqwest::Client,
    slots: &Arc<tokio::sync::Semaphore>,
) {
    let now = core.clock.now();
    let due = match core.store.due_logouts(now, BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "back-channel logout outbox unreadable");
            return;
        }
    };
    // Attempts run on their own: the next look at the outbox does not wait
    // for a slow app (its rows are leased meanwhile).
    for l in due {
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            return;
        };
        match core.store.claim_logout(&l, now + LEASE).await {
            Ok(true) => {
                let (core, client) = (core.clone(), client.clone());
                tokio::spawn(async move {
                    attempt(&core, &client, l).await;
                    drop(slot);
                });
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "back-channel logout lease failed"),
        }
    }
}

/// Resolves names to public addresses only, so that a name pointing into
/// the gateway's own network (or re-pointed there after registration) is
/// never posted to.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> = found
                .filter(|a| super::oidc_clients::public_ip(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

async fn attempt(core: &Core, client: &reqwest::Client, l: PendingLogout) {
    let allowed =
        super::oidc_clients::check_backchannel_uri(&l.uri, core.cfg.oidc_backchannel_private)
            .map_err(|_| "the address is not a public https URL".to_string());
    let result = match allowed.and_then(|()| logout_token(core, &l)) {
        Ok(token) => post(client, &l.uri, &token).await,
        Err(e) => Err(e),
    };
    let now = core.clock.now();
    let tries = l.attempts + 1;
    let outcome = match result {
        Ok(()) => {
            let event = entry(
                &l,
                "oidc.logout_delivered",
                json!({"user_id": l.sub, "sid": l.sid, "attempts": tries}),
            );
            crate::audit::with_change(
                core.store.as_ref(),
                event.event(now),
                core.store.logout_delivered(&l.id, now),
            )
            .await
        }
        Err(error) if tries >= MAX_ATTEMPTS => {
            tracing::warn!(client = %l.client_id, %error, "back-channel logout given up");
            let event = entry(
                &l,
                "oidc.logout_failed",
                json!({"user_id": l.sub, "sid": l.sid, "attempts": tries, "error": error}),
            );
            crate::audit::with_change(
                core.store.as_ref(),
                event.event(now),
                core.store.logout_attempt_failed(&l.id, &error, None, now),
            )
            .await
        }
        Err(error) => {
            tracing::info!(client = %l.client_id, %error, attempt = tries, "back-channel logout will be retried");
            core.store
                .logout_attempt_failed(&l.id, &error, Some(now + backoff(l.attempts)), now)
                .await
        }
    };
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "back-channel logout outcome not recorded");
    }
}

fn entry<'a>(
    l: &'a PendingLogout,
    action: &'a str,
    details: serde_json::Value,
) -> crate::audit::Entry<'a> {
    crate::audit::Entry {
        workspace_id: Some(&l.workspace_id),
        actor: Actor::system(),
        action,
        target: Some(&l.client_id),
        ip: None,
        details,
    }
}

/// The logout token for one app: `iss`, `aud`, `iat`, `exp`, `jti`, `sub`,
/// `sid`, `events`, and no `nonce`.
fn logout_token(core: &Core, l: &PendingLogout) -> Result<String, String> {
    let now = core.clock.now();
    let claims = json!({
        "iss": core.cfg.public_url,
        "aud": l.client_id,
        "iat": now,
        "exp": now + TOKEN_TTL,
        "jti": l.id,
        "sub": l.sub,
        "sid": l.sid,
        "events": {EVENT: {}},
    });
    core.signer.sign(&claims).map_err(|e| e.to_string())
}

async fn post(client: &reqwest::Client, uri: &str, token: &str) -> Result<(), String> {
    let resp = client
        .post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cache-control", "no-cache")
        .body(format!("logout_token={}", urlencode(token)))
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "the app did not answer in time".to_string()
            } else {
                "the app could not be reached".to_string()
            }
        })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("the app answered HTTP {}", resp.status().as_u16()))
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let waits: Vec<i64> = (0..12).map(backoff).collect();
        assert_eq!(&waits[..5], &[1, 2, 4, 8, 16]);
        assert_eq!(waits[11], 300);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }
}
