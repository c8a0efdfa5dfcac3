//! The HTTP client every request to an issuer goes through: no redirects
//! followed (a redirect could carry the token request elsewhere or reach an
//! internal address), connect and total timeouts, and a bound on the size of
//! any response body so a hostile issuer cannot exhaust memory.

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Largest response body accepted from an issuer (discovery, JWKS, token,
/// userinfo): 1 MiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connection refused, DNS failure, timeout, connection cut: the issuer
    /// is unreachable (a 503-class condition).
    #[error("could not reach the issuer: {0}")]
    Unreachable(String),
    #[error("the issuer's response is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("HTTP error: {0}")]
    Other(String),
}

#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    pub fn new() -> Result<Self, HttpError> {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!("iam-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::Other(describe(&e)))?;
        Ok(Self { inner })
    }

    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request)
            .map_err(|e| HttpError::Other(describe(&e.without_url())))?;
        let mut response = self.inner.execute(request).await.map_err(classify)?;
        let mut builder = openidconnect::http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| HttpError::Other(e.to_string()))
    }
}

impl<'c> AsyncHttpClient<'c> for HttpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

/// The URL is dropped from reqwest's errors: a query string could carry a
/// secret, and the issuer's endpoints are known anyway.
fn classify(e: reqwest::Error) -> HttpError {
    let e = e.without_url();
    if e.is_connect() || e.is_timeout() || e.is_request() || e.is_body() {
        HttpError::Unreachable(describe(&e))
    } else {
        HttpError::Other(describe(&e))
    }
}

/// An error and its sources on one line.
fn describe(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
