//! Request helpers: cookies, the client address, the original URL behind a
//! proxy, and the current session.

use super::AppState;
use crate::session::{KvError, Session};
use axum::http::HeaderMap;
use std::net::{IpAddr, SocketAddr};

/// The value of cookie `name` (the first one, if several).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The client's address: the peer, or the right-most untrusted entry of
/// `X-Forwarded-For` when the peer is a trusted proxy.
pub fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let mut ip = peer.ip();
    if !state.cfg.is_trusted_proxy(ip) {
        return ip;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for hop in hops.into_iter().rev() {
        ip = hop;
        if !state.cfg.is_trusted_proxy(hop) {
            break;
        }
    }
    ip
}

/// What the proxy says the original request was.
pub enum OriginalUrl {
    /// The peer is not trusted, or sent nothing.
    Unknown,
    Valid(url::Url),
    /// Present but not an http(s) URL.
    Malformed,
}

pub fn original_url(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> OriginalUrl {
    if !state.cfg.is_trusted_proxy(peer.ip()) {
        return OriginalUrl::Unknown;
    }
    let h = |n: &str| headers.get(n).map(|v| v.to_str().map(str::trim));
    let text = match h("x-original-url") {
        Some(Ok(u)) => u.to_string(),
        Some(Err(_)) => return OriginalUrl::Malformed,
        None => match (
            h("x-forwarded-proto"),
            h("x-forwarded-host"),
            h("x-forwarded-uri"),
        ) {
            (None, None, None) => return OriginalUrl::Unknown,
            (Some(Ok(proto)), Some(Ok(host)), uri) => {
                let uri = match uri {
                    Some(Ok(u)) => u,
                    Some(Err(_)) => return OriginalUrl::Malformed,
                    None => "/",
                };
                if !uri.starts_with('/') || host.contains(['/', '\\', '@']) {
                    return OriginalUrl::Malformed;
                }
                format!("{proto}://{host}{uri}")
            }
            _ => return OriginalUrl::Malformed,
        },
    };
    match url::Url::parse(&text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
            OriginalUrl::Valid(u)
        }
        _ => OriginalUrl::Malformed,
    }
}

/// The session cookie's value and its live session, if any.
pub async fn current_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, KvError> {
    let Some(value) = cookie(headers, state.sessions.cookie_name()) else {
        return Ok(None);
    };
    Ok(state
        .sessions
        .lookup(value)
        .await?
        .map(|s| (value.to_string(), s)))
}
