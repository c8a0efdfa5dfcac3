//! The OpenID Connect relying party against a hostile provider (forged or
//! unsigned ID tokens, wrong issuer/audience/nonce/time, key rotation,
//! userinfo mismatch, bad state, RFC 9207 `iss`): every fault refused with
//! its status class, the honest provider accepted.

use crate::oidc_fixture::*;
use iam_gateway::clock::Clock;
use iam_gateway::connectors::oidc::{
    CallbackParams, OidcConnector, OidcError, JWKS_REFETCH_INTERVAL_SECS, PENDING_TTL_SECS,
};
use iam_gateway::connectors::ExternalIdentity;
use std::sync::Arc;
use std::time::Duration;

/// One full sign-in against a provider committing `m`.
async fn sign_in_with(m: Misbehaviour) -> (Fixture, Result<ExternalIdentity, OidcError>) {
    let fx = Fixture::start(m).await;
    let clock = clock();
    let rp = fx.connector(&clock);
    let (pending, params) = fx.sign_in(&rp).await;
    let result = rp.complete(&pending, &params).await;
    (fx, result)
}

#[track_caller]
fn assert_refused(
    result: Result<ExternalIdentity, OidcError>,
    status: u16,
    reason_contains: &str,
) -> OidcError {
    let err = match result {
        Ok(id) => panic!("accepted, but should be refused with {status}: {id:?}"),
        Err(e) => e,
    };
    assert_eq!(err.status(), status, "{err:?}");
    assert!(
        err.reason().contains(reason_contains),
        "reason {:?} lacks {reason_contains:?}",
        err.reason()
    );
    err
}

fn expected_identity(fx: &Fixture) -> ExternalIdentity {
    ExternalIdentity {
        issuer: fx.issuer.clone(),
        subject: SUBJECT.into(),
        email: Some(EMAIL.into()),
        email_verified: true,
        name: Some("Ada Lovelace (userinfo)".into()),
        groups: vec!["engineering".into(), "admins".into()],
        amr: vec!["pwd".into(), "otp".into()],
    }
}

// ---- the happy paths ----------------------------------------------------

#[tokio::test]
async fn honest_provider_es256_yields_the_identity_merged_with_userinfo() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let clock = clock();
    let rp = Arc::new(fx.connector(&clock));
    let (pending, params) = fx.sign_in(&rp).await;
    // complete() is Send: it can run on any worker of the gateway.
    let task = {
        let rp = rp.clone();
        tokio::spawn(async move { rp.complete(&pending, &params).await })
    };
    let id = task.await.unwrap().unwrap();
    assert_eq!(id, expected_identity(&fx));
    assert_eq!(fx.discovery_fetches(), 1);
    assert_eq!(fx.jwks_fetches(), 1);
    assert_eq!(fx.token_requests(), 1);
    assert_eq!(fx.userinfo_requests(), 1);

    // A second sign-in uses the cached discovery document and keys.
    let (pending, params) = fx.sign_in(&rp).await;
    rp.complete(&pending, &params).await.unwrap();
    assert_eq!(fx.discovery_fetches(), 1);
    assert_eq!(fx.jwks_fetches(), 1);
}

#[tokio::test]
async fn honest_provider_rs256_is_accepted() {
    let (fx, result) = sign_in_with(Misbehaviour::Rs256).await;
    assert_eq!(result.unwrap(), expected_identity(&fx));
}

#[tokio::test]
async fn without_userinfo_endpoint_the_id_token_claims_are_used() {
    let (fx, result) = sign_in_with(Misbehaviour::NoUserinfo).await;
    let id = result.unwrap();
    assert_eq!(fx.userinfo_requests(), 0);
    assert_eq!(id.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(id.groups, vec!["from-id-token".to_string()]);
    assert_eq!(id.email.as_deref(), Some(EMAIL));
    assert!(id.email_verified);
}

// ---- 14: alg none, bad signature, HS256 with the public key -------------

#[tokio::test]
async fn case14_alg_none_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::AlgNone).await;
    assert_refused(r, 401, "not signed");
}

#[tokio::test]
async fn case14_bad_signature_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::BadSignature).await;
    assert_refused(r, 401, "signature is not valid");
}

#[tokio::test]
async fn case14_hs256_keyed_with_the_public_key_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::Hs256WithPublicKey).await;
    assert_refused(r, 401, "algorithm that is not allowed");
}

