//! The workspace's OpenID Connect clients (SPEC section 13): the apps that
//! sign people in against the gateway. Owners register and delete them;
//! every change is audited.

use super::{Core, Ctx};
use crate::crypto;
use crate::domain::roles;
use crate::domain::DomainError;
use crate::store::oidc::OidcClient;
use serde::Deserialize;
use serde_json::json;

/// The prefix of client secrets (so secret scanners recognise them).
pub const SECRET_PREFIX: &str = "iamgw_cs_";

const MAX_URIS: usize = 20;
/// Apps one workspace may register.
pub const MAX_CLIENTS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub required_role: Option<String>,
}

/// Whether `uri` may be registered: absolute, no fragment, no user info,
/// https, or http on a loopback host. `Err` says why not.
pub fn check_uri(field: &str, uri: &str) -> Result<(), DomainError> {
    let bad = |why: &str| Err(DomainError::Invalid(format!("{field}: {why} ({uri:?})")));
    if uri.len() > 2048 || uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("not a usable URL");
    }
    let Ok(url) = url::Url::parse(uri) else {
        return bad("not an absolute URL");
    };
    if url.fragment().is_some() {
        return bad("must not have a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not carry user information");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return bad("must name a host"),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => bad("http is allowed only on a loopback host; use https"),
        _ => bad("must be https (or http on a loopback host)"),
    }
}

/// Whether `ip` is an address on the public internet (not loopback,
/// private, link-local, shared (CGNAT), documentation, multicast or
/// unspecified).
pub fn public_ip(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public_ip(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// A back-channel logout URI: a registrable URI that, unless private
/// networks are allowed (`oidc.backchannel_private_networks`), is https to
/// a host that is not a loopback, private or otherwise non-public address
/// (names are checked again when they are resolved, at each delivery).
pub fn check_backchannel_uri(uri: &str, allow_private: bool) -> Result<(), DomainError> {
    let field = "backchannel_logout_uri";
    check_uri(field, uri)?;
    if allow_private {
        return Ok(());
    }
    let bad = |why: &str| Err(DomainError::Invalid(format!("{field}: {why} ({uri:?})")));
    let Ok(url) = url::Url::parse(uri) else {
        return bad("not an absolute URL");
    };
    if url.scheme() != "https" {
        return bad("must be https");
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) if !public_ip(ip.into()) => bad("must not be a private address"),
        Some(url::Host::Ipv6(ip)) if !public_ip(ip.into()) => bad("must not be a private address"),
        Some(url::Host::Domain(d))
            if d.eq_ignore_ascii_case("localhost")
                || d.to_ascii_lowercase().ends_with(".localhost") =>
        {
            bad("must not be a private address")
        }
        _ => Ok(()),
    }
}

fn check_uris(field: &str, uris: &[String], at_least_one: bool) -> Result<(), DomainError> {
    if at_least_one && uris.is_empty() {
        return Err(DomainError::Invalid(format!(
            "{field}: at least one is needed"
        )));
    }
    if uris.len() > MAX_URIS {
        return Err(DomainError::Invalid(format!("{field}: at most {MAX_URIS}")));
    }
    uris.iter().try_for_each(|u| check_uri(field, u))
}

/// Checks a registration request (`allow_private`: see
/// [`check_backchannel_uri`]).
pub fn check(req: &NewClient, allow_private: bool) -> Result<(), DomainError> {
    // Checked as sent (the schema's maxLength counts every character).
    let name = &req.name;
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(
            "name: 1 to 100 characters, no control characters".into(),
        ));
    }
    check_uris("redirect_uris", &req.redirect_uris, true)?;
    check_uris(
        "post_logout_redirect_uris",
        &req.post_logout_redirect_uris,
        false,
    )?;
    if let Some(u) = &req.backchannel_logout_uri {
        check_backchannel_uri(u, allow_private)?;
    }
    if let Some(r) = &req.required_role {
        if roles::find(r).is_none() {
            return Err(DomainError::Invalid(format!(
                "required_role: unknown role {r:?}"
            )));
        }
    }
    Ok(())
}

