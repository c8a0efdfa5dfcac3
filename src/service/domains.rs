//! A workspace's email domains: claimed, proven by a DNS TXT record, and
//! released. The REST API and the SSO settings page both come here.

use super::{Core, Ctx};
use crate::crypto;
use crate::domain::DomainError;
use crate::store::Domain;
use serde::Deserialize;
use serde_json::json;

/// The body that claims a domain.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub domain: String,
}

/// A plausible DNS name: labels of letters, digits and hyphens, a dot.
pub fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The TXT record that proves a domain: `iamgw-verification=<token>`.
pub fn verification_record(d: &Domain) -> String {
    format!("iamgw-verification={}", d.token)
}

/// The workspace's domains.
pub async fn list_domains(core: &Core, ctx: &Ctx) -> Result<Vec<Domain>, DomainError> {
    Ok(core.store.list_domains(&ctx.ws.id).await?)
}

/// Claims a domain for this workspace (owners; audited); it still has to
/// be verified.
pub async fn add_domain(core: &Core, ctx: &Ctx, domain: &str) -> Result<Domain, DomainError> {
    ctx.require_owner()?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(DomainError::Invalid(
            "domain: not a domain name like corp.example".into(),
        ));
    }
    let d = Domain {
        domain,
        workspace_id: ctx.ws.id.clone(),
        token: crypto::random_token("")?,
        verified_at: None,
        created_at: core.clock.now(),
    };
    let change = core.store.create_domain(&d);
    ctx.audited(core, "domain.added", Some(&d.domain), json!({}), change)
        .await?;
    Ok(d)
}

/// `Conflict` with the reason unless one of the domain's TXT records is its
/// verification record.
async fn check_txt(core: &Core, d: &Domain) -> Result<(), DomainError> {
    let server = crate::dns::resolver(core.cfg.dns_resolver)
        .map_err(|e| DomainError::Unavailable(e.to_string()))?;
    let records = crate::dns::txt(server, &d.domain).await.map_err(|e| {
        DomainError::Conflict(format!(
            "the TXT records of {} could not be read: {e}",
            d.domain
        ))
    })?;
    let expected = verification_record(d);
    if records
        .iter()
        .any(|r| crypto::ct_eq(r.trim().as_bytes(), expected.as_bytes()))
    {
        return Ok(());
    }
    Err(DomainError::Conflict(format!(
        "no TXT record `{expected}` found at {} yet (DNS changes can take a while)",
        d.domain
    )))
}

/// Verifies a domain of this workspace by its TXT record (owners; audited
/// when it becomes verified); the domain as it is after the check.
pub async fn verify_domain(core: &Core, ctx: &Ctx, domain: &str) -> Result<Domain, DomainError> {
    ctx.require_owner()?;
    let d = core
        .store
        .get_domain(&domain.trim().to_ascii_lowercase())
        .await?
        .filter(|d| d.workspace_id == ctx.ws.id)
        .ok_or(DomainError::NotFound)?;
    if d.verified_at.is_none() {
        check_txt(core, &d).await?;
        let change = core.store.mark_domain_verified(&d.domain, core.clock.now());
        ctx.audited(core, "domain.verified", Some(&d.domain), json!({}), change)
            .await?;
    }
    core.store
        .get_domain(&d.domain)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Releases a domain of this workspace (owners; audited).
pub async fn remove_domain(core: &Core, ctx: &Ctx, domain: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let domain = domain.trim().to_ascii_lowercase();
    let change = core.store.delete_domain(&ctx.ws.id, &domain);
    ctx.audited(core, "domain.removed", Some(&domain), json!({}), change)
        .await
}

#[cfg(test)]
mod tests {
    use super::valid_domain;

    #[test]
    fn domain_names() {
        for ok in ["corp.example", "a-b.c0.example", "x.y"] {
            assert!(valid_domain(ok), "{ok}");
        }
        for bad in [
            "example",
            "-a.example",
            "a-.example",
            "a..example",
            "a_b.example",
            "",
            "é.example",
        ] {
            assert!(!valid_domain(bad), "{bad}");
        }
        assert!(!valid_domain(&format!("{}.example", "a".repeat(64))));
    }
}