// ---- 15: issuer and audience ------------------------------------------

#[tokio::test]
async fn case15_id_token_from_another_issuer_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::IdTokenIssWrong).await;
    assert_refused(r, 401, "another issuer");
}

#[tokio::test]
async fn case15_discovery_naming_another_issuer_is_refused() {
    let fx = Fixture::start(Misbehaviour::DiscoveryIssuerMismatch).await;
    let rp = fx.connector(&clock());
    let err = rp.begin(None).await.unwrap_err();
    assert!(matches!(err, OidcError::Discovery(_)), "{err:?}");
    assert_eq!(err.status(), 502);
    assert!(err.reason().contains("another issuer"), "{}", err.reason());
    assert_eq!(
        fx.jwks_fetches(),
        0,
        "keys of a mismatched issuer are not fetched"
    );

    // A callback for this connector is refused too (no document to trust).
    let pending = iam_gateway::connectors::oidc::PendingAuth {
        state: "s".into(),
        nonce: "n".into(),
        pkce_verifier: "v".into(),
        created_at: clock().now(),
        issuer: fx.issuer.clone(),
        client_id: CLIENT_ID.into(),
        redirect_uri: REDIRECT_URI.into(),
    };
    let params = CallbackParams {
        code: Some("c".into()),
        state: Some("s".into()),
        ..Default::default()
    };
    let err = rp.complete(&pending, &params).await.unwrap_err();
    assert_eq!(err.status(), 502);
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case15_missing_audience_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::AudMissing).await;
    // openidconnect reads a missing `aud` as no audience at all.
    assert_refused(r, 401, "meant for another client");
}

#[tokio::test]
async fn case15_wrong_audience_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::AudWrong).await;
    assert_refused(r, 401, "meant for another client");
}

#[tokio::test]
async fn case15_several_audiences_without_azp_are_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::SeveralAudNoAzp).await;
    assert_refused(r, 401, "several audiences");
}

#[tokio::test]
async fn case15_several_audiences_with_another_azp_are_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::SeveralAudOtherAzp).await;
    assert_refused(r, 401, "another client (azp)");
}

#[tokio::test]
async fn case15_several_audiences_with_our_azp_are_accepted() {
    let (fx, r) = sign_in_with(Misbehaviour::SeveralAudWithAzp).await;
    assert_eq!(r.unwrap(), expected_identity(&fx));
}

// ---- 16: nonce, exp, iat, sub ------------------------------------------

#[tokio::test]
async fn case16_wrong_nonce_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::NonceWrong).await;
    assert_refused(r, 401, "nonce");
}

#[tokio::test]
async fn case16_missing_nonce_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::NonceMissing).await;
    assert_refused(r, 401, "nonce");
}

#[tokio::test]
async fn case16_nonce_replayed_from_another_sign_in_is_refused() {
    let fx = Fixture::start(Misbehaviour::NonceReplayed).await;
    let clock = clock();
    let rp = fx.connector(&clock);
    // The first sign-in gets its own nonce back...
    let (pending, params) = fx.sign_in(&rp).await;
    rp.complete(&pending, &params).await.unwrap();
    // ...the second gets the first one's.
    let (pending, params) = fx.sign_in(&rp).await;
    assert_refused(rp.complete(&pending, &params).await, 401, "nonce");
}

#[tokio::test]
async fn case16_expired_id_token_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::Expired).await;
    assert_refused(r, 401, "expired");
}

#[tokio::test]
async fn case16_expiry_is_judged_by_the_injected_clock() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let clock = clock();
    let rp = fx.connector(&clock);
    let (pending, params) = fx.sign_in(&rp).await;
    // The token lives 300 s; 400 s later on our clock (still within the
    // pending sign-in's 600 s) it has expired even with the skew allowance.
    clock.advance(Duration::from_secs(400));
    assert_refused(rp.complete(&pending, &params).await, 401, "expired");
}

#[tokio::test]
async fn case16_missing_iat_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::IatMissing).await;
    assert_refused(r, 401, "lacks the `iat` claim");
}

#[tokio::test]
async fn case16_iat_in_the_future_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::IatInFuture).await;
    assert_refused(r, 401, "expired or is not yet valid");
}

