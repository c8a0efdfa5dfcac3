//! The issuer's sign-in: email and password, then a TOTP step when the
//! account has 2FA; sign-out; one-time set-password links. Unknown emails
//! are verified against a dummy hash and answered like wrong passwords.

use super::sessions::MFA_COOKIE;
use super::views::{
    csrf_refused, message, render, render_status, see_other, with_cookies, Chrome, PageError,
    SetPasswordPage, SignInPage, TotpStepPage,
};
use super::{accounts, csrf, enc, local_return_to, IssuerState};
use crate::domain::model::valid_email;
use crate::domain::DomainError;
use crate::password::{check_policy, MAX_PASSWORD_BYTES};
use crate::totp;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ReturnTo {
    pub return_to: Option<String>,
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    pub return_to: Option<String>,
    #[serde(default)]
    pub csrf_token: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
    pub return_to: Option<String>,
    #[serde(default)]
    pub csrf_token: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf_token: String,
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub csrf_token: String,
}

const WRONG_CREDENTIALS: &str = "Incorrect email or password.";

/// `GET /login`: always shows the form (also to a signed-in browser, which
/// is how `prompt=login` is honoured).
pub async fn page(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    let session = st.session(&headers).await?;
    let (token, set) = csrf::page_token(&st, &headers, session.as_ref());
    let page = SignInPage {
        chrome: Chrome {
            csrf: token,
            email: None,
        },
        return_to: local_return_to(q.return_to.as_deref()),
        email: String::new(),
        error: None,
        notice: None,
    };
    Ok(with_cookies(render(&page), set))
}

/// `POST /login`: the password step.
pub async fn submit(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Result<Response, PageError> {
    let session = st.session(&headers).await?;
    if !csrf::verify(&st, &headers, session.as_ref(), &f.csrf_token) {
        return Ok(csrf_refused());
    }
    let (token, set) = csrf::page_token(&st, &headers, session.as_ref());
    let return_to = local_return_to(f.return_to.as_deref());
    let email = f.email.trim().to_string();
    let refuse = |status: StatusCode, msg: &str| {
        let page = SignInPage {
            chrome: Chrome {
                csrf: token.clone(),
                email: None,
            },
            return_to: return_to.clone(),
            email: email.clone(),
            error: Some(msg.to_string()),
            notice: None,
        };
        with_cookies(render_status(status, &page), set.clone())
    };
    if f.password.len() > MAX_PASSWORD_BYTES {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "That password is too long.",
        ));
    }
    let account = if valid_email(&email) {
        accounts::by_email(st.store.as_ref(), &email).await?
    } else {
        None
    };
    let ok = st
        .hasher
        .verify(
            account.as_ref().and_then(|a| a.password_hash.as_deref()),
            &f.password,
        )
        .await;
    let Some(account) = account.filter(|_| ok) else {
        tracing::info!(
            event = "twilio_signin_failed",
            "twilio issuer password sign-in failed"
        );
        return Ok(refuse(StatusCode::UNAUTHORIZED, WRONG_CREDENTIALS));
    };
    if account.totp_enabled {
        let pending = st.start_mfa(&account.sub).await?;
        return Ok(with_cookies(
            see_other(&format!("/login/totp?return_to={}", enc(&return_to))),
            [st.mfa_cookie(&pending)],
        ));
    }
    let value = st
        .start_session(&account.sub, vec!["pwd".into()], &headers)
        .await?;
    tracing::info!(event = "twilio_signin", sub = %account.sub, "signed in to the twilio issuer");
    Ok(with_cookies(
        see_other(&return_to),
        [st.session_cookie(&value)],
    ))
}

/// `GET /login/totp`: the code form, while a password step is pending.
pub async fn totp_page(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    let return_to = local_return_to(q.return_to.as_deref());
    if st.pending_mfa(&headers).await?.is_none() {
        return Ok(see_other(&format!("/login?return_to={}", enc(&return_to))));
    }
    let (token, set) = csrf::page_token(&st, &headers, None);
    let page = TotpStepPage {
        chrome: Chrome {
            csrf: token,
            email: None,
        },
        return_to,
        error: None,
    };
    Ok(with_cookies(render(&page), set))
}

