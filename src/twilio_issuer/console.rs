//! `/console`: the simulated Twilio Console for the signed-in account, with
//! a product switcher whose "Segment" entry hands the person over to the
//! gateway (which starts its own OIDC sign-in here and, since the person is
//! signed in, gets a code without a second sign-in).

use super::views::{render, see_other, Chrome, ConsolePage, PageError, Product};
use super::{accounts, csrf, IssuerState};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

pub async fn home() -> Response {
    see_other("/console")
}

fn products(handoff_url: &str) -> Vec<Product> {
    vec![
        Product {
            name: "Twilio",
            blurb: "Messaging, Voice, Verify and more",
            href: None,
        },
        Product {
            name: "Segment",
            blurb: "Customer data platform",
            href: Some(handoff_url.to_string()),
        },
        Product {
            name: "SendGrid",
            blurb: "Email delivery (not part of this simulation)",
            href: Some("/console#sendgrid".into()),
        },
        Product {
            name: "Flex",
            blurb: "Contact center (not part of this simulation)",
            href: Some("/console#flex".into()),
        },
    ]
}

pub async fn console(
    State(st): State<IssuerState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let to_login = || see_other("/login?return_to=%2Fconsole");
    let Some(session) = st.session(&headers).await? else {
        return Ok(to_login());
    };
    let Some(account) = accounts::by_sub(st.store.as_ref(), &session.sub).await? else {
        return Ok(to_login());
    };
    let page = ConsolePage {
        chrome: Chrome {
            csrf: csrf::page_token(&st, &headers, Some(&session)).0,
            email: Some(account.email.clone()),
        },
        name: account.name,
        products: products(&st.handoff_url),
    };
    Ok(render(&page))
}