#[tokio::test]
async fn case16_missing_sub_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::SubMissing).await;
    assert_refused(r, 401, "lacks the `sub` claim");
}

// ---- 17: keys ----------------------------------------------------------

#[tokio::test]
async fn case17_key_rotation_refetches_once_and_the_refetch_is_rate_limited() {
    let fx = Fixture::start(Misbehaviour::RotateKey).await;
    let clock = clock();
    let rp = fx.connector(&clock);

    // Discovery fetched the old key; the token is signed with the new one:
    // one re-fetch, then accepted.
    let (pending, params) = fx.sign_in(&rp).await;
    assert_eq!(fx.jwks_fetches(), 1);
    let id = rp.complete(&pending, &params).await.unwrap();
    assert_eq!(id.subject, SUBJECT);
    assert_eq!(fx.jwks_fetches(), 2, "exactly one re-fetch");

    // The new key is now cached: no fetch for the next sign-in.
    let (pending, params) = fx.sign_in(&rp).await;
    rp.complete(&pending, &params).await.unwrap();
    assert_eq!(fx.jwks_fetches(), 2);

    // Another unknown kid within the rate-limit window: refused, and no
    // further fetch.
    fx.set(Misbehaviour::UnpublishedKid);
    let (pending, params) = fx.sign_in(&rp).await;
    assert_refused(
        rp.complete(&pending, &params).await,
        401,
        "key the issuer does not publish",
    );
    assert_eq!(fx.jwks_fetches(), 2, "rate limited: no second re-fetch");

    // Once the window has passed, an unknown kid may re-fetch again (and
    // is still refused, the key is not published).
    clock.advance(Duration::from_secs(JWKS_REFETCH_INTERVAL_SECS as u64 + 1));
    let (pending, params) = fx.sign_in(&rp).await;
    assert_refused(
        rp.complete(&pending, &params).await,
        401,
        "key the issuer does not publish",
    );
    assert_eq!(fx.jwks_fetches(), 3);
}

#[tokio::test]
async fn case17_unknown_kid_is_refused_after_one_refetch() {
    let (fx, r) = sign_in_with(Misbehaviour::UnpublishedKid).await;
    assert_refused(r, 401, "key the issuer does not publish");
    assert_eq!(fx.jwks_fetches(), 2, "discovery's fetch plus one re-fetch");
}

#[tokio::test]
async fn case17_no_kid_with_several_keys_tries_each_key() {
    let (fx, r) = sign_in_with(Misbehaviour::NoKidSeveralKeys).await;
    assert_eq!(r.unwrap(), expected_identity(&fx));
    assert_eq!(fx.jwks_fetches(), 1, "trying keys does not re-fetch");
}

// ---- 18: userinfo --------------------------------------------------------

#[tokio::test]
async fn case18_userinfo_for_another_subject_is_refused() {
    let (fx, r) = sign_in_with(Misbehaviour::UserinfoSubMismatch).await;
    assert_refused(r, 401, "another person");
    assert_eq!(fx.userinfo_requests(), 1);
}

// ---- 19: state, PKCE, RFC 9207 ------------------------------------------