/// The workspace's clients (owners).
pub async fn list(core: &Core, ctx: &Ctx) -> Result<Vec<OidcClient>, DomainError> {
    ctx.require_owner()?;
    Ok(core.store.oidc_clients(&ctx.ws.id).await?)
}

/// Registers a client (owners; audited). Returns it and, for a
/// confidential client, its secret, which is shown this once.
pub async fn create(
    core: &Core,
    ctx: &Ctx,
    req: NewClient,
) -> Result<(OidcClient, Option<String>), DomainError> {
    ctx.require_owner()?;
    check(&req, core.cfg.oidc_backchannel_private)?;
    if core.store.oidc_clients(&ctx.ws.id).await?.len() >= MAX_CLIENTS {
        return Err(DomainError::Conflict(format!(
            "a workspace can register at most {MAX_CLIENTS} apps; delete one first"
        )));
    }
    let secret = if req.public {
        None
    } else {
        Some(crate::tokens::mint(SECRET_PREFIX)?)
    };
    let client = OidcClient {
        id: format!("iamgw-{}", crypto::b64url(&crypto::random_bytes::<12>()?)),
        workspace_id: ctx.ws.id.clone(),
        name: req.name.trim().to_string(),
        secret_hash: secret.as_deref().map(crate::tokens::hash),
        redirect_uris: req.redirect_uris,
        post_logout_redirect_uris: req.post_logout_redirect_uris,
        backchannel_logout_uri: req.backchannel_logout_uri,
        required_role: req.required_role,
        created_by: ctx.caller.actor().id,
        created_at: core.clock.now(),
    };
    let details = json!({
        "name": client.name,
        "public": secret.is_none(),
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "required_role": client.required_role,
    });
    let change = core.store.create_oidc_client(&client);
    ctx.audited(
        core,
        "oidc_client.created",
        Some(&client.id),
        details,
        change,
    )
    .await?;
    Ok((client, secret))
}

/// Deletes a client of this workspace and everything it was issued
/// (owners; audited).
pub async fn delete(core: &Core, ctx: &Ctx, id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let change = core.store.delete_oidc_client(&ctx.ws.id, id);
    ctx.audited(core, "oidc_client.deleted", Some(id), json!({}), change)
        .await
}

/// Whether `presented` is this client's secret (constant time).
pub fn secret_matches(client: &OidcClient, presented: &str) -> bool {
    match &client.secret_hash {
        Some(stored) => crypto::ct_eq(crate::tokens::hash(presented).as_bytes(), stored.as_bytes()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{check_backchannel_uri, check_uri};

    #[test]
    fn back_channel_uris_are_public_https_unless_private_networks_are_allowed() {
        for bad in [
            "http://127.0.0.1:8081/bc",
            "https://127.0.0.1/bc",
            "https://10.1.2.3/bc",
            "https://192.168.0.9/bc",
            "https://172.16.0.1/bc",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/bc",
            "https://[::1]/bc",
            "https://[fd00::1]/bc",
            "https://[::ffff:10.0.0.1]/bc",
            "https://localhost/bc",
            "https://x.localhost/bc",
            "https://0.0.0.0/bc",
            "http://app.example.com/bc",
        ] {
            assert!(check_backchannel_uri(bad, false).is_err(), "{bad}");
        }
        for ok in [
            "https://app.example.com/bc?logout=backchannel",
            "https://8.8.8.8/bc",
        ] {
            assert!(check_backchannel_uri(ok, false).is_ok(), "{ok}");
        }
        assert!(check_backchannel_uri("http://127.0.0.1:8081/bc", true).is_ok());
        assert!(
            check_backchannel_uri("http://10.0.0.1/bc", true).is_err(),
            "still registrable URIs only"
        );
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http_without_fragment() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb?x=1",
            "http://[::1]:9/cb",
        ] {
            assert!(check_uri("r", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "https://app.example.com/cb#x",
            "/cb",
            "javascript:alert(1)",
            "https://user:pw@app.example.com/cb",
            "https://app.example.com/c b",
            "http://127.0.0.1.evil.test/cb",
        ] {
            assert!(check_uri("r", bad).is_err(), "{bad}");
        }
    }
}