/// `POST /login/totp`: a code newer than the last accepted one finishes the
/// sign-in with `amr = ["pwd", "otp"]`.
pub async fn totp_submit(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&st, &headers, None, &f.csrf_token) {
        return Ok(csrf_refused());
    }
    let return_to = local_return_to(f.return_to.as_deref());
    let start_over = || {
        with_cookies(
            see_other(&format!("/login?return_to={}", enc(&return_to))),
            [st.clear_cookie(MFA_COOKIE)],
        )
    };
    let Some((value, pending)) = st.pending_mfa(&headers).await? else {
        return Ok(start_over());
    };
    let account = accounts::by_sub(st.store.as_ref(), &pending.sub)
        .await?
        .filter(|a| a.totp_enabled);
    let Some((account, sealed)) = account.and_then(|a| a.totp_secret.clone().map(|s| (a, s)))
    else {
        return Ok(start_over());
    };
    let secret = accounts::open_totp(&st.secret, &account.sub, &sealed)?;
    let now = st.clock.now();
    let accepted = match totp::verify(&secret, &f.code, now, account.totp_last_step) {
        Some(step) => accounts::accept_totp_step(st.store.as_ref(), &account.sub, step).await?,
        None => false,
    };
    if !accepted {
        tracing::info!(event = "twilio_totp_failed", sub = %account.sub, "wrong or reused TOTP code");
        if !st.mfa_failed(&value, pending).await? {
            return Ok(with_cookies(
                message(
                    StatusCode::UNAUTHORIZED,
                    "Too many wrong codes",
                    "Sign in again with your password.",
                    Some((&format!("/login?return_to={}", enc(&return_to)), "Sign in")),
                ),
                [st.clear_cookie(MFA_COOKIE)],
            ));
        }
        let (token, set) = csrf::page_token(&st, &headers, None);
        let page = TotpStepPage {
            chrome: Chrome {
                csrf: token,
                email: None,
            },
            return_to,
            error: Some("That code is wrong or was already used. Wait for the next one.".into()),
        };
        return Ok(with_cookies(
            render_status(StatusCode::UNAUTHORIZED, &page),
            set,
        ));
    }
    if st.finish_mfa(&value).await?.is_none() {
        return Ok(start_over());
    }
    let session = st
        .start_session(&account.sub, vec!["pwd".into(), "otp".into()], &headers)
        .await?;
    tracing::info!(event = "twilio_signin", sub = %account.sub, mfa = true, "signed in to the twilio issuer");
    Ok(with_cookies(
        see_other(&return_to),
        [st.session_cookie(&session), st.clear_cookie(MFA_COOKIE)],
    ))
}

/// `POST /logout`: ends this browser's issuer session.
pub async fn logout(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let session = st.session(&headers).await?;
    if !csrf::verify(&st, &headers, session.as_ref(), &f.csrf_token) {
        return Ok(csrf_refused());
    }
    if let Some(value) = crate::web::http::cookie(&headers, super::sessions::SESSION_COOKIE) {
        st.end_session(value).await?;
    }
    if let Some(s) = &session {
        tracing::info!(event = "twilio_signout", sub = %s.sub, "signed out of the twilio issuer");
    }
    Ok(with_cookies(
        see_other("/login"),
        [st.clear_cookie(super::sessions::SESSION_COOKIE)],
    ))
}

fn link_dead() -> PageError {
    PageError(DomainError::Invalid(
        "This link is invalid, was already used, or has expired. Ask for a new one.".into(),
    ))
}

pub async fn set_password_page(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let account = accounts::by_password_link(st.store.as_ref(), &token, st.clock.now())
        .await?
        .ok_or_else(link_dead)?;
    let (csrf_token, set) = csrf::page_token(&st, &headers, None);
    let page = SetPasswordPage {
        chrome: Chrome {
            csrf: csrf_token,
            email: None,
        },
        email: account.email,
        error: None,
    };
    Ok(with_cookies(render(&page), set))
}

pub async fn set_password(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<NewPasswordForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&st, &headers, None, &f.csrf_token) {
        return Ok(csrf_refused());
    }
    let now = st.clock.now();
    let account = accounts::by_password_link(st.store.as_ref(), &token, now)
        .await?
        .ok_or_else(link_dead)?;
    if let Err(why) = check_policy(&f.password, &account.email) {
        let (csrf_token, set) = csrf::page_token(&st, &headers, None);
        let page = SetPasswordPage {
            chrome: Chrome {
                csrf: csrf_token,
                email: None,
            },
            email: account.email,
            error: Some(why),
        };
        return Ok(with_cookies(
            render_status(StatusCode::BAD_REQUEST, &page),
            set,
        ));
    }
    let hash = st
        .hasher
        .hash(&f.password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    if !accounts::use_password_link(st.store.as_ref(), &token, &hash, now).await? {
        return Err(link_dead());
    }
    st.end_other_sessions(&account.sub, None).await?;
    tracing::info!(event = "twilio_password_set", sub = %account.sub, "password set from a one-time link");
    let (csrf_token, set) = csrf::page_token(&st, &headers, None);
    let page = SignInPage {
        chrome: Chrome {
            csrf: csrf_token,
            email: None,
        },
        return_to: local_return_to(None),
        email: account.email,
        error: None,
        notice: Some("Your password is set. Log in with it now.".into()),
    };
    Ok(with_cookies(render(&page), set))
}