#[tokio::test]
async fn case19_authorize_url_carries_s256_pkce_state_and_nonce() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (url, pending) = rp.begin(None).await.unwrap();
    let q: std::collections::HashMap<String, String> = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(
        url.starts_with(&format!("{}/authorize?", fx.issuer)),
        "{url}"
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["redirect_uri"], REDIRECT_URI);
    assert_eq!(q["state"], pending.state);
    assert_eq!(q["nonce"], pending.nonce);
    assert!(!q.contains_key("prompt"));
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    assert_eq!(scopes, vec!["openid", "email", "profile"]);
    // The challenge is S256 of the verifier kept server-side.
    use base64::Engine;
    use sha2::Digest;
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(pending.pkce_verifier.as_bytes()));
    assert_eq!(q["code_challenge"], expected);
    // 256-bit state and nonce, fresh every time.
    assert!(pending.state.len() >= 43 && pending.nonce.len() >= 43);
    let (_, other) = rp.begin(None).await.unwrap();
    assert_ne!(other.state, pending.state);
    assert_ne!(other.nonce, pending.nonce);
    assert_ne!(other.pkce_verifier, pending.pkce_verifier);
    // The secrets never reach the URL other than as intended.
    assert!(!url.contains(&pending.pkce_verifier));
    assert!(!url.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn case19_missing_state_is_refused_before_any_token_request() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (pending, mut params) = fx.sign_in(&rp).await;
    params.state = None;
    let err = assert_refused(rp.complete(&pending, &params).await, 400, "start again");
    assert!(matches!(err, OidcError::BadState(_)));
    params.state = Some(String::new());
    assert_refused(rp.complete(&pending, &params).await, 400, "no state");
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case19_tampered_state_is_refused() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (pending, mut params) = fx.sign_in(&rp).await;
    let mut state = params.state.take().unwrap();
    state.pop();
    state.push('x');
    params.state = Some(state);
    assert_refused(rp.complete(&pending, &params).await, 400, "does not match");
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case19_state_of_another_sign_in_is_refused() {
    // Another browser's callback (its state) against this browser's pending
    // sign-in.
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (mine, _) = fx.sign_in(&rp).await;
    let (_, theirs) = fx.sign_in(&rp).await;
    assert_refused(rp.complete(&mine, &theirs).await, 400, "does not match");
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case19_pending_sign_in_expires() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let clock = clock();
    let rp = fx.connector(&clock);
    let (pending, params) = fx.sign_in(&rp).await;
    clock.advance(Duration::from_secs(PENDING_TTL_SECS as u64 + 1));
    assert_refused(rp.complete(&pending, &params).await, 400, "too long");
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case19_pending_sign_in_of_another_connection_is_refused() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let other = Fixture::start(Misbehaviour::Honest).await;
    let clock = clock();
    let rp = fx.connector(&clock);
    let other_rp = other.connector(&clock);
    let (pending, params) = other.sign_in(&other_rp).await;
    assert_refused(
        rp.complete(&pending, &params).await,
        400,
        "another connection",
    );
}

#[tokio::test]
async fn case19_replayed_code_is_refused() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (pending, params) = fx.sign_in(&rp).await;
    rp.complete(&pending, &params).await.unwrap();
    assert_refused(
        rp.complete(&pending, &params).await,
        401,
        "refused the authorization code",
    );
}

#[tokio::test]
async fn case19_rfc9207_iss_is_accepted_when_right() {
    let (fx, r) = sign_in_with(Misbehaviour::IssParam).await;
    assert_eq!(r.unwrap(), expected_identity(&fx));
}

#[tokio::test]
async fn case19_rfc9207_iss_missing_when_advertised_is_refused() {
    let (fx, r) = sign_in_with(Misbehaviour::IssParamOmitted).await;
    assert_refused(r, 401, "does not name its issuer");
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case19_rfc9207_iss_of_another_issuer_is_refused() {
    let (fx, r) = sign_in_with(Misbehaviour::IssParamWrong).await;
    assert_refused(r, 401, "another issuer");
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn case19_rfc9207_iss_is_checked_even_when_not_advertised() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (pending, mut params) = fx.sign_in(&rp).await;
    params.iss = Some(EVIL_ISSUER.into());
    assert_refused(rp.complete(&pending, &params).await, 401, "another issuer");
    params.iss = Some(fx.issuer.clone());
    rp.complete(&pending, &params).await.unwrap();
}

// ---- error callbacks, token endpoint, availability, at_hash -------------

#[tokio::test]
async fn error_callback_login_required_surfaces_as_provider_error() {
    let fx = Fixture::start(Misbehaviour::ErrorCallback("login_required")).await;
    let rp = fx.connector(&clock());
    let (url, pending) = rp.begin(Some("none")).await.unwrap();
    assert_eq!(fx.authorize(&url).await.code, None);
    assert_eq!(fx.last_authorize()["prompt"], "none");
    let params = fx.authorize(&url).await;
    let err = rp.complete(&pending, &params).await.unwrap_err();
    match &err {
        OidcError::ProviderError { error, description } => {
            assert_eq!(error, "login_required");
            // Control characters of the issuer's text are dropped.
            assert_eq!(
                description.as_deref(),
                Some("The user is not signed inhere")
            );
        }
        other => panic!("expected ProviderError, got {other:?}"),
    }
    assert_eq!(err.status(), 401);
    assert!(err.reason().contains("not signed in"), "{}", err.reason());
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn error_callback_access_denied_surfaces_as_provider_error() {
    let (fx, r) = sign_in_with(Misbehaviour::ErrorCallback("access_denied")).await;
    let err = assert_refused(r, 401, "access was denied");
    assert!(matches!(err, OidcError::ProviderError { ref error, .. } if error == "access_denied"));
    assert_eq!(fx.token_requests(), 0);
}

#[tokio::test]
async fn error_callback_with_bad_state_is_a_bad_state() {
    let fx = Fixture::start(Misbehaviour::ErrorCallback("access_denied")).await;
    let rp = fx.connector(&clock());
    let (pending, mut params) = fx.sign_in(&rp).await;
    params.state = Some("forged".into());
    assert_refused(rp.complete(&pending, &params).await, 400, "does not match");
}

#[tokio::test]
async fn callback_without_code_or_error_is_malformed() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (pending, mut params) = fx.sign_in(&rp).await;
    params.code = None;
    let err = assert_refused(
        rp.complete(&pending, &params).await,
        400,
        "no authorization code",
    );
    assert!(matches!(err, OidcError::Malformed(_)));
}

#[tokio::test]
async fn token_endpoint_failure_is_401() {
    let (_fx, r) = sign_in_with(Misbehaviour::TokenEndpointError).await;
    assert_refused(r, 401, "refused the authorization code (invalid_grant)");
}

#[tokio::test]
async fn at_hash_not_matching_the_access_token_is_refused() {
    let (_fx, r) = sign_in_with(Misbehaviour::BadAtHash).await;
    assert_refused(r, 401, "at_hash");
}

#[tokio::test]
async fn unreachable_issuer_is_503() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = iam_gateway::connectors::oidc::OidcClientConfig {
        issuer_url: format!("http://{addr}"),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_uri: REDIRECT_URI.into(),
        scopes: vec![],
    };
    let rp = OidcConnector::new(cfg, Arc::new(clock())).unwrap();
    let err = rp.begin(None).await.unwrap_err();
    assert!(matches!(err, OidcError::Unavailable(_)), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(err.reason().contains("cannot be reached"));
}

#[tokio::test]
async fn unsupported_prompt_is_refused_without_contacting_the_issuer() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    assert!(rp.begin(Some("none login")).await.is_err());
    assert_eq!(fx.discovery_fetches(), 0);
    let (url, _) = rp.begin(Some("login")).await.unwrap();
    assert!(url.contains("prompt=login"), "{url}");
}

// ---- what the caller relies on -------------------------------------------

#[tokio::test]
async fn pending_auth_survives_a_round_trip_through_the_session_store() {
    let fx = Fixture::start(Misbehaviour::Honest).await;
    let rp = fx.connector(&clock());
    let (pending, params) = fx.sign_in(&rp).await;
    let stored = serde_json::to_string(&pending).unwrap();
    let back: iam_gateway::connectors::oidc::PendingAuth = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, pending);
    assert_eq!(
        rp.complete(&back, &params).await.unwrap(),
        expected_identity(&fx)
    );
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    // With a single registered dispatcher, tracing computes a callsite's
    // interest from the default of whichever thread reaches it first (another
    // test's thread, without a subscriber: "never"). A second dispatcher,
    // kept alive and unused, makes it ask every registered one.
    let _second = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .finish(),
    );
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fx = Fixture::start(Misbehaviour::Honest).await;
    let clock = clock();
    let rp = fx.connector(&clock);
    let mut secrets = vec![CLIENT_SECRET.to_string()];
    for m in [
        Misbehaviour::Honest,
        Misbehaviour::BadSignature,
        Misbehaviour::UnpublishedKid,
        Misbehaviour::NonceWrong,
        Misbehaviour::UserinfoSubMismatch,
        Misbehaviour::TokenEndpointError,
    ] {
        fx.set(m);
        let (pending, params) = fx.sign_in(&rp).await;
        let _ = rp.complete(&pending, &params).await;
        secrets.extend([
            pending.state.clone(),
            pending.nonce.clone(),
            pending.pkce_verifier.clone(),
            params.code.clone().unwrap(),
        ]);
        if let Some((access, id)) = fx.last_tokens() {
            secrets.extend([access, id]);
        }
    }
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains("OIDC sign-in refused"),
        "refusals are logged: {log}"
    );
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
}
